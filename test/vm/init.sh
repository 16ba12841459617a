#!/bin/sh
# PID 1 of the vigil test VM, run by busybox sh from the initramfs.
#
# Two serial lines, two jobs (see run.go):
#   ttyS0  kernel console and this script's progress: diagnostics only.
#   ttyS1  nothing but the command's output, framed by a start marker and
#          an end marker carrying its exit status. The kernel never writes
#          there, so log lines cannot interleave with test output.
# Every marker carries the run's nonce, so output that happens to contain
# marker-like text cannot end a run early.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp VIGIL_IN_VM=1
out=/dev/ttyS1

say() { echo "vigil-init: $*"; }

# fail tells the host which step broke, instead of leaving it to a timeout.
fail() {
	say "FAILED: $*"
	[ -c "$out" ] && printf '\nVIGIL-VM-INITFAIL %s %s\n' "$VIGIL_NONCE" "$*" >"$out"
	poweroff -f
	reboot -f
}

# Written by the host per run: VIGIL_NONCE, VIGIL_MODULES, the environment
# and vigil_command.
. /vigil/run || fail "read /vigil/run"

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs on /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts || fail "mount /dev/pts"
mount -t tmpfs tmpfs /dev/shm || fail "mount /dev/shm"
mount -t tmpfs tmpfs /run || fail "mount /run"
mount -t tmpfs tmpfs /tmp || fail "mount /tmp"
# ip netns keeps its namespace handles under /run/netns.
mkdir -p /run/netns
hostname vigil-vm

kver=$(uname -r)
[ -f "/lib/modules/$kver/modules.dep" ] || fail "no modules for kernel $kver in the initramfs"

# crc32c_generic first: ip_vs needs libcrc32c, which needs a "crc32c" crypto
# provider when it loads. The kernel states that as a softdep (modinfo
# libcrc32c: "softdep: pre: crc32c"), which kmod's modprobe honours and
# busybox's ignores, so it is loaded by name here.
scheds=
for f in "/lib/modules/$kver/kernel/net/netfilter/ipvs/"ip_vs_*.ko; do
	m=${f##*/}
	m=${m%.ko}
	case $m in
	ip_vs_ftp | ip_vs_pe_*) ;; # application helpers, not schedulers
	*) scheds="$scheds $m" ;;
	esac
done
read -r up _ </proc/uptime
say "loading modules at ${up}s"
# One modprobe for all: busybox parses modules.dep on every invocation, which
# costs a noticeable fraction of a second each under TCG. Only on failure
# is each module retried alone, to name the one that broke.
mods="crc32c_generic ip_vs$scheds veth dummy bridge macvlan $VIGIL_MODULES"
# shellcheck disable=SC2086 # word splitting wanted: one argument per module
if ! modprobe -a $mods; then
	for m in $mods; do
		modprobe "$m" || fail "modprobe $m"
	done
fi
read -r up _ </proc/uptime
say "modules loaded at ${up}s: $mods"

ip link set lo up || fail "ip link set lo up"

# Raw mode: no \n -> \r\n translation and no echo on the output line.
stty -F "$out" raw -echo || fail "stty $out"
read -r up _ </proc/uptime
printf 'VIGIL-VM-START %s %s\n' "$VIGIL_NONCE" "$up" >"$out"
say "running the command"
cd /
vigil_command </dev/null >"$out" 2>&1
code=$?
say "command exited with status $code"

# Leftover background processes may hold ttyS1 open. Once they are gone the
# marker's redirection is the only open file on it, and its close waits until
# the UART has sent everything, so the marker is out before the power-off.
kill -9 -1 2>/dev/null
sleep 0.2
printf '\nVIGIL-VM-EXIT %s %d\n' "$VIGIL_NONCE" "$code" >"$out"
poweroff -f
# Should poweroff fail, the host still has the marker and stops qemu itself.
reboot -f
