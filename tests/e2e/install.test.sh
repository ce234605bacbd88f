#!/usr/bin/env bash
# scripts/install and scripts/uninstall for real on this machine (root): files, modes, the system user,
# an edited configuration that survives a second install, the PAM drop-in, then the daemon started the
# way saslgated.service would start it (ExecStart= and User= of the installed unit, the socket from
# systemd-socket-activate, privileges from setpriv), a user added with the CLI and authenticated with
# `saslgate auth test` and doveadm, and finally uninstall (configuration kept) and --purge (all gone).
# Anything of saslgate that was installed before (a developer machine) is backed up and put back.
# Also records `systemd-analyze security --offline=true` for systemd/saslgated.service.
# Needs built binaries: $SASLGATE_BIN_DIR/saslgated and saslgate (default .build/debug).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin_dir=${SASLGATE_BIN_DIR:-.build/debug}
case $bin_dir in /*) ;; *) bin_dir=$E2E_ROOT/$bin_dir ;; esac
[ -x "$bin_dir/saslgated" ] || e2e_skip "saslgated not built ($bin_dir/saslgated not found)"
[ -x "$bin_dir/saslgate" ] || e2e_skip "saslgate not built ($bin_dir/saslgate not found)"
command -v setpriv >/dev/null || e2e_die "setpriv is not installed (util-linux)"

install_sh=$E2E_ROOT/scripts/install
uninstall_sh=$E2E_ROOT/scripts/uninstall
prefix=/usr/local
conf_dir=/etc/saslgate
conf=$conf_dir/saslgated.conf
users=$conf_dir/users
unit_dir=/etc/systemd/system
doc=$prefix/share/doc/saslgate
account=saslgate
installed=(
    "$conf_dir" "$prefix/sbin/saslgated" "$prefix/bin/saslgate" "$doc"
    "$unit_dir/saslgated.socket" "$unit_dir/saslgated.service"
    "$unit_dir/saslgated.service.d" "$unit_dir/saslgated.socket.d"
)

# --- Leave a developer machine as it was: back up what exists, restore it at exit.
backup=$E2E_TMP/backup
mkdir -p "$backup"
for p in "${installed[@]}"; do
    if [ -e "$p" ]; then
        mkdir -p "$backup$(dirname "$p")"
        cp -a "$p" "$backup$p"
        rm -rf "$p"
        echo "  (backed up and removed the existing $p; restored at exit)"
    fi
done
user_before=$(getent passwd "$account" || true)
group_before=$(getent group "$account" || true)
restore_machine() {
    local p uid gid home shell
    for p in "${installed[@]}"; do
        rm -rf "$p"
        if [ -e "$backup$p" ]; then cp -a "$backup$p" "$p"; fi
    done
    if [ -z "$user_before" ]; then
        if getent passwd "$account" >/dev/null; then userdel "$account" 2>/dev/null || true; fi
    elif ! getent passwd "$account" >/dev/null; then
        IFS=: read -r _ _ uid gid _ home shell <<<"$user_before"
        getent group "$account" >/dev/null || groupadd --system --gid "$gid" "$account" 2>/dev/null || true
        useradd --system --uid "$uid" --gid "$gid" --home-dir "$home" --no-create-home --shell "$shell" "$account" 2>/dev/null || true
    fi
    if [ -z "$group_before" ] && getent group "$account" >/dev/null; then groupdel "$account" 2>/dev/null || true; fi
}
e2e_on_exit restore_machine

mode_of() { stat -c '%a %U:%G' "$1"; } # PATH -> "640 root:saslgate"
has_mode() { [ "$(mode_of "$2")" = "$1" ]; } # "MODE OWNER:GROUP" PATH
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
out=$E2E_TMP/install.out

# --- 1. First install (the binaries the test runner built; no swift build here)
rc=0
"$install_sh" --bin-dir "$bin_dir" >"$out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$out"
    e2e_die "scripts/install --bin-dir $bin_dir failed (exit $rc)"
fi
sed 's/^/      | /' "$out"
check "installed $prefix/sbin/saslgated 0755 root" has_mode "755 root:root" "$prefix/sbin/saslgated"
check "installed $prefix/bin/saslgate 0755 root" has_mode "755 root:root" "$prefix/bin/saslgate"
check "installed binaries are the built ones" cmp -s "$bin_dir/saslgated" "$prefix/sbin/saslgated"
check "README in $doc" test -f "$doc/README.md"
check "units in $unit_dir" test -f "$unit_dir/saslgated.socket" -a -f "$unit_dir/saslgated.service"
check "ExecStart= runs $prefix/sbin/saslgated" \
    file_has "ExecStart=$prefix/sbin/saslgated -c $conf" "$unit_dir/saslgated.service"
check "system user $account: no login shell, no home" \
    bash -c "getent passwd $account | grep -q -E '^$account:[^:]*:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$'"
check "system group $account" getent group "$account"
check "$account is a system account (uid < 1000)" bash -c "[ \$(id -u $account) -lt 1000 ]"
check "$conf_dir is 0750 root:$account" has_mode "750 root:$account" "$conf_dir"
check "$conf is 0640 root:$account" has_mode "640 root:$account" "$conf"
check "$conf is conf/saslgated.conf" cmp -s "$E2E_ROOT/conf/saslgated.conf" "$conf"
check "$users exists, empty, 0640 root:$account" bash -c "[ -f $users ] && [ ! -s $users ] && [ \"\$(stat -c '%a %U:%G' $users)\" = '640 root:$account' ]"
check "no PAM drop-in (the default configuration has no pam: passdb)" absent "$unit_dir/saslgated.service.d/pam.conf"
check "install ran saslgated --check" file_has "configuration OK" "$out"
check "install prints the main.cf lines" file_has "smtpd_sasl_type = dovecot" "$out"
check "install prints postconf -e commands" file_has "postconf -e 'smtpd_sasl_auth_enable = yes'" "$out"
if [ -d /run/systemd/system ]; then
    check "install enabled saslgated.socket (systemd runs)" systemctl is-enabled --quiet saslgated.socket
else
    check "install says how to start it without systemd" file_has "systemd is not running here" "$out"
fi

# --- 2. --dry-run changes nothing
state() { { find "${installed[@]}" -exec stat -c '%n %a %U %G %s %Y' {} + 2>/dev/null || true; } | sort | md5sum; }
before=$(state)
rc=0
"$install_sh" --bin-dir "$bin_dir" --dry-run >"$out" 2>&1 || rc=$?
check "install --dry-run exits 0" test "$rc" -eq 0
check "install --dry-run says what it would do" file_has "would run:" "$out"
check "install --dry-run changed nothing" test "$before" = "$(state)"

# --- 3. An edited configuration survives a second install
printf '\n# edited by the admin (install.test.sh)\ndefault_realm = example.org\n' >>"$conf"
cp -a "$conf" "$E2E_TMP/edited.conf"
rc=0
"$install_sh" --bin-dir "$bin_dir" >"$out" 2>&1 || rc=$?
check "second install exits 0" test "$rc" -eq 0
check "second install keeps the edited $conf" cmp -s "$E2E_TMP/edited.conf" "$conf"
check "second install writes the shipped one to $conf.dist" cmp -s "$E2E_ROOT/conf/saslgated.conf" "$conf.dist"
check "second install says so" file_has "kept your $conf" "$out"
check "$conf still 0640 root:$account" has_mode "640 root:$account" "$conf"

# --- 4. A pam: passdb gets the SupplementaryGroups=shadow drop-in; without it the drop-in goes
cp -a "$conf" "$E2E_TMP/before-pam.conf"
printf 'passdbs = passwd-file:%s pam:smtp\n' "$users" >>"$conf"
rc=0
"$install_sh" --bin-dir "$bin_dir" >"$out" 2>&1 || rc=$?
check "install with a pam: passdb exits 0" test "$rc" -eq 0
check "pam: passdb -> drop-in with SupplementaryGroups=shadow" \
    file_has "SupplementaryGroups=shadow" "$unit_dir/saslgated.service.d/pam.conf"
check "the drop-in explains why (unix_chkpwd)" file_has "unix_chkpwd" "$unit_dir/saslgated.service.d/pam.conf"
cp -a "$E2E_TMP/before-pam.conf" "$conf"
rc=0
"$install_sh" --bin-dir "$bin_dir" >"$out" 2>&1 || rc=$?
check "install without pam: exits 0" test "$rc" -eq 0
check "no pam: passdb any more -> drop-in removed" absent "$unit_dir/saslgated.service.d/pam.conf"

# --- 5. Start the daemon the way saslgated.service does
unit=$unit_dir/saslgated.service
check "unit: User=$account Group=$account" \
    test "$(sed -n 's/^User=//p' "$unit"):$(sed -n 's/^Group=//p' "$unit")" = "$account:$account"
# The socket: where saslgated.socket puts it, when that is free; else a temporary one.
listen=$(sed -n 's/^ListenStream=//p' "$unit_dir/saslgated.socket" | head -n 1)
if [ -d "$(dirname "$listen")" ] && [ ! -e "$listen" ]; then
    sock=$listen
else
    sock=$E2E_TMP/auth.sock
fi
sg_log=$E2E_TMP/saslgated.log
start_as_unit "$unit" "$sock" "$sg_log"
sg_pid=$UNIT_PID
run_user=$UNIT_USER

# --- 6. A user added with the CLI, authenticated against the daemon
user=alice@example.org
pass='inst4ll-Test'
rc=0
printf '%s\n' "$pass" | "$prefix/bin/saslgate" user add --password-stdin "$user" >"$out" 2>&1 || rc=$?
check "saslgate user add --password-stdin $user" test "$rc" -eq 0
check "$users has $user" file_has "$user:" "$users"
check "$users still 0640 root:$account after the edit" has_mode "640 root:$account" "$users"
rc=0
printf '%s\n' "$pass" | "$prefix/bin/saslgate" auth test --socket "$sock" --secured --password-stdin "$user" >"$out" 2>&1 || rc=$?
check "saslgate auth test: right password -> exit 0" test "$rc" -eq 0
check "saslgate auth test: 'auth succeeded'" file_has "auth succeeded: user=$user" "$out"
[ "$rc" -eq 0 ] || sed 's/^/      | /' "$out"
rc=0
printf 'wrong\n' | "$prefix/bin/saslgate" auth test --socket "$sock" --secured --password-stdin "$user" >"$out" 2>&1 || rc=$?
check "saslgate auth test: wrong password -> exit 1" test "$rc" -eq 1
expect_doveadm "doveadm auth test: right password -> succeeded" succeeded -a "$sock" -x service=smtp -x secured "$user" "$pass"
expect_doveadm "doveadm auth test: wrong password -> failed" failed -a "$sock" -x service=smtp -x secured "$user" wrong
check "the daemon got its socket from the activator" file_has "using the 1 socket(s) passed by systemd (fd 3)" "$sg_log"
check "the daemon runs as $run_user" test "$(ps -o user= -p "$sg_pid" | tr -d ' ')" = "$run_user"
check "the daemon has no root group" bash -c "! grep -q -E '^Groups:.*\\b0\\b' /proc/$sg_pid/status"

# --- 7. Stop, as systemctl stop would (SIGTERM)
rc=0
terminate_within 10 "$sg_pid" || rc=$?
check "SIGTERM: saslgated exits 0" test "$rc" -eq 0
rm -f "$sock"

# --- 8. systemd-analyze security (recorded in docs/SYSTEMD.md)
if command -v systemd-analyze >/dev/null; then
    systemd-analyze security --offline=true "$E2E_ROOT/systemd/saslgated.service" >"$out" 2>&1 || true
    exposure=$(grep -E 'Overall exposure level' "$out" | sed 's/.*: //' || true)
    echo "  systemd-analyze security --offline=true systemd/saslgated.service: ${exposure:-no result}"
    grep -E '^✗' "$out" | sed 's/^/      | /' || true
    check "systemd-analyze security: exposure level SAFE" file_has_re 'Overall exposure level for saslgated.service: [0-9.]+ SAFE' "$out"
else
    echo "  systemd-analyze is not installed (package systemd): exposure not measured"
fi

# --- 9. Uninstall: everything but the configuration and the user
rc=0
"$uninstall_sh" >"$out" 2>&1 || rc=$?
sed 's/^/      | /' "$out"
check "uninstall exits 0" test "$rc" -eq 0
for p in "$prefix/sbin/saslgated" "$prefix/bin/saslgate" "$doc" "$unit_dir/saslgated.socket" "$unit_dir/saslgated.service" "$unit_dir/saslgated.service.d"; do
    check "uninstall removed $p" absent "$p"
done
check "uninstall kept $conf (edited)" cmp -s "$E2E_TMP/edited.conf" "$conf"
check "uninstall kept the user table with $user" file_has "$user:" "$users"
check "uninstall kept the user $account" getent passwd "$account"
check "uninstall says what it kept" file_has "kept $conf_dir" "$out"
rc=0
"$uninstall_sh" >"$out" 2>&1 || rc=$?
check "uninstall again: exits 0 (idempotent)" test "$rc" -eq 0
check "uninstall again: nothing to remove" file_has "already uninstalled" "$out"

# --- 10. --purge: configuration, user table, user and group gone
rc=0
"$uninstall_sh" --purge >"$out" 2>&1 || rc=$?
sed 's/^/      | /' "$out"
check "uninstall --purge exits 0" test "$rc" -eq 0
check "uninstall --purge names what it deletes" file_has "$users" "$out"
check "uninstall --purge removed $conf_dir" absent "$conf_dir"
check "uninstall --purge removed the user $account" bash -c "! getent passwd $account"
check "uninstall --purge removed the group $account" bash -c "! getent group $account"
rc=0
"$uninstall_sh" --purge >"$out" 2>&1 || rc=$?
check "uninstall --purge again: exits 0 (idempotent)" test "$rc" -eq 0
