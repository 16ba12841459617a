package vm

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// readCPIO parses newc archives (several may be concatenated) into
// name -> "mode:content" for the tests.
func readCPIO(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	pad := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; off < len(b); {
		if b[off] == 0 {
			off++
			continue
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic at %d: %q", off, h[:6])
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+nameSize-1])
		off = pad(off + 110 + nameSize)
		data := string(b[off : off+size])
		off = pad(off + size)
		if name == "TRAILER!!!" {
			continue
		}
		if rmaj, rmin := field(9), field(10); rmaj != 0 || rmin != 0 {
			data = strconv.Itoa(rmaj) + "," + strconv.Itoa(rmin)
		}
		out[name] = strconv.FormatInt(int64(mode), 8) + ":" + data
	}
	return out
}

func TestCPIOWriter(t *testing.T) {
	dir := t.TempDir()
	src := dir + "/x"
	if err := os.WriteFile(src, []byte("abcde"), 0o750); err != nil {
		t.Fatal(err)
	}
	os.Chmod(src, 0o750) // umask-proof
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	for _, err := range []error{
		w.Bytes("/a/b/c", 0o644, []byte("hi")),
		w.File("a/x", src),
		w.Symlink("bin/sh", "/bin/busybox"),
		w.CharDev("dev/console", 0o600, 5, 1),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A second archive appended, as Run does for per-run files.
	w2 := newCPIOWriter(&buf)
	if err := w2.Bytes("vigil/run", 0o644, []byte("x=1\n")); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, buf.Bytes())
	want := map[string]string{
		"a": "40755:", "a/b": "40755:", "a/b/c": "100644:hi", "a/x": "100750:abcde",
		"bin": "40755:", "bin/sh": "120777:/bin/busybox", "dev": "40755:", "dev/console": "20600:5,1",
		"vigil": "40755:", "vigil/run": "100644:x=1\n",
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	// If the system has a cpio tool, it must agree the archive is valid.
	if cpio, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command(cpio, "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "a/b/c") {
			t.Errorf("cpio -t: %v\n%s", err, out)
		}
	}
}

// TestRunScriptQuoting runs the generated /vigil/run through the host's sh
// to check that arguments and environment values survive any quoting.
func TestRunScriptQuoting(t *testing.T) {
	args := []string{"printf", `%s|`, "a b", `it's`, `"q"`, `$HOME`, "`id`", "x\ny", ""}
	script, err := runScript(Spec{Command: args, Env: []string{"V=x'y z"}}, "abc")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", string(script)+"\nvigil_command; printf '%s|%s' \"$V\" \"$VIGIL_NONCE\"").CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	want := "a b|it's|\"q\"|$HOME|`id`|x\ny||x'y z|abc"
	if string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	for _, bad := range []Spec{
		{Command: []string{"x"}, Env: []string{"1A=b"}},
		{Command: []string{"x"}, Env: []string{"novalue"}},
		{Command: []string{"x"}, Modules: []string{"a;reboot"}},
	} {
		if _, err := runScript(bad, "n"); err == nil {
			t.Errorf("runScript(%+v) accepted bad input", bad)
		}
	}
}

func TestMarkerRead(t *testing.T) {
	stream := "VIGIL-VM-START n1 2.50\r\nline one\r\nVIGIL-VM-EXIT other 0\nmid" +
		"\nVIGIL-VM-EXIT n1 42\n"
	var m marker
	var live bytes.Buffer
	end := make(chan struct{}, 1)
	m.read(strings.NewReader(stream), "n1", &live, end)
	if !m.exited || m.code != 42 || m.uptime.Seconds() != 2.5 || m.started.IsZero() {
		t.Fatalf("marker state: exited %v code %d uptime %v", m.exited, m.code, m.uptime)
	}
	// A marker with another nonce is output, not an end.
	want := "line one\nVIGIL-VM-EXIT other 0\nmid"
	if m.out.String() != want {
		t.Fatalf("output %q, want %q", m.out.String(), want)
	}
	if live.String() != want+"\n" {
		t.Fatalf("live log %q", live.String())
	}
	select {
	case <-end:
	default:
		t.Fatal("end marker not signalled")
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-10-amd64", true},
		{"6.1.0-10-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-28-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
		{"6.1.0-56-amd64", "6.1.0-56-cloud-amd64", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}

func TestSharedLibsParsing(t *testing.T) {
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("no ldd on this host")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	libs, err := sharedLibs(t.Context(), ldd, sh)
	if err != nil {
		t.Skipf("sh is not dynamically linked here: %v", err)
	}
	for _, l := range libs {
		if !strings.HasPrefix(l, "/") || strings.Contains(l, "vdso") {
			t.Errorf("bad library path %q in %v", l, libs)
		}
	}
}
