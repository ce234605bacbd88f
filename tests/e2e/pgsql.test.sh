#!/usr/bin/env bash
# The pgsql passdb against a real PostgreSQL (started here as the `postgres` user, stopped at the end):
# every scheme, unknown and inactive users, a quoted name, injection attempts through the user name,
# the `user` and `allow_nets` columns, two rows, host failover, an outage (temporary FAIL with `temp`,
# fast) and the recovery without a restart, the auth cache during an outage, reloads that leak no
# connections, concurrent load, and `saslgate auth test --explain` / `saslgated --check`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-pg.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"
pg_test_available || e2e_skip "PostgreSQL server binaries not installed (postgresql)"
[ "$(id -u)" -eq 0 ] || command -v initdb >/dev/null || e2e_skip "needs root (runs postgres as user postgres)"
command -v doveadm >/dev/null || e2e_skip "doveadm not installed"

pgroot=$(mktemp -d /tmp/saslgate-pg.XXXXXX)
chmod 755 "$pgroot"
pg_cleanup_all() {
    pg_test_cleanup
    [ "${SASLGATE_E2E_KEEP:-0}" = 1 ] || rm -rf "$pgroot"
}
e2e_on_exit pg_cleanup_all
pg_test_init "$pgroot/pg" || e2e_die "PostgreSQL did not start" "$pgroot/pg/postgres.log"

hash() { doveadm pw -s "$1" -p "$2"; }
pg_test_psql "CREATE ROLE saslgate LOGIN; CREATE TABLE users (username text NOT NULL, domain text NOT NULL,
  password text, active boolean NOT NULL DEFAULT true, canonical text, nets text);
  GRANT SELECT ON users TO saslgate;"
add() { # USER DOMAIN PASSWORD [ACTIVE [CANONICAL [NETS]]]  (values as SQL literals, quotes doubled)
    local q="'"
    pg_test_psql "INSERT INTO users VALUES ('${1//$q/$q$q}', '$2', $3, ${4:-true}, ${5:-NULL}, ${6:-NULL})"
}
add alice example.org "'{PLAIN}Alice.pw1'"
add bob example.org "'$(hash SHA512-CRYPT Bob.pw2)'"
add carol example.org "'$(hash BLF-CRYPT Carol.pw3)'"
add dan example.org "'$(hash SSHA512 Dan.pw4)'"
add erin example.org "'$(hash CRAM-MD5 Erin.pw5)'"
add frank example.org "'$(hash SCRAM-SHA-256 Frank.pw6)'"
add gina example.org "'{PLAIN}Gina.pw7'" false
add "o'brien" example.org "'{PLAIN}Obrien.pw8'"
add hank example.org "'{PLAIN}Hank.pw9'" true "'Hank.Renamed@example.org'"
add ivy example.org "'{PLAIN}Ivy.pw10'" true NULL "'10.9.0.0/16, 192.0.2.7'"
add dup example.org "'{PLAIN}Dup.pw11'"
add dup example.org "'{PLAIN}Dup.pw11'"
add nopw example.org NULL
add plainnoprefix example.org "'Plain.pw12'"
add 42 example.org "'{PLAIN}Num.pw13'"
rows_before=$(pg_test_psql "SELECT count(*) FROM users")

# start_pg NAME CONNECT [EXTRA_SETTING...] : saslgated with a pgsql passdb; sets DIR, SOCK, LOG, PID.
start_pg() {
    local name=$1 connect=$2
    shift 2
    DIR=$(e2e_mkdir "$name")
    {
        printf 'connect = %s\n' "$connect"
        printf 'password_query = %s\n' "${PGSQL_QUERY:-SELECT password, canonical AS user, nets AS allow_nets FROM users WHERE username = '%n' AND domain = '%d' AND active}"
        printf 'default_pass_scheme = PLAIN\nquery_timeout = 2s\n'
        [ -z "${PGSQL_EXTRA:-}" ] || printf '%s\n' "$PGSQL_EXTRA"
    } >"$DIR/pgsql.conf"
    chmod 0600 "$DIR/pgsql.conf"
    cat >"$DIR/saslgated.conf" <<CONF
listen = $DIR/auth.sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket = $DIR/control.sock
mechanisms = plain login cram-md5 scram-sha-256
passdbs = pgsql:$DIR/pgsql.conf
default_realm = example.org
username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@'=;,(){}|*
failure_delay = 0
CONF
    [ $# -eq 0 ] || printf '%s\n' "$@" >>"$DIR/saslgated.conf"
    start_daemon "$DIR/saslgated.log" "$bin_dir/saslgated" -c "$DIR/saslgated.conf"
    PID=$DAEMON_PID
    wait_for_socket "$DIR/auth.sock" 20 "$PID" "$DIR/saslgated.log"
    SOCK=$DIR/auth.sock
    LOG=$DIR/saslgated.log
}

tcp="host=127.0.0.1 port=$PG_PORT dbname=mail user=saslgate"
start_pg main "$tcp" "request_timeout = 2s"  # a reload closes the old pools after request_timeout
ok() { expect_doveadm "$1" succeeded -a "$SOCK" -x service=smtp -x secured "${@:2}"; }
no() { expect_doveadm "$1" failed -a "$SOCK" -x service=smtp -x secured "${@:2}"; }
ok "PLAIN row" alice@example.org Alice.pw1
no "PLAIN row, wrong password" alice@example.org Wrong.pw
no "unknown user" nobody@example.org Alice.pw1
no "inactive user (no row)" gina@example.org Gina.pw7
ok "{SHA512-CRYPT} row" bob@example.org Bob.pw2
no "{SHA512-CRYPT} row, wrong password" bob@example.org Bob.pw
ok "{BLF-CRYPT} row" carol@example.org Carol.pw3
ok "{SSHA512} row" dan@example.org Dan.pw4
ok "{CRAM-MD5} row with PLAIN" erin@example.org Erin.pw5
ok "{SCRAM-SHA-256} row with PLAIN" frank@example.org Frank.pw6
ok "no {SCHEME} prefix: default_pass_scheme (PLAIN)" plainnoprefix@example.org Plain.pw12
no "NULL password" nopw@example.org ""
ok "a quote in the user name (o'brien)" "o'brien@example.org" Obrien.pw8
# (username_chars refuses spaces: SQL without them.)
for evil in "x'OR'1'='1@example.org" "';DROP(TABLE(users));--@example.org" "alice'--@example.org" \
    "x'UNION(SELECT'{PLAIN}pw')--@example.org" "x'||(SELECT(password)FROM(users)LIMIT(1))||'@example.org"; do
    no "injection through the user name never succeeds: $evil" "$evil" pw
    no "...nor with alice's password: $evil" "$evil" Alice.pw1
done
check "the users table is intact after the injection attempts" test "$(pg_test_psql "SELECT count(*) FROM users")" = "$rows_before"

out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured hank@example.org Hank.pw9 || true)
check "the user column renames: OK user=Hank.Renamed@example.org" grep -qE "auth succeeded|user=Hank.Renamed@example.org" <<<"$out"
check "...the renamed user is in the OK line" grep -q "user=Hank.Renamed@example.org" <<<"$out"
expect_doveadm "allow_nets: a client inside 10.9.0.0/16 succeeds" succeeded -a "$SOCK" -x service=smtp -x secured -x rip=10.9.3.4 ivy@example.org Ivy.pw10
expect_doveadm "allow_nets: the listed single address succeeds" succeeded -a "$SOCK" -x service=smtp -x secured -x rip=192.0.2.7 ivy@example.org Ivy.pw10
expect_doveadm "allow_nets: a client outside fails" failed -a "$SOCK" -x service=smtp -x secured -x rip=10.8.0.1 ivy@example.org Ivy.pw10
out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured dup@example.org Dup.pw11 || true)
check "two rows: a temporary failure (temp)" grep -qE "^[[:space:]]*temp$" <<<"$out"
check "...logged as an internal failure naming the rows" file_has "more than one row" "$LOG"

# SCRAM and CRAM-MD5 from rows that allow them (default_pass_scheme = PLAIN advertises them).
check "SCRAM-SHA-256 from a {PLAIN} row" python3 "$E2E_DIR/scram_client.py" "$SOCK" SCRAM-SHA-256 alice@example.org Alice.pw1
check "SCRAM-SHA-256 from a {SCRAM-SHA-256} row" python3 "$E2E_DIR/scram_client.py" "$SOCK" SCRAM-SHA-256 frank@example.org Frank.pw6
check "SCRAM-SHA-256 wrong password fails" bash -c "! python3 '$E2E_DIR/scram_client.py' '$SOCK' SCRAM-SHA-256 frank@example.org nope"
check "SCRAM-SHA-256 from a {SHA512-CRYPT} row fails (scheme not available)" bash -c "! python3 '$E2E_DIR/scram_client.py' '$SOCK' SCRAM-SHA-256 bob@example.org Bob.pw2"
cram() { python3 "$E2E_DIR/cram_client.py" "$SOCK" "$1" "$2"; }
check "CRAM-MD5 from a {CRAM-MD5} row" cram erin@example.org Erin.pw5
check "CRAM-MD5 from a {PLAIN} row" cram alice@example.org Alice.pw1
check "CRAM-MD5 wrong password fails" bash -c "! python3 '$E2E_DIR/cram_client.py' '$SOCK' erin@example.org nope"

# --explain and --check.
explain=$("$bin_dir/saslgate" auth test -c "$DIR/saslgated.conf" --socket "$SOCK" --explain --password-stdin "o'brien@example.org" <<<"Obrien.pw8" 2>&1 || true)
check "--explain shows the bound query" grep -q 'query: SELECT password, canonical AS user, nets AS allow_nets FROM users WHERE username = \$1 AND domain = \$2 AND active' <<<"$explain"
check "--explain shows the bound values" grep -q "\$1 = %{username} = 'o'brien'" <<<"$explain"
check "--explain names the host that answered" grep -q "answered by 127.0.0.1:$PG_PORT" <<<"$explain"
check "--explain shows no password" bash -c "! grep -q 'Obrien.pw8' <<<\"\$1\"" _ "$explain"
check "saslgated --check reaches the database" "$bin_dir/saslgated" --check -c "$DIR/saslgated.conf"

# Concurrent load through the pool: 200 lookups, 8 at a time, every answer right.
load_out=$E2E_TMP/load.out
: >"$load_out"
for i in $(seq 1 200); do
    case $((i % 4)) in
        0) echo "alice@example.org Alice.pw1 succeeded" ;;
        1) echo "bob@example.org Bob.pw2 succeeded" ;;
        2) echo "alice@example.org bad failed" ;;
        3) echo "nobody@example.org x failed" ;;
    esac
done | xargs -P 8 -L 1 bash -c 'out=$(doveadm -c "$0" auth test -a "$1" -x service=smtp -x secured "$2" "$3" 2>&1); if grep -q "auth $4" <<<"$out"; then echo right; else echo "wrong $2 $4"; fi' \
    "$(e2e_doveadm_conf)" "$SOCK" >>"$load_out" 2>&1 || true
check "200 concurrent lookups, all answers right" test "$(grep -c '^right$' "$load_out")" = 200
# saslgated's connections to the server stay open, each with TCP keepalive (a firewall's silent drop of
# an idle connection is found, not waited out by the next lookup).
pg_tcp=$(ss -tnopH state established "( dport = :$PG_PORT )" | grep '"saslgated"' || true)
check "connections to the server are kept open, all with TCP keepalive" \
    bash -c '[ -n "$1" ] && ! grep -qv "timer:(keepalive" <<<"$1"' _ "$pg_tcp"

# Pipelined load: 32 connections x 16 requests in flight queue on each event loop's few database
# connections; the bench checks every answer (a wrong OK or FAIL is an error), 20 % wrong passwords.
bench=$bin_dir/saslgate-bench
if [ -x "$bench" ]; then
    printf 'alice@example.org:Alice.pw1\no'"'"'brien@example.org:Obrien.pw8\nplainnoprefix@example.org:Plain.pw12\n' >"$E2E_TMP/pg-users"
    if "$bench" --json --secured --no-penalty --warmup 0 --timeout 20 --socket "$SOCK" --users "$E2E_TMP/pg-users" \
        --connections 32 --pipeline 16 --requests 6000 --bad-share 0.2 >"$E2E_TMP/pg-bench.json" 2>"$E2E_TMP/pg-bench.err"; then
        j=$(cat "$E2E_TMP/pg-bench.json")
        field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
        check "pipelined load (32 x 16): all 6000 answered" test "$(field "$j" completed)" = 6000
        check "pipelined load: no wrong answer and no error" test "$(field "$j" errors)" = 0
        check "pipelined load: wrong passwords got FAIL" test "$(field "$j" fail_bad)" -gt 0
    else
        e2e_fail "pipelined load: saslgate-bench exited with an error" "$(tail -n 5 "$E2E_TMP/pg-bench.err")"
    fi
    conns=$(pg_test_connections)
    check "pipelined load: at most pool_size x event loops connections ($conns <= 2 x $(nproc))" test "$conns" -le $((2 * $(nproc)))

    # A connection limit below what the pools would open (the role may have 2; 2 event loops x
    # pool_size 4 would take 8): a capacity limit, not an outage. Every answer stays right, nothing
    # fails temporarily, the host is never marked down, and saslgated stays within the limit.
    saved=("$DIR" "$SOCK" "$PID" "$LOG")
    pg_test_psql "CREATE ROLE limited LOGIN CONNECTION LIMIT 2; GRANT SELECT ON users TO limited"
    PGSQL_EXTRA="pool_size = 4" start_pg climit "host=127.0.0.1 port=$PG_PORT dbname=mail user=limited" "event_loops = 2"
    if "$bench" --json --secured --no-penalty --warmup 0 --timeout 20 --socket "$SOCK" --users "$E2E_TMP/pg-users" \
        --connections 32 --pipeline 16 --requests 6000 --bad-share 0.2 >"$E2E_TMP/pg-limit.json" 2>"$E2E_TMP/pg-limit.err"; then
        j=$(cat "$E2E_TMP/pg-limit.json")
        check "connection limit 2: all 6000 answered" test "$(field "$j" completed)" = 6000
        check "connection limit 2: no wrong answer and no error" test "$(field "$j" errors)" = 0
    else
        e2e_fail "connection limit: saslgate-bench exited with an error" "$(tail -n 5 "$E2E_TMP/pg-limit.err")"
    fi
    check "connection limit 2: logged as no room for one more connection" file_has "could not open one more connection" "$LOG"
    check "connection limit 2: the host was never marked down" bash -c "! grep -q 'pgsql host is down' '$LOG'"
    check "connection limit 2: no temporary failure" bash -c "! grep -q 'internal failure' '$LOG'"
    limited=$(pg_test_psql "SELECT count(*) FROM pg_stat_activity WHERE usename = 'limited'")
    check "connection limit 2: saslgated holds at most 2 connections ($limited)" test "$limited" -le 2
    ok "connection limit 2: OK afterwards" alice@example.org Alice.pw1
    # A reload: the new generation needs connections while the old one holds the 2 the role may
    # have; the old generation's idle connections close at once to make room.
    reloads=$(grep -c "reload done" "$LOG" || true)
    kill -HUP "$PID"
    for _ in $(seq 50); do [ "$(grep -c "reload done" "$LOG" || true)" -gt "$reloads" ] && break; sleep 0.1; done
    ok "connection limit 2: right after a reload, OK" alice@example.org Alice.pw1
    ok "connection limit 2: and again" bob@example.org Bob.pw2
    check "connection limit 2: no temporary failure after the reload either" bash -c "! grep -q 'internal failure' '$LOG'"
    kill "$PID" 2>/dev/null || true
    # No room at all (other clients hold every connection the role may have): a temporary failure, never
    # a wrong password; as soon as there is room again, OK without a restart.
    for _ in $(seq 50); do [ "$(pg_test_psql "SELECT count(*) FROM pg_stat_activity WHERE usename = 'limited'")" = 0 ] && break; sleep 0.1; done
    pg_test_psql "ALTER ROLE limited CONNECTION LIMIT 0"
    PGSQL_EXTRA="pool_size = 4" start_pg climit0 "host=127.0.0.1 port=$PG_PORT dbname=mail user=limited"
    out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 || true)
    check "no room for any connection: FAIL with temp" grep -qE "^[[:space:]]*temp$" <<<"$out"
    pg_test_psql "ALTER ROLE limited CONNECTION LIMIT 2"
    ok "room again: the first request succeeds" alice@example.org Alice.pw1
    kill "$PID" 2>/dev/null || true
    DIR=${saved[0]} SOCK=${saved[1]} PID=${saved[2]} LOG=${saved[3]}
fi

# 20 reloads: the old pools are closed, connections do not grow.
before=$(pg_test_connections)
for _ in $(seq 1 20); do
    kill -HUP "$PID"
    sleep 0.2
    run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 >/dev/null || true
done
# Replaced generations close their connections within about request_timeout: wait up to 15 s.
for _ in $(seq 75); do
    after=$(pg_test_connections)
    [ "$after" -le "$((before + 2))" ] && break
    sleep 0.2
done
check "20 reloads do not grow the connections ($before before, $after after)" test "$after" -le "$((before + 2))"

# burst SOCK ROUNDS SPEC... : ROUNDS times every SPEC ("user|password|rip|expect", expect "OK <user>",
# "FAIL" or "TEMP"), all written at once on one connection, so the lookups reach the database while
# its connections are busy (and go as batches); every answer is checked against its own request.
# Prints the mismatches and a summary; exit 1 on any mismatch.
burst() {
    python3 - "$@" <<'PY'
import base64, socket, sys
sock, rounds, specs = sys.argv[1], int(sys.argv[2]), [a.split("|") for a in sys.argv[3:]]
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sock)
s.sendall(b"VERSION\t1\t2\nCPID\t4343\n")
buf = b""
while b"DONE\n" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("closed during the handshake")
    buf += chunk
buf = buf.split(b"DONE\n", 1)[1]
# One request first, answered before the burst: the pool's connection is then open (lookups that come
# while a connection is still being opened each run alone once it is).
user, password, rip, _ = specs[0]
resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
s.sendall(("AUTH\t999999\tPLAIN\tservice=smtp\tsecured\tno-penalty\trip=%s\tresp=%s\n" % (rip, resp)).encode())
while b"\t999999\t" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("closed before the first answer")
    buf += chunk
expect, lines = {}, []
for r in range(rounds):
    for k, (user, password, rip, want) in enumerate(specs):
        i = 1 + r * len(specs) + k
        expect[i] = (user, want)
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        lines.append("AUTH\t%d\tPLAIN\tservice=smtp\tsecured\tno-penalty\trip=%s\tresp=%s\n" % (i, rip, resp))
s.sendall("".join(lines).encode())
answers = {}
while len(answers) < len(expect):
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("closed after %d of %d answers" % (len(answers), len(expect)))
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    f = line.decode().split("\t")
    if f[0] in ("OK", "FAIL") and int(f[1]) in expect:
        answers[int(f[1])] = f
bad = 0
for i, (user, want) in expect.items():
    f = answers[i]
    got_user = next((x[5:] for x in f[2:] if x.startswith("user=")), "")
    temp = "temp" in f[2:]
    if want.startswith("OK "):
        right = f[0] == "OK" and got_user == want[3:]
    elif want == "TEMP":
        right = f[0] == "FAIL" and temp
    else:
        right = f[0] == "FAIL" and not temp
    if not right:
        bad += 1
        if bad <= 10:
            print("wrong answer for %s (wanted %s): %s" % (user, want, "\t".join(f)))
print("%d requests, %d wrong" % (len(expect), bad))
sys.exit(1 if bad else 0)
PY
}

# Batches: with one database connection, the lookups that arrive while it is busy go together as one
# statement (the batch form of password_query). Every answer must be the one for its own request:
# right and wrong passwords, unknown and inactive users, a renamed user, allow_nets in and out, a NULL
# password, a name with a quote, a user with two rows (an internal failure for that user alone), names
# with the characters of PostgreSQL's array syntax and the word NULL (unknown users).
# PostgreSQL logs every statement of the saslgate role here, to show the batches ran.
pg_test_psql "ALTER ROLE saslgate SET log_min_duration_statement = 0"
batch_specs=("alice@example.org|Alice.pw1|10.1.0.1|OK alice@example.org"
    "alice@example.org|Wrong.pw|10.1.0.2|FAIL"
    "nobody@example.org|Alice.pw1|10.1.0.3|FAIL"
    "gina@example.org|Gina.pw7|10.1.0.4|FAIL"
    "o'brien@example.org|Obrien.pw8|10.1.0.5|OK o'brien@example.org"
    "hank@example.org|Hank.pw9|10.1.0.6|OK Hank.Renamed@example.org"
    "ivy@example.org|Ivy.pw10|10.9.3.4|OK ivy@example.org"
    "ivy@example.org|Ivy.pw10|10.1.0.7|FAIL"
    "nopw@example.org|x|10.1.0.8|FAIL"
    "dup@example.org|Dup.pw11|10.1.0.9|TEMP"
    "plainnoprefix@example.org|Plain.pw12|10.1.0.10|OK plainnoprefix@example.org"
    "bob@example.org|Bob.pw2|10.1.0.11|OK bob@example.org"
    "42@example.org|Num.pw13|10.1.0.12|OK 42@example.org"
    "a,b}{c@example.org|Alice.pw1|10.1.0.13|FAIL"
    "NULL@example.org|Alice.pw1|10.1.0.14|FAIL")
# start_one NAME [QUERY] : saslgated with one event loop and one database connection, so lookups that
# come together wait for it and go as batches; QUERY replaces the default password_query.
start_one() { PGSQL_QUERY=${2:-} PGSQL_EXTRA="pool_size = 1" start_pg "$1" "$tcp" "event_loops = 1"; }

# burst_check NAME ROUNDS SPEC... : a burst (above) on $SOCK in which every request gets its right answer.
burst_check() {
    local name=$1 rounds=$2 out
    shift 2
    out=$(burst "$SOCK" "$rounds" "$@" 2>&1) || true
    check "$name ($(tail -n 1 <<<"$out"))" grep -q "^$((rounds * $#)) requests, 0 wrong$" <<<"$out"
}

# batch_logged SINCE TEXT : PostgreSQL logged, since line SINCE of its log, a batch statement run whose
# query's first line holds TEXT.
batch_logged() {
    tail -n +"$1" "$PG_LOG" | grep -A 1 'execute [^:]*: SELECT saslgate_batch' | grep -qF "$2"
}

pg_log_from=$(($(wc -l <"$PG_LOG") + 1))
start_one batch
burst_check "batches: 600 lookups in one burst, every answer the one for its own request" 40 "${batch_specs[@]}"
batch_runs=$(tail -n +"$pg_log_from" "$PG_LOG" | grep -c "execute [^:]*: SELECT saslgate_batch" || true)
single_runs=$(tail -n +"$pg_log_from" "$PG_LOG" | grep -c "execute [^:]*: SELECT password" || true)
check "batches: 601 lookups took $batch_runs batch statements and $single_runs single ones (fewer than 150 in all)" \
    test "$batch_runs" -ge 1 -a $((batch_runs + single_runs)) -lt 150
check "batches: the renamed user and the two-row user were logged as such" \
    bash -c "grep -q 'user=Hank.Renamed@example.org' '$LOG' && grep -q 'more than one row' '$LOG'"
kill "$PID" 2>/dev/null || true

# A batch that fails for one lookup's value (here a failing cast of a non-numeric name) runs again one
# lookup at a time: the numeric name still succeeds, the others fail temporarily, none is OK wrongly.
start_one batcherr "SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND %n::int > 0"
burst_check "batches: a failing cast fails only its own lookup" 20 "42@example.org|Num.pw13|10.2.0.1|OK 42@example.org" \
    "alice@example.org|Alice.pw1|10.2.0.2|TEMP" "42@example.org|Wrong.pw|10.2.0.3|FAIL"
kill "$PID" 2>/dev/null || true

# Typed parameters: in the batch form each variable is cast to the type PostgreSQL gave it in the plain
# query, so comparisons are the same. citext (case-insensitive; saslgated lower-cases the name): bob is
# blocked as 'Bob' and must stay refused in a batch (compared as text, 'Bob' <> 'bob' would let him in
# with OK); alice is stored as 'Alice' and must still be found. An enum: %s compared with an enum value
# batches and matches.
pg_test_psql "CREATE EXTENSION IF NOT EXISTS citext; CREATE TYPE service_kind AS ENUM ('smtp', 'imap');
  CREATE TYPE \"Service Kind\" AS ENUM ('smtp', 'imap');
  CREATE TABLE cusers (username citext NOT NULL, password text); CREATE TABLE cblocked (username citext NOT NULL);
  INSERT INTO cusers VALUES ('Alice', '{PLAIN}Alice.pw1'), ('bob', '{PLAIN}Bob.pw2'), ('carol', '{PLAIN}Carol.pw3');
  INSERT INTO cblocked VALUES ('Bob'); GRANT SELECT ON cusers, cblocked TO saslgate"
pg_log_from=$(($(wc -l <"$PG_LOG") + 1))
start_one citext "SELECT password FROM cusers WHERE username = '%n' AND NOT EXISTS (SELECT 1 FROM cblocked b WHERE b.username = '%n')"
burst_check "citext: a blocked user stays refused in batches, case is ignored as in the plain query" 30 \
    "carol@example.org|Carol.pw3|10.3.0.1|OK carol@example.org" "bob@example.org|Bob.pw2|10.3.0.2|FAIL" \
    "BOB@example.org|Bob.pw2|10.3.0.3|FAIL" "ALICE@example.org|Alice.pw1|10.3.0.4|OK alice@example.org" \
    "alice@example.org|Wrong.pw|10.3.0.5|FAIL"
check "citext: the lookups went as batches, the variables cast to citext" \
    batch_logged "$pg_log_from" "username = (saslgate_batch.p1::citext)"
kill "$PID" 2>/dev/null || true
pg_log_from=$(($(wc -l <"$PG_LOG") + 1))
start_one enum "SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND %s = 'smtp'::service_kind"
burst_check "enum: every answer right" 20 "alice@example.org|Alice.pw1|10.3.1.1|OK alice@example.org" \
    "alice@example.org|Wrong.pw|10.3.1.2|FAIL" "nobody@example.org|x|10.3.1.3|FAIL"
check "enum: the lookups went as batches" batch_logged "$pg_log_from" "(saslgate_batch.p3::service_kind)"
kill "$PID" 2>/dev/null || true

# char(n): the element is cast to bpchar (unlimited), never to "character" (which is char(1): 'alice'
# would become 'a' and find user a, whose password would then let alice in).
pg_test_psql "CREATE TABLE pusers (username char(10) NOT NULL, password text);
  INSERT INTO pusers VALUES ('alice', '{PLAIN}Alice.pw1'), ('a', '{PLAIN}A.pw0'); GRANT SELECT ON pusers TO saslgate"
start_one bpchar "SELECT password FROM pusers WHERE username = '%n'"
burst_check "char(n): every answer right, in batches too" 20 "alice@example.org|Alice.pw1|10.3.3.1|OK alice@example.org" \
    "alice@example.org|A.pw0|10.3.3.2|FAIL" "a@example.org|A.pw0|10.3.3.3|OK a@example.org"
kill "$PID" 2>/dev/null || true

# A domain with a length (login_t over varchar(5)): the plain statement refuses a longer value, a cast
# would cut it ('alicejunk' would become 'alice' and log in with alice's password). Such a query does not
# batch: the long name fails (temp), never OK, also under load.
pg_test_psql "CREATE DOMAIN login_t AS varchar(5);
  CREATE FUNCTION auth_lookup(u login_t, d text) RETURNS TABLE (password text) LANGUAGE sql STABLE
    AS 'SELECT password FROM users WHERE username = u AND domain = d';
  GRANT EXECUTE ON FUNCTION auth_lookup(login_t, text) TO saslgate"
start_one domain "SELECT password FROM auth_lookup(%n, '%d')"
burst_check "domain over varchar(5): a longer name never gets OK, also under load" 20 \
    "alice@example.org|Alice.pw1|10.3.4.1|OK alice@example.org" "alicejunk@example.org|Alice.pw1|10.3.4.2|TEMP" \
    "alice@example.org|Wrong.pw|10.3.4.3|FAIL"
check "... and the query does not run as a batch (logged once)" test "$(grep -c "cannot run as a batch" "$LOG" || true)" = 1
kill "$PID" 2>/dev/null || true

# A query whose parameter type has a name saslgated will not write into SQL (one PostgreSQL quotes)
# runs one lookup at a time: logged once, every answer still right.
start_one nobatch "SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND %s = 'smtp'::\"Service Kind\""
burst_check "no batch form: every answer right" 20 "alice@example.org|Alice.pw1|10.3.2.1|OK alice@example.org" \
    "alice@example.org|Wrong.pw|10.3.2.2|FAIL" "nobody@example.org|x|10.3.2.3|FAIL"
check "no batch form: logged once, lookups run one at a time" \
    test "$(grep -c "cannot run as a batch" "$LOG" || true)" = 1
kill "$PID" 2>/dev/null || true

# A variable compared as another type than text (here %r with inet): saslgated sends every value as
# text bytes, which PostgreSQL would read as inet's binary form. The query is refused as a statement
# error (temp, never OK) naming the fix; written as the log says, it works, alone and in batches.
start_one inettype "SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND %r <<= inet '10.0.0.0/8'"
burst_check "a variable compared as inet: FAIL with temp, never OK" 5 "alice@example.org|Alice.pw1|10.4.0.1|TEMP"
check "... logged with the fix: %{rip}::text::inet" file_has "write %{rip}::text::inet" "$LOG"
check "... the host is not marked down" bash -c "! grep -q 'pgsql host is down' '$LOG'"
kill "$PID" 2>/dev/null || true
start_one inettext "SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND %r::text::inet <<= inet '10.0.0.0/8'"
burst_check "... written %r::text::inet, every answer right, in batches too" 20 \
    "alice@example.org|Alice.pw1|10.4.0.1|OK alice@example.org" "alice@example.org|Alice.pw1|192.0.2.1|FAIL" \
    "alice@example.org|Wrong.pw|10.4.0.2|FAIL"
kill "$PID" 2>/dev/null || true
pg_test_psql "ALTER ROLE saslgate RESET log_min_duration_statement"

# A statement error is the configuration's, not the host's: a temporary failure, logged as
# password_query failed, and the host stays up (the next lookup reaches the database at once).
for case in "22P02 at run time|SELECT password FROM users WHERE username = '%n' AND domain = '%d' AND %n::int > 0" \
    "42P01 when preparing|SELECT password FROM no_such_table WHERE username = '%n'"; do
    what=${case%%|*}
    PGSQL_QUERY=${case#*|} start_pg stmterr "$tcp"
    out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 || true)
    check "statement error ($what): FAIL with temp, never OK" grep -qE "^[[:space:]]*temp$" <<<"$out"
    check "statement error ($what): logged as password_query failed" file_has "password_query failed" "$LOG"
    out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured 12345@example.org pw || true)
    check "statement error ($what): the host is not marked down" bash -c "! grep -q 'pgsql host is down' '$LOG'"
    if [ "${what%% *}" = 22P02 ]; then
        check "statement error ($what): a numeric name runs the query at once (unknown user, no temp)" \
            bash -c '! grep -qE "^[[:space:]]*temp$" <<<"$1" && grep -q "auth failed" <<<"$1"' _ "$out"
    fi
    kill "$PID" 2>/dev/null || true
done

# TLS to the database: the server gets a certificate for the name localhost from a private CA (ssl is
# turned on by a configuration reload); sslmode=require encrypts, verify-full also checks the CA and that
# the certificate names the host (a name, or the address connected to).
tls=$pgroot/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=saslgate test CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" -keyout "$tls/other.key" -out "$tls/other.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName = DNS:localhost\n' >"$tls/san.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
    -extfile "$tls/san.ext" -out "$tls/server.pem" 2>/dev/null
chmod 0755 "$tls"
chmod 0600 "$tls/server.key"
[ "$(id -u)" -ne 0 ] || chown postgres: "$tls/server.key" "$tls/server.pem"
for setting in "ssl_cert_file = '$tls/server.pem'" "ssl_key_file = '$tls/server.key'" "ssl = on"; do
    pg_test_psql_db postgres "ALTER SYSTEM SET $setting" >/dev/null  # one statement each: not in a transaction
done
pg_test_psql_db postgres "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 50); do [ "$(pg_test_psql_db postgres "SHOW ssl")" = on ] && break; sleep 0.1; done
check "TLS: the test server has ssl on" test "$(pg_test_psql_db postgres "SHOW ssl")" = on
ssl_conns() { pg_test_psql "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'saslgated' AND a.datname = 'mail' AND s.ssl"; }
start_pg tlsreq "$tcp sslmode=require"
ok "TLS: sslmode=require, OK" alice@example.org Alice.pw1
check "TLS: sslmode=require: the server sees an encrypted connection" test "$(ssl_conns)" -ge 1
no "TLS: sslmode=require, a wrong password fails" alice@example.org Wrong.pw
kill "$PID" 2>/dev/null || true
start_pg tlsfull "host=localhost port=$PG_PORT dbname=mail user=saslgate sslmode=verify-full sslrootcert=$tls/ca.pem"
ok "TLS: sslmode=verify-full with the server's CA and name (localhost), OK" alice@example.org Alice.pw1
kill "$PID" 2>/dev/null || true
start_pg tlswrongca "host=localhost port=$PG_PORT dbname=mail user=saslgate sslmode=verify-full sslrootcert=$tls/other.pem"
out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 || true)
check "TLS: verify-full with another CA: FAIL with temp, never OK" grep -qE "^[[:space:]]*temp$" <<<"$out"
check "TLS: logged as a certificate not signed by the CA in sslrootcert" file_has "not signed by the CA in sslrootcert" "$LOG"
kill "$PID" 2>/dev/null || true
start_pg tlsname "$tcp sslmode=verify-full sslrootcert=$tls/ca.pem"
out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 || true)
check "TLS: verify-full to 127.0.0.1, which the certificate does not name: FAIL with temp, never OK" grep -qE "^[[:space:]]*temp$" <<<"$out"
check "TLS: logged as a certificate that does not name the host" file_has "does not name this host" "$LOG"
kill "$PID" 2>/dev/null || true

# Failover: a closed port first, then the real server (TCP), then the Unix socket.
closed=$(e2e_free_port)
start_pg failover "host=127.0.0.1 port=$closed host=127.0.0.1 port=$PG_PORT dbname=mail user=saslgate"
ok "failover: the first host refuses, the second answers" alice@example.org Alice.pw1
explain=$("$bin_dir/saslgate" auth test -c "$DIR/saslgated.conf" --socket "$SOCK" --explain --password-stdin alice@example.org <<<"Alice.pw1" 2>&1 || true)
check "--explain names the second host" grep -q "answered by 127.0.0.1:$PG_PORT" <<<"$explain"
start_pg unix "host=$PG_SOCKDIR port=$PG_PORT dbname=mail user=saslgate"
ok "a Unix-socket directory as host" bob@example.org Bob.pw2

# The server ends saslgated's idle connections (an admin, a restart of a pooler, a firewall): the next
# request succeeds on a fresh connection.
start_pg idlekill "$tcp"
ok "idle kill: before, OK" alice@example.org Alice.pw1
killed=$(pg_test_psql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'mail' AND application_name = 'saslgated'")
check "idle kill: the server ended saslgated's connections ($killed)" test "$killed" -ge 1
ok "idle kill: the next request succeeds on a fresh connection" alice@example.org Alice.pw1
no "idle kill: a wrong password still fails" alice@example.org Wrong.pw

# A slow database (the table locked by another session): a temporary failure within query_timeout
# (2 s), never a wrong password and never OK; when the lock is gone, OK again without a restart.
start_pg slow "$tcp"
ok "slow database: before, OK" alice@example.org Alice.pw1
pg_as_owner psql -X -q -h "$PG_SOCKDIR" -p "$PG_PORT" -U postgres -d mail \
    -c "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;" >/dev/null 2>&1 &
locker=$!
for _ in $(seq 50); do
    [ "$(pg_test_psql "SELECT count(*) FROM pg_locks WHERE relation = 'users'::regclass AND mode = 'AccessExclusiveLock' AND granted")" -ge 1 ] && break
    sleep 0.1
done
start=$(date +%s.%N)
out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 || true)
elapsed=$(python3 -c "import sys; print(round($(date +%s.%N) - $start, 2))")
check "slow database: FAIL with temp" grep -qE "^[[:space:]]*temp$" <<<"$out"
check "slow database: answered in ${elapsed}s (>= 1.5 s: it waited; < query_timeout + 3 s, the lock holds 8 s)" \
    python3 -c "import sys; sys.exit(0 if 1.5 <= $elapsed < 5.0 else 1)"
check "slow database: logged as no answer within query_timeout" file_has "no answer within query_timeout" "$LOG"
wait "$locker" || true
ok "slow database: the lock is gone, the first request succeeds" alice@example.org Alice.pw1
no "slow database: a wrong password fails" alice@example.org Wrong.pw

# Outage: the database stops. Answers are temporary failures (temp), within query_timeout (2 s).
start_pg outage "$tcp"
OUT_SOCK=$SOCK OUT_PID=$PID OUT_LOG=$LOG
start_pg cached "$tcp" "auth_cache_size = 1000" "auth_cache_ttl = 1s" "auth_cache_negative_ttl = 1s"
CACHED_SOCK=$SOCK
expect_doveadm "cache: first lookup succeeds" succeeded -a "$CACHED_SOCK" -x service=smtp -x secured bob@example.org Bob.pw2
SOCK=$OUT_SOCK PID=$OUT_PID
ok "outage: before the stop, OK" alice@example.org Alice.pw1
pg_test_stop
sleep 1.5  # the cached entry's TTL (1 s) is over
start=$(date +%s.%N)
out=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured alice@example.org Alice.pw1 || true)
elapsed=$(python3 -c "import sys; print(round($(date +%s.%N) - $start, 2))")
check "database down: FAIL with temp" grep -qE "^[[:space:]]*temp$" <<<"$out"
check "database down: answered in ${elapsed}s (< query_timeout + 1 s)" python3 -c "import sys; sys.exit(0 if $elapsed < 3.0 else 1)"
out2=$(run_doveadm_auth -a "$SOCK" -x service=smtp -x secured bob@example.org Bob.pw2 || true)
check "database down: the next request fails temporarily too, never as a wrong password" grep -qE "^[[:space:]]*temp$" <<<"$out2"
expect_doveadm "database down: the auth cache still serves its (expired) entry" succeeded -a "$CACHED_SOCK" -x service=smtp -x secured bob@example.org Bob.pw2
check "the outage is logged as an internal failure" file_has "internal failure" "$OUT_LOG"
pg_test_start || e2e_die "PostgreSQL did not start again" "$PG_LOG"
ok "database back: the first request succeeds without restarting saslgated" alice@example.org Alice.pw1
check "saslgated still runs" process_alive "$PID"

# A world-readable settings file is refused.
chmod 0644 "$DIR/pgsql.conf"
check "a world-readable pgsql.conf is refused by --check" bash -c "! '$bin_dir/saslgated' --check -c '$DIR/saslgated.conf' >/dev/null 2>&1"

