#!/usr/bin/env bash
# Cyrus sasldb2 users move to saslgate: a sasldb2 made by the real saslpasswd2 is imported with
# `saslgate import sasldb2`, then its users log in through a private real Postfix with swaks using
# CRAM-MD5, DIGEST-MD5, PLAIN and LOGIN; SCRAM-SHA-1/256 are checked with an independent Python
# client. Also: the store keeps no cleartext, and `saslgate user add/list/del --db sasldb:` work.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"
command -v saslpasswd2 >/dev/null || e2e_skip "saslpasswd2 (sasl2-bin) not installed"

sg=$(e2e_mkdir saslgated)
cyrus=$sg/sasldb2
store=$sg/users.sqlite
alice_pw='Cyrus-al1ce!'
bob_pw='b0b pass, with spaces'
printf '%s' "$alice_pw" | saslpasswd2 -p -f "$cyrus" -c -u example.org alice
printf '%s' "$bob_pw" | saslpasswd2 -p -f "$cyrus" -c -u example.org bob
check "saslpasswd2 made a sasldb2 with both users" grep -q "alice@example.org" <<<"$(sasldblistusers2 -f "$cyrus")"

"$bin_dir/saslgate" import sasldb2 "$cyrus" --db "sasldb:$store" >"$sg/import.out" 2>&1 || true
check "import reports both users imported" test "$(grep -c '^imported' "$sg/import.out")" -ge 2
check "the store keeps no cleartext password" file_lacks "$alice_pw" "$store"
check "...not even in the WAL" bash -c "! cat '$store'* | grep -q -F -- '$alice_pw'"
check "the store is not readable by others" test "$(stat -c %a "$store")" = 640
"$bin_dir/saslgate" import sasldb2 "$cyrus" --db "sasldb:$store" >"$sg/import2.out" 2>&1 || true
check "a second import skips the existing users" grep -q "skipped.*already" "$sg/import2.out"

cat >"$sg/saslgated.conf" <<CONF
listen = $sg/auth.sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256
passdbs = sasldb:$store
default_realm = example.org
failure_delay = 0
CONF
start_daemon "$sg/saslgated.log" "$bin_dir/saslgated" -c "$sg/saslgated.conf"
wait_for_socket "$sg/auth.sock" 20 "$DAEMON_PID" "$sg/saslgated.log"
sg_pid=$DAEMON_PID

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sg/auth.sock" --tls

for mech in CRAM-MD5 DIGEST-MD5; do
    expect_swaks "imported user, $mech good -> 235" 235 --auth "$mech" --auth-user alice --auth-password "$alice_pw"
    expect_swaks "imported user, $mech bad -> 535" 535 --auth "$mech" --auth-user alice --auth-password wrong
done
expect_swaks "imported user with spaces in the password, CRAM-MD5 -> 235" 235 --auth CRAM-MD5 --auth-user bob --auth-password "$bob_pw"
for mech in PLAIN LOGIN; do
    expect_swaks "imported user, $mech over TLS good -> 235" 235 --tls --auth "$mech" --auth-user alice@example.org --auth-password "$alice_pw"
    expect_swaks "imported user, $mech over TLS bad -> 535" 535 --tls --auth "$mech" --auth-user alice@example.org --auth-password wrong
done
expect_doveadm "doveadm: imported user -> succeeded" succeeded -a "$sg/auth.sock" -x service=smtp -x secured alice@example.org "$alice_pw"

scram=$E2E_ROOT/tests/e2e/scram_client.py
for mech in SCRAM-SHA-1 SCRAM-SHA-256; do
    check "independent $mech client, good password -> OK" python3 "$scram" "$sg/auth.sock" "$mech" alice "$alice_pw"
    check "independent $mech client, wrong password -> FAIL" bash -c "python3 '$scram' '$sg/auth.sock' $mech alice wrong; test \$? -eq 1"
done

# The CLI on the same store while the daemon reads it.
printf 'Carol-pw-1\n' | "$bin_dir/saslgate" user add --db "sasldb:$store" -u example.org --mechs scram-sha-256 --password-stdin carol >/dev/null
check "user add --db sasldb: the new user logs in with SCRAM-SHA-256" python3 "$scram" "$sg/auth.sock" SCRAM-SHA-256 carol Carol-pw-1
check "...but has no CRAM-MD5 secret: CRAM-MD5 fails" bash -c "! swaks --server 127.0.0.1 --port $PF_PORT --quit-after AUTH --auth CRAM-MD5 --auth-user carol --auth-password Carol-pw-1 2>&1 | grep -q '^<- *235'"
check "the log says which secret was missing" file_has "no CRAM-MD5 secret stored" "$sg/saslgated.log"
check "user add refuses an existing user (exit 1)" bash -c "printf 'x1234567\n' | '$bin_dir/saslgate' user add --db 'sasldb:$store' -u example.org --password-stdin carol; test \$? -eq 1"
list=$("$bin_dir/saslgate" user list --db "sasldb:$store")
check "user list prints user@realm: property lines" grep -q "^carol@example.org: saslgate:scram-sha-256$" <<<"$list"
check "user list never prints a secret" bash -c "! grep -q -E '\\\$y\\\$|[0-9a-f]{32}' <<<'$list'"
check "user del removes the user (exit 0)" "$bin_dir/saslgate" user del --db "sasldb:$store" -u example.org carol
check "user del on a missing user fails (exit 1)" bash -c "'$bin_dir/saslgate' user del --db 'sasldb:$store' -u example.org carol; test \$? -eq 1"
check "the deleted user can no longer log in" bash -c "python3 '$scram' '$sg/auth.sock' SCRAM-SHA-256 carol Carol-pw-1; test \$? -eq 1"

check "log lacks the passwords" file_lacks "$alice_pw" "$sg/saslgated.log"
check "saslgated still running" process_alive "$sg_pid"
