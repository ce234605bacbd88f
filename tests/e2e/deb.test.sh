#!/usr/bin/env bash
# The Debian package for real (root): apt-get install of the built saslgate_*.deb, its files, system
# user, conffiles, modes, manual pages and maintainer scripts; then the installed daemon started the
# way saslgated.service starts it (systemd is not PID 1 here) behind a private real Postfix, driven
# by swaks (235 / 535); an upgrade to a newer build that keeps the edited configuration and the user
# table; remove (configuration kept) and purge (nothing left: files, user, group, unit links).
# The package: $SASLGATE_DEB, else the newest dist/saslgate_*.deb (scripts/build-deb; scripts/test
# builds one). Skips when saslgate is already installed as a package (a machine we must not touch).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

deb=${SASLGATE_DEB:-}
if [ -z "$deb" ]; then
    deb=$(find "$E2E_ROOT/dist" -maxdepth 1 -name 'saslgate_*.deb' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2- || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || e2e_skip "no package built (run scripts/build-deb, or set SASLGATE_DEB)"
[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (apt-get install)"
status=$(dpkg-query -W -f='${db:Status-Status}' saslgate 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || e2e_skip "the saslgate package is installed here ($status); not touching it"
command -v setpriv >/dev/null || e2e_die "setpriv is not installed (util-linux)"

account=saslgate
conf_dir=/etc/saslgate
conf=$conf_dir/saslgated.conf
users=$conf_dir/users
version=$(dpkg-deb -f "$deb" Version)
echo "  package: $deb (version $version)"

# --- Leave a developer machine as it was: /etc/saslgate (scripts/install's) backed up, restored.
backup=$E2E_TMP/backup
user_before=$(getent passwd "$account" || true)
if [ -e "$conf_dir" ]; then
    mkdir -p "$backup"
    cp -a "$conf_dir" "$backup/"
    rm -rf "$conf_dir"
    echo "  (backed up and removed the existing $conf_dir; restored at exit)"
fi
restore_machine() {
    if dpkg-query -W -f='${db:Status-Status}' saslgate 2>/dev/null | grep -qv not-installed; then
        DEBIAN_FRONTEND=noninteractive dpkg --purge saslgate >/dev/null 2>&1 || true
    fi
    if [ -e "$backup/saslgate" ]; then
        rm -rf "$conf_dir"
        cp -a "$backup/saslgate" "$conf_dir"
    fi
    if [ -n "$user_before" ] && ! getent passwd "$account" >/dev/null; then
        local uid gid home shell
        IFS=: read -r _ _ uid gid _ home shell <<<"$user_before"
        getent group "$account" >/dev/null || groupadd --system --gid "$gid" "$account" 2>/dev/null || true
        useradd --system --uid "$uid" --gid "$gid" --home-dir "$home" --no-create-home --shell "$shell" "$account" 2>/dev/null || true
    fi
}
e2e_on_exit restore_machine
# Without it, a machine that had the account from scripts/install would keep it; the purge check
# below needs the account to be the package's own.
if [ -n "$user_before" ]; then userdel "$account" 2>/dev/null || true; getent group "$account" >/dev/null && groupdel "$account" 2>/dev/null || true; fi

mode_of() { stat -c '%a %U:%G' "$1"; }
has_mode() { [ "$(mode_of "$2")" = "$1" ]; }
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
out=$E2E_TMP/apt.out
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }

# --- 1. The package as built
if command -v lintian >/dev/null; then
    rc=0
    lintian --fail-on error "$deb" >"$E2E_TMP/lintian.out" 2>&1 || rc=$?
    sed 's/^/      | /' "$E2E_TMP/lintian.out"
    check "lintian: no errors" test "$rc" -eq 0
fi
depends=$(dpkg-deb -f "$deb" Depends)
echo "  Depends: $depends"
check "Depends: Debian libraries only (libpam, libcrypt, libsqlite3), adduser" \
    bash -c "grep -q libpam0g <<<'$depends' && grep -q libcrypt1 <<<'$depends' && grep -q libsqlite3 <<<'$depends' && grep -q adduser <<<'$depends'"
check "Depends: no Swift runtime package (linked statically)" bash -c "! grep -qi swift <<<'$depends'"
dpkg-deb -e "$deb" "$E2E_TMP/control"
check "postinst restarts saslgated.service after an upgrade" file_has_re "deb-systemd-invoke .*'saslgated.service'" "$E2E_TMP/control/postinst"
check "postinst never stops or restarts saslgated.socket (Postfix keeps reaching it during an upgrade)" \
    bash -c "! grep -E \"deb-systemd-invoke (stop|restart|try-restart) .*'saslgated.socket'\" '$E2E_TMP/control/postinst'"
check "prerm stops saslgated.socket only on remove, not on upgrade" \
    bash -c "grep -B2 \"deb-systemd-invoke stop 'saslgated.socket'\" '$E2E_TMP/control/prerm' | grep -q '\"\$1\" = remove'"

# --- 2. Install
rc=0
apt_get install --no-install-recommends "$deb" >"$out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$out"; e2e_die "apt-get install $deb failed (exit $rc)"; }
check "dpkg: saslgate $version installed" test "$(dpkg-query -W -f='${Version} ${db:Status-Status}' saslgate)" = "$version installed"
for f in /usr/sbin/saslgated /usr/bin/saslgate; do
    check "$f 0755 root" has_mode "755 root:root" "$f"
done
check "saslgated is stripped and statically linked to the Swift runtime" \
    bash -c "! ldd /usr/sbin/saslgated | grep -qi swift"
for f in /lib/systemd/system/saslgated.socket /lib/systemd/system/saslgated.service \
    /usr/share/man/man8/saslgated.8.gz /usr/share/man/man5/saslgated.conf.5.gz /usr/share/man/man1/saslgate.1.gz \
    /usr/share/bash-completion/completions/saslgate /usr/share/zsh/vendor-completions/_saslgate \
    /usr/share/fish/vendor_completions.d/saslgate.fish /usr/share/doc/saslgate/README.Debian \
    /usr/share/doc/saslgate/copyright /usr/share/doc/saslgate/examples/saslgated.conf.example \
    /etc/fail2ban/filter.d/saslgate.conf /etc/fail2ban/jail.d/saslgate.conf; do
    check "installed $f" test -f "$f"
done
notices=/usr/share/doc/saslgate/third-party-notices.gz
check "installed $notices" test -f "$notices"
check "the notices hold postgres-nio's MIT license text" bash -c "zcat $notices | grep -A6 '^postgres-nio ' | grep -q 'MIT License'"
check "the notices hold swift-nio's NOTICE file" bash -c "zcat $notices | grep -A8 '^swift-nio [0-9]' | grep -q '^NOTICE:'"
check "the notices hold the Swift runtime's Runtime Library Exception" bash -c "zcat $notices | grep -q 'Runtime Library Exception'"
check "unit ExecStart= runs /usr/sbin/saslgated" file_has "ExecStart=/usr/sbin/saslgated -c $conf" /lib/systemd/system/saslgated.service
check "the fail2ban jails ship disabled" bash -c "! grep -qE '^enabled *= *true' /etc/fail2ban/jail.d/saslgate.conf"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' saslgate)
for f in "$conf" /etc/fail2ban/filter.d/saslgate.conf /etc/fail2ban/jail.d/saslgate.conf; do
    check "conffile: $f" bash -c "grep -q '^ $f ' <<<'$conffiles'"
done
check "system user $account: no login shell, no home" \
    bash -c "getent passwd $account | grep -q -E '^$account:[^:]*:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$'"
check "$account is a system account (uid < 1000)" bash -c "[ \$(id -u $account) -lt 1000 ]"
check "$account is not in group shadow (no pam: passdb configured)" bash -c "! id -nG $account | grep -qw shadow"
check "$conf_dir is 0750 root:$account" has_mode "750 root:$account" "$conf_dir"
check "$conf is 0640 root:$account" has_mode "640 root:$account" "$conf"
check "$users exists, empty, 0640 root:$account" bash -c "[ -f $users ] && [ ! -s $users ] && [ \"\$(stat -c '%a %U:%G' $users)\" = '640 root:$account' ]"
check "saslgated.socket enabled (sockets.target.wants link)" test -L /etc/systemd/system/sockets.target.wants/saslgated.socket
for page in saslgated.8 saslgated.conf.5 saslgate.1; do
    check "man $page renders without warnings" bash -c "[ -z \"\$(MANWIDTH=80 man --warnings ${page##*.} ${page%.*} 2>&1 >/dev/null)\" ] && man -w ${page##*.} ${page%.*} >/dev/null"
done
check "saslgated -c $conf --check passes" /usr/sbin/saslgated -c "$conf" --check

# --- 3. The installed daemon behind a real Postfix
sock_dir=$(e2e_mkdir sock)
sock=$sock_dir/auth
start_as_unit /lib/systemd/system/saslgated.service "$sock" "$E2E_TMP/saslgated.log"
# saslgated.socket: SocketUser=postfix SocketMode=0660.
chown postfix:postfix "$sock"
chmod 0660 "$sock"
user=alice@example.org
pass='deb-Pack4ge'
rc=0
printf '%s\n' "$pass" | saslgate user add --password-stdin "$user" >"$out" 2>&1 || rc=$?
check "saslgate user add --password-stdin $user" test "$rc" -eq 0
check "$users still 0640 root:$account after the edit" has_mode "640 root:$account" "$users"
pf=$(e2e_mkdir postfix)
postfix_start "$pf" "$sock" --tls
expect_swaks "installed daemon: AUTH PLAIN good password -> 235" 235 --tls --auth PLAIN --auth-user "$user" --auth-password "$pass"
expect_swaks "installed daemon: AUTH LOGIN wrong password -> 535" 535 --tls --auth LOGIN --auth-user "$user" --auth-password wrong
check "the daemon runs as $account" test "$(ps -o user= -p "$UNIT_PID" | tr -d ' ')" = "$account"
rc=0
terminate_within 10 "$UNIT_PID" || rc=$?
check "SIGTERM: saslgated exits 0" test "$rc" -eq 0
rm -f "$sock"

# --- 4. Upgrade to a newer build: the edited configuration and the user table stay
printf '\n# edited by the admin (deb.test.sh)\ndefault_realm = example.org\n' >>"$conf"
cp -a "$conf" "$E2E_TMP/edited.conf"
repack=$E2E_TMP/repack
dpkg-deb -R "$deb" "$repack"
new_version=$version+e2e1
sed -i "s/^Version: .*/Version: $new_version/" "$repack/DEBIAN/control"
# The newer build ships a changed configuration too: dpkg must keep the admin's and say so.
printf '# shipped by %s\n' "$new_version" >>"$repack/etc/saslgate/saslgated.conf"
(cd "$repack" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum >DEBIAN/md5sums)
dpkg-deb -b --root-owner-group "$repack" "$E2E_TMP/saslgate_${new_version}_amd64.deb" >/dev/null
rc=0
apt_get install --no-install-recommends "$E2E_TMP/saslgate_${new_version}_amd64.deb" >"$out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || sed 's/^/      | /' "$out"
check "upgrade to $new_version exits 0" test "$rc" -eq 0
check "dpkg: saslgate $new_version installed" test "$(dpkg-query -W -f='${Version}' saslgate)" = "$new_version"
check "upgrade kept the edited $conf" cmp -s "$E2E_TMP/edited.conf" "$conf"
check "upgrade put the shipped one beside it ($conf.dpkg-dist)" file_has "# shipped by $new_version" "$conf.dpkg-dist"
check "upgrade kept the user table with $user" file_has "$user:" "$users"
check "$conf still 0640 root:$account" has_mode "640 root:$account" "$conf"
start_as_unit /lib/systemd/system/saslgated.service "$sock" "$E2E_TMP/saslgated-upgraded.log"
chown postfix:postfix "$sock"
chmod 0660 "$sock"
expect_swaks "after the upgrade: bare 'alice' (default_realm from the kept config) -> 235" 235 --tls --auth PLAIN --auth-user alice --auth-password "$pass"
rc=0
terminate_within 10 "$UNIT_PID" || rc=$?
check "SIGTERM after upgrade: saslgated exits 0" test "$rc" -eq 0

# --- 5. A pam: passdb: dpkg-reconfigure puts the daemon's user into group shadow (README.Debian)
printf 'passdbs = passwd-file:%s pam:smtp\n' "$users" >>"$conf"
rc=0
DEBIAN_FRONTEND=noninteractive dpkg-reconfigure saslgate >"$out" 2>&1 || rc=$?
check "dpkg-reconfigure with a pam: passdb exits 0" test "$rc" -eq 0
check "a pam: passdb -> $account is in group shadow" bash -c "id -nG $account | grep -qw shadow"
check "no TCP endpoint or network passdb -> no network drop-in" absent /etc/systemd/system/saslgated.service.d/network.conf
printf 'listen = /var/spool/postfix/private/auth inet:127.0.0.1:12345\n' >>"$conf"
rc=0
DEBIAN_FRONTEND=noninteractive dpkg-reconfigure saslgate >"$out" 2>&1 || rc=$?
check "dpkg-reconfigure with a TCP endpoint exits 0" test "$rc" -eq 0
check "a TCP endpoint -> the network drop-in lifts PrivateNetwork=yes" \
    file_has "PrivateNetwork=no" /etc/systemd/system/saslgated.service.d/network.conf
cp -a "$E2E_TMP/edited.conf" "$conf"

# --- 6. remove keeps the configuration and the users; purge leaves nothing
files=$(dpkg -L saslgate | while read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done)
rc=0
apt_get remove saslgate >"$out" 2>&1 || rc=$?
check "apt-get remove exits 0" test "$rc" -eq 0
check "remove: binaries gone" bash -c "[ ! -e /usr/sbin/saslgated ] && [ ! -e /usr/bin/saslgate ]"
check "remove: kept the edited $conf" cmp -s "$E2E_TMP/edited.conf" "$conf"
check "remove: kept the user table with $user" file_has "$user:" "$users"
check "remove: kept the user $account" getent passwd "$account"
rc=0
apt_get purge saslgate >"$out" 2>&1 || rc=$?
check "apt-get purge exits 0" test "$rc" -eq 0
check "purge: dpkg forgot saslgate" bash -c "! dpkg-query -W -f='\${db:Status-Status}' saslgate 2>/dev/null | grep -qv not-installed"
left=()
while read -r f; do [ -z "$f" ] || [ ! -e "$f" ] || left+=("$f"); done <<<"$files"
check "purge: none of the package's files is left" test "${#left[@]}" -eq 0
[ "${#left[@]}" -eq 0 ] || printf '      left: %s\n' "${left[@]}"
check "purge: $conf_dir gone" absent "$conf_dir"
check "purge: unit links gone" absent /etc/systemd/system/sockets.target.wants/saslgated.socket
check "purge: the network drop-in gone" absent /etc/systemd/system/saslgated.service.d
check "purge: user $account gone" bash -c "! getent passwd $account"
check "purge: group $account gone" bash -c "! getent group $account"
