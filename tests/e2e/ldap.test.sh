#!/usr/bin/env bash
# The LDAP passdb against a real OpenLDAP slapd (tests/e2e/lib-ldap.sh: own config and mdb database in
# the temp dir, a loopback port, StartTLS with a test CA), through the real saslgated over its Unix
# socket with `doveadm auth test` and a raw protocol client (for the exact FAIL line and timing).
# Both modes (auth_bind = yes with a search or auth_bind_userdn, auth_bind = no with {SSHA}, {CRYPT} and
# default_pass_scheme), filter/DN injection attempts, the empty password, failover, an outage (temporary
# FAIL, fast) and recovery without a restart, StartTLS with the right and a wrong CA, --explain/--check.
# slapd and saslgated are stopped at exit, also on failure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-ldap.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-ldap.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"
command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || e2e_skip "slapd is not installed (scripts/install-deps)"

ldap_setup "$(e2e_mkdir slapd)" --tls
ldap_start

# start_sg NAME LDAP_CONF_LINES... : saslgated with passdbs = ldap:DIR/ldap.conf; sets SOCK, LOG, DIR.
start_sg() {
    local name=$1
    shift
    DIR=$(e2e_mkdir "$name")
    printf '%s\n' "$@" >"$DIR/ldap.conf"
    chmod 0600 "$DIR/ldap.conf"
    cat >"$DIR/saslgated.conf" <<CONF
listen = $DIR/auth.sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain login cram-md5
passdbs = ldap:$DIR/ldap.conf
default_realm = example.org
failure_delay = 0
log_level = debug
username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@+='*()\\&|!
CONF
    start_daemon "$DIR/saslgated.log" "$bin_dir/saslgated" -c "$DIR/saslgated.conf"
    wait_for_socket "$DIR/auth.sock" 20 "$DAEMON_PID" "$DIR/saslgated.log"
    SOCK=$DIR/auth.sock
    LOG=$DIR/saslgated.log
}

common=(
    "base = $LDAP_PEOPLE"
    "dn = $LDAP_SERVICE_DN"
    "dnpass = $LDAP_SERVICE_PASS"
    "timeout = 2s"
)

# raw_auth SOCK USER PASSWORD : one AUTH PLAIN on the wire; prints the reply line (OK/FAIL ...) and,
# on a second line, the milliseconds it took.
raw_auth() {
    python3 - "$@" <<'EOF'
import base64, socket, sys, time
sock, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sock)
s.sendall(b"VERSION\t1\t2\nCPID\t4242\n")
buf = b""
while b"DONE\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed during the handshake")
    buf += chunk
resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
start = time.monotonic()
s.sendall(("AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=127.0.0.9\tresp=%s\n" % resp).encode())
buf = b""
while b"\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed before the reply")
    buf += chunk
print(buf.split(b"\n")[0].decode())
print(int((time.monotonic() - start) * 1000))
EOF
}

# expect_raw NAME ERE SOCK USER PASSWORD : the reply line matches ERE.
expect_raw() {
    local name=$1 re=$2 out
    shift 2
    out=$(raw_auth "$@" 2>&1 | head -n 1) || true
    if [[ $out =~ $re ]]; then e2e_pass "$name"; else e2e_fail "$name" "expected /$re/, got: $out"; fi
}

injections=('*' 'ali*' '*)(uid=*' ')(' '\29' 'alice@example.or*' '*)(mail=alice@example.org' 'alice@example.org)(|(uid=*' '*)(|(objectClass=*')

# --- auth_bind = yes, the DN found by pass_filter as the service account
start_sg bind "uris = $LDAP_URI" "${common[@]}" "auth_bind = yes" \
    "pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))"
a=(-a "$SOCK" -x service=smtp -x secured)
expect_doveadm "auth_bind: good password ({SSHA} entry) -> succeeded" succeeded "${a[@]}" alice@example.org "$LDAP_ALICE_PASS"
expect_doveadm "auth_bind: {CRYPT} entry, bare name under default_realm -> succeeded" succeeded "${a[@]}" bob "$LDAP_BOB_PASS"
expect_doveadm "auth_bind: a name with a quote -> succeeded" succeeded "${a[@]}" "o'neil@example.org" "$LDAP_QUOTE_PASS"
expect_doveadm "auth_bind: wrong password -> failed" failed "${a[@]}" alice@example.org wrong-password
expect_doveadm "auth_bind: unknown user -> failed" failed "${a[@]}" nobody@example.org "$LDAP_ALICE_PASS"
expect_doveadm "auth_bind: user without userPassword -> failed" failed "${a[@]}" carol@example.org anything
expect_raw "auth_bind: empty password -> FAIL (never an anonymous bind)" '^FAIL	1	user=alice@example.org' "$SOCK" alice@example.org ''
for u in "${injections[@]}"; do
    expect_doveadm "auth_bind: injection '$u' with alice's password -> failed" failed "${a[@]}" "$u" "$LDAP_ALICE_PASS"
done
check "the log names the DN found and the server" file_has_re "dn=\"?uid=alice,ou=people,dc=example,dc=org\"? server=$LDAP_URI" "$LOG"
check "no injected name got an OK" file_lacks "auth ok result=ok user=*" "$LOG"
# The pool keeps its connections to slapd open: each has TCP keepalive on (a firewall's silent drop of an
# idle connection is found, not waited out on the next request).
ldap_conns=$(ss -tnoH state established "( dport = :${LDAP_URI##*:} )")
check "connections to the server are kept open, all with TCP keepalive" \
    bash -c '[ -n "$1" ] && ! grep -qv "timer:(keepalive" <<<"$1"' _ "$ldap_conns"
check "no password in the log" file_lacks "$LDAP_ALICE_PASS" "$LOG"
check "no service password in the log" file_lacks "$LDAP_SERVICE_PASS" "$LOG"
explain=$("$bin_dir/saslgate" auth test -c "$DIR/saslgated.conf" --explain --password-stdin "ali*" <<<"x" 2>&1 || true)
check "--explain shows the escaped filter" grep -q -F 'filter (&(objectClass=inetOrgPerson)(mail=ali\2a@example.org))' <<<"$explain"
explain=$("$bin_dir/saslgate" auth test -c "$DIR/saslgated.conf" --explain --password-stdin alice <<<"x" 2>&1 || true)
check "--explain shows the DN found" grep -q -F 'found DN uid=alice,ou=people,dc=example,dc=org' <<<"$explain"
check "--check binds as the service account and runs the filter" bash -c "'$bin_dir/saslgated' -c '$DIR/saslgated.conf' --check 2>&1 | grep -q 'bound as $LDAP_SERVICE_DN'"

# --- auth_bind_userdn: no search
start_sg userdn "uris = $LDAP_URI" "base = $LDAP_PEOPLE" "auth_bind = yes" "timeout = 2s" \
    "auth_bind_userdn = uid=%n,$LDAP_PEOPLE"
a=(-a "$SOCK" -x service=smtp -x secured)
expect_doveadm "auth_bind_userdn: good password -> succeeded" succeeded "${a[@]}" alice "$LDAP_ALICE_PASS"
expect_doveadm "auth_bind_userdn: wrong password -> failed" failed "${a[@]}" alice wrong-password
expect_doveadm "auth_bind_userdn: quote in the name -> succeeded" succeeded "${a[@]}" "o'neil" "$LDAP_QUOTE_PASS"
expect_doveadm "auth_bind_userdn: DN injection 'alice,ou=people' -> failed" failed "${a[@]}" "alice,ou=people,dc=example,dc=org" "$LDAP_ALICE_PASS"
expect_doveadm "auth_bind_userdn: DN injection 'x+uid=alice' -> failed" failed "${a[@]}" "x+uid=alice" "$LDAP_ALICE_PASS"
expect_raw "auth_bind_userdn: empty password -> FAIL" '^FAIL	1	user=alice@example.org' "$SOCK" alice ''

# --- auth_bind = no: the password attribute, verified by saslgated
start_sg attrs "uris = $LDAP_URI" "${common[@]}" "auth_bind = no" \
    "pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))" "pass_attrs = mail=user, userPassword=password" \
    "default_pass_scheme = PLAIN"
a=(-a "$SOCK" -x service=smtp -x secured)
expect_doveadm "attrs: {SSHA} good -> succeeded" succeeded "${a[@]}" alice "$LDAP_ALICE_PASS"
expect_doveadm "attrs: {SSHA} wrong -> failed" failed "${a[@]}" alice wrong-password
expect_doveadm "attrs: {CRYPT} good -> succeeded" succeeded "${a[@]}" bob@example.org "$LDAP_BOB_PASS"
expect_doveadm "attrs: no scheme prefix -> default_pass_scheme PLAIN -> succeeded" succeeded "${a[@]}" dave "$LDAP_DAVE_PASS"
expect_doveadm "attrs: no userPassword -> failed" failed "${a[@]}" carol anything
expect_doveadm "attrs: unknown -> failed" failed "${a[@]}" nobody "$LDAP_ALICE_PASS"
expect_raw "attrs: empty password -> FAIL" '^FAIL	1	user=alice@example.org' "$SOCK" alice ''
for u in "${injections[@]}"; do
    expect_doveadm "attrs: injection '$u' with alice's password -> failed" failed "${a[@]}" "$u" "$LDAP_ALICE_PASS"
done
check "attrs: no stored value in the log" file_lacks "SSHA}" "$LOG"

# --- a wrong service password is the configuration's: a temporary failure naming the service bind,
# never a wrong password for the user, and no failover (every server would refuse it alike)
start_sg badservice "uris = $LDAP_URI $LDAP_URI" "base = $LDAP_PEOPLE" "dn = $LDAP_SERVICE_DN" "dnpass = not-the-service-password" \
    "auth_bind = yes" "pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))" "timeout = 2s"
out=$(raw_auth "$SOCK" alice "$LDAP_ALICE_PASS" 2>&1) || true
check "wrong service password: FAIL with temp" grep -qE "^FAIL"$'\t'"1"$'\t'".*temp" <<<"$(head -n 1 <<<"$out")"
check "wrong service password: logged as the service account's bind" file_has "service account bind as $LDAP_SERVICE_DN" "$LOG"
check "wrong service password: the server is not put in back-off" file_lacks "backing off" "$LOG"

# --- failover: the first URI refuses connections
dead_port=$(e2e_free_port)
start_sg failover "uris = ldap://127.0.0.1:$dead_port $LDAP_URI" "${common[@]}" "auth_bind = yes" \
    "pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))"
failover_sock=$SOCK failover_log=$LOG
expect_doveadm "failover: first server refuses, second answers -> succeeded" succeeded -a "$SOCK" -x service=smtp -x secured alice "$LDAP_ALICE_PASS"
expect_doveadm "failover: again (the dead one is backing off) -> succeeded" succeeded -a "$SOCK" -x service=smtp -x secured alice "$LDAP_ALICE_PASS"

# --- outage and recovery, without restarting saslgated
ldap_stop
out=$(raw_auth "$failover_sock" alice "$LDAP_ALICE_PASS" 2>&1) || true
line=$(head -n 1 <<<"$out") ms=$(sed -n 2p <<<"$out")
if [[ $line =~ ^FAIL$'\t'1$'\t'.*temp ]] && [[ ${ms:-99999} =~ ^[0-9]+$ ]] && [ "$ms" -lt 2500 ]; then
    e2e_pass "outage: FAIL with temp, within the 2s timeout (${ms} ms)"
else
    e2e_fail "outage: FAIL with temp, within the 2s timeout" "got: $line (${ms:-?} ms)"
fi
expect_raw "outage: still temp on the next request (back-off, no wrong-password verdict)" '^FAIL	1	.*temp' "$failover_sock" alice "$LDAP_ALICE_PASS"
ldap_start
recovered=no
for ((i = 0; i < 60; i++)); do
    if [[ $(raw_auth "$failover_sock" alice "$LDAP_ALICE_PASS" 2>&1 | head -n 1) == OK* ]]; then recovered=yes; break; fi
    sleep 0.25
done
if [ "$recovered" = yes ]; then e2e_pass "recovery: OK again after slapd restarts (after $((i * 250)) ms), no saslgated restart"; else e2e_fail "recovery: OK again after slapd restarts"; fi
check "outage: the log says why (server, LDAP error)" file_has_re "LDAP: .*(Can't contact LDAP server|backing off)" "$failover_log"

# --- StartTLS with the test CA, and with a CA that did not sign the server's certificate
start_sg tls "uris = $LDAP_URI" "${common[@]}" "auth_bind = yes" "tls = yes" "tls_ca_cert_file = $LDAP_CA" \
    "tls_require_cert = hard" "pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))"
expect_doveadm "StartTLS with the right CA -> succeeded" succeeded -a "$SOCK" -x service=smtp -x secured alice "$LDAP_ALICE_PASS"
expect_doveadm "StartTLS: wrong password still a plain failure" failed -a "$SOCK" -x service=smtp -x secured alice wrong-password
start_sg wrongca "uris = $LDAP_URI" "${common[@]}" "auth_bind = yes" "tls = yes" "tls_ca_cert_file = $LDAP_WRONG_CA" \
    "tls_require_cert = hard" "pass_filter = (&(objectClass=inetOrgPerson)(mail=%u))"
expect_raw "StartTLS with the wrong CA -> FAIL temp" '^FAIL	1	.*temp' "$SOCK" alice "$LDAP_ALICE_PASS"
check "the wrong CA is logged as a StartTLS failure" file_has "StartTLS" "$LOG"
expect_raw "StartTLS with the wrong CA, at once again (the server backs off) -> FAIL temp" '^FAIL	1	.*temp' "$SOCK" alice "$LDAP_ALICE_PASS"
check "... and the back-off line still names the StartTLS failure" file_has_re "backing off.*last failure: .*StartTLS" "$LOG"
