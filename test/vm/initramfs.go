package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

//go:embed init.sh
var initScript []byte

// imageFormat is part of the cache key: bump it whenever the layout written
// by buildInitramfs changes in a way the input hash cannot see.
const imageFormat = "vigil-vm-initramfs/1"

// moduleDirs are copied whole (the brief of the VM: everything networking,
// crypto and library modules, so later scenarios can modprobe nf_tables,
// 8021q, sch_netem, ... without touching this harness).
var moduleDirs = []string{"kernel/net/", "kernel/crypto/", "kernel/lib/"}

// skipModuleDirs are the parts of net/ that no IP load-balancing scenario
// can use: radio and field-bus stacks, legacy protocol families, network
// file systems. They are a third of net/ (18 MB), and the guest kernel
// unpacks the initramfs at roughly 25 MB/s under TCG, so leaving them out
// saves most of a second on every boot. A module one of them needs is
// still pulled in as a dependency.
var skipModuleDirs = []string{
	"6lowpan", "appletalk", "atm", "ax25", "batman-adv", "bluetooth", "caif", "can", "ceph",
	"ieee802154", "lapb", "mac80211", "mac802154", "netrom", "nfc", "phonet", "rds",
	"rose", "rxrpc", "sunrpc", "wireless", "x25",
}

// driverModules are the few device drivers the scenarios use; the rest of
// drivers/net is 77 MB of hardware drivers a VM without NICs never loads.
// Their dependencies (and those of everything under moduleDirs) are added
// from modules.dep, wherever they live.
var driverModules = []string{
	"kernel/drivers/net/veth.ko",
	"kernel/drivers/net/dummy.ko",
	"kernel/drivers/net/macvlan.ko",
	"kernel/drivers/net/ipvlan/ipvlan.ko",
	"kernel/drivers/net/vxlan/vxlan.ko",
	"kernel/drivers/net/ifb.ko",
}

// CacheEnv names an environment variable that overrides where built
// initramfs images and test binaries are kept.
const CacheEnv = "VIGIL_VM_CACHE"

// cacheRoot is $VIGIL_VM_CACHE, else $XDG_CACHE_HOME/vigil-vm (or
// ~/.cache/vigil-vm), else a directory under the system temp dir: never the
// repository, whose tree other engineers and CI clone.
func cacheRoot() (string, error) {
	dir := os.Getenv(CacheEnv)
	if dir == "" {
		if c, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(c, "vigil-vm")
		} else {
			dir = filepath.Join(os.TempDir(), "vigil-vm-cache")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("vm: create cache dir: %w", err)
	}
	return dir, nil
}

// input is one host file that goes into the base image.
type input struct {
	guest string // path inside the guest
	host  string // path on the host (symlinks followed)
}

// baseInputs lists the module subset (with dependency closure) and the
// userland files of the base image.
type baseInputs struct {
	modules  []string // paths relative to the kernel's module dir
	files    []input  // busybox, ip, its libraries and loader
	applets  []string // busybox applet paths (relative, e.g. "bin/sh")
	kernel   Kernel
	tools    tools
	metaFile []string // module-dir metadata depmod reads (modules.order, ...)
}

func collectInputs(ctx context.Context, k Kernel, t tools) (*baseInputs, error) {
	in := &baseInputs{kernel: k, tools: t}
	mods, err := moduleClosure(k)
	if err != nil {
		return nil, err
	}
	in.modules = mods
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if _, err := os.Stat(filepath.Join(k.Modules, f)); err == nil {
			in.metaFile = append(in.metaFile, f)
		}
	}

	if err := checkStatic(t.busybox); err != nil {
		return nil, err
	}
	in.files = append(in.files, input{guest: "/bin/busybox", host: t.busybox})
	out, err := exec.CommandContext(ctx, t.busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("vm: list busybox applets (%s --list-full): %w", t.busybox, err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "bin/busybox" {
			in.applets = append(in.applets, a)
		}
	}

	// iproute2's ip is dynamically linked: it goes in at /usr/sbin/ip with
	// every library ldd names, at the same paths, plus the loader.
	in.files = append(in.files, input{guest: "/usr/sbin/ip", host: t.ip})
	libs, err := sharedLibs(ctx, t.ldd, t.ip)
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		in.files = append(in.files, input{guest: l, host: l})
	}
	return in, nil
}

// moduleClosure returns moduleDirs' modules plus driverModules plus every
// module they depend on, per the host's modules.dep for that kernel.
func moduleClosure(k Kernel) ([]string, error) {
	f, err := os.Open(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("vm: read modules.dep of kernel %s: %w (%w)", k.Version, err, ErrMissing)
	}
	defer f.Close()
	deps := map[string][]string{}
	var todo []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		if wantModule(mod) {
			todo = append(todo, mod)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("vm: read modules.dep of kernel %s: %w", k.Version, err)
	}
	for _, m := range driverModules {
		if _, ok := deps[m]; !ok {
			return nil, fmt.Errorf("vm: kernel %s has no module %s", k.Version, m)
		}
		todo = append(todo, m)
	}
	seen := map[string]bool{}
	for len(todo) > 0 {
		m := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[m] {
			continue
		}
		seen[m] = true
		todo = append(todo, deps[m]...)
	}
	mods := make([]string, 0, len(seen))
	for m := range seen {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	return mods, nil
}

func wantModule(mod string) bool {
	for _, d := range skipModuleDirs {
		if strings.HasPrefix(mod, "kernel/net/"+d+"/") {
			return false
		}
	}
	for _, d := range moduleDirs {
		if strings.HasPrefix(mod, d) {
			return true
		}
	}
	return false
}

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("vm: read %s as ELF: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("vm: %s is dynamically linked; the guest needs busybox-static: %w", path, ErrMissing)
		}
	}
	return nil
}

// sharedLibs returns the absolute paths of the libraries and the dynamic
// loader that ldd reports for bin.
func sharedLibs(ctx context.Context, ldd, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, ldd, bin).Output()
	if err != nil {
		return nil, fmt.Errorf("vm: ldd %s: %w", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("vm: ldd %s: library missing: %s", bin, line)
		}
		if _, after, ok := strings.Cut(line, "=>"); ok {
			line = strings.TrimSpace(after)
		}
		p, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("vm: ldd %s listed no libraries: %q", bin, out)
	}
	return libs, nil
}

// key hashes everything that determines the image: the format, the init
// script, and path, size and mtime of every input file. Metadata instead of
// content keeps a cache hit cheap (no 45 MB read per run); the inputs are
// package-managed files, which an upgrade replaces with a new mtime.
func (in *baseInputs) key() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", imageFormat, in.kernel.Version, in.kernel.Image)
	h.Write(initScript)
	add := func(guest, host string) error {
		st, err := os.Stat(host)
		if err != nil {
			return fmt.Errorf("vm: stat input %s: %w", host, err)
		}
		fmt.Fprintf(h, "\x00%s\x00%s\x00%d\x00%d\x00%o", guest, host, st.Size(), st.ModTime().UnixNano(), st.Mode())
		return nil
	}
	for _, m := range append(append([]string{}, in.modules...), in.metaFile...) {
		if err := add(m, filepath.Join(in.kernel.Modules, m)); err != nil {
			return "", err
		}
	}
	for _, f := range in.files {
		if err := add(f.guest, f.host); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(h, "\x00%s", strings.Join(in.applets, ","))
	return in.kernel.Version + "-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// baseImage returns the path of the cached base initramfs for k, building
// it first if needed. Concurrent callers may both build; each renames a
// complete file into place, so readers never see a partial image.
func baseImage(ctx context.Context, k Kernel, t tools) (string, error) {
	in, err := collectInputs(ctx, k, t)
	if err != nil {
		return "", err
	}
	key, err := in.key()
	if err != nil {
		return "", err
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	final := filepath.Join(root, "initramfs-"+key+".cpio")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	stage, err := os.MkdirTemp(root, ".stage-")
	if err != nil {
		return "", fmt.Errorf("vm: create staging dir: %w", err)
	}
	defer os.RemoveAll(stage)
	tmp := filepath.Join(stage, "initramfs.cpio")
	if err := in.build(ctx, stage, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("vm: move initramfs into cache: %w", err)
	}
	pruneCache(root, final)
	return final, nil
}

// pruneCache removes images of older inputs (a kernel upgrade or an edited
// init script leaves a 45 MB file each) once nothing can still be copying
// them: only those untouched for an hour.
func pruneCache(root, keep string) {
	old, _ := filepath.Glob(filepath.Join(root, "initramfs-*.cpio"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && p != keep && time.Since(st.ModTime()) > time.Hour {
			os.Remove(p)
		}
	}
}

func (in *baseInputs) build(ctx context.Context, stage, out string) error {
	k := in.kernel
	// Stage the module subset and let depmod index exactly that subset, so
	// busybox modprobe in the guest resolves dependencies (crc32c_generic
	// aside, see init.sh) from a modules.dep that lists only what is there.
	modRoot := filepath.Join(stage, "lib", "modules", k.Version)
	for _, m := range append(append([]string{}, in.modules...), in.metaFile...) {
		if err := copyFile(filepath.Join(modRoot, m), filepath.Join(k.Modules, m)); err != nil {
			return fmt.Errorf("vm: stage module %s: %w", m, err)
		}
	}
	if out, err := exec.CommandContext(ctx, in.tools.depmod, "-b", stage, k.Version).CombinedOutput(); err != nil {
		return fmt.Errorf("vm: depmod -b %s %s failed: %w: %s", stage, k.Version, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat(filepath.Join(modRoot, "modules.dep")); err != nil {
		return fmt.Errorf("vm: depmod wrote no modules.dep: %w", err)
	}

	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("vm: create initramfs: %w", err)
	}
	defer f.Close()
	w := newCPIOWriter(f)
	err = in.writeArchive(w, modRoot)
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return fmt.Errorf("vm: write initramfs: %w", err)
	}
	return nil
}

func (in *baseInputs) writeArchive(w *cpioWriter, modRoot string) error {
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "root", "etc", "vigil", "lib64", "usr/sbin", "usr/bin", "sbin", "bin"} {
		if err := w.Dir(d, 0o755); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init's stdio before init can mount
	// devtmpfs, so the node must be in the archive itself.
	if err := w.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := w.Symlink("var/run", "/run"); err != nil {
		return err
	}
	if err := w.Bytes("init", 0o755, initScript); err != nil {
		return err
	}
	etc := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
		// Go's resolver reads /etc/hosts; without it "localhost" would go to
		// DNS, which the guest does not have.
		"etc/hosts":    "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
		"etc/hostname": "vigil-vm\n",
	}
	names := make([]string, 0, len(etc))
	for n := range etc {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.Bytes(n, 0o644, []byte(etc[n])); err != nil {
			return err
		}
	}
	taken := map[string]bool{}
	for _, f := range in.files {
		if err := w.File(f.guest, f.host); err != nil {
			return err
		}
		taken[cleanName(f.guest)] = true
	}
	for _, a := range in.applets {
		if taken[cleanName(a)] {
			continue
		}
		if err := w.Symlink(a, "/bin/busybox"); err != nil {
			return err
		}
	}
	return w.Tree("lib/modules/"+in.kernel.Version, modRoot)
}

func copyFile(dst, src string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(d, s); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
