# shellcheck shell=bash
# Helpers for saslgate's end-to-end tests against real peers (Postfix, swaks, doveadm).
#
# Source this from a tests/e2e/*.test.sh file (each runs in its own bash process):
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Sourcing creates $E2E_TMP (removed at exit) and installs an EXIT trap that stops every Postfix
# instance and daemon started through these helpers. Nothing is left running.
#
# Results: every check prints "ok - NAME" or "FAIL - NAME" and, when tests/e2e/run set
# $E2E_RESULTS, appends "PASS|FAIL|SKIP<TAB>FILE: NAME" to it. Run alone, a file prints its own
# totals and exits non-zero when a check failed.
#
# Environment:
#   SASLGATE_E2E_KEEP=1        keep $E2E_TMP (configs, logs, transcripts) for inspection
#   SASLGATE_E2E_PF_VERBOSE=1  run smtpd with -v (logs every auth line Postfix reads)

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # for the test files
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)
E2E_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .test.sh)
E2E_RESULTS=${E2E_RESULTS:-}
E2E_PASSED=0
E2E_FAILED=0
E2E_DAEMON_PIDS=()
E2E_POSTFIX_DIRS=()
E2E_LOGS=()
E2E_EXIT_HOOKS=()
E2E_NEXT_IP=0
E2E_ERR_AT=
E2E_TMP=

# Current Postfix instance (set by postfix_start).
PF_PORT=
PF_LOG=

# ---------------------------------------------------------------------------------------------
# Output and results

# Prints the last N lines of FILE (default: stdin) indented. (Pass files as an argument: with
# `e2e_indent_tail N <FILE` in the EXIT trap bash 5.2 sometimes prints "wait_for: No record of
# process".)
e2e_indent_tail() { tail -n "$1" -- "${2:--}" | sed 's/^/      | /'; }

e2e_record() { # PASS|FAIL|SKIP NAME
    [ -z "$E2E_RESULTS" ] || printf '%s\t%s: %s\n' "$1" "$E2E_NAME" "$2" >>"$E2E_RESULTS"
}

e2e_pass() {
    E2E_PASSED=$((E2E_PASSED + 1))
    printf 'ok   - %s\n' "$1"
    e2e_record PASS "$1"
}

e2e_fail() { # NAME [DETAIL...]; details go to stdout, indented
    local name=$1 line
    shift
    E2E_FAILED=$((E2E_FAILED + 1))
    printf 'FAIL - %s\n' "$name"
    for line in "$@"; do printf '      %s\n' "$line"; done
    e2e_record FAIL "$name"
}

# Skips the rest of this test file: neither passed nor failed.
e2e_skip() { # REASON
    printf 'SKIP: %s\n' "$1"
    e2e_record SKIP "$1"
    exit 0
}

# Setup went wrong: record one failure and stop this file (the EXIT trap cleans up).
e2e_die() { # REASON [LOG_FILE]
    e2e_fail "setup: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        printf '      last lines of %s:\n' "$2"
        e2e_indent_tail 40 "$2"
    fi
    exit 1
}

# check NAME CMD... : passes when CMD exits 0; its output is shown only on failure.
check() {
    local name=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -eq 0 ]; then
        e2e_pass "$name"
    else
        e2e_fail "$name" "command failed (exit $rc): $*"
        [ -z "$out" ] || printf '%s\n' "$out" | e2e_indent_tail 20
    fi
    return 0
}

# Small predicates for check.
file_has() { grep -q -F -e "$1" "$2"; }            # STRING FILE
file_lacks() { ! grep -q -F -e "$1" "$2"; }        # STRING FILE
file_has_re() { grep -q -E -e "$1" "$2"; }         # ERE FILE
process_alive() { kill -0 "$1" 2>/dev/null; }      # PID

# ---------------------------------------------------------------------------------------------
# Temporary files

# A fresh directory under $E2E_TMP (world-traversable: Postfix's smtpd runs as user postfix and
# must reach sockets inside it).
e2e_mkdir() { # NAME -> prints the path
    local d
    d=$(mktemp -d "$E2E_TMP/$1.XXXX")
    chmod 755 "$d"
    printf '%s\n' "$d"
}

# A loopback port nobody listens on right now.
e2e_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A client address of its own for each SMTP session (127.0.1.1, 127.0.1.2, ...), so per-IP
# failure counters and penalties of one case do not leak into the next.
e2e_next_ip() {
    E2E_NEXT_IP=$((E2E_NEXT_IP + 1))
    E2E_IP="127.0.$((1 + E2E_NEXT_IP / 250)).$((1 + E2E_NEXT_IP % 250))"
}

# SHA512-CRYPT hash ($6$...) of a password.
e2e_sha512_crypt() { openssl passwd -6 "$1"; }

# ---------------------------------------------------------------------------------------------
# Daemons (anything that stays in the foreground: saslgated, dovecot -F)

# start_daemon LOG CMD... : starts CMD in the background in its own session (so its whole process
# group can be stopped), stdout+stderr to LOG. Sets DAEMON_PID.
start_daemon() {
    local log=$1
    shift
    setsid "$@" >"$log" 2>&1 </dev/null &
    DAEMON_PID=$!
    E2E_DAEMON_PIDS+=("$DAEMON_PID")
    E2E_LOGS+=("$log")
}

# stop_daemon PID : SIGTERM to its process group, wait up to 10 s, then SIGKILL.
stop_daemon() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# terminate_within SECONDS PID : SIGTERM to PID (a start_daemon child) alone; returns its exit
# status, or 124 when it is still running after SECONDS (the EXIT trap then kills it). Call it
# directly, not inside $(...) or check: only this shell can wait for its children.
terminate_within() {
    local secs=$1 pid=$2 i rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && return 124
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# wait_for_socket PATH [TIMEOUT_SECONDS [PID [LOG]]] : until PATH is a socket. Dies (with the log's
# tail) on timeout or when PID exits first.
wait_for_socket() {
    local path=$1 timeout=${2:-15} pid=${3:-} log=${4:-} i
    for ((i = 0; i < timeout * 10; i++)); do
        [ -S "$path" ] && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            e2e_die "process $pid exited (status $rc) before creating socket $path" "$log"
        fi
        sleep 0.1
    done
    e2e_die "no socket at $path after ${timeout}s" "$log"
}

# start_as_unit SERVICE_FILE SOCKET LOG : starts saslgated the way SERVICE_FILE (an installed
# saslgated.service) has systemd start it, on a machine where systemd is not PID 1: ExecStartPre=
# (checked) and ExecStart= as User=/Group= with the user's groups (setpriv), RuntimeDirectory=
# created as systemd would, the socket SOCKET bound by systemd-socket-activate (or, without it,
# by python3 with the same LISTEN_FDS protocol). Waits for the socket. Sets UNIT_PID, UNIT_USER,
# UNIT_GROUP; what it created (the socket, the runtime directory) is removed at exit.
start_as_unit() {
    local unit=$1 sock=$2 log=$3 exec_start exec_check runtime_dir runtime_mode
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit" | tail -n 1)
    exec_start=${exec_start#[-@+!:]}
    exec_check=$(sed -n 's/^ExecStartPre=//p' "$unit" | tail -n 1)
    exec_check=${exec_check#[-@+!:]}
    UNIT_USER=$(sed -n 's/^User=//p' "$unit" | tail -n 1)
    UNIT_GROUP=$(sed -n 's/^Group=//p' "$unit" | tail -n 1)
    [ -n "$exec_start" ] && [ -n "$UNIT_USER" ] || e2e_die "start_as_unit: $unit has no ExecStart= or User="
    local exec_argv check_argv as_unit=(setpriv --reuid "$UNIT_USER" --regid "$UNIT_GROUP" --init-groups)
    read -r -a exec_argv <<<"$exec_start"
    read -r -a check_argv <<<"$exec_check"
    if [ ${#check_argv[@]} -gt 0 ]; then
        check "ExecStartPre= (${check_argv[*]}) passes as $UNIT_USER" "${as_unit[@]}" "${check_argv[@]}"
    fi
    E2E_UNIT_CREATED+=("$sock")
    # A socket left by an earlier start would be taken for the new one before the activator binds.
    if [ -S "$sock" ]; then rm -f "$sock"; fi
    runtime_dir=$(sed -n 's/^RuntimeDirectory=//p' "$unit" | tail -n 1)
    runtime_mode=$(sed -n 's/^RuntimeDirectoryMode=//p' "$unit" | tail -n 1)
    if [ -n "$runtime_dir" ] && [ ! -e "/run/$runtime_dir" ]; then
        install -d -m "${runtime_mode:-0755}" -o "$UNIT_USER" -g "$UNIT_GROUP" "/run/$runtime_dir"
        E2E_UNIT_CREATED+=("/run/$runtime_dir")
    fi
    if command -v systemd-socket-activate >/dev/null; then
        echo "  starting: systemd-socket-activate -l $sock ${as_unit[*]} $exec_start"
        start_daemon "$log" systemd-socket-activate -l "$sock" "${as_unit[@]}" "${exec_argv[@]}"
    else
        echo "  systemd-socket-activate is not installed (package systemd); passing the socket with python3"
        start_daemon "$log" python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1024)
os.dup2(s.fileno(), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execvp(sys.argv[2], sys.argv[2:])' "$sock" "${as_unit[@]}" "${exec_argv[@]}"
    fi
    UNIT_PID=$DAEMON_PID
    wait_for_socket "$sock" 20 "$UNIT_PID" "$log"
}
E2E_UNIT_CREATED=()
e2e_remove_unit_leftovers() { local p; for p in "${E2E_UNIT_CREATED[@]}"; do rm -rf "$p"; done; }

# ---------------------------------------------------------------------------------------------
# A private Postfix instance

# postfix_start DIR SASL_SOCKET [--tls] [--set 'key = value']... : a complete Postfix in DIR (own
# config, queue and data directories), smtpd on 127.0.0.1:$PF_PORT, unchrooted, asking the Dovecot
# auth-client socket SASL_SOCKET (an absolute path, or inet:HOST:PORT); nothing is ever delivered. --tls gives smtpd a self-signed
# certificate (smtpd_tls_security_level = may) so that `swaks --tls` makes Postfix send `secured`.
# Sets PF_PORT and PF_LOG (its maillog_file).
postfix_start() {
    local dir=$1 sasl_path=$2 tls=no extra=()
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
            --tls) tls=yes ;;
            --set) extra+=("$2"); shift ;;
            *) e2e_die "postfix_start: unknown option $1" ;;
        esac
        shift
    done
    case $sasl_path in /* | inet:*) ;; *) e2e_die "postfix_start: smtpd_sasl_path must be absolute or inet:HOST:PORT: $sasl_path" ;; esac

    local port verbose=
    port=$(e2e_free_port)
    [ "${SASLGATE_E2E_PF_VERBOSE:-0}" = 1 ] && verbose=' -v'
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
    chmod 755 "$dir" "$dir/etc"
    chown postfix: "$dir/data"
    : >"$dir/maillog"

    cat >"$dir/etc/main.cf" <<EOF
# Private Postfix instance for saslgate's e2e tests (written by tests/e2e/lib.sh).
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = mx.e2e.test
mydomain = e2e.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
biff = no
default_transport = discard:e2e never delivers
relay_transport = discard:e2e never delivers
local_transport = discard:e2e never delivers
virtual_transport = discard:e2e never delivers
smtpd_banner = \$myhostname ESMTP saslgate-e2e
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $sasl_path
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
EOF
    if [ "$tls" = yes ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=mx.e2e.test -keyout "$dir/etc/key.pem" -out "$dir/etc/cert.pem" \
            >"$dir/openssl.log" 2>&1 || e2e_die "openssl could not make a certificate" "$dir/openssl.log"
        chmod 600 "$dir/etc/key.pem"
        cat >>"$dir/etc/main.cf" <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/etc/cert.pem
smtpd_tls_key_file = $dir/etc/key.pem
smtpd_tls_loglevel = 1
EOF
    fi
    local kv
    for kv in "${extra[@]}"; do printf '%s\n' "$kv" >>"$dir/etc/main.cf"; done

    cat >"$dir/etc/master.cf" <<EOF
# service  type  private unpriv chroot wakeup maxproc command
127.0.0.1:$port inet n - n - - smtpd$verbose
pickup     unix  n  -  n  60    1  pickup
cleanup    unix  n  -  n  -     0  cleanup
qmgr       unix  n  -  n  300   1  qmgr
tlsmgr     unix  -  -  n  1000? 1  tlsmgr
rewrite    unix  -  -  n  -     -  trivial-rewrite
bounce     unix  -  -  n  -     0  bounce
defer      unix  -  -  n  -     0  bounce
trace      unix  -  -  n  -     0  bounce
verify     unix  -  -  n  -     1  verify
flush      unix  n  -  n  1000? 0  flush
proxymap   unix  -  -  n  -     -  proxymap
proxywrite unix  -  -  n  -     1  proxymap
smtp       unix  -  -  n  -     -  smtp
relay      unix  -  -  n  -     -  smtp
showq      unix  n  -  n  -     -  showq
error      unix  -  -  n  -     -  error
retry      unix  -  -  n  -     -  error
discard    unix  -  -  n  -     -  discard
anvil      unix  -  -  n  -     1  anvil
scache     unix  -  -  n  -     1  scache
postlog    unix-dgram n - n -   1  postlogd
EOF

    E2E_POSTFIX_DIRS+=("$dir")
    E2E_LOGS+=("$dir/maillog")
    # shellcheck disable=SC2034 # for the test files
    PF_PORT=$port PF_LOG=$dir/maillog
    postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 ||
        e2e_die "postfix -c $dir/etc start failed: $(cat "$dir/start.log")" "$dir/maillog"

    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    e2e_die "private Postfix is not listening on 127.0.0.1:$port" "$dir/maillog"
}

# postfix_stop DIR : `postfix stop`, then wait for the master and all its children to go.
postfix_stop() {
    local dir=$1 master children=() i
    [ -f "$dir/queue/pid/master.pid" ] || return 0
    master=$(tr -d ' \n' <"$dir/queue/pid/master.pid")
    [ -n "$master" ] && kill -0 "$master" 2>/dev/null || return 0
    mapfile -t children < <(pgrep -P "$master" || true)
    postfix -c "$dir/etc" stop >>"$dir/start.log" 2>&1 || kill -TERM "$master" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        local alive=no pid
        for pid in "$master" "${children[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=yes; break; fi
        done
        [ "$alive" = yes ] || return 0
        sleep 0.1
    done
    echo "e2e: Postfix in $dir did not stop within 15s; killing master $master and its children" >&2
    kill -KILL "$master" "${children[@]}" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# swaks

# run_swaks ARGS... : swaks against the current Postfix instance, quitting after AUTH.
run_swaks() {
    swaks --server 127.0.0.1 --port "$PF_PORT" --helo client.e2e.test --quit-after AUTH \
        --timeout 20 "$@"
}

# The final reply to AUTH in a swaks transcript (after any 334 challenges), e.g.
# "535 5.7.8 Error: authentication failed: ...". Empty when AUTH was never sent or answered.
swaks_auth_reply() { # TRANSCRIPT_FILE
    awk '
        /^ *[-~*]*> AUTH / { in_auth = 1; next }
        in_auth && /^<[-~*]+ +[0-9][0-9][0-9]/ {
            line = $0; sub(/^<[-~*]+ +/, "", line)
            if (substr(line, 1, 3) != "334") { print line; exit }
        }' "$1"
}

# expect_swaks NAME CODE [--reply-match ERE] SWAKS_ARGS... : runs swaks (from a fresh client IP
# unless SWAKS_ARGS has --local-interface) and checks the code of the final AUTH reply (235, 535,
# 454, ...) and, optionally, that the reply text matches ERE.
expect_swaks() {
    local name=$1 want=$2 match='' reply code transcript
    shift 2
    if [ "${1:-}" = --reply-match ]; then match=$2; shift 2; fi
    local args=("$@") a has_ip=no
    for a in "${args[@]}"; do [ "$a" = --local-interface ] && has_ip=yes; done
    if [ "$has_ip" = no ]; then e2e_next_ip; args+=(--local-interface "$E2E_IP"); fi

    transcript=$(mktemp "$E2E_TMP/swaks.XXXX")
    run_swaks "${args[@]}" >"$transcript" 2>&1 || true
    reply=$(swaks_auth_reply "$transcript")
    code=${reply:0:3}
    if [ "$code" = "$want" ] && { [ -z "$match" ] || [[ $reply =~ $match ]]; }; then
        e2e_pass "$name"
        return 0
    fi
    local why="expected $want"
    [ -z "$match" ] || why+=" matching /$match/"
    e2e_fail "$name" "$why, got: ${reply:-no reply to AUTH}" "swaks ${args[*]}"
    e2e_indent_tail 25 "$transcript"
    return 0
}

# ---------------------------------------------------------------------------------------------
# doveadm auth test (2.3 only does PLAIN)

# A minimal doveadm config so doveadm does not depend on /etc/dovecot.
e2e_doveadm_conf() {
    if [ ! -f "$E2E_TMP/doveadm.conf" ]; then
        printf 'base_dir = %s/doveadm-base\nssl = no\n' "$E2E_TMP" >"$E2E_TMP/doveadm.conf"
    fi
    printf '%s\n' "$E2E_TMP/doveadm.conf"
}

# run_doveadm_auth ARGS... : `doveadm auth test ARGS...`, output on stdout, exit status passed on.
run_doveadm_auth() {
    local conf
    conf=$(e2e_doveadm_conf)
    doveadm -c "$conf" auth test "$@" 2>&1
}

# doveadm_verdict OUTPUT : "succeeded", "failed" or "none" from doveadm's printed text
# ("passdb: USER auth succeeded" / "passdb: USER auth failed").
doveadm_verdict() {
    if grep -q -E '^passdb: .* auth succeeded' <<<"$1"; then
        echo succeeded
    elif grep -q -E '^passdb: .* auth failed' <<<"$1"; then
        echo failed
    else
        echo none
    fi
}

# expect_doveadm NAME succeeded|failed ARGS... : `doveadm auth test ARGS...` and checks its
# printed verdict, not just its exit code: doveadm exits 77 both for a failed authentication and
# for a socket it could not reach. Unless ARGS set rip= themselves, a fresh `-x rip=127.0.N.M` is
# added, so that per-IP failure penalties (Dovecot's anvil penalty delays the request after a
# failure from the same address by seconds) do not carry over from one case to the next.
expect_doveadm() {
    local name=$1 want=$2 out rc=0 got args
    shift 2
    args=("$@")
    if ! [[ " $* " == *" rip="* ]]; then
        e2e_next_ip
        args=(-x "rip=$E2E_IP" "${args[@]}")
    fi
    out=$(run_doveadm_auth "${args[@]}") || rc=$?
    got=$(doveadm_verdict "$out")
    local want_rc=0
    [ "$want" = failed ] && want_rc=77
    if [ "$got" = "$want" ] && [ "$rc" -eq "$want_rc" ]; then
        e2e_pass "$name"
    else
        e2e_fail "$name" "expected 'auth $want' (exit $want_rc), got '$got' (exit $rc)" \
            "doveadm auth test ${args[*]}"
        printf '%s\n' "$out" | e2e_indent_tail 15
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Shared test data

# write_users_file FILE : the users both the reference and the saslgated tests use. Mode 0640
# (saslgated refuses a world-readable user table), group saslgate when that group exists (the
# daemon's default run_user reads it after dropping root).
E2E_ALICE=alice@example.org
E2E_ALICE_PASS=secret-1
E2E_BOB=bob@example.org
E2E_BOB_PASS='b0b-crypt-2'
write_users_file() {
    {
        printf '%s:{PLAIN}%s\n' "$E2E_ALICE" "$E2E_ALICE_PASS"
        printf '%s:{SHA512-CRYPT}%s\n' "$E2E_BOB" "$(e2e_sha512_crypt "$E2E_BOB_PASS")"
    } >"$1"
    chmod 0640 "$1"
    if getent group saslgate >/dev/null; then chgrp saslgate "$1"; fi
}

# ---------------------------------------------------------------------------------------------
# Dovecot 2.3 as a reference: its auth service only

# write_dovecot_auth_conf DIR PASSWD_FILE SOCKET NAME [SETTING...] : DIR/dovecot.conf for a private
# Dovecot that runs nothing but its auth service (as root, so a passwd-file in the temp dir is
# readable), listening on SOCKET (mode 0666), passwd-file passdb, no failure delay; each SETTING
# ("key = value") is added at the top level. Also creates DIR/base and DIR/state.
write_dovecot_auth_conf() {
    local dir=$1 table=$2 sock=$3 name=$4
    shift 4
    mkdir -p "$dir/base" "$dir/state"
    {
        cat <<EOF
base_dir = $dir/base
state_dir = $dir/state
instance_name = $name
protocols = none
ssl = no
log_path = $dir/dovecot.log
auth_mechanisms = plain login
auth_failure_delay = 0
disable_plaintext_auth = no
default_internal_user = root
default_login_user = root
EOF
        [ $# -eq 0 ] || printf '%s\n' "$@"
        cat <<EOF
passdb {
  driver = passwd-file
  args = $table
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  user = root
  unix_listener $sock {
    mode = 0666
  }
}
EOF
    } >"$dir/dovecot.conf"
}

# ---------------------------------------------------------------------------------------------
# Cleanup

# e2e_on_exit FUNC : run FUNC at exit, after Postfix and the daemons are stopped and before the temp
# dir goes (hooks run last-registered first). Use this instead of replacing the EXIT trap: the trap
# is what stops everything this file started.
e2e_on_exit() { E2E_EXIT_HOOKS+=("$1"); }

e2e_cleanup() {
    local rc=$? d pid log
    trap - EXIT
    set +e
    if [ "$rc" -ne 0 ] && [ "$E2E_FAILED" -eq 0 ]; then
        e2e_fail "test script aborted (exit $rc)${E2E_ERR_AT:+ at $E2E_ERR_AT}"
    fi
    for d in "${E2E_POSTFIX_DIRS[@]}"; do postfix_stop "$d"; done
    for pid in "${E2E_DAEMON_PIDS[@]}"; do stop_daemon "$pid"; done
    local i
    for ((i = ${#E2E_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do "${E2E_EXIT_HOOKS[i]}"; done
    [ ${#E2E_UNIT_CREATED[@]} -eq 0 ] || e2e_remove_unit_leftovers
    if [ "$E2E_FAILED" -gt 0 ]; then
        for log in "${E2E_LOGS[@]}"; do
            [ -s "$log" ] || continue
            printf '  --- last lines of %s\n' "$log"
            e2e_indent_tail 40 "$log"
        done
    fi
    if [ -z "$E2E_TMP" ]; then
        :
    elif [ "${SASLGATE_E2E_KEEP:-0}" = 1 ]; then
        echo "  (kept $E2E_TMP)"
    else
        rm -rf "$E2E_TMP"
    fi
    if [ -z "$E2E_RESULTS" ]; then
        echo "$E2E_NAME: $E2E_PASSED passed, $E2E_FAILED failed"
    fi
    [ "$E2E_FAILED" -eq 0 ] || exit 1
    exit "$rc"
}

e2e_on_err() {
    [ -n "$E2E_ERR_AT" ] || E2E_ERR_AT="${BASH_SOURCE[1]:-?}:${BASH_LINENO[0]}: $BASH_COMMAND"
}

trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap e2e_on_err ERR

for e2e_tool in postfix swaks doveadm openssl python3 setsid pgrep; do
    command -v "$e2e_tool" >/dev/null || e2e_die "$e2e_tool is not installed (run scripts/install-deps)"
done
[ "$(id -u)" -eq 0 ] || e2e_die "the e2e tests run private Postfix instances and need root"

# Unix socket paths must stay short (108 bytes), so a long $TMPDIR is not used.
e2e_base=${TMPDIR:-/tmp}
[ ${#e2e_base} -le 40 ] || e2e_base=/tmp
E2E_TMP=$(mktemp -d "$e2e_base/saslgate-e2e.XXXXXX")
chmod 755 "$E2E_TMP"
