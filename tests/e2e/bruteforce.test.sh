#!/usr/bin/env bash
# Brute force through a real Postfix (Postfix waits at most 10 s for the auth server and turns
# anything slower into 454, which fail2ban ignores). 50 wrong passwords from one client IP must all
# be answered 535, never 454, each well under 10 s; the real user from another IP still gets 235 at
# once; the daemon's penalty state shows the block and can be cleared; every failure is logged in the
# documented line that fail2ban reads. Uses saslgated's default brute-force settings
# (failure_delay 2s, penalty_max_delay 5s, penalty_block_after 10).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"

sg=$(e2e_mkdir saslgated)
sock=$sg/auth.sock
write_users_file "$sg/users"
cat >"$sg/saslgated.conf" <<CONF
listen = $sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket = $sg/control
mechanisms = plain login
passdbs = passwd-file:$sg/users
default_realm = example.org
cleartext_requires_tls = yes
CONF
start_daemon "$sg/saslgated.log" "$bin_dir/saslgated" -c "$sg/saslgated.conf"
sg_pid=$DAEMON_PID
wait_for_socket "$sock" 20 "$sg_pid" "$sg/saslgated.log"

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sock" --tls

attacker=127.0.77.7
n535=0
n454=0
slowest_ms=0
start_all=$(date +%s%N)
for i in $(seq 1 50); do
    transcript=$E2E_TMP/brute.$i
    t0=$(date +%s%N)
    run_swaks --tls --local-interface "$attacker" --auth PLAIN --auth-user "$E2E_ALICE" \
        --auth-password "guess-$i" >"$transcript" 2>&1 || true
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -gt "$slowest_ms" ] && slowest_ms=$ms
    reply=$(swaks_auth_reply "$transcript")
    case ${reply:0:3} in
        535) n535=$((n535 + 1)) ;;
        454) n454=$((n454 + 1)) ;;
    esac
done
total_s=$((($(date +%s%N) - start_all) / 1000000000))
check "50 wrong passwords from one IP: all 535 (got $n535 x 535, $n454 x 454; ${total_s}s in all)" test "$n535" -eq 50
check "never 454 (Postfix never lost the auth server)" test "$n454" -eq 0
check "every SMTP AUTH answered well under 10 s (slowest whole session ${slowest_ms} ms)" test "$slowest_ms" -lt 8000

t0=$(date +%s%N)
expect_swaks "the real user from another IP still gets 235" 235 --tls --local-interface 127.0.88.8 \
    --auth PLAIN --auth-user "$E2E_ALICE" --auth-password "$E2E_ALICE_PASS"
ms=$((($(date +%s%N) - t0) / 1000000))
# "At once" by the daemon's own clock (its log line), not the wall clock of a whole swaks + TLS + smtpd
# session, which a loaded test machine can stretch: no failure delay, and answered within a second.
ok_line=$(grep -F 'rip=127.0.88.8' "$sg/saslgated.log" | grep -F 'result=ok' | tail -n 1 || true)
ok_ms=$(sed -n 's/.*duration_ms=\([0-9][0-9]*\).*/\1/p' <<<"$ok_line")
check "...at once (the daemon answered in ${ok_ms:-?} ms, no delay; ${ms} ms for the whole SMTP session)" \
    bash -c '[ -n "$1" ] && [ "$1" -lt 1000 ] && ! grep -q "delay_ms=" <<<"$2"' _ "$ok_ms" "$ok_line"
check "...and the whole SMTP session stays far below Postfix's 10 s (${ms} ms)" test "$ms" -lt 8000

expect_swaks "the attacker's IP is in cool-down: even the right password gets 535" 535 \
    --reply-match "Too many failed authentication attempts" --tls --local-interface "$attacker" \
    --auth PLAIN --auth-user "$E2E_ALICE" --auth-password "$E2E_ALICE_PASS"

penalties=$("$bin_dir/saslgate" penalty list --control "$sg/control" 2>&1 || true)
check "saslgate penalty list shows the blocked IP" grep -q "ip $attacker failures=10 .*blocked" <<<"$penalties"
"$bin_dir/saslgate" penalty clear --control "$sg/control" "$attacker" >/dev/null
expect_swaks "after saslgate penalty clear the attacker's IP may log in again" 235 --tls \
    --local-interface "$attacker" --auth PLAIN --auth-user "$E2E_ALICE" --auth-password "$E2E_ALICE_PASS"

log=$sg/saslgated.log
# Password failures name the user; refusals during the cool-down come before the name is read (user="").
failed_lines=$(grep -c -E " auth failed result=failed user=(\"\"|$E2E_ALICE) mech=PLAIN service=smtp rip=$attacker " "$log" || true)
check "every refusal logged in the documented line (${failed_lines} lines)" test "$failed_lines" -ge 51
filter=$E2E_ROOT/conf/fail2ban/filter.d/saslgate.conf
if command -v fail2ban-regex >/dev/null && [ -f "$filter" ]; then
    hits=$(fail2ban-regex "$log" "$filter" 2>&1 | sed -n 's/^Failregex: \([0-9]*\) total.*/\1/p' || true)
    check "fail2ban-regex matches the 51 refusals from $attacker (matched: ${hits:-none})" test "${hits:-0}" -eq 51
else
    echo "note: fail2ban-regex not run (fail2ban or $filter missing)"
fi
check "log lacks the real password" file_lacks "$E2E_ALICE_PASS" "$log"
check "saslgated still running" process_alive "$sg_pid"
