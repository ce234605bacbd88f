#!/usr/bin/env bash
# OAUTHBEARER and XOAUTH2 through a real Postfix (STARTTLS) to saslgated with an oauth2 passdb whose
# JWKS file this test makes (openssl keys, tests/e2e/oauth2_tokens.py): Python's smtplib gets 235 for a
# good RS256 or ES256 token and 535 (after the JSON error challenge) for an expired, foreign, unsigned,
# wrongly addressed or unknown-key token. Also: a 16 KiB AUTH line with a long token is accepted, a
# JWKS rotation is picked up, the mechanisms are advertised only with the oauth2 passdb, and the debug
# log never holds a token.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"
command -v postconf >/dev/null || e2e_skip "postfix not installed"
tokens="python3 $E2E_DIR/oauth2_tokens.py"

sg=$(e2e_mkdir saslgated)
$tokens keys "$sg" || e2e_die "could not make keys with openssl"
cat >"$sg/oauth2.conf" <<CONF
jwks_file = $sg/jwks.json
issuer = https://idp.e2e.test
audience = mail.e2e.test
username_claim = email
CONF
chmod 0600 "$sg/oauth2.conf"
cat >"$sg/saslgated.conf" <<CONF
listen = $sg/auth.sock
listen_mode = 0666
listen_user =
listen_group =
run_user =
control_socket =
mechanisms = plain xoauth2 oauthbearer
passdbs = oauth2:$sg/oauth2.conf
default_realm = example.org
failure_delay = 0
log_level = debug
CONF

out=$("$bin_dir/saslgated" --check -c "$sg/saslgated.conf" 2>&1) || true
check "--check: the oauth2 passdb serves the token mechanisms" grep -q "passdb oauth2:$sg/oauth2.conf: serves OAUTHBEARER XOAUTH2" <<<"$out"
check "--check: only the token mechanisms are advertised (PLAIN has no passdb)" grep -q "advertised mechanisms: XOAUTH2 OAUTHBEARER" <<<"$out"

start_daemon "$sg/saslgated.log" "$bin_dir/saslgated" -c "$sg/saslgated.conf"
wait_for_socket "$sg/auth.sock" 20 "$DAEMON_PID" "$sg/saslgated.log"
pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sg/auth.sock" --tls

# expect_smtp NAME CODE MECH USER TOKEN
expect_smtp() {
    local name=$1 want=$2 got
    got=$($tokens smtp "$PF_PORT" "$3" "$4" "$5" 2>&1 | tail -n 1) || true
    if [ "${got%% *}" = "$want" ]; then
        e2e_pass "$name"
    else
        e2e_fail "$name" "wanted $want, got: $got"
        e2e_indent_tail 10 "$sg/saslgated.log"
    fi
}

good_rsa=$($tokens token "$sg" rsa1)
good_ec=$($tokens token "$sg" ec1)
expect_smtp "XOAUTH2, good RS256 token -> 235" 235 XOAUTH2 alice@example.org "$good_rsa"
expect_smtp "OAUTHBEARER, good ES256 token -> 235" 235 OAUTHBEARER alice@example.org "$good_ec"
expect_smtp "XOAUTH2, bare login name gets the default realm -> 235" 235 XOAUTH2 alice "$good_rsa"
expect_smtp "XOAUTH2, expired token -> 535" 535 XOAUTH2 alice@example.org "$($tokens token "$sg" rsa1 exp=-3600)"
expect_smtp "OAUTHBEARER, wrong issuer -> 535" 535 OAUTHBEARER alice@example.org "$($tokens token "$sg" ec1 iss=https://evil.test)"
expect_smtp "OAUTHBEARER, wrong audience -> 535" 535 OAUTHBEARER alice@example.org "$($tokens token "$sg" rsa1 aud=other)"
expect_smtp "XOAUTH2, alg none -> 535" 535 XOAUTH2 alice@example.org "$($tokens token "$sg" rsa1 alg=none)"
expect_smtp "XOAUTH2, key never published (unknown kid) -> 535" 535 XOAUTH2 alice@example.org "$($tokens token "$sg" rsa2)"
expect_smtp "XOAUTH2, token of another user -> 535" 535 XOAUTH2 bob@example.org "$good_rsa"
out=$($tokens smtp "$PF_PORT" OAUTHBEARER alice@example.org "$($tokens token "$sg" rsa1 exp=-3600)" 2>&1 || true)
check "a refused token gets the JSON error challenge before the 535" grep -q "535 challenge" <<<"$out"

# A 16 KiB protocol line (the most Dovecot's protocol carries) with a long, valid token.
long=$($tokens token "$sg" rsa1 pad=8540)
out=$($tokens authline "$sg/auth.sock" alice@example.org "$long" 2>&1 || true)
len=${out%% *}
check "a ${len}-byte AUTH line (limit 16383) with a ${#long}-byte token -> OK" grep -q "OK 1 user=alice@example.org" <<<"$out"
check "...and the line was close to the limit" test "$len" -gt 16000

# Rotation: rsa2 published instead of rsa1; the daemon rereads the file (checked at most once a second).
python3 -c "
import json, sys
sys.path.insert(0, '$E2E_DIR')
import oauth2_tokens as t
json.dump({'keys': [t.rsa_jwk('$sg', 'rsa2')]}, open('$sg/jwks.new', 'w'))
"
mv "$sg/jwks.new" "$sg/jwks.json"
sleep 1.2
expect_smtp "after rotation: the new key's token -> 235" 235 XOAUTH2 alice@example.org "$($tokens token "$sg" rsa2)"
expect_smtp "after rotation: the retired key's token -> 535" 535 XOAUTH2 alice@example.org "$good_rsa"

check "the log names the oauth2 passdb for a success" file_has_re "result=ok user=alice@example.org .*mech=XOAUTH2" "$sg/saslgated.log"
check "the log says why a token was refused" file_has "invalid token: token expired" "$sg/saslgated.log"
for t in "$good_rsa" "$good_ec" "$long"; do
    sig=${t##*.}
    check "the debug log holds no token (signature ${sig:0:12}...)" file_lacks "$sig" "$sg/saslgated.log"
    check "...nor the maillog" file_lacks "$sig" "$PF_LOG"
done

# --- Keys from a URL and RFC 7662 introspection, over real HTTP (async-http-client) against a loopback
# stand-in for the identity provider.
idp=$(e2e_mkdir idp)
start_daemon "$idp/idp.log" python3 "$E2E_DIR/oauth2_idp.py" "$idp/port" "$sg/jwks.json"
idp_pid=$DAEMON_PID
for _ in $(seq 50); do [ -s "$idp/port" ] && break; sleep 0.1; done
[ -s "$idp/port" ] || e2e_die "the loopback identity provider did not start" "$idp/idp.log"
idp_url=http://127.0.0.1:$(cat "$idp/port")
# run_remote NAME CONF_LINES... : a second saslgated with an oauth2 passdb set up by CONF_LINES.
run_remote() {
    local name=$1 dir
    shift
    dir=$(e2e_mkdir "$name")
    printf '%s\n' "$@" "issuer = https://idp.e2e.test" "audience = mail.e2e.test" "timeout = 2s" >"$dir/oauth2.conf"
    chmod 0600 "$dir/oauth2.conf"
    sed -e "s|^listen = .*|listen = $dir/auth.sock|" -e "s|^passdbs = .*|passdbs = oauth2:$dir/oauth2.conf|" \
        "$sg/saslgated.conf" >"$dir/saslgated.conf"
    start_daemon "$dir/saslgated.log" "$bin_dir/saslgated" -c "$dir/saslgated.conf"
    wait_for_socket "$dir/auth.sock" 20 "$DAEMON_PID" "$dir/saslgated.log"
    REMOTE_DIR=$dir
}
# authline SOCKET USER TOKEN -> the daemon's first reply to one XOAUTH2 AUTH line (OK, FAIL, or CONT with
# the JSON error challenge that refuses a token)
authline() { $tokens authline "$1" "$2" "$3" 2>&1 | tail -n 1 | cut -d' ' -f2- || true; }

run_remote jwksurl "jwks_url = $idp_url/jwks.json"
jwks_dir=$REMOTE_DIR
check "jwks_url: a token signed with the published key -> OK" \
    grep -q "^OK 1 user=alice@example.org" <<<"$(authline "$jwks_dir/auth.sock" alice@example.org "$($tokens token "$sg" rsa2)")"
check "jwks_url: a token of a key not published -> refused (the JSON error challenge)" \
    grep -q "^CONT 1 " <<<"$(authline "$jwks_dir/auth.sock" alice@example.org "$good_rsa")"
check "jwks_url: the keys came over HTTP from the identity provider" file_has "GET /jwks.json" "$idp/idp.log"

run_remote introspect "introspection_url = $idp_url/introspect" "client_id = saslgate" "client_secret = s3cret"
intro_dir=$REMOTE_DIR
check "introspection: an active token for the user -> OK" \
    grep -q "^OK 1 user=alice@example.org" <<<"$(authline "$intro_dir/auth.sock" alice@example.org good-alice)"
check "introspection: an inactive token -> refused (the JSON error challenge), not a temporary failure" \
    grep -q "^CONT 1 " <<<"$(authline "$intro_dir/auth.sock" alice@example.org bogus-token)"
check "introspection: an active token of another user -> refused" \
    grep -q "^CONT 1 " <<<"$(authline "$intro_dir/auth.sock" alice@example.org good-bob)"

# The identity provider goes away: a temporary failure, never a wrong password.
stop_daemon "$idp_pid"
check "introspection endpoint down: FAIL with code=temp_fail (an uncached token), no challenge" \
    grep -q "^FAIL 1 .*code=temp_fail" <<<"$(authline "$intro_dir/auth.sock" alice@example.org good-carol)"
