#!/usr/bin/env bash
# Installs, from Debian's packages, what the IPVS test VM (test/vm) needs:
#   qemu-system-x86    qemu-system-x86_64, run with TCG (never KVM)
#   linux-image-amd64  the guest kernel, /boot/vmlinuz-*, and its modules
#   busybox-static     the guest's userland (must be the static build)
#   iproute2           ip with netns support, copied into the guest
#   kmod               depmod, to index the guest's module subset
#   ipvsadm            copied into the guest by the lb tests, to compare
#                      vigil's table listing with the real ipvsadm
#   xz-utils           unpacks the kernel once, so each boot skips ~3 s of
#                      decompression under TCG (optional, but slow without)
# Idempotent: checks for what the harness looks for, installs only what is
# missing and says so; prints nothing when everything is there.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# A bootable kernel is a /boot/vmlinuz-<v> with /lib/modules/<v> beside it;
# the host's running kernel does not matter (on CI it is not Debian's).
kernel_ok() {
	local k
	for k in /boot/vmlinuz-*; do
		[ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.order" ] && return 0
	done
	return 1
}
have qemu-system-x86_64 || need+=(qemu-system-x86)
kernel_ok || need+=(linux-image-amd64)
# The package "busybox" also provides /bin/busybox, but dynamically linked:
# useless in the guest, which has no libc. busybox-static replaces it.
installed busybox-static || need+=(busybox-static)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || [ -x /bin/ip ] || need+=(iproute2)
have depmod || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] || need+=(kmod)
have xz || need+=(xz-utils)
have ipvsadm || [ -x /usr/sbin/ipvsadm ] || need+=(ipvsadm)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
	echo "test/vm/deps.sh: missing ${need[*]}; run as root to install them" >&2
	exit 1
fi
echo "test/vm/deps.sh: installing ${need[*]} from Debian's packages (test VM)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# No recommends: linux-image would pull firmware and apparmor, qemu a GUI
# stack; the VM boots the kernel directly with no devices that need them.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
kernel_ok || { echo "test/vm/deps.sh: linux-image-amd64 installed but no /boot/vmlinuz-* with modules" >&2; exit 1; }
