package proc

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestOneLine(t *testing.T) {
	tests := []struct {
		in   string
		cut  bool
		want string
	}{
		{"", false, ""},
		{"ok\n", false, "ok"},
		{"a\nb\n", false, "a | b"},
		{"bad\x00\x1b[31m\xffutf8", false, "bad  [31m utf8"},
		{"caf\xc3", true, "caf ..."},
	}
	for _, tt := range tests {
		if got := OneLine([]byte(tt.in), tt.cut); got != tt.want {
			t.Errorf("OneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRunResults(t *testing.T) {
	sh := func(s string) []string { return []string{"/bin/sh", "-c", s} }
	tests := []struct {
		name   string
		cmd    Cmd
		exited bool
		exit   int
		detail string
	}{
		{"ok", Cmd{Argv: sh("echo hi")}, true, 0, "exit status 0: hi"},
		{"exit 7", Cmd{Argv: sh("exit 7")}, true, 7, "exit status 7"},
		{"signal", Cmd{Argv: sh("kill -TERM $$")}, false, -1, "killed by signal terminated"},
		{"missing", Cmd{Argv: []string{"/nonexistent/prog"}}, false, -1, "cannot execute /nonexistent/prog: no such file or directory"},
		{"bad user", Cmd{Argv: sh("true"), User: "no-such-user-vigil"}, false, -1, `cannot run as "no-such-user-vigil"`},
		// Timeout generous against the sleep so a loaded machine still
		// reports the kill, not a normal exit.
		{"timeout", Cmd{Argv: sh("sleep 30"), Timeout: 100 * time.Millisecond}, false, -1, "timeout after 100ms, process group killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Run(context.Background(), tt.cmd)
			if r.Exited() != tt.exited || r.Exit != tt.exit || !strings.HasPrefix(r.Detail(), tt.detail) {
				t.Errorf("got exited=%v exit=%d detail %q, want %v %d %q", r.Exited(), r.Exit, r.Detail(), tt.exited, tt.exit, tt.detail)
			}
		})
	}
}

func TestRunCapsOutput(t *testing.T) {
	r := Run(context.Background(), Cmd{Argv: []string{"/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' 'x'"}, MaxOutput: 100})
	if want := strings.Repeat("x", 100) + " ..."; r.Output != want {
		t.Errorf("output %q, want %q", r.Output, want)
	}
}

func TestRunStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	r := Run(ctx, Cmd{Argv: []string{"/bin/sleep", "30"}})
	if !r.Stopped || r.Detail() != "stopped" {
		t.Errorf("got %+v", r)
	}
}

func TestWaitExitedDoesNotReap(t *testing.T) {
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "100"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid
	_ = p.Release()
	_ = unix.Kill(pid, unix.SIGKILL)
	if err := WaitExited(pid); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("reaped by WaitExited: %v", err)
	}
	// The state is the field after the command name, which ends at the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'Z' {
		t.Errorf("stat %q, want a zombie", b)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
}
