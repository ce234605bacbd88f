#!/usr/bin/env bash
# App passwords and rehash on login through a private real Postfix (issue #16): an app password
# made with `saslgate app-password add` logs in with swaks over TLS (235, the log names app=NAME and
# never the secret), the main password too until require_app_passwords = yes (then 535 for SMTP); a
# revoked app password and one for another service get 535. A {PLAIN} passwd-file user logs in and
# the file then holds {CRYPT}$y$..., and the next login still works.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"

sg=$(e2e_mkdir saslgated)
store=$sg/users.sqlite
users=$sg/users
main_pw='Main-pa55-word'
printf '%s\n' "$main_pw" | "$bin_dir/saslgate" user add --db "sasldb:$store" -u example.org --password-stdin alice >/dev/null
phone_pw=$("$bin_dir/saslgate" app-password add --db "sasldb:$store" -u example.org alice --name phone --services smtp,submission --expires 90d 2>"$sg/add.err")
check "app-password add prints a 4x4 password once" grep -q -E '^[a-z0-9]{4}(-[a-z0-9]{4}){3}$' <<<"$phone_pw"
check "app-password add says what it made on stderr" grep -q "added app password 'phone'" "$sg/add.err"
imap_pw=$("$bin_dir/saslgate" app-password add --db "sasldb:$store" -u example.org alice --name tablet --services imap 2>/dev/null)
old_pw=$("$bin_dir/saslgate" app-password add --db "sasldb:$store" -u example.org alice --name old 2>/dev/null)
check "the store never holds an app password in clear" bash -c "! cat '$store'* | grep -q -F -- '$phone_pw'"
check "app-password add refuses an existing name (exit 1)" bash -c "'$bin_dir/saslgate' app-password add --db 'sasldb:$store' -u example.org alice --name phone 2>/dev/null; test \$? -eq 1"

# A passwd-file with a {PLAIN} user, owned by us and in a directory we may write (the rehash target).
printf 'carol@example.org:{PLAIN}Carol-plain-1\n' >"$users"
chmod 600 "$users"

write_conf() { # REQUIRE_APP_PASSWORDS
    cat >"$sg/saslgated.conf" <<CONF
listen = $sg/auth.sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain login
passdbs = sasldb:$store passwd-file:$users
default_realm = example.org
failure_delay = 0
require_app_passwords = $1
rehash_schemes = PLAIN MD5-CRYPT SSHA SHA512-CRYPT<rounds=100000 -> CRYPT
CONF
}
write_conf no
start_daemon "$sg/saslgated.log" "$bin_dir/saslgated" -c "$sg/saslgated.conf"

# reload_and_wait: SIGHUP, then wait (at most 15 s) until the daemon logs one more "reload done".
reload_and_wait() {
    local n
    n=$(grep -c "reload done" "$sg/saslgated.log" || true)
    kill -HUP "$sg_pid"
    for _ in $(seq 150); do
        [ "$(grep -c "reload done" "$sg/saslgated.log" || true)" -gt "$n" ] && return 0
        sleep 0.1
    done
    e2e_fail "SIGHUP reload" "no new 'reload done' in $sg/saslgated.log within 15 s"
}
wait_for_socket "$sg/auth.sock" 20 "$DAEMON_PID" "$sg/saslgated.log"
sg_pid=$DAEMON_PID

pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sg/auth.sock" --tls

expect_swaks "app password over TLS -> 235" 235 --tls --auth PLAIN --auth-user alice@example.org --auth-password "$phone_pw"
expect_swaks "app password with LOGIN -> 235" 235 --tls --auth LOGIN --auth-user alice@example.org --auth-password "$phone_pw"
check "the log names the app password" file_has_re 'auth ok result=ok user=alice@example\.org mech=PLAIN service=smtp .* app=phone ' "$sg/saslgated.log"
expect_swaks "main password -> 235 (require_app_passwords = no)" 235 --tls --auth PLAIN --auth-user alice@example.org --auth-password "$main_pw"
expect_swaks "app password for imap only -> 535" 535 --tls --auth PLAIN --auth-user alice@example.org --auth-password "$imap_pw"
expect_doveadm "doveadm: the imap app password works for service=imap" succeeded -a "$sg/auth.sock" -x service=imap -x secured alice@example.org "$imap_pw"
out=$(run_doveadm_auth -a "$sg/auth.sock" -x service=smtp -x secured alice@example.org "$phone_pw" || true)
check "doveadm accepts the OK and prints app=phone" grep -q "app=phone" <<<"$out"

"$bin_dir/saslgate" app-password revoke --db "sasldb:$store" -u example.org alice old >/dev/null
sleep 1.2
expect_swaks "revoked app password -> 535" 535 --tls --auth PLAIN --auth-user alice@example.org --auth-password "$old_pw"

# require_app_passwords = yes: reloaded with SIGHUP, the same Postfix.
write_conf yes
reload_and_wait
expect_swaks "main password with require_app_passwords = yes -> 535" 535 --tls --auth PLAIN --auth-user alice@example.org --auth-password "$main_pw"
check "...logged as refused by require_app_passwords" file_has 'reason="main password refused: require_app_passwords"' "$sg/saslgated.log"
expect_swaks "app password with require_app_passwords = yes -> 235" 235 --tls --auth PLAIN --auth-user alice@example.org --auth-password "$phone_pw"

# Rehash: a {PLAIN} passwd-file user (require_app_passwords only refuses passwords that are not app
# passwords; carol is in a passwd-file without any, so use imap through doveadm for her main password).
write_conf no
reload_and_wait
expect_swaks "{PLAIN} passwd-file user -> 235" 235 --tls --auth PLAIN --auth-user carol@example.org --auth-password Carol-plain-1
for _ in $(seq 50); do grep -q '{CRYPT}\$y\$' "$users" && break; sleep 0.1; done
check "the file then holds {CRYPT}\$y\$..." grep -q '^carol@example.org:{CRYPT}\$y\$' "$users"
check "...with its mode kept" test "$(stat -c %a "$users")" = 600
check "the rehash is logged" file_has "rehashed the stored password of carol@example.org from PLAIN to CRYPT" "$sg/saslgated.log"
expect_swaks "the next login still works -> 235" 235 --tls --auth PLAIN --auth-user carol@example.org --auth-password Carol-plain-1
expect_swaks "a wrong password after the rehash -> 535" 535 --tls --auth PLAIN --auth-user carol@example.org --auth-password wrong

list=$("$bin_dir/saslgate" app-password list --db "sasldb:$store" -u example.org alice)
check "app-password list shows name, services and a last use" grep -q -E '^phone	smtp,submission	[0-9TZ:-]+	[0-9TZ:-]+	' <<<"$list"
check "app-password list never prints a secret" bash -c "! grep -q -F -e '$phone_pw' -e '\$y\$' <<<'$list'"
check "log lacks the app password" file_lacks "$phone_pw" "$sg/saslgated.log"
check "log lacks the main passwords" bash -c "! grep -q -F -e '$main_pw' -e Carol-plain-1 '$sg/saslgated.log'"
# Last use: written by the 10 s timer (and at close), never per login.
for _ in $(seq 130); do
    list=$("$bin_dir/saslgate" app-password list --db "sasldb:$store" -u example.org alice)
    grep -q -E '^phone	.*	127\.0\.[0-9]+\.[0-9]+$' <<<"$list" && break
    sleep 0.1
done
check "the last use and address are written within the flush interval" grep -q -E '^phone	.*	127\.0\.[0-9]+\.[0-9]+$' <<<"$list"
check "saslgated still running" process_alive "$sg_pid"
