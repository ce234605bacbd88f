#!/usr/bin/env bash
# A passdb chain: passwd-file first, then PAM (pam_unix with a throwaway system user), with users in
# the file only, in PAM only, and in both with different passwords. Checked through a real Postfix
# (swaks --tls) and doveadm, under Dovecot's default chain rule (a wrong password goes on to the next
# passdb) and with result_failure=return on the file (a wrong file password is final).
# Root only (useradd, /etc/pam.d); removes what it made.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: chain: needs root (useradd, /etc/pam.d)"
    [ -z "${E2E_RESULTS:-}" ] || printf 'SKIP\tchain: needs root (useradd, /etc/pam.d)\n' >>"$E2E_RESULTS"
    exit 0
fi
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"

pam_service=saslgate-e2e-chain
pam_file=/etc/pam.d/$pam_service
prefix=sgchain
pam_only=${prefix}p$$
both=${prefix}b$$
created_file=no

chain_cleanup() {
    userdel "$pam_only" >/dev/null 2>&1 || true
    userdel "$both" >/dev/null 2>&1 || true
    [ "$created_file" = yes ] && rm -f "$pam_file"
    return 0
}
e2e_on_exit chain_cleanup

# Stale users of a crashed earlier run (their pid is gone).
while IFS=: read -r name _; do
    case $name in
        "$prefix"[pb]*)
            pid=${name#"$prefix"?}
            if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then userdel "$name" >/dev/null 2>&1 || true; fi
            ;;
    esac
done </etc/passwd

for u in "$pam_only" "$both"; do
    useradd -M -N -s /usr/sbin/nologin "$u" >"$E2E_TMP/useradd.log" 2>&1 || e2e_die "useradd $u failed" "$E2E_TMP/useradd.log"
done
printf '%s:%s\n%s:%s\n' "$pam_only" 'Pam-only.pw1' "$both" 'Both-pam.pw2' | chpasswd
if [ -e "$pam_file" ] && ! grep -q 'written by tests/e2e/chain.test.sh' "$pam_file"; then
    e2e_die "$pam_file exists and was not written by this test; not touching it"
fi
created_file=yes
cat >"$pam_file" <<PAM
# written by tests/e2e/chain.test.sh, removed when it ends
auth    required pam_unix.so
account required pam_unix.so
PAM

sg=$(e2e_mkdir saslgated)
{
    printf 'fileonly@example.org:{PLAIN}File-only.pw3\n'
    printf '%s@example.org:{SHA512-CRYPT}%s\n' "$both" "$(e2e_sha512_crypt 'Both-file.pw4')"
} >"$sg/users"
chmod 0640 "$sg/users"

# start_chain NAME PASSDBS : a saslgated with that passdbs line; sets SOCK.
start_chain() {
    local dir
    dir=$(e2e_mkdir "$1")
    cat >"$dir/saslgated.conf" <<CONF
listen = $dir/auth.sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain login
passdbs = $2
default_realm = example.org
failure_delay = 0
CONF
    start_daemon "$dir/saslgated.log" "$bin_dir/saslgated" -c "$dir/saslgated.conf"
    wait_for_socket "$dir/auth.sock" 20 "$DAEMON_PID" "$dir/saslgated.log"
    SOCK=$dir/auth.sock
    LOG=$dir/saslgated.log
}

# --- Dovecot's default: a wrong password goes on to the next passdb.
start_chain default "passwd-file:$sg/users pam:$pam_service"
pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$SOCK" --tls
expect_swaks "default chain: user only in the file -> 235" 235 --tls --auth PLAIN --auth-user fileonly --auth-password 'File-only.pw3'
expect_swaks "default chain: user only in PAM -> 235" 235 --tls --auth PLAIN --auth-user "$pam_only" --auth-password 'Pam-only.pw1'
expect_swaks "default chain: user in both, file password -> 235" 235 --tls --auth LOGIN --auth-user "$both" --auth-password 'Both-file.pw4'
expect_swaks "default chain: user in both, PAM password -> 235 (file said wrong: continue)" 235 --tls --auth PLAIN --auth-user "$both" --auth-password 'Both-pam.pw2'
expect_swaks "default chain: user in both, neither password -> 535" 535 --tls --auth PLAIN --auth-user "$both" --auth-password 'nope'
expect_swaks "default chain: unknown everywhere -> 535" 535 --tls --auth PLAIN --auth-user nobody --auth-password 'nope'
check "the log names the passdb that accepted the PAM password" file_has_re "auth ok result=ok user=$both@example.org .*passdb=pam:$pam_service" "$LOG"
check "...and the file for the file password" file_has_re "auth ok result=ok user=$both@example.org .*passdb=passwd-file:" "$LOG"

# --- result_failure=return on the file: a wrong file password is final.
start_chain strict "passwd-file:$sg/users{result_failure=return} pam:$pam_service"
expect_doveadm "strict chain: user in both, file password -> succeeded" succeeded -a "$SOCK" -x service=smtp -x secured "$both" 'Both-file.pw4'
expect_doveadm "strict chain: user in both, PAM password -> failed (the file's answer is final)" failed -a "$SOCK" -x service=smtp -x secured "$both" 'Both-pam.pw2'
expect_doveadm "strict chain: user only in PAM -> succeeded (unknown in the file goes on)" succeeded -a "$SOCK" -x service=smtp -x secured "$pam_only" 'Pam-only.pw1'
expect_doveadm "strict chain: user only in the file -> succeeded" succeeded -a "$SOCK" -x service=smtp -x secured "fileonly@example.org" 'File-only.pw3'
