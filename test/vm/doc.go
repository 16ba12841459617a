// Package vm boots Debian's kernel in qemu (TCG, never KVM: KVM hangs on
// the CI machine) from a small initramfs and runs a command inside, for the
// tests that need a kernel feature the host lacks, first of all IPVS.
//
// Typical use from a host-side test:
//
//	bin, err := vm.BuildTest(ctx, "vigil/test/ipvssmoke") // static test binary
//	res, err := vm.Run(ctx, vm.Spec{
//		Files:   map[string]string{"/smoke.test": bin}, // guest path -> host path
//		Command: []string{"/smoke.test", "-test.v"},
//		Timeout: 90 * time.Second,
//	})
//	// res.Output, res.ExitCode; err only if the VM itself failed.
//
// # Image
//
// The base initramfs holds busybox-static (applet links included),
// iproute2's ip at /usr/sbin/ip with its libraries and loader, the kernel's
// net/ (less radio and legacy stacks), crypto/ and lib/ modules plus veth,
// dummy, macvlan, ipvlan, vxlan and ifb with every dependency, indexed by
// depmod -b on the staged tree. It is built once per kernel version and
// input set (a hash of paths, sizes and mtimes) and cached under
// $VIGIL_VM_CACHE, else $XDG_CACHE_HOME/vigil-vm (~/.cache/vigil-vm), never
// in the repository. The xz-compressed vmlinuz is unpacked once into the
// same cache and booted through PVH, which saves ~3 s of decompression per
// boot under TCG. Each Run appends a second, small cpio archive with the
// run's script and Files; the kernel unpacks both.
//
// # Guest
//
// init (init.sh, busybox sh) mounts proc, sysfs, devtmpfs, devpts and tmpfs
// on /run and /tmp, loads crc32c_generic (before ip_vs: libcrc32c needs it),
// ip_vs and all its schedulers, veth, dummy, bridge, macvlan and
// Spec.Modules, brings lo up, runs the command as root in / with
// VIGIL_IN_VM=1, then powers off. Call ip by its full path /usr/sbin/ip:
// busybox sh prefers its own ip applet, which has no netns.
//
// # Results
//
// The guest has two serial lines. ttyS0 is the kernel console plus init's
// progress, written to a file and returned as Result.Console (and quoted in
// errors). ttyS1 carries only the command's output, framed by a start
// marker and an end marker with the exit status, both with a per-run
// nonce, and reaches the host through qemu's stdout pipe. Keeping the
// kernel log off that line means test output is never interleaved with
// printk, and the pipe gives the host the markers as they happen (boot
// time, live Spec.Log) without polling a file or sharing a file system.
//
// qemu is killed when the timeout or ctx expires, when it does not exit
// within seconds of the end marker, and (PR_SET_PDEATHSIG) when the test
// process dies.
//
// # Environment
//
//	VIGIL_VM_KERNEL  path of a vmlinuz-<version> to boot instead of the newest in /boot
//	VIGIL_VM_CACHE   cache directory
//	VIGIL_VM_PVH=0   boot the compressed bzImage instead of the unpacked vmlinux
//
// test/vm/deps.sh installs the Debian packages all this needs.
package vm
