#!/usr/bin/env bash
# saslgated behind a real Postfix (smtpd_sasl_type = dovecot), driven by swaks and doveadm: the same
# cases reference-dovecot.test.sh runs against Dovecot, plus saslgated's cleartext_requires_tls.
# Needs a built daemon: $SASLGATE_BIN_DIR/saslgated (default .build/debug); skipped when absent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
bin=$bin_dir/saslgated
[ -x "$bin" ] || e2e_skip "saslgated not built ($bin not found)"

sg=$(e2e_mkdir saslgated)
sock=$sg/auth.sock
write_users_file "$sg/users"
cat >"$sg/saslgated.conf" <<EOF
# saslgated for the e2e test (written by tests/e2e/postfix.test.sh)
listen = $sock
listen_mode = 0666
run_user =
mechanisms = plain login
passdbs = passwd-file:$sg/users
default_realm = example.org
failure_delay = 0
cleartext_requires_tls = yes
EOF

start_daemon "$sg/saslgated.log" "$bin" -c "$sg/saslgated.conf"
sg_pid=$DAEMON_PID
wait_for_socket "$sock" 20 "$sg_pid" "$sg/saslgated.log"

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sock" --tls

a=$E2E_ALICE ap=$E2E_ALICE_PASS b=$E2E_BOB bp=$E2E_BOB_PASS
# What saslgated answers (FAIL reason=) for PLAIN/LOGIN on a request without `secured`; Postfix
# shows it verbatim: "535 5.7.8 Error: authentication failed: <reason>".
needs_tls='Plaintext authentication disallowed'

# --- with TLS: Postfix sends `secured`
expect_swaks "TLS: AUTH PLAIN good password -> 235" 235 --tls --auth PLAIN --auth-user "$a" --auth-password "$ap"
expect_swaks "TLS: AUTH PLAIN bad password -> 535" 535 --tls --auth PLAIN --auth-user "$a" --auth-password wrong
expect_swaks "TLS: AUTH LOGIN good password -> 235" 235 --tls --auth LOGIN --auth-user "$a" --auth-password "$ap"
expect_swaks "TLS: AUTH LOGIN bad password -> 535" 535 --tls --auth LOGIN --auth-user "$a" --auth-password wrong
expect_swaks "TLS: AUTH PLAIN SHA512-CRYPT user good -> 235" 235 --tls --auth PLAIN --auth-user "$b" --auth-password "$bp"
expect_swaks "TLS: AUTH LOGIN SHA512-CRYPT user bad -> 535" 535 --tls --auth LOGIN --auth-user "$b" --auth-password wrong
expect_swaks "TLS: AUTH PLAIN unknown user -> 535" 535 --tls --auth PLAIN --auth-user nobody@example.org --auth-password "$ap"
expect_swaks "TLS: AUTH LOGIN unknown user -> 535" 535 --tls --auth LOGIN --auth-user nobody@example.org --auth-password "$ap"
expect_swaks "TLS: bare 'alice' gets the default realm -> 235" 235 --tls --auth PLAIN --auth-user alice --auth-password "$ap"
expect_swaks "TLS: bare 'alice' via LOGIN -> 235" 235 --tls --auth LOGIN --auth-user alice --auth-password "$ap"

# --- without TLS: no `secured`, so cleartext_requires_tls refuses even the right password
expect_swaks "no TLS: AUTH PLAIN good password -> 535 '$needs_tls'" 535 --reply-match "$needs_tls" \
    --auth PLAIN --auth-user "$a" --auth-password "$ap"
expect_swaks "no TLS: AUTH LOGIN good password -> 535 '$needs_tls'" 535 --reply-match "$needs_tls" \
    --auth LOGIN --auth-user "$a" --auth-password "$ap"

# --- doveadm auth test (2.3: PLAIN with an initial response)
expect_doveadm "doveadm: good password, secured -> succeeded" succeeded \
    -a "$sock" -x service=smtp -x secured "$a" "$ap"
expect_doveadm "doveadm: wrong password, secured -> failed" failed \
    -a "$sock" -x service=smtp -x secured "$a" wrong
expect_doveadm "doveadm: SHA512-CRYPT user, secured -> succeeded" succeeded \
    -a "$sock" -x service=smtp -x secured "$b" "$bp"
expect_doveadm "doveadm: good password, not secured -> failed" failed \
    -a "$sock" -x service=smtp "$a" "$ap"

# --- secrets never reach the log: the passwords, nor their base64 as they travel (LOGIN sends the
# password alone, swaks' PLAIN is \0user\0pass, doveadm's PLAIN is user\0user\0pass).
b64() { # FORMAT ARGS... -> base64 of the printf output
    # shellcheck disable=SC2059 # the format is the point
    printf "$1" "${@:2}" | base64 -w0
}
log=$sg/saslgated.log
check "saslgated log is not empty" test -s "$log"
check "log lacks alice's password" file_lacks "$ap" "$log"
check "log lacks bob's password" file_lacks "$bp" "$log"
check "log lacks alice's password in base64 (LOGIN)" file_lacks "$(b64 %s "$ap")" "$log"
check "log lacks bob's password in base64 (LOGIN)" file_lacks "$(b64 %s "$bp")" "$log"
check "log lacks alice's PLAIN response (swaks)" file_lacks "$(b64 '\0%s\0%s' "$a" "$ap")" "$log"
check "log lacks bob's PLAIN response (swaks)" file_lacks "$(b64 '\0%s\0%s' "$b" "$bp")" "$log"
check "log lacks alice's PLAIN response (doveadm)" file_lacks "$(b64 '%s\0%s\0%s' "$a" "$a" "$ap")" "$log"
check "saslgated still running" process_alive "$sg_pid"

# --- shutdown: Postfix keeps its auth connections open forever; SIGTERM must still end the daemon.
rc=0
terminate_within 5 "$sg_pid" || rc=$?
check "SIGTERM with Postfix still connected: saslgated exits 0 within 5s" test "$rc" -eq 0
