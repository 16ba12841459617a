package track

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadValue(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		content string
		want    int
		detail  string
	}{
		{"42\n", 42, "value 42"},
		{"42", 42, "value 42"},
		{"  -17  \nignored\n", -17, "value -17"},
		{"+3\n", 3, "value 3"},
		{"010\n", 10, "value 10"},
		{"\t0\r\n", 0, "value 0"},
		{"", 0, "empty: value 0"},
		{"\n5\n", 0, "empty: value 0"},
		{"   \n", 0, "empty: value 0"},
		{"12abc\n", 9, `not a number: "12abc"; init value 9`},
		{"abc\n", 9, `not a number: "abc"; init value 9`},
		{"0x10\n", 9, `not a number: "0x10"; init value 9`},
		{"1.5\n", 9, `not a number: "1.5"; init value 9`},
		{"1 2\n", 9, `not a number: "1 2"; init value 9`},
		{"2000000\n", MaxFileValue, "value 2000000 clamped to 1000000"},
		{"-99999999999999999999999\n", -MaxFileValue, "value -99999999999999999999999 clamped to -1000000"},
		{strings.Repeat("1", 5000), 9, "first line longer than 4096 bytes; init value 9"},
		{strings.Repeat("1", 40) + "\n", MaxFileValue, "value 11111111111111111111111111111111... clamped to 1000000"},
		{strings.Repeat("x", 40) + "\n", 9, `not a number: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."; init value 9`},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "v")
		writeFile(t, p, tt.content)
		v, d := readValue(p, 9)
		if v != tt.want || d != tt.detail {
			t.Errorf("%.20q: got %d %q, want %d %q", tt.content, v, d, tt.want, tt.detail)
		}
	}
	if v, d := readValue(filepath.Join(dir, "missing"), -3); v != -3 || d != "missing; init value -3" {
		t.Errorf("missing: %d %q", v, d)
	}
	if v, d := readValue(dir, 4); v != 4 || d != "not a regular file; init value 4" {
		t.Errorf("directory: %d %q", v, d)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if v, d := readValue(fifo, 4); v != 4 || d != "not a regular file; init value 4" {
			t.Errorf("fifo: %d %q", v, d)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("reading a FIFO hangs")
	}
	if os.Geteuid() != 0 {
		p := filepath.Join(dir, "secret")
		writeFile(t, p, "5\n")
		_ = os.Chmod(p, 0)
		if v, d := readValue(p, 1); v != 1 || d != "unreadable: permission denied; init value 1" {
			t.Errorf("unreadable: %d %q", v, d)
		}
	}
}

func TestNewFileValidation(t *testing.T) {
	for _, spec := range []FileSpec{{Path: "/x"}, {Name: "x", Path: "rel/x"}, {Name: "x"}, {Name: "x", Path: "/"}} {
		if _, err := NewFile(spec, nil); err == nil {
			t.Errorf("NewFile(%+v) accepted", spec)
		}
	}
	f, err := NewFile(FileSpec{Name: "x", Path: "/a/../b//c", Init: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Spec().Path != "/b/c" {
		t.Errorf("path %q", f.Spec().Path)
	}
	if u := f.Initial(); u.Value != 5 || !u.Up || !u.Init {
		t.Errorf("initial %+v", u)
	}
}

func value(v int) func(Update) bool {
	return func(u Update) bool { return !u.Init && u.Value == v }
}

func TestFileWatch(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "prio")
	f, err := NewFile(FileSpec{Name: "prio", Path: path, Init: 7}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, f)
	const wait = time.Second // well under the 5 s safety re-read: inotify must do it
	u := r.wait(t, wait, "init value while missing", value(7))
	if u.Detail != "missing; init value 7" || !u.Up {
		t.Errorf("missing: %s", fmtUpdate(u))
	}

	writeFile(t, path, "5\n")
	r.wait(t, wait, "write", value(5))

	// In-place rewrite (truncate, then write).
	writeFile(t, path, "-20\n")
	r.wait(t, wait, "rewrite", value(-20))

	// Atomic replace by rename.
	tmp := filepath.Join(dir, ".prio.tmp")
	writeFile(t, tmp, "10\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	r.wait(t, wait, "rename over", value(10))

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r.wait(t, wait, "delete", value(7))

	writeFile(t, path, "3")
	r.wait(t, wait, "re-create", value(3))

	writeFile(t, path, "garbage\n")
	u = r.wait(t, wait, "garbage", value(7))
	if !strings.Contains(u.Detail, "not a number") {
		t.Errorf("garbage: %s", fmtUpdate(u))
	}

	writeFile(t, path, "")
	r.wait(t, wait, "empty", value(0))

	// Renamed away.
	writeFile(t, path, "4\n")
	r.wait(t, wait, "write", value(4))
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	r.wait(t, wait, "renamed away", value(7))

	// Other files in the directory are ignored.
	writeFile(t, filepath.Join(dir, "other"), "99\n")
	r.quiet(t, 100*time.Millisecond)
}

func TestFileDebounce(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "prio")
	writeFile(t, path, "1\n")
	f, _ := NewFile(FileSpec{Name: "prio", Path: path}, testLog(t))
	r := run(t, f)
	r.wait(t, time.Second, "initial", value(1))
	// A burst of writes closer together than the debounce: few reads, and
	// the last value wins.
	for i := 0; i < 50; i++ {
		writeFile(t, path, strings.Repeat("9", 1+i%3)+"\n")
	}
	writeFile(t, path, "2\n")
	r.wait(t, time.Second, "last value", value(2))
	if n := len(r.all()); n > 10 {
		t.Errorf("%d updates for a burst of 51 writes", n)
	}
}

func TestFileDirectoryAppearsLater(t *testing.T) {
	noLeaks(t)
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "prio")
	f, _ := NewFile(FileSpec{Name: "prio", Path: path, Init: -1}, testLog(t))
	r := run(t, f)
	r.wait(t, time.Second, "missing", value(-1))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "8\n")
	r.wait(t, 3*time.Second, "created with its directory", value(8)) // the directory is looked for every second
	// Watched by inotify again now.
	writeFile(t, path, "6\n")
	r.wait(t, 500*time.Millisecond, "write after the directory appeared", value(6))
	// The directory goes away, and comes back.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r.wait(t, time.Second, "directory removed", value(-1))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "5\n")
	r.wait(t, 3*time.Second, "directory re-created", value(5))
}
