#!/usr/bin/env bash
# fail2ban against saslgated's real log lines: starts saslgated, produces one finished request per
# case with a small auth-client (python3, the Dovecot protocol as Postfix speaks it), then runs
# `fail2ban-regex` with conf/fail2ban/filter.d/saslgate.conf and checks the exact number of matches
# and that the matched hosts are exactly the expected client IPs (rip=), never an address injected
# through the user name. A second saslgated with a broken PAM passdb produces `internal failure`.
# Needs a built daemon: $SASLGATE_BIN_DIR/saslgated (default .build/debug); skipped when absent.
# Needs the Debian package fail2ban (fail2ban-regex); skipped when absent, except under CI=true.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
bin=$bin_dir/saslgated
[ -x "$bin" ] || e2e_skip "saslgated not built ($bin not found)"
if ! command -v fail2ban-regex >/dev/null; then
    # CI installs it (scripts/install-deps): there a missing fail2ban is a failure, not a skip.
    [ "${CI:-}" = true ] && e2e_die "fail2ban-regex not installed (Debian package fail2ban; scripts/install-deps)"
    e2e_skip "fail2ban-regex not installed (Debian package fail2ban)"
fi
filter=$E2E_ROOT/conf/fail2ban/filter.d/saslgate.conf
jail=$E2E_ROOT/conf/fail2ban/jail.d/saslgate.conf
[ -f "$filter" ] || e2e_die "missing $filter"

# ---------------------------------------------------------------------------------------------
# The client: one connection per case, handshake as Postfix (VERSION 1 0, CPID), one AUTH, the
# mechanism's exchange, prints the final server line (OK/FAIL ...) with TABs shown as spaces.
client=$E2E_TMP/auth-client.py
cat >"$client" <<'PY'
import base64, hashlib, hmac, os, socket, sys

def usage():
    sys.exit("usage: auth-client.py SOCKET RIP|- [--secured] plain USER PASS | plain-raw B64 |"
             " cram USER PASS | scram USER PASS")

args = sys.argv[1:]
if len(args) < 3:
    usage()
path, rip, args = args[0], args[1], args[2:]
secured = False
if args and args[0] == "--secured":
    secured, args = True, args[1:]
if not args:
    usage()
kind, rest = args[0], args[1:]

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(20)
sock.connect(path)
buf = b""

def readline():
    global buf
    while b"\n" not in buf:
        data = sock.recv(4096)
        if not data:
            sys.exit("server closed the connection")
        buf += data
    line, buf = buf.split(b"\n", 1)
    return line.decode()

def send(line):
    sock.sendall(line.encode() + b"\n")

sock.sendall(b"VERSION\t1\t0\nCPID\t%d\n" % os.getpid())
while readline() != "DONE":
    pass

b64 = lambda b: base64.b64encode(b).decode()
params = ["service=smtp", "nologin", "lip=127.0.0.1"]
if rip != "-":
    params.append("rip=" + rip)
if secured:
    params.append("secured")

def auth(mech, resp=None):
    line = "\t".join(["AUTH", "1", mech] + params + ([] if resp is None else ["resp=" + resp]))
    send(line)
    return readline()

def finish(reply):
    print(reply.replace("\t", " "))
    sys.exit(0)

if kind == "plain":
    user, password = rest
    finish(auth("PLAIN", b64(b"\0" + user.encode() + b"\0" + password.encode())))
elif kind == "plain-raw":
    finish(auth("PLAIN", rest[0]))
elif kind == "cram":
    user, password = rest
    reply = auth("CRAM-MD5")
    if not reply.startswith("CONT\t"):
        finish(reply)
    challenge = base64.b64decode(reply.split("\t", 2)[2])
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    send("CONT\t1\t" + b64(user.encode() + b" " + digest.encode()))
    finish(readline())
elif kind == "scram":
    user, password = rest
    first_bare = b"n=" + user.encode() + b",r=" + b64(os.urandom(18)).encode()
    reply = auth("SCRAM-SHA-256", b64(b"n,," + first_bare))
    if not reply.startswith("CONT\t"):
        finish(reply)
    server_first = base64.b64decode(reply.split("\t", 2)[2])
    attrs = dict(kv.split(b"=", 1) for kv in server_first.split(b","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs[b"s"]), int(attrs[b"i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    without_proof = b"c=biws,r=" + attrs[b"r"]
    auth_message = first_bare + b"," + server_first + b"," + without_proof
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    send("CONT\t1\t" + b64(without_proof + b",p=" + b64(proof).encode()))
    reply = readline()
    if reply.startswith("CONT\t"):  # server-final v=...: acknowledge
        send("CONT\t1\t")
        reply = readline()
    finish(reply)
else:
    usage()
PY

# ---------------------------------------------------------------------------------------------
# saslgated #1: passwd-file, every mechanism, no failure delay, block an IP after 3 failures.
sg=$(e2e_mkdir saslgated)
sock=$sg/auth.sock
write_users_file "$sg/users"
chmod 0640 "$sg/users"
cat >"$sg/saslgated.conf" <<EOF
# saslgated for the fail2ban e2e test (written by tests/e2e/fail2ban.test.sh)
listen = $sock
listen_mode = 0600
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain login cram-md5 scram-sha-256
passdbs = passwd-file:$sg/users
default_realm = example.org
failure_delay = 0
cleartext_requires_tls = yes
penalty_block_after = 3
penalty_cooldown = 10m
authz_rules = $E2E_ALICE=>*@example.org
EOF
start_daemon "$sg/saslgated.log" "$bin" -c "$sg/saslgated.conf"
sg_pid=$DAEMON_PID
wait_for_socket "$sock" 20 "$sg_pid" "$sg/saslgated.log"

a=$E2E_ALICE ap=$E2E_ALICE_PASS
replies=$E2E_TMP/replies.txt
: >"$replies"
# run_case NAME EXPECTED_REPLY_PREFIX CLIENT_ARGS... : one request; checks the server's final answer
# (so each case really produced the outcome whose log line fail2ban is then given).
run_case() {
    local name=$1 want=$2 out rc=0
    shift 2
    out=$(timeout 30 python3 "$client" "$sock" "$@" 2>&1) || rc=$?
    printf '%s => %s\n' "$name" "$out" >>"$replies"
    if [ "$rc" -eq 0 ] && [[ $out == "$want"* ]]; then
        e2e_pass "reply: $name"
    else
        e2e_fail "reply: $name" "expected a reply starting with '$want', got: $out (exit $rc)"
    fi
}

# Failures fail2ban must count (one client IP each, except the cool-down IP):
run_case "password mismatch (PLAIN)" "FAIL" 192.0.2.10 --secured plain "$a" wrong-1
run_case "unknown user (PLAIN)" "FAIL" 192.0.2.11 --secured plain nobody@example.org wrong-2
run_case "unknown user from an IPv6 client" "FAIL" 2001:db8::7 --secured plain nobody2@example.org wrong-13
run_case "malformed PLAIN message (one NUL)" "FAIL" 192.0.2.12 --secured plain-raw "$(printf 'alice\0x' | base64 -w0)"
run_case "invalid base64 initial response" "FAIL" 192.0.2.13 --secured plain-raw 'not*base64'
run_case "CRAM-MD5 wrong digest" "FAIL" 192.0.2.14 cram "$a" wrong-3
run_case "SCRAM-SHA-256 bad proof" "FAIL" 192.0.2.15 scram "$a" wrong-4
# alice acting as bob (authz_rules): the line carries authcid= before mech=.
run_case "password mismatch with an authzid" "FAIL" 192.0.2.16 --secured plain-raw \
    "$(printf 'bob@example.org\0%s\0wrong-14' "$a" | base64 -w0)"
run_case "hostile user name (space, rip=)" "FAIL" 198.51.100.7 --secured plain 'x rip=203.0.113.9' wrong-5
run_case "hostile user name (quotes, backslash)" "FAIL" 198.51.100.8 --secured plain \
    'a"b\ rip=203.0.113.9 reason="internal failure: x' wrong-6
run_case "hostile user name (a whole fake tail)" "FAIL" 198.51.100.9 --secured plain \
    'z service=smtp rip=203.0.113.9 lip=x secured=yes reason=x' wrong-12
# 3 different wrong passwords from one IP, then the cool-down refuses the 4th without a check.
run_case "cool-down IP: failure 1" "FAIL" 192.0.2.20 --secured plain "$a" wrong-7
run_case "cool-down IP: failure 2" "FAIL" 192.0.2.20 --secured plain "$a" wrong-8
run_case "cool-down IP: failure 3" "FAIL" 192.0.2.20 --secured plain "$a" wrong-9
run_case "cool-down IP: blocked" "FAIL" 192.0.2.20 --secured plain "$a" "$ap"
# Lines fail2ban must NOT count:
run_case "success (PLAIN)" "OK" 192.0.2.30 --secured plain "$a" "$ap"
run_case "success (SCRAM-SHA-256)" "OK" 192.0.2.31 scram "$a" "$ap"
run_case "success with an authzid" "OK 1 user=bob@example.org" 192.0.2.33 --secured plain-raw \
    "$(printf 'bob@example.org\0%s\0%s' "$a" "$ap" | base64 -w0)"
run_case "cleartext without TLS refused" "FAIL" 192.0.2.32 plain "$a" wrong-10
run_case "failure without rip" "FAIL" - --secured plain "$a" wrong-11

# ---------------------------------------------------------------------------------------------
# saslgated #2: a PAM passdb whose service file names a module that does not exist, so every
# check ends in `internal failure: ...` (server-side trouble, not the client's fault).
sg2=$(e2e_mkdir saslgated-pam)
mkdir -p "$sg2/pam.d"
printf 'auth required pam_saslgate_e2e_missing.so\naccount required pam_saslgate_e2e_missing.so\n' \
    >"$sg2/pam.d/saslgate-f2b"
cat >"$sg2/saslgated.conf" <<EOF
# saslgated with a broken PAM passdb (written by tests/e2e/fail2ban.test.sh)
listen = $sg2/auth.sock
listen_mode = 0600
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain
passdbs = pam:saslgate-f2b{confdir=$sg2/pam.d}
failure_delay = 0
cleartext_requires_tls = no
EOF
start_daemon "$sg2/saslgated.log" "$bin" -c "$sg2/saslgated.conf"
sg2_pid=$DAEMON_PID
wait_for_socket "$sg2/auth.sock" 20 "$sg2_pid" "$sg2/saslgated.log"
sock_main=$sock
sock=$sg2/auth.sock
run_case "internal failure (broken PAM)" "FAIL" 192.0.2.40 plain "$a" whatever
sock=$sock_main

# Every case has finished (the replies came back), so its line is in the log. The log lines are
# written before the reply is sent; a short pause still guards against a slow stderr.
sleep 0.5
log=$E2E_TMP/saslgated-all.log
cat "$sg/saslgated.log" "$sg2/saslgated.log" >"$log"

expect_line() { # NAME ERE : the log must have a line for this case
    check "log: $1" file_has_re "$2" "$log"
}
expect_line "password mismatch" 'result=failed user=alice@example.org mech=PLAIN .* rip=192\.0\.2\.10 .*reason="password mismatch"'
expect_line "unknown user" 'rip=192\.0\.2\.11 .*reason="unknown user"'
expect_line "IPv6 client" 'rip=2001:db8::7 .*reason="unknown user"'
expect_line "malformed PLAIN" 'rip=192\.0\.2\.12 .*reason="PLAIN message'
expect_line "invalid base64" 'rip=192\.0\.2\.13 .*reason="invalid base64'
expect_line "CRAM-MD5 mismatch" 'mech=CRAM-MD5 .*rip=192\.0\.2\.14 .*reason='
expect_line "SCRAM bad proof" 'mech=SCRAM-SHA-256 .*rip=192\.0\.2\.15 .*reason="proof mismatch"'
expect_line "authzid mismatch" 'result=failed user=alice@example\.org authcid=alice@example\.org mech=PLAIN .*rip=192\.0\.2\.16 .*reason="password mismatch"'
expect_line "hostile user quoted" 'user="x rip=203\.0\.113\.9" mech=PLAIN service=smtp rip=198\.51\.100\.7 '
check "log: hostile user escaped" file_has \
    'user="a\"b\\ rip=203.0.113.9 reason=\"internal failure: x" mech=PLAIN service=smtp rip=198.51.100.8 ' "$log"
check "log: hostile user with a whole fake tail" file_has \
    'user="z service=smtp rip=203.0.113.9 lip=x secured=yes reason=x" mech=PLAIN service=smtp rip=198.51.100.9 ' "$log"
expect_line "cool-down" 'rip=192\.0\.2\.20 .*reason="blocked: '
expect_line "success" 'auth ok result=ok .*rip=192\.0\.2\.30 '
expect_line "cleartext refused" 'rip=192\.0\.2\.32 .*reason="cleartext mechanism on a connection without TLS'
expect_line "no rip" 'result=failed .*rip="" .*reason="password mismatch"'
expect_line "internal failure" 'rip=192\.0\.2\.40 .*reason="internal failure: '
check "log: no password in it" file_lacks "$ap" "$log"

# ---------------------------------------------------------------------------------------------
# fail2ban-regex: the file-log variant (timestamped lines) ...
expected_hosts="192.0.2.10 192.0.2.11 192.0.2.12 192.0.2.13 192.0.2.14 192.0.2.15 192.0.2.16 192.0.2.20 198.51.100.7 198.51.100.8 198.51.100.9 2001:db8::7"
expected_count=15  # 11 single failures + 4 lines from 192.0.2.20 (3 mismatches, 1 cool-down)
expected_counts="192.0.2.10:1 192.0.2.11:1 192.0.2.12:1 192.0.2.13:1 192.0.2.14:1 192.0.2.15:1 192.0.2.16:1 192.0.2.20:4 198.51.100.7:1 198.51.100.8:1 198.51.100.9:1 2001:db8::7:1"

# f2b_check LABEL LOGFILE : runs fail2ban-regex and checks count and hosts.
f2b_check() {
    local label=$1 file=$2 out rc=0 matched hosts
    out=$E2E_TMP/f2b-$label.out
    fail2ban-regex --print-all-matched --print-no-missed "$file" "$filter" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        e2e_fail "fail2ban-regex ($label) runs" "exit $rc"
        e2e_indent_tail 30 <"$out"
        return 0
    fi
    e2e_pass "fail2ban-regex ($label) runs"
    # "Lines: N lines, 0 ignored, M matched, K missed"
    matched=$(sed -n 's/^Lines: .*, \([0-9]*\) matched,.*/\1/p' "$out")
    if [ "$matched" = "$expected_count" ]; then
        e2e_pass "fail2ban ($label): exactly $expected_count lines matched"
    else
        e2e_fail "fail2ban ($label): exactly $expected_count lines matched" "got ${matched:-none}"
        e2e_indent_tail 60 <"$out"
    fi
    # The matched lines themselves, each attributed to its real rip= (keys read in order from
    # "auth failed", values quoted or bare, as docs/LOGGING.md describes the format).
    hosts=$(python3 - "$out" <<'PY'
import re, sys
val = r'(?:"(?:[^"\\]|\\.)*"|[^\s"\\=]+)'
# "|  " + timestamp, then (journal form) "HOST IDENT[PID]: ", then saslgated's message
line_re = re.compile(r"\|  \S+ (?:\S+ \S+\[\d+\]: )?saslgated\[\d+\]: notice: auth failed result=failed user="
                     + val + "(?: authcid=" + val + ")? mech=" + val + " service=" + val + r" rip=(" + val + ") ")
ips = set()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if line.startswith("|  "):
        m = line_re.match(line)
        if m:
            ips.add(m.group(1))
print(" ".join(sorted(ips)))
PY
)
    local want
    want=$(tr ' ' '\n' <<<"$expected_hosts" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
    if [ "$hosts" = "$want" ]; then
        e2e_pass "fail2ban ($label): matched hosts are exactly the expected IPs"
    else
        e2e_fail "fail2ban ($label): matched hosts are exactly the expected IPs" "want: $want" "got:  $hosts"
    fi
    # fail2ban's own view: the host it extracted for each match, with counts (lines like
    # "|      192.0.2.10  Tue Nov 24 23:37:56 2026" under the failregex in -v output).
    local f2b_counts
    f2b_counts=$(fail2ban-regex -v "$file" "$filter" 2>/dev/null |
        sed -n -E 's/^\|[[:space:]]+([0-9A-Fa-f.:]+)[[:space:]]+(Mon|Tue|Wed|Thu|Fri|Sat|Sun) .*/\1/p' |
        LC_ALL=C sort | uniq -c | awk '{print $2 ":" $1}' | tr '\n' ' ' | sed 's/ $//')
    if [ "$f2b_counts" = "$expected_counts" ]; then
        e2e_pass "fail2ban ($label): fail2ban extracts exactly the expected IPs, as often as expected"
    else
        e2e_fail "fail2ban ($label): fail2ban extracts exactly the expected IPs, as often as expected" \
            "want: $expected_counts" "got:  $f2b_counts"
    fi
    if grep -q '203\.0\.113\.9' <(printf '%s %s\n' "$hosts" "$f2b_counts"); then
        e2e_fail "fail2ban ($label): the address injected through the user name is never banned"
    else
        e2e_pass "fail2ban ($label): the address injected through the user name is never banned"
    fi
    return 0
}
f2b_check file "$log"

# ... and the journald variant: no timestamp and no <N> prefix in the message; fail2ban's systemd
# backend hands the filter "HOST IDENT[PID]: MESSAGE" with the date taken from the journal.
# Reproduced here as a syslog-style file (what rsyslog writes from the journal).
jlog=$E2E_TMP/saslgated-journal.log
sed -E 's/^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9:]{8})\.[0-9]+Z (saslgated\[([0-9]+)\]: )/\1-\2-\3T\4 mx saslgated[\6]: \5/' \
    "$log" >"$jlog"
check "journald-style log has the journal prefix" file_has_re '^[0-9-]{10}T[0-9:]{8} mx saslgated\[[0-9]+\]: saslgated\[[0-9]+\]: notice: auth failed' "$jlog"
f2b_check journal "$jlog"

# The jail file parses and points at the filter.
if [ -f "$jail" ]; then
    check "jail: [saslgate] section with filter = saslgate" python3 -c '
import configparser, sys
c = configparser.RawConfigParser(strict=False)
c.read(sys.argv[1])
s = c["saslgate"]
assert s.get("filter", "").split()[0] == "saslgate", s.get("filter")
assert "smtp" in s.get("port", "") and "submission" in s.get("port", ""), s.get("port")
assert "_SYSTEMD_UNIT=saslgated.service" in s.get("journalmatch", "") or s.get("backend", "").startswith("systemd")
' "$jail"
else
    e2e_fail "jail file exists" "missing $jail"
fi

check "saslgated still running" process_alive "$sg_pid"
