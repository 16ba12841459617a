#!/usr/bin/env bash
# Builds dist/vigil_VERSION_amd64.deb from a built vigil binary and deploy/:
#   bash deploy/deb/build.sh BIN OUTDIR        (what `make deb` runs)
# Prints the path of the package it wrote.
#
# Why dpkg-deb from a staged tree and not nfpm: dpkg-deb is on every Debian
# machine already (it is part of dpkg), the package is one binary plus text
# files, so a YAML layer over the same tar members buys nothing, and the
# maintainer scripts and conffiles are plain files a Debian admin can read
# here as they end up in /var/lib/dpkg/info. nfpm would add a second Go module
# with its own dependency tree to keep up to date.
#
# Version: the Debian version is made from git, without a "v":
#   tag v1.2.3 on HEAD           -> 1.2.3-1
#   3 commits after v1.2.3       -> 1.2.3+git20261206.3.e53bacc-1
#   no tag                       -> 0.0~git20261206.e53bacc-1   (commit date, UTC)
#   uncommitted changes          -> the above with +dirty before the revision
# ("~" sorts before anything, so the first real tag is an upgrade; a tag's "-rc1" becomes "~rc1").
# The "-1" Debian revision makes it a non-native package, so the Debian
# changelog is changelog.Debian.gz as lintian expects. DEB_VERSION overrides.
#
# Reproducible: SOURCE_DATE_EPOCH is the commit's time (unless set), every
# file's mtime is clamped to it, modes are set explicitly, owners are root
# (--root-owner-group), gzip runs with -n, and dpkg-deb sorts the members
# and compresses single-threaded; the same commit gives the same bytes.
set -euo pipefail

bin=${1:?usage: build.sh BIN OUTDIR}
out=${2:?usage: build.sh BIN OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"

die() { echo "deploy/deb/build.sh: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin: not an executable (run make build first)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"

debversion() {
	local date sha desc tag n up
	date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d)
	sha=$(git rev-parse --short=7 HEAD)
	if desc=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.3-N-gSHA
		tag=${desc%-*-g*}
		n=${desc#"$tag"-}
		n=${n%%-g*}
		tag=${tag#v}
		tag=${tag//-/\~}
		if [ "$n" = 0 ]; then up=$tag; else up=$tag+git$date.$n.$sha; fi
	else
		up=0.0~git$date.$sha
	fi
	if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		up=$up+dirty
	fi
	echo "$up-1"
}

version=${DEB_VERSION:-$(debversion)}
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]] || die "version $version is not a Debian version"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
maintainer=${DEB_MAINTAINER:-vigil maintainers <maintainers@users.noreply.r-seed-4acc5a29.example>}

umask 022
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/vigil

put() { # put MODE SRC DEST: copy SRC to DEST in the package tree
	install -D -m "$1" "$2" "$root/$3"
}

put 0755 "$bin" usr/sbin/vigil
put 0644 deploy/systemd/vigil.service usr/lib/systemd/system/vigil.service
put 0644 deploy/examples/vigil.yaml etc/vigil/vigil.yaml.sample
put 0644 "$here/vigil.default" etc/default/vigil
put 0644 "$here/modules-load.conf" usr/lib/modules-load.d/vigil.conf
put 0644 "$here/sysctl.conf" usr/lib/sysctl.d/vigil.conf
put 0644 deploy/grafana/vigil.json usr/share/vigil/grafana/vigil.json
put 0644 deploy/prometheus/vigil.rules.yaml usr/share/vigil/prometheus/vigil.rules.yaml
put 0644 "$here/lintian-overrides" usr/share/lintian/overrides/vigil
put 0644 "$here/copyright" usr/share/doc/vigil/copyright
for f in deploy/examples/*.yaml; do
	put 0644 "$f" "usr/share/doc/vigil/examples/$(basename "$f")"
done

# Completions and man pages come from the binary's own commands.
"$bin" completion bash >"$stage/vigil.bash"
"$bin" completion zsh >"$stage/_vigil"
"$bin" completion fish >"$stage/vigil.fish"
put 0644 "$stage/vigil.bash" usr/share/bash-completion/completions/vigil
put 0644 "$stage/_vigil" usr/share/zsh/vendor-completions/_vigil
put 0644 "$stage/vigil.fish" usr/share/fish/vendor_completions.d/vigil.fish
mkdir -p "$root/usr/share/man/man8"
"$bin" docs man "$root/usr/share/man/man8"
gzip -9n "$root"/usr/share/man/man8/*.8

# The Debian changelog: one entry for this build.
{
	echo "vigil ($version) unstable; urgency=medium"
	echo
	echo "  * Built from commit $(git rev-parse HEAD)."
	echo
	echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$stage/changelog.Debian"
gzip -9n -c "$stage/changelog.Debian" >"$stage/changelog.Debian.gz"
put 0644 "$stage/changelog.Debian.gz" usr/share/doc/vigil/changelog.Debian.gz

# Control area.
ctl=$root/DEBIAN
mkdir -p "$ctl"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$ctl/$s"
done
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$ctl/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$ctl/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@MAINTAINER@|$maintainer|" -e "s|@SIZE@|$size|" \
	"$here/control.in" >"$ctl/control"
chmod 0644 "$ctl/control" "$ctl/conffiles" "$ctl/md5sums"

# Directories 0755, mtimes clamped (dpkg-deb clamps too; this also covers
# the directories it creates for us).
find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/vigil_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$root" "$deb" >/dev/null
echo "$deb"
