#!/usr/bin/env bash
# saslgate-bench, the load generator docs/PERFORMANCE.md is made with, against the two real servers it
# compares: saslgated and Dovecot 2.3's auth service on the same passwd-file. Both engines (epoll, the
# default, and one thread per connection) must complete every request with every reply checked, and the
# bench must count a reply that contradicts the users file as an error (it checks, not just counts).
# Needs $SASLGATE_BIN_DIR/{saslgated,saslgate-bench} (default .build/debug); skipped when absent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
sgbin=$bin_dir/saslgated
bench=$bin_dir/saslgate-bench
[ -x "$sgbin" ] || e2e_skip "saslgated not built ($sgbin not found)"
[ -x "$bench" ] || e2e_skip "saslgate-bench not built ($bench not found)"
command -v dovecot >/dev/null || e2e_die "dovecot is not installed (run scripts/install-deps)"

dir=$(e2e_mkdir bench)
# 40 users with {PLAIN} entries; the bench's file lists user:password.
for i in $(seq 1 40); do printf 'u%s@example.org:{PLAIN}pw-%s-x\n' "$i" "$i"; done >"$dir/table"
for i in $(seq 1 40); do printf 'u%s@example.org:pw-%s-x\n' "$i" "$i"; done >"$dir/users"
chmod 0640 "$dir/table"
if getent group saslgate >/dev/null; then chgrp saslgate "$dir/table"; fi
# The same users, one with a password the server does not have: a "good" request that must come back FAIL.
sed 's/^u7@example.org:.*/u7@example.org:not-the-password/' "$dir/users" >"$dir/users-one-wrong"

cat >"$dir/saslgated.conf" <<EOF
listen = $dir/sg.sock
listen_mode = 0666
run_user =
mechanisms = plain login
passdbs = passwd-file:$dir/table
failure_delay = 0
EOF
start_daemon "$dir/saslgated.log" "$sgbin" -c "$dir/saslgated.conf"
sg_pid=$DAEMON_PID
wait_for_socket "$dir/sg.sock" 20 "$sg_pid" "$dir/saslgated.log"

write_dovecot_auth_conf "$dir" "$dir/table" "$dir/dc.sock" saslgate-e2e-bench
start_daemon "$dir/dovecot.stderr" dovecot -F -c "$dir/dovecot.conf"
dc_pid=$DAEMON_PID
E2E_LOGS+=("$dir/dovecot.log")
wait_for_socket "$dir/dc.sock" 15 "$dc_pid" "$dir/dovecot.stderr"

# field JSON KEY: one value of the bench's --json output.
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

run_bench() { # OUT_FILE ARGS...
    local out=$1
    shift
    "$bench" --json --secured --no-penalty --warmup 0 --timeout 20 "$@" >"$out" 2>"$out.stderr"
}

for server in sg dc; do
    for engine in epoll threads; do
        for mech in plain login; do
            out=$dir/$server-$engine-$mech.json
            name="$server, --engine $engine, $mech: 8 x 4 in flight, 800 requests, 20 % wrong passwords"
            if run_bench "$out" --socket "$dir/$server.sock" --users "$dir/users" --engine "$engine" --mech "$mech" \
                --connections 8 --pipeline 4 --requests 800 --bad-share 0.2; then
                j=$(cat "$out")
                check "$name: all 800 answered" test "$(field "$j" completed)" = 800
                check "$name: no error" test "$(field "$j" errors)" = 0
                check "$name: wrong passwords got FAIL" test "$(field "$j" fail_bad)" -gt 0
            else
                e2e_fail "$name: saslgate-bench exited with an error" "$(tail -n 5 "$out.stderr")"
            fi
        done
    done
done

# The bench checks every reply: a FAIL for a request it believes good is an error, not a success.
out=$dir/one-wrong.json
run_bench "$out" --socket "$dir/sg.sock" --users "$dir/users-one-wrong" --connections 4 --pipeline 4 \
    --requests 400 --bad-share 0 || true
j=$(cat "$out")
check "a FAIL where the users file expects OK is counted as an error" test "$(field "$j" errors)" -gt 0
check "... and named in the error samples (the user, the reply)" grep -q -F 'FAIL for a good password (user u7@example.org)' "$out"

check "saslgated still running" process_alive "$sg_pid"
check "Dovecot still running" process_alive "$dc_pid"
