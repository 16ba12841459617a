package events

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func fifoPath(t *testing.T) string { return filepath.Join(t.TempDir(), "notify.fifo") }

func TestKeepalivedLineFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{inst("VI_1", "backup", "master", "master_down_timer", 100), "INSTANCE \"VI_1\" MASTER 100\n"},
		{inst("VI_1", "master", "backup", "higher_priority_advert", 90), "INSTANCE \"VI_1\" BACKUP 90\n"},
		{inst("VI_1", "backup", "fault", "interface_down", 0), "INSTANCE \"VI_1\" FAULT 0\n"},
		{inst("VI_1", "master", "init", "shutdown", 255), "INSTANCE \"VI_1\" STOP 255\n"},
		{Event{Kind: KindGroup, Name: "edge", To: "backup", Priority: 50}, "GROUP \"edge\" BACKUP 0\n"},
		{Event{Kind: KindGroup, Name: "edge", To: "stop"}, "GROUP \"edge\" STOP 0\n"},
		{inst("a\nb", "backup", "master", "preempted", 1), "INSTANCE \"a?b\" MASTER 1\n"},
	} {
		got, ok := KeepalivedLine(tc.e)
		if !ok || got != tc.want {
			t.Errorf("%+v: got %q %v, want %q", tc.e, got, ok, tc.want)
		}
	}
	for _, e := range []Event{{Kind: KindDropped, Dropped: 3}, inst("VI_1", "backup", "deleted", "config_reload", 1)} {
		if got, ok := KeepalivedLine(e); ok {
			t.Errorf("%+v: got %q", e, got)
		}
	}
}

func TestFIFOLinesInOrder(t *testing.T) {
	noLeaks(t)
	path := fifoPath(t)
	b := NewBus(nil)
	defer b.Close()
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: path}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeNamedPipe || fi.Mode().Perm() != DefaultFIFOMode {
		t.Fatalf("fifo not created as expected: %v %v", fi.Mode(), err)
	}
	r := openReader(t, path)
	b.Publish(inst("VI_1", "init", "backup", "startup", 100))
	b.Publish(Event{Kind: KindGroup, Name: "edge", From: "init", To: "backup", Reason: "startup", Priority: 100})
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(inst("VI_1", "master", "init", "shutdown", 100))
	want := []string{`INSTANCE "VI_1" BACKUP 100`, `GROUP "edge" BACKUP 0`, `INSTANCE "VI_1" MASTER 100`, `INSTANCE "VI_1" STOP 100`}
	if got := r.next(t, 4); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range 500 {
		b.Publish(inst(fmt.Sprintf("VI_%d", i), "backup", "master", "preempted", i%256))
	}
	for i, l := range r.next(t, 500) {
		if w := fmt.Sprintf(`INSTANCE "VI_%d" MASTER %d`, i, i%256); l != w {
			t.Fatalf("line %d: %q, want %q", i, l, w)
		}
	}
	r.none(t)
}

// No reader at first: nothing blocks, and the lines wait for the reader.
// Readers leave and come back: each one reads on, in order. A long absence
// fills the pipe; the sink waits and carries on once a reader drains it.
func TestFIFOReadersComeAndGo(t *testing.T) {
	noLeaks(t)
	path := fifoPath(t)
	log, lb := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	if _, err := OpenFIFO(b, log, FIFOConfig{Path: path, Buffer: 10000}); err != nil {
		t.Fatal(err)
	}
	line := func(i int) string { return fmt.Sprintf(`INSTANCE "VI_%d" MASTER 100`, i) }
	seq := 0
	publish := func(n int) {
		for range n {
			b.Publish(inst(fmt.Sprintf("VI_%d", seq), "backup", "master", "preempted", 100))
			seq++
		}
	}
	expect := func(r *fifoReader, from, n int) {
		t.Helper()
		for i, l := range r.next(t, n) {
			if l != line(from+i) {
				t.Fatalf("line %d: %q, want %q", from+i, l, line(from+i))
			}
		}
	}

	start := time.Now()
	publish(3)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("Publish with no reader took %v", d)
	}
	time.Sleep(50 * time.Millisecond)
	r1 := openReader(t, path) // attaches late
	expect(r1, 0, 3)
	publish(2)
	expect(r1, 3, 2)
	r1.close() // detaches

	publish(3) // nobody reading
	r2 := openReader(t, path)
	expect(r2, 5, 3)
	r2.close()

	// Far more than the pipe holds (64 KiB) while nobody reads.
	start = time.Now()
	publish(5000)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("5000 Publish calls with a full FIFO took %v", d)
	}
	waitFor(t, 5*time.Second, "the full-pipe warning", func() bool { return strings.Contains(lb.String(), "notify fifo is full") })
	r3 := openReader(t, path)
	expect(r3, 8, 5000)
	r3.none(t)
	waitFor(t, 5*time.Second, "the recovery log", func() bool { return strings.Contains(lb.String(), "notify fifo is being read again") })
}

func TestFIFOJSONLines(t *testing.T) {
	noLeaks(t)
	path := fifoPath(t)
	b := NewBus(nil)
	defer b.Close()
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: path, Format: FormatJSON}); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, path)
	e := inst("VI_1", "backup", "master", "master_down_timer", 100)
	e.VRID, e.Interface = 51, "eth0"
	b.Publish(e)
	b.Publish(Event{Kind: KindGroup, Name: "edge", From: "backup", To: "master", Reason: "sync_group"})
	got := r.next(t, 2)
	var e1, e2 Event
	if err := json.Unmarshal([]byte(got[0]), &e1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got[1]), &e2); err != nil {
		t.Fatal(err)
	}
	if e1.Seq != 1 || e1.Name != "VI_1" || e1.To != "master" || e1.Reason != "master_down_timer" || e1.Priority != 100 || e1.VRID != 51 || e1.Interface != "eth0" || e1.Time.IsZero() {
		t.Fatalf("event 1: %s", got[0])
	}
	if e2.Seq != 2 || e2.Kind != KindGroup || strings.Contains(got[1], "master\":\"") || strings.Contains(got[1], "vrid") {
		t.Fatalf("event 2: %s", got[1])
	}
	m := string(JSONLine(Event{Kind: KindDropped, Dropped: 4, Time: time.Unix(0, 0).UTC()}))
	if m != `{"time":"1970-01-01T00:00:00Z","kind":"dropped","dropped":4}`+"\n" {
		t.Fatalf("marker %q", m)
	}
}

func TestFIFOPathChecks(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	b := NewBus(nil)
	defer b.Close()
	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, nil, 0o644)
	link := filepath.Join(dir, "link")
	syscall.Mkfifo(filepath.Join(dir, "real.fifo"), 0o600)
	os.Symlink(filepath.Join(dir, "real.fifo"), link)
	for _, tc := range []struct{ path, want string }{
		{regular, "exists and is not a FIFO (regular file)"},
		{dir, "exists and is not a FIFO (directory)"},
		{link, "exists and is not a FIFO (symbolic link)"},
		{filepath.Join(dir, "missing", "x.fifo"), "no such file or directory"},
		{"", "empty path"},
	} {
		if _, err := OpenFIFO(b, nil, FIFOConfig{Path: tc.path}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.path, err, tc.want)
		}
	}
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: filepath.Join(dir, "f"), Format: "xml"}); err == nil || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("format: %v", err)
	}
	// An existing FIFO of ours is brought to the wanted mode.
	existing := filepath.Join(dir, "existing.fifo")
	syscall.Mkfifo(existing, 0o600)
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: existing, Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(existing); fi.Mode().Perm() != 0o640 {
		t.Errorf("existing FIFO's mode %v, want 0640", fi.Mode())
	}
	created := filepath.Join(dir, "created.fifo")
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: created, Mode: 0o660}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(created); fi.Mode().Perm() != 0o660 {
		t.Errorf("created FIFO mode %v", fi.Mode())
	}
}

// A reader that removes the FIFO and makes a new one (keepalived's sample
// reader does) still gets the next lines; so does one after a plain rm.
func TestFIFOReplaced(t *testing.T) {
	noLeaks(t)
	path := fifoPath(t)
	log, _ := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	f, err := OpenFIFO(b, log, FIFOConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	r := openReader(t, path)
	b.Publish(inst("VI_1", "init", "backup", "startup", 100))
	r.next(t, 1)
	r.close()

	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// The sink moves to the new FIFO when it next writes; until then a
	// blocking open of the new one waits for a writer.
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	r = openReader(t, path)
	if got := r.next(t, 1); got[0] != `INSTANCE "VI_1" MASTER 100` {
		t.Fatalf("got %q", got)
	}
	r.close()

	os.Remove(path)
	b.Publish(inst("VI_1", "master", "backup", "higher_priority_advert", 100))
	waitFor(t, 5*time.Second, "the FIFO to be recreated", func() bool {
		fi, err := os.Lstat(path)
		return err == nil && fi.Mode().Type() == fs.ModeNamedPipe
	})
	r = openReader(t, path)
	if got := r.next(t, 1); got[0] != `INSTANCE "VI_1" BACKUP 100` {
		t.Fatalf("got %q", got)
	}
	f.Close()
	b.Publish(inst("VI_1", "backup", "master", "preempted", 100))
	r.none(t)
	if f.Path() != path {
		t.Fatal(f.Path())
	}
}

// The protocol path is never held: a subscriber that never reads, a script
// that never ends and a FIFO nobody reads at the same time. Close then
// ends everything within the drain timeout, leaving no goroutine behind.
func TestPublishNeverBlocks(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	hang := script(t, dir, "hang", `exec sleep 60`)
	log, _ := testLogger(t)
	b := NewBus(log, WithDrainTimeout(300*time.Millisecond))
	stuck := b.Subscribe(1)
	_ = stuck
	rec := make(recorder, 10)
	NewNotifier(b, log, NotifyConfig{
		Instances: map[string]ScriptSpec{"VI_1": {Master: []string{hang}, Backup: []string{hang}, Timeout: time.Minute}},
		Buffer:    16,
		OnResult:  rec.add,
	})
	if _, err := OpenFIFO(b, log, FIFOConfig{Path: filepath.Join(dir, "fifo"), Buffer: 16}); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	start := time.Now()
	for i := range 20000 {
		to := []string{"master", "backup"}[i%2]
		t0 := time.Now()
		b.Publish(inst("VI_1", "x", to, "preempted", 100))
		worst = max(worst, time.Since(t0))
	}
	total := time.Since(start)
	t.Logf("20000 Publish calls: %v, slowest %v", total, worst)
	if total > 2*time.Second || worst > 100*time.Millisecond {
		t.Fatalf("Publish blocked: total %v, slowest %v", total, worst)
	}
	if stuck.Dropped() == 0 {
		t.Fatal("the stuck subscriber dropped nothing")
	}
	start = time.Now()
	b.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if r := rec.next(t); r.Err == nil || !strings.Contains(r.Err.Error(), "shutdown") {
		t.Fatalf("the hanging script: %+v", r)
	}
	if _, ok := <-stuck.C(); ok {
		if _, ok := <-stuck.C(); ok {
			t.Fatal("stuck subscriber's channel still open after Close")
		}
	}
}
