#!/bin/sh
# `make deb`: builds hikyaku_VERSION_amd64.deb with dpkg-deb from a release
# build with the Swift standard library linked statically, so the package
# needs nothing but Debian's own libraries. Packaging/debian/ holds the
# control file template, the maintainer scripts, the debconf questions, the
# systemd units and the default configuration.
#
# Environment:
#   HIKYAKU_DEB_BIN   take the programs from this directory instead of
#                     running `swift build -c release --static-swift-stdlib`
#   DEB_VERSION       the upstream part of the package version (default: from
#                     HikyakuVersion and git); DEB_REVISION the Debian revision (1)
#   DEB_OUTPUT_DIR    where the .deb goes (default: the top of the checkout)
#   DEBFULLNAME, DEBEMAIL  the Maintainer (default: git's user.name, user.email)
#   SWIFT             the swift command (default: swift)
# Needs dpkg-dev (dpkg-shlibdeps) and binutils (strip).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
debian=$top/Packaging/debian

daemons="master smtpd cleanup qmgr local smtp-client pickup aliasd showq hikyaku-drop"
commands="sendmail makemap hikyaku"

# The version: HikyakuVersion's string, exactly when HEAD is tagged
# vVERSION; with the commit count and hash otherwise, sorting before the
# release (~) while it is not tagged yet, after it (+) once it is. Then
# the Debian revision (DEB_REVISION, 1 by default): the package is not a
# native Debian package.
upstream=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/HikyakuSystem/Version.swift)
[ -n "$upstream" ] || { echo "build-deb: no version in Sources/HikyakuSystem/Version.swift" >&2; exit 1; }
if [ -n "${DEB_VERSION:-}" ]; then
    version=$DEB_VERSION
elif ! git rev-parse --git-dir >/dev/null 2>&1; then
    version=$upstream
elif git describe --tags --exact-match --match "v$upstream" HEAD >/dev/null 2>&1; then
    version=$upstream
else
    snapshot="git$(git rev-list --count HEAD).$(git rev-parse --short HEAD)"
    if git rev-parse -q --verify "refs/tags/v$upstream" >/dev/null; then
        version="$upstream+$snapshot"
    else
        version="$upstream~$snapshot"
    fi
fi
version=$version-${DEB_REVISION:-1}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Timestamps of the files and the archive: the commit's, so that two builds
# of one commit give the same package.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
maintainer="${DEBFULLNAME:-$(git config user.name 2>/dev/null || true)} <${DEBEMAIL:-$(git config user.email 2>/dev/null || true)}>"
case "$maintainer" in
    " <"*|*"<>") maintainer="hikyaku packaging <root@$(hostname --fqdn 2>/dev/null || hostname)>" ;;
esac

if [ -n "${HIKYAKU_DEB_BIN:-}" ]; then
    bin=$(cd "$HIKYAKU_DEB_BIN" && pwd)
else
    # -z now: the relocations are resolved at start and made read-only
    # (full RELRO), as Debian's hardening flags do.
    ${SWIFT:-swift} build -c release --static-swift-stdlib -Xlinker -z -Xlinker now
    bin=$top/.build/release
fi

# Only Debian's libraries: the Swift runtime must be inside the programs.
for program in $daemons $commands; do
    [ -x "$bin/$program" ] || { echo "build-deb: $bin/$program is missing" >&2; exit 1; }
    bad=$(ldd "$bin/$program" | grep -E 'not found|swift|/opt/|libFoundation|libdispatch|libBlocksRuntime' || true)
    if [ -n "$bad" ]; then
        echo "build-deb: $program needs libraries that are not Debian's (built without --static-swift-stdlib?):" >&2
        echo "$bad" >&2
        exit 1
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hikyaku-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
umask 022
mkdir -p "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/usr/lib/hikyaku" \
    "$root/usr/share/hikyaku" "$root/usr/share/doc/hikyaku/notices" "$root/lib/systemd/system" \
    "$root/usr/share/lintian/overrides" "$root/usr/share/man/man1" "$root/usr/share/man/man5" \
    "$root/usr/share/man/man8"

# Programs, stripped as dh_strip does. The maildrop helper is installed
# root:root 0755; the postinst makes it set-gid hikyaku-drop with
# dpkg-statoverride.
install_program() {
    install -m 0755 "$bin/$1" "$2/$1"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$2/$1"
}
for program in $daemons; do install_program "$program" "$root/usr/lib/hikyaku"; done
for program in $commands; do install_program "$program" "$root/usr/sbin"; done
# sendmail behaves by the name it is called with (Sources/sendmail/main.swift).
ln -s ../sbin/sendmail "$root/usr/lib/sendmail"
ln -s ../sbin/sendmail "$root/usr/bin/mailq"
ln -s ../sbin/sendmail "$root/usr/bin/newaliases"

for page in man/*.[158]; do
    section=${page##*.}
    gzip -9n < "$page" > "$root/usr/share/man/man$section/$(basename "$page").gz"
done

install -m 0644 "$debian/hikyaku.conf" "$root/usr/share/hikyaku/hikyaku.conf"
for unit in hikyaku.service hikyaku.socket hikyaku-submission.socket hikyaku-smtps.socket; do
    install -m 0644 "$debian/$unit" "$root/lib/systemd/system/$unit"
done
install -m 0644 "$debian/lintian-overrides" "$root/usr/share/lintian/overrides/hikyaku"

doc=$root/usr/share/doc/hikyaku
install -m 0644 "$debian/copyright" "$doc/copyright"
gzip -9n < README.md > "$doc/README.md.gz"
for file in docs/*.md; do gzip -9n < "$file" > "$doc/$(basename "$file").gz"; done
for package in swift-nio swift-nio-ssl swift-log; do
    if [ -f ".build/checkouts/$package/NOTICE.txt" ]; then
        install -m 0644 ".build/checkouts/$package/NOTICE.txt" "$doc/notices/$package.NOTICE.txt"
    fi
done
{
    echo "hikyaku ($version) bookworm; urgency=medium"
    echo
    echo "  * Built from commit $commit"
    echo "    of the hikyaku repository (HikyakuVersion $upstream)."
    echo
    echo " -- $maintainer  $date"
} | gzip -9n > "$doc/changelog.Debian.gz"

# Maintainer scripts; the postinst carries Packaging/create-users.sh in a
# subshell, so there is one definition of the users and groups.
for script in config prerm postrm; do install -m 0755 "$debian/$script" "$root/DEBIAN/$script"; done
install -m 0644 "$debian/templates" "$root/DEBIAN/templates"
awk -v users="$top/Packaging/create-users.sh" '
    $0 == "#CREATE_USERS#" {
        print "("
        while ((getline line < users) > 0) if (line !~ /^#!/) print "    " line
        print ")"
        next
    }
    { print }' "$debian/postinst" > "$root/DEBIAN/postinst"
chmod 0755 "$root/DEBIAN/postinst"
grep -q '^#CREATE_USERS#' "$root/DEBIAN/postinst" && { echo "build-deb: postinst not filled in" >&2; exit 1; }

# Depends: the shared libraries' packages, as dpkg-shlibdeps finds them
# (it wants a debian/control, so it gets a minimal one).
mkdir -p "$work/shlibs/debian"
printf 'Source: hikyaku\n\nPackage: hikyaku\nArchitecture: amd64\n' > "$work/shlibs/debian/control"
set --
for program in $daemons; do set -- "$@" "-e$root/usr/lib/hikyaku/$program"; done
for program in $commands; do set -- "$@" "-e$root/usr/sbin/$program"; done
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O --warnings=0 "$@" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
VERSION=$version MAINTAINER=$maintainer INSTALLED_SIZE=$size SHLIBS_DEPENDS=$shlibs awk '{
        for (key in fields) gsub("@" key "@", fields[key])
        print
    }
    BEGIN { split("VERSION MAINTAINER INSTALLED_SIZE SHLIBS_DEPENDS", names)
            for (i in names) fields[names[i]] = ENVIRON[names[i]] }' "$debian/control" > "$root/DEBIAN/control"
(cd "$root" && find usr lib -type f | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
out=${DEB_OUTPUT_DIR:-$top}/hikyaku_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out"
echo "build-deb: $out"
