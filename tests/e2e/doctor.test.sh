#!/usr/bin/env bash
# `saslgate doctor` against a private Postfix instance and a running saslgated: a right configuration
# (doctor exits 0, and swaks really authenticates) and wrong ones (doctor exits 1 and names the
# problem, and Postfix really fails the way doctor says). Every case starts from the right one.
# Needs built binaries: $SASLGATE_BIN_DIR/saslgated and saslgate (default .build/debug).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"
[ -x "$bin_dir/saslgate" ] || e2e_skip "saslgate not built ($bin_dir/saslgate not found)"
"$bin_dir/saslgate" doctor --help >/dev/null 2>&1 ||
    e2e_skip "saslgate has no doctor subcommand (DoctorCommand is not registered in SaslgateCommand)"

# --- Postfix first (it creates queue/private, where saslgated puts its socket), then saslgated.
pf=$(e2e_mkdir postfix)
sock=$pf/queue/private/auth
postfix_start "$pf" "$sock" --tls
# lib.sh wrote the absolute path; the right configuration uses the relative one (one entry only).
postconf -c "$pf/etc" -X smtpd_sasl_path
# postfix_start writes an explicit chroot column; the cases below switch it with postconf -F.
smtpd_service=127.0.0.1:$PF_PORT/inet

sg=$(e2e_mkdir saslgated)
write_users_file "$sg/users"
cat >"$sg/saslgated.conf" <<EOF
# saslgated for the doctor test (written by tests/e2e/doctor.test.sh)
listen = $sock
listen_user = postfix
listen_group = postfix
listen_mode = 0660
run_user =
mechanisms = plain login
passdbs = passwd-file:$sg/users
default_realm = example.org
failure_delay = 0
cleartext_requires_tls = yes
# No control socket: the default /run/saslgate/control may belong to a real daemon.
control_socket =
EOF
start_daemon "$sg/saslgated.log" "$bin_dir/saslgated" -c "$sg/saslgated.conf"
wait_for_socket "$sock" 20 "$DAEMON_PID" "$sg/saslgated.log"

# No installed units may influence the result on a developer machine.
units=$(e2e_mkdir units)

pf_set() { postconf -c "$pf/etc" -e "$@"; }
pf_reload() {
    postfix -c "$pf/etc" reload >>"$pf/start.log" 2>&1
    sleep 1 # the master replaces its smtpd processes
}
# A fresh master: after an smtpd died ("fatal: no SASL authentication mechanisms") the master
# throttles the service for a minute, and a reload does not end that.
pf_restart() {
    local i
    postfix_stop "$pf"
    postfix -c "$pf/etc" start >>"$pf/start.log" 2>&1 || e2e_die "postfix -c $pf/etc start failed" "$PF_LOG"
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PF_PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    e2e_die "private Postfix is not listening on 127.0.0.1:$PF_PORT after a restart" "$PF_LOG"
}
# The right configuration; every case starts from here.
baseline() {
    # shellcheck disable=SC2016 # $smtpd_sasl_security_options is for Postfix
    pf_set 'compatibility_level = 3.6' 'smtpd_sasl_auth_enable = yes' 'smtpd_sasl_type = dovecot' \
        'smtpd_sasl_path = private/auth' 'smtpd_sasl_security_options = noanonymous' \
        'smtpd_sasl_tls_security_options = $smtpd_sasl_security_options' \
        'smtpd_tls_security_level = may' 'smtpd_tls_auth_only = yes'
    postconf -c "$pf/etc" -F "$smtpd_service/chroot = n"
    if [ -S "$sock" ]; then
        chown postfix:postfix "$sock"
        chmod 0660 "$sock"
    fi
    pf_restart
}

# expect_doctor NAME STATUS [ERE...] : runs doctor; passes when it exits STATUS and every ERE matches
# a line of its output. Prints doctor's warning and FAIL lines either way.
doctor_out=$E2E_TMP/doctor.out
expect_doctor() {
    local name=$1 want=$2 rc=0 re missing=()
    shift 2
    "$bin_dir/saslgate" doctor -c "$sg/saslgated.conf" --postfix-config "$pf/etc" --systemd-dir "$units" \
        >"$doctor_out" 2>&1 || rc=$?
    for re in "$@"; do grep -q -E -e "$re" "$doctor_out" || missing+=("$re"); done
    if [ "$rc" -eq "$want" ] && [ ${#missing[@]} -eq 0 ]; then
        e2e_pass "$name"
        grep -E '^(FAIL|warning):' "$doctor_out" | sed 's/^/      | /' || true
    else
        e2e_fail "$name" "expected exit $want, got $rc" "${missing[@]/#/missing: }"
        sed 's/^/      | /' "$doctor_out"
    fi
}

# The SMTP reality behind each verdict: swaks against the private Postfix.
a=$E2E_ALICE ap=$E2E_ALICE_PASS
log_mark() { wc -l <"$PF_LOG"; }
log_since_has() { tail -n "+$(($1 + 1))" "$PF_LOG" | grep -q -E -e "$2"; } # MARK ERE

# --- 1. Right: relative smtpd_sasl_path, TLS, smtpd_tls_auth_only = yes
baseline
expect_doctor "right configuration -> exit 0, no FAIL" 0 \
    '^ok: smtpd_sasl_auth_enable = yes' '^ok: smtpd_sasl_type = dovecot' \
    "^ok: Postfix connects to $sock \(smtpd_sasl_path = private/auth, relative to queue_directory" \
    "^ok: $sock is a socket \(srw-rw---- postfix:postfix\) that postfix \(mail_owner" \
    '^ok: .* answers like Dovecot.s auth-client socket: VERSION 1 2, MECH PLAIN\(plaintext\) LOGIN\(plaintext\), DONE' \
    '^ok: Postfix offers AUTH before STARTTLS: none \(smtpd_tls_auth_only = yes\); after STARTTLS: PLAIN LOGIN' \
    '^ok: TLS: smtpd_tls_security_level = may, smtpd_tls_auth_only = yes' \
    '^    smtpd_sasl_path = private/auth$'
check "right configuration: doctor prints no FAIL line" file_lacks "FAIL:" "$doctor_out"
expect_swaks "right configuration: AUTH PLAIN over STARTTLS -> 235" 235 --tls --auth PLAIN \
    --auth-user "$a" --auth-password "$ap"

# --- 2. Right too: absolute smtpd_sasl_path with an unchrooted smtpd
pf_set "smtpd_sasl_path = $sock"
pf_reload
expect_doctor "absolute smtpd_sasl_path, smtpd not chrooted -> exit 0" 0 \
    "^ok: Postfix connects to $sock \(smtpd_sasl_path = $sock; smtpd not chrooted: master.cf chroot column n\)"
expect_swaks "absolute path, not chrooted: AUTH PLAIN over STARTTLS -> 235" 235 --tls --auth PLAIN \
    --auth-user "$a" --auth-password "$ap"

# --- 2b. Right too: the relative path with a chrooted smtpd (Debian's stock master.cf)
baseline
postconf -c "$pf/etc" -F "$smtpd_service/chroot = y"
pf_reload
expect_doctor "relative smtpd_sasl_path, chrooted smtpd -> exit 0" 0 \
    "^ok: Postfix connects to $sock \(smtpd_sasl_path = private/auth, relative to queue_directory; smtpd chrooted in $pf/queue: master.cf chroot column y\)"
expect_swaks "relative path, chrooted smtpd: AUTH PLAIN over STARTTLS -> 235" 235 --tls --auth PLAIN \
    --auth-user "$a" --auth-password "$ap"

# --- 3. Wrong smtpd_sasl_path
baseline
pf_set 'smtpd_sasl_path = private/auth-wrong'
pf_reload
expect_doctor "wrong smtpd_sasl_path -> exit 1" 1 \
    "^FAIL: Postfix connects to $pf/queue/private/auth-wrong .* but saslgated listens on $sock .*; fix: postconf -c $pf/etc -e 'smtpd_sasl_path = private/auth'" \
    "^FAIL: $pf/queue/private/auth-wrong does not exist"
mark=$(log_mark)
run_swaks --tls --auth PLAIN --auth-user "$a" --auth-password "$ap" >/dev/null 2>&1 || true
check "wrong smtpd_sasl_path: Postfix really cannot reach the socket" \
    log_since_has "$mark" "SASL: Connect to Dovecot auth socket '[^']*auth-wrong' failed"

# --- 4. Absolute smtpd_sasl_path with a chrooted smtpd (the right file, seen from outside the chroot)
baseline
pf_set "smtpd_sasl_path = $sock"
postconf -c "$pf/etc" -F "$smtpd_service/chroot = y"
pf_reload
expect_doctor "absolute smtpd_sasl_path with chrooted smtpd -> exit 1" 1 \
    "^FAIL: smtpd_sasl_path = $sock is absolute, but smtpd chrooted in $pf/queue: master.cf chroot column y; inside the chroot it opens $pf/queue$sock"
mark=$(log_mark)
run_swaks --tls --auth PLAIN --auth-user "$a" --auth-password "$ap" >/dev/null 2>&1 || true
check "absolute path in chroot: Postfix really cannot reach the socket" \
    log_since_has "$mark" "SASL: Connect to Dovecot auth socket '$sock' failed"
# '-' in the chroot column: chrooted with compatibility_level 0, not from level 1 on.
postconf -c "$pf/etc" -F "$smtpd_service/chroot = -"
pf_set 'compatibility_level = 0'
expect_doctor "absolute path, chroot column '-' with compatibility_level 0 -> exit 1" 1 \
    "^FAIL: smtpd_sasl_path = $sock is absolute, but smtpd chrooted .*chroot column '-', which means y with compatibility_level = 0"
pf_set 'compatibility_level = 3.6'
expect_doctor "absolute path, chroot column '-' with compatibility_level 3.6 -> exit 0" 0 \
    "^ok: Postfix connects to $sock .*chroot column '-', which means n with compatibility_level = 3.6"

# --- 5. noplaintext while saslgated offers only PLAIN and LOGIN
baseline
pf_set 'smtpd_sasl_security_options = noplaintext'
pf_reload
expect_doctor "smtpd_sasl_security_options = noplaintext with only PLAIN/LOGIN -> exit 1" 1 \
    "^FAIL: after STARTTLS no mechanism survives smtpd_sasl_tls_security_options = noplaintext .*PLAIN: noplaintext drops plaintext; LOGIN: noplaintext drops plaintext.*fatal: no SASL authentication mechanisms"
mark=$(log_mark)
run_swaks --tls --auth PLAIN --auth-user "$a" --auth-password "$ap" >/dev/null 2>&1 || true
check "noplaintext: smtpd really dies with 'no SASL authentication mechanisms'" \
    log_since_has "$mark" "fatal: no SASL authentication mechanisms"

# --- 5b. A mechanism filter that drops everything saslgated offers
baseline
pf_set 'smtpd_sasl_mechanism_filter = !plain, !login, static:rest'
pf_reload
expect_doctor "smtpd_sasl_mechanism_filter dropping PLAIN and LOGIN -> exit 1" 1 \
    "^FAIL: after STARTTLS no mechanism survives .*smtpd_sasl_mechanism_filter drops PLAIN LOGIN.*fatal: smtpd_sasl_mechanism_filter discards all mechanisms in 'PLAIN LOGIN'"
mark=$(log_mark)
run_swaks --tls --auth PLAIN --auth-user "$a" --auth-password "$ap" >/dev/null 2>&1 || true
check "mechanism filter: smtpd really dies ('discards all mechanisms')" \
    log_since_has "$mark" "fatal: smtpd_sasl_mechanism_filter discards all mechanisms in 'PLAIN LOGIN'"
pf_set 'smtpd_sasl_mechanism_filter = !external, static:rest'

# --- 6. smtpd_sasl_type = cyrus
baseline
pf_set 'smtpd_sasl_type = cyrus'
expect_doctor "smtpd_sasl_type = cyrus -> exit 1" 1 \
    "^FAIL: smtpd_sasl_type = cyrus: Postfix asks the Cyrus SASL library .*; fix: postconf -c $pf/etc -e 'smtpd_sasl_type = dovecot'"

# --- 7. Socket 0600 root:root: postfix may not connect (root, running doctor, still can)
baseline
chown root:root "$sock"
chmod 0600 "$sock"
expect_doctor "socket 0600 root-owned -> exit 1" 1 \
    "^FAIL: postfix \(mail_owner, uid [0-9]+, groups [^)]*\) may not connect to $sock \(srw------- root:root; connect needs write permission\); fix: listen_user = postfix, listen_group = postfix, listen_mode = 0660"
mark=$(log_mark)
run_swaks --tls --auth PLAIN --auth-user "$a" --auth-password "$ap" >/dev/null 2>&1 || true
check "socket 0600 root-owned: Postfix really gets 'Permission denied'" \
    log_since_has "$mark" "SASL: Connect to Dovecot auth socket 'private/auth' failed: Permission denied"

# --- 8. No TLS in Postfix while saslgated requires TLS for PLAIN/LOGIN: nobody can log in
baseline
pf_set 'smtpd_tls_security_level = none' 'smtpd_tls_auth_only = no'
pf_reload
expect_doctor "no TLS in Postfix, cleartext_requires_tls = yes -> exit 1" 1 \
    "^FAIL: smtpd cannot do TLS \(smtpd_tls_security_level = none\) and saslgated has cleartext_requires_tls = yes with only PLAIN/LOGIN: every login is refused"
expect_swaks "no TLS: AUTH PLAIN with the right password -> 535 (as doctor says)" 535 \
    --reply-match 'Plaintext authentication disallowed' --auth PLAIN --auth-user "$a" --auth-password "$ap"

# --- 9. TLS possible but smtpd_tls_auth_only = no: a warning, not a failure
baseline
pf_set 'smtpd_tls_auth_only = no'
pf_reload
expect_doctor "smtpd_tls_auth_only = no -> warning, exit 0" 0 \
    "^warning: smtpd_tls_auth_only = no: Postfix offers PLAIN LOGIN before STARTTLS, and clients that use them there get '535 5.7.8 Error: authentication failed: Plaintext authentication disallowed"
expect_swaks "smtpd_tls_auth_only = no: AUTH PLAIN before STARTTLS -> 535 (as doctor warns)" 535 \
    --reply-match 'Plaintext authentication disallowed' --auth PLAIN --auth-user "$a" --auth-password "$ap"

# --- 10. SASL switched off altogether
baseline
pf_set 'smtpd_sasl_auth_enable = no'
expect_doctor "smtpd_sasl_auth_enable = no -> exit 1" 1 \
    "^FAIL: smtpd_sasl_auth_enable = no: Postfix offers no AUTH at all"

# --- 11. saslgated not running
baseline
rc=0
terminate_within 10 "$DAEMON_PID" || rc=$?
check "saslgated stopped for the last case" test "$rc" -eq 0
[ ! -S "$sock" ] || rm -f "$sock"
expect_doctor "saslgated not running -> exit 1" 1 "^FAIL: $sock does not exist: saslgated is not running there"

# --- usage errors
rc=0
"$bin_dir/saslgate" doctor --no-such-option >/dev/null 2>&1 || rc=$?
check "doctor --no-such-option -> exit 2" test "$rc" -eq 2
