#!/usr/bin/env bash
# The harness against the REAL thing: Dovecot 2.3's auth service behind a private Postfix, driven by
# swaks and doveadm. It documents that the helpers (TLS → `secured`, reply parsing, doveadm verdicts)
# are right, independently of saslgated. Skip with SASLGATE_E2E_REFERENCE=0.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "${SASLGATE_E2E_REFERENCE:-1}" != 0 ] || e2e_skip "reference Dovecot test disabled (SASLGATE_E2E_REFERENCE=0)"
command -v dovecot >/dev/null || e2e_die "dovecot is not installed (run scripts/install-deps)"

dc=$(e2e_mkdir dovecot)
sock=$dc/auth-client
write_users_file "$dc/users"
# auth_debug logs each request line (resp= hidden), which lets us see Postfix's `secured` flag.
write_dovecot_auth_conf "$dc" "$dc/users" "$sock" saslgate-e2e-reference \
    "auth_debug = yes" "auth_default_realm = example.org"

start_daemon "$dc/stderr.log" dovecot -F -c "$dc/dovecot.conf"
dovecot_pid=$DAEMON_PID
E2E_LOGS+=("$dc/dovecot.log")
wait_for_socket "$sock" 15 "$dovecot_pid" "$dc/stderr.log"

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sock" --tls

a=$E2E_ALICE ap=$E2E_ALICE_PASS b=$E2E_BOB bp=$E2E_BOB_PASS

# --- SMTP AUTH through Postfix, with TLS (Postfix sends `secured`)
expect_swaks "TLS: AUTH PLAIN good password -> 235" 235 --tls --auth PLAIN --auth-user "$a" --auth-password "$ap"
tls_ip=$E2E_IP
expect_swaks "TLS: AUTH PLAIN bad password -> 535" 535 --tls --auth PLAIN --auth-user "$a" --auth-password wrong
expect_swaks "TLS: AUTH LOGIN good password -> 235" 235 --tls --auth LOGIN --auth-user "$a" --auth-password "$ap"
expect_swaks "TLS: AUTH LOGIN bad password -> 535" 535 --tls --auth LOGIN --auth-user "$a" --auth-password wrong
expect_swaks "TLS: AUTH PLAIN SHA512-CRYPT user good -> 235" 235 --tls --auth PLAIN --auth-user "$b" --auth-password "$bp"
expect_swaks "TLS: AUTH LOGIN SHA512-CRYPT user bad -> 535" 535 --tls --auth LOGIN --auth-user "$b" --auth-password wrong
expect_swaks "TLS: AUTH PLAIN unknown user -> 535" 535 --tls --auth PLAIN --auth-user nobody@example.org --auth-password "$ap"
expect_swaks "TLS: bare 'alice' gets the default realm -> 235" 235 --tls --auth PLAIN --auth-user alice --auth-password "$ap"

# --- without TLS: Postfix sends no `secured`. Dovecot's auth service does not enforce TLS for
# plaintext mechanisms (its login processes do), so this succeeds here; saslgated's
# cleartext_requires_tls makes the same case fail in postfix.test.sh.
expect_swaks "no TLS: AUTH PLAIN good password -> 235 (Dovecot auth does not enforce TLS)" 235 \
    --auth PLAIN --auth-user "$a" --auth-password "$ap"
plain_ip=$E2E_IP

# The harness premise: swaks --tls makes Postfix send `secured`, plain swaks does not. Dovecot's
# auth_debug logs each request line (TABs kept, resp=<hidden>).
auth_flags_for_ip() { # IP -> the AUTH line Dovecot received from that client
    grep -F "client in: AUTH" "$dc/dovecot.log" | grep -F "$(printf '\trip=%s\t' "$1")"
}
sent_secured() { auth_flags_for_ip "$1" | grep -q -F "$(printf '\tsecured\t')"; }
sent_unsecured() { auth_flags_for_ip "$1" >/dev/null && ! sent_secured "$1"; }
check "Postfix sent 'secured' for the TLS session (rip=$tls_ip)" sent_secured "$tls_ip"
check "Postfix sent no 'secured' without TLS (rip=$plain_ip)" sent_unsecured "$plain_ip"

# --- doveadm auth test (PLAIN only in 2.3)
expect_doveadm "doveadm: good password, secured -> succeeded" succeeded \
    -a "$sock" -x service=smtp -x secured "$a" "$ap"
expect_doveadm "doveadm: wrong password, secured -> failed" failed \
    -a "$sock" -x service=smtp -x secured "$a" wrong
expect_doveadm "doveadm: SHA512-CRYPT user -> succeeded" succeeded -a "$sock" -x service=smtp "$b" "$bp"
expect_doveadm "doveadm: not secured -> succeeded (Dovecot auth does not enforce TLS)" succeeded \
    -a "$sock" -x service=smtp "$a" "$ap"
# Harness self-check: a socket that is not there must not pass for "auth failed" (doveadm exits 77
# for both).
missing_out=$(run_doveadm_auth -a "$dc/no-such-socket" -x service=smtp "$a" wrong) || true
check "doveadm on a missing socket prints no 'auth failed' verdict" \
    test "$(doveadm_verdict "$missing_out")" = none

check "Dovecot's log never shows the password" file_lacks "$ap" "$dc/dovecot.log"
check "Dovecot still running" process_alive "$dovecot_pid"
