#!/usr/bin/env bash
# saslgated with a `pam:` passdb (pam_unix against a throwaway system user) behind a real Postfix
# with TLS, driven by swaks --tls and doveadm auth test. Root only: it adds a user with
# useradd/chpasswd and writes /etc/pam.d/saslgate-e2e; both are removed on exit (also after a crash
# of an earlier run: stale users named sge2e* are removed first).
# Needs a built daemon: $SASLGATE_BIN_DIR/saslgated (default .build/debug); skipped when absent.
set -euo pipefail

# lib.sh refuses to run without root; this file skips instead (lib.sh is not loaded yet, so record
# the skip the same way e2e_skip would).
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: pam: needs root (useradd, /etc/pam.d)"
    [ -z "${E2E_RESULTS:-}" ] || printf 'SKIP\tpam: needs root (useradd, /etc/pam.d)\n' >>"$E2E_RESULTS"
    exit 0
fi

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
bin=$bin_dir/saslgated
[ -x "$bin" ] || e2e_skip "saslgated not built ($bin not found)"
for tool in useradd userdel chpasswd chage; do
    command -v "$tool" >/dev/null || e2e_skip "$tool is not installed"
done
[ -e /lib/x86_64-linux-gnu/security/pam_unix.so ] || [ -n "$(find /lib /usr/lib -name pam_unix.so -print -quit 2>/dev/null)" ] ||
    e2e_skip "pam_unix.so not found"

pam_service=saslgate-e2e
pam_file=/etc/pam.d/$pam_service
user_prefix=sge2e
pam_user=$user_prefix$$
pam_pass='E2e-Pam.pw7'
pam_created_file=no
# One run at a time on this machine: the service file name is fixed. A directory lock (mkdir is
# atomic) holding the owner's pid; a lock whose owner is gone is taken over.
pam_lock=/run/lock/saslgate-pam-e2e.lock
pam_locked=no

# Runs from lib.sh's EXIT trap, after Postfix and saslgated are stopped.
pam_cleanup() {
    userdel "$pam_user" >/dev/null 2>&1 || true
    [ "$pam_created_file" = yes ] && rm -f "$pam_file"
    [ "$pam_locked" = yes ] && rm -rf "$pam_lock"
    return 0
}
e2e_on_exit pam_cleanup

mkdir -p /run/lock
for ((i = 0; i < 1200; i++)); do
    if mkdir "$pam_lock" 2>/dev/null; then
        echo $$ >"$pam_lock/pid"
        pam_locked=yes
        break
    fi
    owner=$(cat "$pam_lock/pid" 2>/dev/null || true)
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
        rm -rf "$pam_lock"  # its owner died without cleaning up
        continue
    fi
    sleep 0.1
done
[ "$pam_locked" = yes ] || e2e_die "another pam.test.sh run holds $pam_lock for over 120 s"

# Stale users from a crashed earlier run (sge2e<pid> whose pid is gone).
while IFS=: read -r name _; do
    case $name in
        "$user_prefix"*)
            pid=${name#"$user_prefix"}
            if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
                userdel "$name" >/dev/null 2>&1 || true
            fi
            ;;
    esac
done </etc/passwd

useradd -M -N -s /usr/sbin/nologin "$pam_user" >"$E2E_TMP/useradd.log" 2>&1 ||
    e2e_die "useradd $pam_user failed" "$E2E_TMP/useradd.log"
printf '%s:%s\n' "$pam_user" "$pam_pass" | chpasswd >"$E2E_TMP/chpasswd.log" 2>&1 ||
    e2e_die "chpasswd failed" "$E2E_TMP/chpasswd.log"

if [ -e "$pam_file" ] && ! grep -q 'written by tests/e2e/pam.test.sh' "$pam_file"; then
    e2e_die "$pam_file exists and was not written by this test; not touching it"
fi
pam_created_file=yes
cat >"$pam_file" <<EOF
# saslgate e2e test service (written by tests/e2e/pam.test.sh, removed when it ends)
auth    required pam_unix.so
account required pam_unix.so
EOF

sg=$(e2e_mkdir saslgated)
sock=$sg/auth.sock
cat >"$sg/saslgated.conf" <<EOF
# saslgated for the PAM e2e test (written by tests/e2e/pam.test.sh)
listen = $sock
listen_mode = 0666
run_user =
mechanisms = plain login
passdbs = pam:$pam_service
default_realm = example.org
failure_delay = 0
cleartext_requires_tls = yes
EOF

start_daemon "$sg/saslgated.log" "$bin" -c "$sg/saslgated.conf"
sg_pid=$DAEMON_PID
wait_for_socket "$sock" 20 "$sg_pid" "$sg/saslgated.log"

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sock" --tls

u=$pam_user p=$pam_pass
needs_tls='Plaintext authentication disallowed'

# --- SMTP AUTH over TLS through Postfix
expect_swaks "TLS: AUTH PLAIN PAM user, good password -> 235" 235 --tls --auth PLAIN --auth-user "$u" --auth-password "$p"
expect_swaks "TLS: AUTH PLAIN PAM user, wrong password -> 535" 535 --tls --auth PLAIN --auth-user "$u" --auth-password wrong-pw
expect_swaks "TLS: AUTH LOGIN PAM user, good password -> 235" 235 --tls --auth LOGIN --auth-user "$u" --auth-password "$p"
expect_swaks "TLS: AUTH LOGIN PAM user, wrong password -> 535" 535 --tls --auth LOGIN --auth-user "$u" --auth-password wrong-pw
expect_swaks "TLS: user@default_realm is stripped for PAM -> 235" 235 --tls --auth PLAIN --auth-user "$u@example.org" --auth-password "$p"
expect_swaks "TLS: user@other realm is not -> 535" 535 --tls --auth PLAIN --auth-user "$u@other.example" --auth-password "$p"
expect_swaks "TLS: unknown user -> 535" 535 --tls --auth PLAIN --auth-user "${user_prefix}nobody" --auth-password "$p"
expect_swaks "no TLS: good password -> 535 '$needs_tls'" 535 --reply-match "$needs_tls" \
    --auth PLAIN --auth-user "$u" --auth-password "$p"

# --- doveadm auth test straight at the socket
expect_doveadm "doveadm: PAM user, good password, secured -> succeeded" succeeded \
    -a "$sock" -x service=smtp -x secured "$u" "$p"
expect_doveadm "doveadm: PAM user, wrong password, secured -> failed" failed \
    -a "$sock" -x service=smtp -x secured "$u" wrong-pw

# pam_unix asks libpam for a ~2 s delay on failure; saslgated overrides it (failure_delay = 0 here).
# The fastest of three timed tries (each at least 2 s if the delay were slept), so one slow start of
# doveadm on a loaded machine does not decide.
best_ms=999999
for try in 1 2 3; do
    start=$(date +%s%N)
    expect_doveadm "doveadm: wrong password again (timed, try $try)" failed -a "$sock" -x service=smtp -x secured "$u" "wrong-pw2-$try"
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    [ "$elapsed_ms" -lt "$best_ms" ] && best_ms=$elapsed_ms
done
check "wrong password answered in under 1.5 s (fastest of 3: ${best_ms} ms): pam_unix's delay is not slept" \
    test "$best_ms" -lt 1500

# --- account state from pam_acct_mgmt
chage -E 0 "$pam_user"
expect_doveadm "doveadm: expired account (chage -E 0), right password -> failed" failed \
    -a "$sock" -x service=smtp -x secured "$u" "$p"
chage -E -1 "$pam_user"
expect_doveadm "doveadm: account re-enabled (chage -E -1) -> succeeded" succeeded \
    -a "$sock" -x service=smtp -x secured "$u" "$p"

# --- the password never reaches the log
b64() { # FORMAT ARGS... -> base64 of the printf output
    # shellcheck disable=SC2059 # the format is the point
    printf "$1" "${@:2}" | base64 -w0
}
log=$sg/saslgated.log
check "saslgated log is not empty" test -s "$log"
check "log lacks the PAM user's password" file_lacks "$p" "$log"
check "log lacks the password in base64 (LOGIN)" file_lacks "$(b64 %s "$p")" "$log"
check "log lacks the PLAIN response (swaks)" file_lacks "$(b64 '\0%s\0%s' "$u" "$p")" "$log"
check "saslgated still running" process_alive "$sg_pid"
