#!/usr/bin/env bash
# saslgated's TCP listener behind a real Postfix: smtpd_sasl_path = inet:127.0.0.1:PORT (what a Postfix
# on another host or in another container uses), driven by swaks; then inet_clients without 127.0.0.1,
# which closes Postfix's auth connection at accept (Postfix then cannot offer AUTH at all) and names
# the refused address in the log. Run alone: tests/e2e/run postfix-inet
# Needs a built daemon: $SASLGATE_BIN_DIR/saslgated (default .build/debug); skipped when absent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
bin=$bin_dir/saslgated
[ -x "$bin" ] || e2e_skip "saslgated not built ($bin not found)"

a=$E2E_ALICE ap=$E2E_ALICE_PASS b=$E2E_BOB bp=$E2E_BOB_PASS

# write_conf DIR PORT [SETTING...] : a saslgated config with a Unix socket and inet:127.0.0.1:PORT.
# Postfix sends no `secured` over a connection without TLS, so cleartext_requires_tls is off here.
write_conf() {
    local dir=$1 port=$2
    shift 2
    write_users_file "$dir/users"
    {
        cat <<CONF
# saslgated for the e2e test (written by tests/e2e/postfix-inet.test.sh)
listen = $dir/auth.sock inet:127.0.0.1:$port
listen_mode = 0600
run_user =
control_socket =
mechanisms = plain login
passdbs = passwd-file:$dir/users
default_realm = example.org
failure_delay = 0
cleartext_requires_tls = no
CONF
        [ $# -eq 0 ] || printf '%s\n' "$@"
    } >"$dir/saslgated.conf"
}

# --- 1. Postfix authenticates over TCP (default inet_clients: loopback)
sg=$(e2e_mkdir saslgated)
port=$(e2e_free_port)
write_conf "$sg" "$port"
check "--check lists the TCP endpoint" bash -c "'$bin' -c '$sg/saslgated.conf' --check | grep -q -F 'listen inet:127.0.0.1:$port: TCP, plain text, inet_clients 127.0.0.0/8 ::1/128'"
start_daemon "$sg/saslgated.log" "$bin" -c "$sg/saslgated.conf"
sg_pid=$DAEMON_PID
wait_for_socket "$sg/auth.sock" 20 "$sg_pid" "$sg/saslgated.log"

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "inet:127.0.0.1:$port"

expect_swaks "inet: AUTH PLAIN good password -> 235" 235 --auth PLAIN --auth-user "$a" --auth-password "$ap"
first_ip=$E2E_IP
expect_swaks "inet: AUTH PLAIN bad password -> 535" 535 --auth PLAIN --auth-user "$a" --auth-password wrong
expect_swaks "inet: AUTH LOGIN good password -> 235" 235 --auth LOGIN --auth-user "$a" --auth-password "$ap"
expect_swaks "inet: AUTH LOGIN SHA512-CRYPT user -> 235" 235 --auth LOGIN --auth-user "$b" --auth-password "$bp"
expect_swaks "inet: AUTH PLAIN unknown user -> 535" 535 --auth PLAIN --auth-user nobody@example.org --auth-password "$ap"

log=$sg/saslgated.log
sleep 0.2  # the per-request lines of the last round
check "log: Postfix's TCP connection with its address" file_has_re 'info: client connected over TCP conn=[0-9]+ peer=127\.0\.0\.1:[0-9]+' "$log"
check "log: the request's rip is the SMTP client, peer is Postfix" \
    file_has_re "auth ok result=ok user=$a mech=PLAIN service=smtp rip=$first_ip lip=127\.0\.0\.1 .* peer=127\.0\.0\.1:[0-9]+\$" "$log"
check "log: the failure names rip and peer" \
    file_has_re "auth failed result=failed user=$a .* reason=\"password mismatch\" .* peer=127\.0\.0\.1:[0-9]+\$" "$log"
check "log lacks alice's password" file_lacks "$ap" "$log"
check "log lacks alice's password in base64" file_lacks "$(printf %s "$ap" | base64 -w0)" "$log"
check "saslgate auth test over TCP" bash -c "printf '%s\n' '$ap' | '$bin_dir/saslgate' auth test --socket inet:127.0.0.1:$port --password-stdin '$a' | grep -q 'auth succeeded'"
postfix_stop "$pf"
rc=0
terminate_within 5 "$sg_pid" || rc=$?
check "SIGTERM: saslgated exits 0 within 5s" test "$rc" -eq 0

# --- 2. inet_clients without the Postfix host: its auth connection is closed at accept
sg2=$(e2e_mkdir saslgated2)
port2=$(e2e_free_port)
write_conf "$sg2" "$port2" "inet_clients = 10.0.0.0/8"
start_daemon "$sg2/saslgated.log" "$bin" -c "$sg2/saslgated.conf"
sg2_pid=$DAEMON_PID
wait_for_socket "$sg2/auth.sock" 20 "$sg2_pid" "$sg2/saslgated.log"
pf2=$(e2e_mkdir postfix2)
postfix_start "$pf2" "inet:127.0.0.1:$port2"

e2e_next_ip
transcript=$E2E_TMP/refused.swaks
run_swaks --local-interface "$E2E_IP" --auth PLAIN --auth-user "$a" --auth-password "$ap" >"$transcript" 2>&1 || true
# What really happens: smtpd asks the auth server for its mechanisms as an SMTP client connects; the
# closed auth connection leaves it none, so it dies ("fatal: no SASL authentication mechanisms")
# before its banner: the SMTP client sees the connection closed, AUTH is never reached.
check "swaks: connection closed before the banner" file_has "Remote host closed connection unexpectedly" "$transcript"
check "swaks: no banner, no AUTH reply" bash -c "! grep -q -E '^<-+ +(220|235|535|454)' '$transcript'"
check "Postfix: no SASL authentication mechanisms" file_has "fatal: no SASL authentication mechanisms" "$pf2/maillog"
check "log: the refused address is named" \
    file_has_re 'warning: connection refused: 127\.0\.0\.1:[0-9]+ is not in inet_clients peer=127\.0\.0\.1:[0-9]+' "$sg2/saslgated.log"
check "log: no request was served" file_lacks "auth ok" "$sg2/saslgated.log"
check "log: no TCP client was admitted" file_lacks "client connected over TCP" "$sg2/saslgated.log"
check "saslgated still running" process_alive "$sg2_pid"
