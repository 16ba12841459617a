package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// The initramfs is written in the kernel's "newc" cpio format by this small
// writer rather than by a cpio binary, so a CI machine needs nothing beyond Go
// to pack it and the archive is byte-for-byte reproducible (fixed uid, gid,
// mtime and inode numbering).

const (
	cpioModeDir  = 0o040000
	cpioModeFile = 0o100000
	cpioModeLink = 0o120000
	cpioModeChar = 0o020000
)

type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	dirs map[string]bool // directories already emitted, so parents are written once
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}}
}

// header writes one newc header and the padded name. name has no leading
// slash: the kernel unpacks relative to the root either way, and this is the
// form gen_init_cpio and the cpio tool produce.
func (c *cpioWriter) header(name string, mode uint32, size int64, nlink, rmajor, rminor uint32) error {
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes exceeds the newc 4 GiB limit", name, size)
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := c.w.WriteString(hdr); err != nil {
		return fmt.Errorf("cpio: write header of %s: %w", name, err)
	}
	if _, err := c.w.WriteString(name + "\x00"); err != nil {
		return fmt.Errorf("cpio: write name of %s: %w", name, err)
	}
	return c.pad(int64(len(hdr) + len(name) + 1))
}

// pad aligns to 4 bytes, as newc requires after the name and after the data.
func (c *cpioWriter) pad(n int64) error {
	if r := n % 4; r != 0 {
		if _, err := c.w.Write(make([]byte, 4-r)); err != nil {
			return fmt.Errorf("cpio: write padding: %w", err)
		}
	}
	return nil
}

func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// Dir writes a directory and, first, any parents not yet written: the kernel
// does not create missing parents, it silently drops the entry.
func (c *cpioWriter) Dir(name string, perm uint32) error {
	name = cleanName(name)
	if c.dirs[name] {
		return nil
	}
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	c.dirs[name] = true
	return c.header(name, cpioModeDir|perm, 0, 2, 0, 0)
}

// Bytes writes a regular file with the given content.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) error {
	name = cleanName(name)
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := c.header(name, cpioModeFile|perm, int64(len(data)), 1, 0, 0); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return fmt.Errorf("cpio: write %s: %w", name, err)
	}
	return c.pad(int64(len(data)))
}

// File copies the host file src (following symlinks) to name, keeping its
// permission bits, so executables stay executable in the guest.
func (c *cpioWriter) File(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("cpio: open %s: %w", src, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cpio: stat %s: %w", src, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("cpio: %s is not a regular file (%v)", src, st.Mode().Type())
	}
	name = cleanName(name)
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := c.header(name, cpioModeFile|uint32(st.Mode().Perm()), st.Size(), 1, 0, 0); err != nil {
		return err
	}
	// The header already promised st.Size() bytes; a file that changes size
	// while being copied would corrupt every later entry, so check exactly.
	n, err := io.Copy(c.w, io.LimitReader(f, st.Size()))
	if err != nil {
		return fmt.Errorf("cpio: copy %s: %w", src, err)
	}
	if n != st.Size() {
		return fmt.Errorf("cpio: %s shrank while being copied (%d of %d bytes)", src, n, st.Size())
	}
	return c.pad(n)
}

// Symlink writes a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) error {
	name = cleanName(name)
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := c.header(name, cpioModeLink|0o777, int64(len(target)), 1, 0, 0); err != nil {
		return err
	}
	if _, err := c.w.WriteString(target); err != nil {
		return fmt.Errorf("cpio: write link %s: %w", name, err)
	}
	return c.pad(int64(len(target)))
}

// CharDev writes a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) error {
	name = cleanName(name)
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return c.header(name, cpioModeChar|perm, 0, 1, major, minor)
}

// Tree copies the host directory src to name, in sorted order so the
// archive is reproducible.
func (c *cpioWriter) Tree(name, src string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("cpio: read dir %s: %w", src, err)
	}
	if err := c.Dir(name, 0o755); err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		s, n := src+"/"+e.Name(), name+"/"+e.Name()
		switch {
		case e.IsDir():
			err = c.Tree(n, s)
		case e.Type()&os.ModeSymlink != 0:
			var t string
			if t, err = os.Readlink(s); err == nil {
				err = c.Symlink(n, t)
			}
		default:
			err = c.File(n, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Close writes the trailer and flushes. Archives written this way can be
// concatenated: the kernel unpacks each in turn, which is how a run's files
// are laid over the cached base image without rewriting it.
func (c *cpioWriter) Close() error {
	if err := c.header("TRAILER!!!", 0, 0, 1, 0, 0); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("cpio: flush: %w", err)
	}
	return nil
}
