#!/usr/bin/env bash
# What a new user does first: clone the repository, run the README's run command, and in a second
# shell the README's `saslgate auth test` with the demo password piped in. The two commands are taken
# from README.md itself, so the README cannot drift from what is tested. Prints
# "quickstart: N passed, M failed" last; exit 1 on any failure. Needs network-free apt state like CI.
set -uo pipefail
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." rev-parse --show-toplevel)
work=$(mktemp -d "${TMPDIR:-/tmp}/saslgate-quickstart.XXXXXX")
daemon=
cleanup() {
    [ -z "$daemon" ] || kill -TERM -- "-$daemon" 2>/dev/null
    [ -z "$daemon" ] || wait "$daemon" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@"; then passed=$((passed + 1)); echo "ok: $what"; else failed=$((failed + 1)); echo "FAILED: $what"; fi
}
finish() {
    echo "quickstart: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# The README's two quick-start commands: the indented lines of its "Quick start" section.
section=$(sed -n '/^## Quick start/,/^## /p' "$repo/README.md")
run_cmd=$(printf '%s\n' "$section" | sed -n 's/^    \(scripts\/dev-run\)$/\1/p' | head -n 1)
test_cmd=$(printf '%s\n' "$section" | sed -n 's/^    \(\.build\/debug\/saslgate auth test .*\)$/\1/p' | head -n 1)
check "README names the run command (scripts/dev-run)" test -n "$run_cmd"
check "README names the saslgate auth test command" test -n "$test_cmd"
[ -n "$run_cmd" ] && [ -n "$test_cmd" ] || finish
echo "run:  $run_cmd"
echo "test: $test_cmd"

git clone -q "$repo" "$work/saslgate" || { check "git clone" false; finish; }
cd "$work/saslgate" || finish
check "a fresh clone has no .run/ and no .build/" test ! -e .run -a ! -e .build

# The run command in its own process group (it builds first: allow for a whole debug build).
setsid bash -c "$run_cmd" >"$work/dev-run.log" 2>&1 </dev/null &
daemon=$!
up=no
for _ in $(seq 1 1800); do
    if [ -S .run/auth-client ]; then up=yes; break; fi
    kill -0 "$daemon" 2>/dev/null || break
    sleep 1
done
check "the run command builds and listens on .run/auth-client" test "$up" = yes
if [ "$up" != yes ]; then
    echo "--- dev-run output (last 40 lines)"
    tail -n 40 "$work/dev-run.log"
    finish
fi

out=$(echo demo-password | bash -c "$test_cmd" 2>&1)
rc=$?
echo "$out"
check "auth test with the demo password: exit 0" test "$rc" -eq 0
check "auth test says succeeded" grep -q "auth succeeded" <<<"$out"
out=$(echo wrong-password | bash -c "$test_cmd" 2>&1)
rc=$?
check "auth test with a wrong password: exit 1" test "$rc" -eq 1
check "the password never appears in the daemon's output" bash -c "! grep -q -e demo-password -e wrong-password '$work/dev-run.log'"
finish
