# shellcheck shell=bash
# A private OpenLDAP slapd for tests and the bench: its own slapd.conf and mdb database in a directory,
# listening on a loopback port, with test users under ou=people,dc=example,dc=org. Source it after
# lib.sh (tests) or on its own (bench/compare, which then calls ldap_stop itself):
#   . "$(dirname "${BASH_SOURCE[0]}")/lib-ldap.sh"
#   ldap_setup DIR [--tls]   # writes config, CA/certs (with --tls), loads the users; sets LDAP_* below
#   ldap_start               # starts slapd (registered with lib.sh's EXIT trap when lib.sh is loaded)
#   ldap_stop                # stops it (SIGTERM, then SIGKILL); ldap_start again restarts on the same port
#
# Variables set by ldap_setup: LDAP_DIR, LDAP_PORT, LDAP_URI, LDAP_BASE, LDAP_PEOPLE, LDAP_SERVICE_DN,
# LDAP_SERVICE_PASS, LDAP_CA (with --tls), LDAP_WRONG_CA (with --tls: a CA that signed nothing), LDAP_PID.
#
# Users (password in parentheses), all objectClass inetOrgPerson, uid and mail@example.org:
#   alice ({SSHA} 'Alice-ssha.1'), bob ({CRYPT} $6$ 'Bob-crypt.2'), carol (no userPassword),
#   "o'neil" ({SSHA} 'Quote-pw.3'), dave (cleartext without a scheme, 'Dave-clear.4').
# With LDAP_BENCH_USERS=N also u1..uN ({SSHA} 'Bench-pw.I'), and LDAP_DIR/bench-users.txt lists them as
# user@example.org:password for saslgate-bench.

LDAP_BASE=dc=example,dc=org
LDAP_PEOPLE=ou=people,$LDAP_BASE
LDAP_SERVICE_DN=cn=saslgate,$LDAP_BASE
LDAP_SERVICE_PASS='Service-acct.9'
LDAP_PID=
LDAP_TLS=no
LDAP_ALICE_PASS='Alice-ssha.1'
LDAP_BOB_PASS='Bob-crypt.2'
LDAP_QUOTE_PASS='Quote-pw.3'
LDAP_DAVE_PASS='Dave-clear.4'

ldap_die() {
    if declare -F e2e_die >/dev/null; then e2e_die "$@"; fi
    echo "lib-ldap: $1" >&2
    [ -n "${2:-}" ] && [ -f "$2" ] && tail -n 30 "$2" >&2
    exit 1
}

ldap_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ldap_setup DIR [--tls]
ldap_setup() {
    LDAP_DIR=$1
    [ "${2:-}" = --tls ] && LDAP_TLS=yes
    for tool in slapd slapadd slappasswd openssl python3; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
            ldap_die "$tool is not installed (scripts/install-deps installs slapd and ldap-utils)"
    done
    export PATH=$PATH:/usr/sbin
    mkdir -p "$LDAP_DIR/db"
    LDAP_PORT=$(ldap_free_port)
    LDAP_URI=ldap://127.0.0.1:$LDAP_PORT
    local tls_conf=''
    if [ "$LDAP_TLS" = yes ]; then
        ldap_make_certs "$LDAP_DIR/tls"
        tls_conf="TLSCACertificateFile $LDAP_DIR/tls/ca.pem
TLSCertificateFile $LDAP_DIR/tls/server.pem
TLSCertificateKeyFile $LDAP_DIR/tls/server.key"
    fi
    cat >"$LDAP_DIR/slapd.conf" <<EOF
# Private slapd for saslgate's tests (written by tests/e2e/lib-ldap.sh).
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $LDAP_DIR/slapd.pid
argsfile $LDAP_DIR/slapd.args
loglevel none
$tls_conf
database mdb
maxsize 33554432
suffix "$LDAP_BASE"
rootdn "cn=admin,$LDAP_BASE"
rootpw $(slappasswd -s 'Admin-root.0')
directory $LDAP_DIR/db
access to attrs=userPassword
    by dn.exact="$LDAP_SERVICE_DN" read
    by anonymous auth
    by * none
access to * by * read
EOF
    {
        cat <<EOF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: $LDAP_PEOPLE
objectClass: organizationalUnit
ou: people

dn: $LDAP_SERVICE_DN
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: saslgate
userPassword: $(slappasswd -s "$LDAP_SERVICE_PASS")

EOF
        ldap_user alice "$(slappasswd -s "$LDAP_ALICE_PASS")"
        ldap_user bob "$(slappasswd -h '{CRYPT}' -c '$6$%.16s' -s "$LDAP_BOB_PASS")"
        ldap_user carol ''
        ldap_user "o'neil" "$(slappasswd -s "$LDAP_QUOTE_PASS")"
        ldap_user dave "$LDAP_DAVE_PASS"
        [ "${LDAP_BENCH_USERS:-0}" -eq 0 ] || ldap_bench_users "$LDAP_BENCH_USERS" "$LDAP_DIR/bench-users.txt"
    } >"$LDAP_DIR/data.ldif"
    slapadd -f "$LDAP_DIR/slapd.conf" -l "$LDAP_DIR/data.ldif" >"$LDAP_DIR/slapadd.log" 2>&1 ||
        ldap_die "slapadd failed" "$LDAP_DIR/slapadd.log"
}

# ldap_user UID PASSWORD_VALUE : one inetOrgPerson entry (no userPassword when empty).
ldap_user() {
    printf 'dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.org\n' \
        "$1" "$LDAP_PEOPLE" "$1" "$1" "$1" "$1"
    [ -z "$2" ] || printf 'userPassword: %s\n' "$2"
    printf '\n'
}

# ldap_bench_users N USERS_FILE : N entries u1..uN with {SSHA} passwords (computed here: one slappasswd
# per user would take minutes), on stdout as LDIF; USERS_FILE gets user:password lines.
ldap_bench_users() {
    python3 - "$1" "$2" "$LDAP_PEOPLE" <<'PY'
import base64, hashlib, os, sys
n, users, people = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(users, "w") as f:
    for i in range(1, n + 1):
        pw = "Bench-pw.%d" % i
        salt = os.urandom(8)
        ssha = base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()
        print("dn: uid=u%d,%s\nobjectClass: inetOrgPerson\nuid: u%d\ncn: u%d\nsn: u%d\nmail: u%d@example.org\nuserPassword: {SSHA}%s\n" % (i, people, i, i, i, i, ssha))
        f.write("u%d@example.org:%s\n" % (i, pw))
PY
}

# ldap_make_certs DIR : a test CA, a server certificate for 127.0.0.1/localhost signed by it, and a
# second CA that signed nothing (for the wrong-CA case).
ldap_make_certs() {
    local d=$1
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=saslgate-test-ca -keyout ca.key -out ca.pem
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=saslgate-wrong-ca -keyout wrong.key -out wrong-ca.pem
        openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
        printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem
    ) >"$d/openssl.log" 2>&1 || ldap_die "openssl could not make the test certificates" "$d/openssl.log"
    chmod 644 "$d"/*.pem
    chmod 600 "$d"/*.key
    LDAP_CA=$d/ca.pem
    LDAP_WRONG_CA=$d/wrong-ca.pem
}

# ldap_start : slapd in the foreground of its own session; waits until it answers.
ldap_start() {
    local log=$LDAP_DIR/slapd.log i
    if declare -F start_daemon >/dev/null; then
        start_daemon "$log" slapd -f "$LDAP_DIR/slapd.conf" -h "$LDAP_URI/" -d 0
        LDAP_PID=$DAEMON_PID
    else
        setsid slapd -f "$LDAP_DIR/slapd.conf" -h "$LDAP_URI/" -d 0 >"$log" 2>&1 </dev/null &
        LDAP_PID=$!
    fi
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$LDAP_PORT") 2>/dev/null; then return 0; fi
        kill -0 "$LDAP_PID" 2>/dev/null || ldap_die "slapd exited at start" "$log"
        sleep 0.1
    done
    ldap_die "slapd is not listening on $LDAP_URI after 10 s" "$log"
}

# ldap_stop : SIGTERM to slapd's process group, up to 10 s, then SIGKILL.
ldap_stop() {
    local pid=$LDAP_PID i
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    LDAP_PID=
}
