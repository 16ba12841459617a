package events

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/internal/proc/proctest"
)

// privateDir returns a new directory that only root may write to and every
// user may enter (0755, like /run/vigil), removed when the test ends.
func privateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-fifo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asUser runs a shell script as uid:gid (no supplementary groups), with
// args as $1...; it returns the output.
func asUser(t *testing.T, uid, gid uint32, script string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func fifoStat(t *testing.T, path string) (os.FileMode, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), fi.Sys().(*syscall.Stat_t)
}

// mkfifoOwned makes a FIFO with that owner and mode (chmod after the
// umask).
func mkfifoOwned(t *testing.T, path string, uid, gid int, mode uint32) {
	t.Helper()
	if err := syscall.Mkfifo(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
}

// The FIFO carries every event and accepts lines into the stream: by
// default no other user may open it, to read or to write.
func TestFIFOClosedToOtherUsers(t *testing.T) {
	requireRoot(t)
	uid, gid := proctest.Nobody(t)
	noLeaks(t)
	path := filepath.Join(privateDir(t), "notify.fifo")
	b := NewBus(nil)
	defer b.Close()
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: path}); err != nil {
		t.Fatal(err)
	}
	mode, st := fifoStat(t, path)
	if mode.Perm() != 0o600 || st.Uid != 0 || st.Gid != uint32(os.Getegid()) {
		t.Errorf("FIFO mode %v owner %d:%d, want 0600 root:%d", mode, st.Uid, st.Gid, os.Getegid())
	}
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	for _, tc := range []struct{ what, script string }{
		{"read", `exec 3<"$1"; read -r l <&3; echo "$l"`},
		{"write", `exec 3>"$1"; echo 'INSTANCE "VI_1" BACKUP 1' >&3`},
	} {
		out, err := asUser(t, uid, gid, tc.script, path)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody could %s the FIFO: err %v, output %q", tc.what, err, out)
		}
	}
}

// With a group, members of that group may read the FIFO, others still not.
func TestFIFOGroupMayRead(t *testing.T) {
	requireRoot(t)
	uid, gid := proctest.Nobody(t)
	grp, err := user.LookupGroupId(strconv.Itoa(int(gid)))
	if err != nil {
		t.Skipf("nobody's group %d has no name", gid)
	}
	noLeaks(t)
	dir := privateDir(t)
	b := NewBus(nil)
	defer b.Close()
	for i, group := range []string{grp.Name, strconv.Itoa(int(gid))} {
		path := filepath.Join(dir, "notify"+strconv.Itoa(i)+".fifo")
		if _, err := OpenFIFO(b, nil, FIFOConfig{Path: path, Group: group}); err != nil {
			t.Fatalf("group %q: %v", group, err)
		}
		mode, st := fifoStat(t, path)
		if mode.Perm() != 0o660 || st.Uid != 0 || st.Gid != gid {
			t.Errorf("group %q: FIFO mode %v owner %d:%d, want 0660 root:%d", group, mode, st.Uid, st.Gid, gid)
		}
	}
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	read := `exec 3<"$1"; read -r l <&3; echo "$l"`
	for i := range 2 {
		path := filepath.Join(dir, "notify"+strconv.Itoa(i)+".fifo")
		out, err := asUser(t, uid, gid, read, path)
		if err != nil || out != `INSTANCE "VI_1" MASTER 100` {
			t.Errorf("a member of the group reading %s: err %v, output %q", path, err, out)
		}
		// Not in the group (daemon is gid 1 on Debian; any other works).
		out, err = asUser(t, uid, gid+1, read, path)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("a user outside the group could read %s: err %v, output %q", path, err, out)
		}
	}
	_, err = OpenFIFO(b, nil, FIFOConfig{Path: filepath.Join(dir, "x.fifo"), Group: "no-such-group-vigil"})
	if err == nil || !strings.Contains(err.Error(), `group "no-such-group-vigil"`) || !strings.Contains(err.Error(), "want a group name or a numeric gid") {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "x.fifo")); err == nil {
		t.Error("FIFO created despite the unknown group")
	}
	_, err = OpenFIFO(b, nil, FIFOConfig{Path: filepath.Join(dir, "y.fifo"), Mode: 0o644})
	if err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("mode 0644: %v", err)
	}
}

// An existing path is used only when it is a FIFO of root's; then it is
// brought to the wanted mode and group.
func TestFIFOExistingPathChecks(t *testing.T) {
	requireRoot(t)
	uid, gid := proctest.Nobody(t)
	noLeaks(t)
	dir := privateDir(t)
	b := NewBus(nil)
	defer b.Close()

	theirs := filepath.Join(dir, "theirs.fifo")
	mkfifoOwned(t, theirs, int(uid), int(gid), 0o666)
	rootFIFO := filepath.Join(dir, "root.fifo")
	mkfifoOwned(t, rootFIFO, 0, 0, 0o666)
	link := filepath.Join(dir, "link.fifo")
	if err := os.Symlink(rootFIFO, link); err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{theirs, theirs + " is owned by nobody (uid " + strconv.Itoa(int(uid)) + "), not root"},
		{theirs, "remove it (vigil creates its own) or chown it to root"},
		{link, link + " exists and is not a FIFO (symbolic link)"},
		{regular, regular + " exists and is not a FIFO (regular file)"},
	} {
		if _, err := OpenFIFO(b, nil, FIFOConfig{Path: tc.path}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.path, err, tc.want)
		}
	}
	// Nothing refused was changed.
	if mode, st := fifoStat(t, theirs); mode.Perm() != 0o666 || st.Uid != uid {
		t.Errorf("refused FIFO changed: %v uid %d", mode, st.Uid)
	}
	if mode, _ := fifoStat(t, rootFIFO); mode.Perm() != 0o666 {
		t.Errorf("the link's target changed: %v", mode)
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Errorf("regular file now %q", b)
	}

	// root's FIFO, open to all and in another group, ends at 0600 in ours.
	if err := os.Chown(rootFIFO, 0, int(gid)); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFIFO(b, nil, FIFOConfig{Path: rootFIFO})
	if err != nil {
		t.Fatal(err)
	}
	if mode, st := fifoStat(t, rootFIFO); mode.Perm() != 0o600 || st.Gid != uint32(os.Getegid()) {
		t.Errorf("existing root FIFO: %v gid %d, want 0600 gid %d", mode, st.Gid, os.Getegid())
	}
	f.Close()
	// With a group: 0660 in that group.
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: rootFIFO, Group: strconv.Itoa(int(gid))}); err != nil {
		t.Fatal(err)
	}
	if mode, st := fifoStat(t, rootFIFO); mode.Perm() != 0o660 || st.Gid != gid {
		t.Errorf("existing root FIFO with a group: %v gid %d, want 0660 gid %d", mode, st.Gid, gid)
	}
}

// The path is swapped between the checks and the open: the descriptor is
// checked, not the path, and nothing but the checked FIFO is changed.
func TestFIFOSwappedWhileOpening(t *testing.T) {
	requireRoot(t)
	uid, gid := proctest.Nobody(t)
	noLeaks(t)
	dir := privateDir(t)
	b := NewBus(nil)
	defer b.Close()
	t.Cleanup(func() { testHookFIFOBeforeOpen = nil })
	swapOnce := func(with func(path string)) {
		testHookFIFOBeforeOpen = func(path string) {
			testHookFIFOBeforeOpen = nil
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
			with(path)
		}
	}

	// Another user's FIFO: refused (at the descriptor, then on the retry).
	path := filepath.Join(dir, "a.fifo")
	mkfifoOwned(t, path, 0, 0, 0o600)
	evil := filepath.Join(dir, "evil.fifo")
	swapOnce(func(path string) {
		mkfifoOwned(t, evil, int(uid), int(gid), 0o666)
		if err := os.Rename(evil, path); err != nil {
			t.Error(err)
		}
	})
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "owned by nobody") {
		t.Errorf("swapped for nobody's FIFO: %v", err)
	}
	if mode, st := fifoStat(t, path); mode.Perm() != 0o666 || st.Uid != uid || st.Gid != gid {
		t.Errorf("nobody's FIFO was changed: %v %d:%d", mode, st.Uid, st.Gid)
	}

	// A symbolic link: not followed.
	path = filepath.Join(dir, "b.fifo")
	mkfifoOwned(t, path, 0, 0, 0o600)
	target := filepath.Join(dir, "target.fifo")
	mkfifoOwned(t, target, 0, int(gid), 0o666)
	swapOnce(func(path string) {
		if err := os.Symlink(target, path); err != nil {
			t.Error(err)
		}
	})
	if _, err := OpenFIFO(b, nil, FIFOConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("swapped for a link: %v", err)
	}
	if mode, st := fifoStat(t, target); mode.Perm() != 0o666 || st.Gid != gid {
		t.Errorf("the link's target was changed: %v gid %d", mode, st.Gid)
	}

	// Another root FIFO: checked again and used.
	path = filepath.Join(dir, "c.fifo")
	mkfifoOwned(t, path, 0, 0, 0o600)
	var ino uint64
	swapOnce(func(path string) {
		mkfifoOwned(t, path, 0, 0, 0o644)
		_, st := fifoStat(t, path)
		ino = st.Ino
	})
	f, err := OpenFIFO(b, nil, FIFOConfig{Path: path})
	if err != nil {
		t.Fatalf("swapped for another root FIFO: %v", err)
	}
	if mode, st := fifoStat(t, path); mode.Perm() != 0o600 || st.Ino != ino || f.ino != ino {
		t.Errorf("after the swap: %v ino %d (sink %d), want 0600 ino %d", mode, st.Ino, f.ino, ino)
	}
}

// A FIFO replaced by another user's while the sink runs is not followed:
// the sink logs it and goes on writing to the FIFO it has.
func TestFIFOReplacementByOtherUserRefused(t *testing.T) {
	requireRoot(t)
	uid, gid := proctest.Nobody(t)
	noLeaks(t)
	dir := privateDir(t)
	path := filepath.Join(dir, "notify.fifo")
	log, lb := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	if _, err := OpenFIFO(b, log, FIFOConfig{Path: path}); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, path) // root's reader of the real FIFO
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mkfifoOwned(t, path, int(uid), int(gid), 0o666)
	theirs, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0) // what nobody would read
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	if got := r.next(t, 1); got[0] != `INSTANCE "VI_1" MASTER 100` {
		t.Fatalf("got %q", got)
	}
	buf := make([]byte, 100)
	_ = theirs.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := theirs.Read(buf); n > 0 {
		t.Fatalf("the other user's FIFO got %q (%v)", buf[:n], err)
	}
	waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
		return strings.Contains(lb.String(), "cannot be reopened") && strings.Contains(lb.String(), "owned by nobody")
	})
}

// A directory every user may write to without the sticky bit lets anyone
// swap the FIFO: that is logged.
func TestFIFODirectoryWarning(t *testing.T) {
	noLeaks(t)
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o777, true},
		{0o777 | os.ModeSticky, false},
		{0o755, false},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		log, lb := testLogger(t)
		b := NewBus(log)
		if _, err := OpenFIFO(b, log, FIFOConfig{Path: filepath.Join(dir, "notify.fifo")}); err != nil {
			t.Fatal(err)
		}
		b.Close()
		got := strings.Contains(lb.String(), "directory is writable by every user and has no sticky bit")
		if got != tc.warn {
			t.Errorf("directory %v: warned %v, want %v:\n%s", tc.mode, got, tc.warn, lb.String())
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: files of other users")
	}
}
