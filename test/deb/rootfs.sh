#!/usr/bin/env bash
# Builds, once, the Debian 12 root file system that test/deb boots with systemd-nspawn to start the
# package's unit under a real systemd (this machine's PID 1 is not systemd, and the test VM's
# initramfs is busybox); prints its path. Later runs only print it.
#   VIGIL_DEB_ROOTFS_CACHE   cache directory (default /var/cache/vigil-test)
# minbase plus systemd, dbus (systemctl talks to PID 1 through it) and iproute2: about 210 MB,
# under a minute with a Debian mirror.
set -euo pipefail
cache=${VIGIL_DEB_ROOTFS_CACHE:-/var/cache/vigil-test}
suite=bookworm
root=$cache/deb-rootfs-$suite
if [ -x "$root/usr/lib/systemd/systemd" ]; then
	echo "$root"
	exit 0
fi
command -v mmdebstrap >/dev/null || { echo "test/deb/rootfs.sh: mmdebstrap not found (Debian package mmdebstrap)" >&2; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.deb-rootfs-$suite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "test/deb/rootfs.sh: building a $suite root file system into $root (once; about a minute)" >&2
mmdebstrap --quiet --mode=root --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 "$suite" "$tmp/root" >&2
mv "$tmp/root" "$root"
echo "$root"
