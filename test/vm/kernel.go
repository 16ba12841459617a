package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrMissing is wrapped by every error about a host prerequisite that is not
// installed (qemu, the Debian kernel, busybox-static, iproute2, kmod), so a
// caller can tell "install test/vm/deps.sh's packages" apart from a failure.
var ErrMissing = errors.New("test VM prerequisite missing (run test/vm/deps.sh)")

// Kernel is a bootable kernel image and the module tree built with it.
type Kernel struct {
	Version string // uname -r, e.g. 6.1.0-56-amd64
	Image   string // /boot/vmlinuz-<Version>
	Modules string // /lib/modules/<Version>
}

// KernelEnv names an environment variable that overrides which vmlinuz is
// booted; its modules are taken from /lib/modules/<version from the name>.
const KernelEnv = "VIGIL_VM_KERNEL"

// FindKernel returns the newest Debian kernel in /boot that has a matching
// module tree. The host's running kernel is irrelevant (it may be a custom
// one without IPVS, as on the CI machine): the guest's modules must match the
// image it boots, never `uname -r` of the host.
func FindKernel() (Kernel, error) {
	if img := os.Getenv(KernelEnv); img != "" {
		return kernelFromImage(img)
	}
	imgs, err := filepath.Glob("/boot/vmlinuz-*")
	if err != nil {
		return Kernel{}, fmt.Errorf("vm: list /boot/vmlinuz-*: %w", err)
	}
	var ks []Kernel
	for _, img := range imgs {
		if k, err := kernelFromImage(img); err == nil {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return Kernel{}, fmt.Errorf("vm: no /boot/vmlinuz-* with a matching /lib/modules/<version>/modules.order (package linux-image-amd64): %w", ErrMissing)
	}
	sort.Slice(ks, func(i, j int) bool { return versionLess(ks[i].Version, ks[j].Version) })
	return ks[len(ks)-1], nil
}

func kernelFromImage(img string) (Kernel, error) {
	base := filepath.Base(img)
	ver, ok := strings.CutPrefix(base, "vmlinuz-")
	if !ok || ver == "" {
		return Kernel{}, fmt.Errorf("vm: kernel image %s: name is not vmlinuz-<version>", img)
	}
	k := Kernel{Version: ver, Image: img, Modules: filepath.Join("/lib/modules", ver)}
	f, err := os.Open(img)
	if err != nil {
		return Kernel{}, fmt.Errorf("vm: kernel image %s: %w (%w)", img, err, ErrMissing)
	}
	f.Close()
	// modules.order is what depmod needs to rebuild the index for our
	// subset; its presence also proves the tree is a full installed one.
	if _, err := os.Stat(filepath.Join(k.Modules, "modules.order")); err != nil {
		return Kernel{}, fmt.Errorf("vm: modules of kernel %s: %w (%w)", ver, err, ErrMissing)
	}
	return k, nil
}

// versionLess orders kernel versions by their numeric runs, so 6.1.0-10
// sorts after 6.1.0-9 (plain string order would not).
func versionLess(a, b string) bool {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		switch {
		case ea == nil && eb == nil && na != nb:
			return na < nb
		case (ea != nil || eb != nil) && pa[i] != pb[i]:
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

func versionParts(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '~' })
}

// tools are the host programs the harness runs or copies into the guest.
type tools struct {
	qemu    string // qemu-system-x86_64
	busybox string // static busybox, the guest's userland
	ip      string // iproute2's ip: busybox's applet has no netns
	depmod  string // kmod's depmod, to index the staged module subset
	ldd     string // to find ip's shared libraries
	xz      string // optional: unpacks the kernel once for faster boots
}

func findTools() (tools, error) {
	var t tools
	var errs []error
	look := func(dst *string, pkg string, names ...string) {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				*dst = p
				return
			}
			if filepath.IsAbs(n) {
				if st, err := os.Stat(n); err == nil && st.Mode().IsRegular() {
					*dst = n
					return
				}
			}
		}
		errs = append(errs, fmt.Errorf("%s not found (package %s)", names[0], pkg))
	}
	look(&t.qemu, "qemu-system-x86", "qemu-system-x86_64")
	look(&t.busybox, "busybox-static", "/bin/busybox", "busybox")
	look(&t.ip, "iproute2", "/usr/sbin/ip", "/sbin/ip", "/bin/ip")
	look(&t.depmod, "kmod", "depmod", "/usr/sbin/depmod", "/sbin/depmod")
	look(&t.ldd, "libc-bin", "ldd", "/usr/bin/ldd")
	t.xz, _ = exec.LookPath("xz")
	if len(errs) > 0 {
		return t, fmt.Errorf("vm: %w: %w", errors.Join(errs...), ErrMissing)
	}
	return t, nil
}

// Available reports whether this host can run the test VM: qemu, a Debian
// kernel with its modules, busybox, iproute2's ip, depmod and ldd. The error
// wraps ErrMissing and names every missing piece.
func Available() error {
	_, terr := findTools()
	_, kerr := FindKernel()
	return errors.Join(terr, kerr)
}

// PVHEnv names an environment variable: set to 0, the harness boots the
// compressed bzImage instead of the extracted vmlinux (an escape hatch
// should some qemu mishandle PVH entry).
const PVHEnv = "VIGIL_VM_PVH"

// pvhNoteType is XEN_ELFNOTE_PHYS32_ENTRY: a vmlinux carrying it can be
// started by qemu's -kernel directly in 32-bit protected mode (PVH boot).
const pvhNoteType = 18

// bootImage returns the kernel file to give qemu. Debian's vmlinuz is an
// xz-compressed bzImage, and its decompressor needs about 3 s under TCG on
// every boot; the uncompressed vmlinux, extracted once and cached, boots
// through PVH without it. Whenever extraction is impossible (no xz, another
// compression, no PVH entry) the bzImage itself is booted: slower, same
// result. The returned note says which and why, for test logs.
func bootImage(ctx context.Context, k Kernel, t tools) (string, string) {
	if os.Getenv(PVHEnv) == "0" {
		return k.Image, "booting the compressed bzImage: " + PVHEnv + "=0"
	}
	if t.xz == "" {
		return k.Image, "booting the compressed bzImage: xz not found (package xz-utils)"
	}
	st, err := os.Stat(k.Image)
	if err != nil {
		return k.Image, "booting the compressed bzImage: " + err.Error()
	}
	root, err := cacheRoot()
	if err != nil {
		return k.Image, "booting the compressed bzImage: " + err.Error()
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", k.Image, st.Size(), st.ModTime().UnixNano()))
	final := filepath.Join(root, "vmlinux-"+k.Version+"-"+hex.EncodeToString(h[:8]))
	if _, err := os.Stat(final); err == nil {
		return final, "booting the cached uncompressed vmlinux (PVH)"
	}
	if err := extractVmlinux(ctx, k.Image, final, t.xz); err != nil {
		return k.Image, "booting the compressed bzImage: " + err.Error()
	}
	return final, "booting the uncompressed vmlinux (PVH), extracted now"
}

func extractVmlinux(ctx context.Context, image, dst, xz string) error {
	data, err := os.ReadFile(image)
	if err != nil {
		return fmt.Errorf("read %s: %w", image, err)
	}
	// bzImage boot protocol header (Documentation/x86/boot.rst): "HdrS" at
	// 0x202, version at 0x206 (payload fields exist from 2.08), setup_sects
	// at 0x1f1, payload_offset/payload_length at 0x248/0x24c relative to the
	// protected-mode code that follows the setup sectors.
	if len(data) < 0x250 || string(data[0x202:0x206]) != "HdrS" || binary.LittleEndian.Uint16(data[0x206:]) < 0x208 {
		return fmt.Errorf("%s is not a bzImage with boot protocol >= 2.08", image)
	}
	setup := int(data[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(data[0x248:]))
	n := int(binary.LittleEndian.Uint32(data[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(data) {
		return fmt.Errorf("%s: payload %d+%d outside the file", image, off, n)
	}
	payload := data[off : off+n]
	if !bytes.HasPrefix(payload, []byte("\xfd7zXZ\x00")) {
		return fmt.Errorf("%s: payload is not xz-compressed", image)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".vmlinux-")
	if err != nil {
		return fmt.Errorf("create temp vmlinux: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// --single-stream: the build appends the uncompressed size after the
	// xz stream, which xz would otherwise read as a truncated second stream.
	// Go's xz packages lack the x86 BCJ filter the kernel uses, hence xz(1).
	cmd := exec.CommandContext(ctx, xz, "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(payload)
	cmd.Stdout = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xz -dc of %s payload: %w: %s", image, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write temp vmlinux: %w", err)
	}
	if err := checkPVH(tmp.Name()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("move vmlinux into cache: %w", err)
	}
	return nil
}

// checkPVH verifies that the extracted file is an ELF kernel with a PVH
// entry note; without one qemu would refuse it (or, worse, jump nowhere).
func checkPVH(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("extracted vmlinux is not ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("read vmlinux notes: %w", err)
		}
		for len(notes) >= 12 {
			nameSz := int(binary.LittleEndian.Uint32(notes[0:]))
			descSz := int(binary.LittleEndian.Uint32(notes[4:]))
			typ := binary.LittleEndian.Uint32(notes[8:])
			next := 12 + align4(nameSz) + align4(descSz)
			if next > len(notes) {
				break
			}
			if typ == pvhNoteType && nameSz >= 3 && string(notes[12:15]) == "Xen" {
				return nil
			}
			notes = notes[next:]
		}
	}
	return errors.New("extracted vmlinux has no PVH entry note (kernel built without CONFIG_PVH)")
}

func align4(n int) int { return (n + 3) &^ 3 }
