package ipvsnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the package's one generic netlink client: the socket (in a
// network namespace), the family's lookup, framing, sequence numbers,
// acknowledgements and refusals, multi-part dumps, batches. The other
// files know the IPVS family's commands and attributes only. Why it is
// written on golang.org/x/sys/unix and not on mdlayher/netlink is in the
// package doc.

// genlVersion goes in every request's generic netlink header: the IPVS
// family's version (IPVS_GENL_VERSION); nlctrl does not read it.
const genlVersion = 1

// genlWait bounds the wait for the kernel's answers to one exchange.
const genlWait = 30 * time.Second

// recvBuf is the receive buffer: the kernel sizes a dump's messages to the
// largest read it has seen, capped at 32 KiB, so a larger buffer is never
// short; acknowledgements and refusals come one per read.
const recvBuf = 64 << 10

// genl is a generic netlink socket talking to one family. It is not safe
// for concurrent use.
type genl struct {
	f      *os.File // non-blocking, in the runtime's poller (deadlines)
	rc     syscall.RawConn
	family uint16 // the family id requests are sent to
	seq    uint32 // the last sequence number used
	out    []byte // requests being framed, reused
	in     []byte // answers, reused
	// barrier is a request without effect that request sends after its
	// own (see request); none when cmd is 0.
	barrier genlRequest
}

// genlRequest is a request of the family: its command and attributes.
type genlRequest struct {
	cmd   uint8
	attrs []byte
}

// dialGenl opens a generic netlink socket in the network namespace at
// netnsPath ("" for the caller's) and looks up the family called name. A
// failed lookup is a *familyError, so the caller can tell a missing family
// from a socket that could not be opened.
func dialGenl(netnsPath, name string) (*genl, error) {
	fd, err := socketIn(netnsPath)
	if err != nil {
		return nil, err
	}
	g, err := newGenl(fd)
	if err != nil {
		return nil, err
	}
	g.family = unix.GENL_ID_CTRL
	id, err := g.lookup(name)
	if err != nil {
		g.Close()
		return nil, &familyError{name: name, err: err}
	}
	g.family = id
	return g, nil
}

// familyError is a failed lookup of a generic netlink family.
type familyError struct {
	name string
	err  error
}

func (e *familyError) Error() string {
	return fmt.Sprintf("look up generic netlink family %s: %v", e.name, e.err)
}
func (e *familyError) Unwrap() error { return e.err }

// socketIn opens a generic netlink socket in the namespace at netnsPath
// ("" for the caller's). The socket belongs to the namespace it was
// created in, so it is created on a thread switched into that namespace.
func socketIn(netnsPath string) (int, error) {
	if netnsPath == "" {
		return genlSocket()
	}
	ns, err := os.Open(netnsPath)
	if err != nil {
		return -1, fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	// On a goroutine of its own, so that a thread that cannot be switched
	// back is never the caller's.
	go func() {
		runtime.LockOSThread()
		fd, err := socketOnThreadIn(ns)
		if errors.Is(err, errNetnsStuck) {
			// Left locked: the runtime ends the thread with this
			// goroutine rather than run others in the wrong namespace.
			done <- result{-1, fmt.Errorf("netns %s: %w", netnsPath, err)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("netns %s: %w", netnsPath, err)
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// errNetnsStuck is a thread that could not be switched back to its
// namespace.
var errNetnsStuck = errors.New("cannot return the thread to its network namespace")

// socketOnThreadIn switches the calling thread, locked, into namespace ns,
// opens the socket there and switches the thread back. The thread must
// not end in the other namespace, even though a goroutine that exits
// locked ends its thread: not when it runs on the main thread, which the
// runtime keeps, and which then holds the namespace (a deleted one is
// never freed) and becomes what the whole process's /proc/net shows.
// The test VM showed both.
func socketOnThreadIn(ns *os.File) (int, error) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return -1, fmt.Errorf("open the thread's netns: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return -1, fmt.Errorf("enter: %w", err)
	}
	fd, err := genlSocket()
	if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
		if err == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("%w: %w", errNetnsStuck, rerr)
	}
	return fd, err
}

func genlSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_GENERIC)
	if err != nil {
		return -1, fmt.Errorf("generic netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind generic netlink socket: %w", err)
	}
	return fd, nil
}

// newGenl takes over fd, a non-blocking socket whose peer speaks netlink:
// the kernel, or a test's fake kernel on a socket pair (requests are sent
// without an address: a netlink socket's default peer is the kernel).
func newGenl(fd int) (*genl, error) {
	f := os.NewFile(uintptr(fd), "genetlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("generic netlink socket: %w", err)
	}
	return &genl{f: f, rc: rc}, nil
}

// Close closes the socket.
func (g *genl) Close() error { return g.f.Close() }

// lookup asks nlctrl for the id of the family called name.
func (g *genl) lookup(name string) (uint16, error) {
	var id uint16
	err := g.request(unix.CTRL_CMD_GETFAMILY, attrString(nil, unix.CTRL_ATTR_FAMILY_NAME, name), func(b []byte) error {
		a := attrs{b: b}
		for a.Next() {
			if a.Type() == unix.CTRL_ATTR_FAMILY_ID {
				id = a.Uint16()
			}
		}
		return a.Err()
	})
	if err == nil && id == 0 {
		err = errors.New("answer without a family id")
	}
	return id, err
}

// batch frames requests one after another in the socket's buffer, to go
// to the kernel in one write (exchange): begin, the attributes appended
// to b, end.
type batch struct {
	g      *genl
	b      []byte
	first  uint32 // the first request's sequence number
	last   uint32 // the last's
	lastAt int    // where the last request starts; -1 for none
}

func (g *genl) batch() batch {
	return batch{g: g, b: g.out[:0], first: g.seq + 1, lastAt: -1}
}

// begin appends the headers of a request, for end to fill in once its
// attributes follow, and returns where it starts.
func (bt *batch) begin() int {
	at := len(bt.b)
	bt.b = append(bt.b, make([]byte, unix.SizeofNlMsghdr)...)
	bt.b = append(bt.b, 0, genlVersion, 0, 0) // struct genlmsghdr
	return at
}

// end completes the request begun at at as command cmd with the next
// sequence number, which it returns.
func (bt *batch) end(at int, cmd uint8, flags uint16) uint32 {
	bt.b[at+unix.SizeofNlMsghdr] = cmd
	bt.g.seq++
	putNlMsghdr(bt.b[at:], len(bt.b)-at, bt.g.family, flags, bt.g.seq)
	bt.last, bt.lastAt = bt.g.seq, at
	return bt.g.seq
}

// cut drops the request begun at at and not ended (its attributes could
// not be encoded).
func (bt *batch) cut(at int) { bt.b = bt.b[:at] }

// putNlMsghdr writes a struct nlmsghdr at the start of b.
func putNlMsghdr(b []byte, length int, typ, flags uint16, seq uint32) {
	binary.NativeEndian.PutUint32(b[0:], uint32(length))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[12:], 0) // the port id: the kernel knows the socket
}

// acks is what the kernel answered to a batch.
type acks struct {
	answered int    // requests acknowledged or refused
	refused  uint32 // the sequence number of the first refusal
	err      error  // its errno; nil when none was refused
}

// exchange sends the batch in one write, the last request asking for an
// acknowledgement (so the kernel answers a batch of changes with one
// message unless one fails), and reads the answers up to that
// acknowledgement. data, if not nil, gets the payload of every other
// answer to the batch's requests with its sequence number; its first
// error is returned once the answers are read.
func (bt *batch) exchange(data func(seq uint32, payload []byte) error) (acks, error) {
	g := bt.g
	g.out = bt.b // keep what the buffer grew to
	if bt.lastAt < 0 {
		return acks{}, nil
	}
	flags := binary.NativeEndian.Uint16(bt.b[bt.lastAt+6:])
	binary.NativeEndian.PutUint16(bt.b[bt.lastAt+6:], flags|unix.NLM_F_ACK)
	if err := g.send(bt.b); err != nil {
		return acks{}, err
	}
	return g.await(bt.first, bt.last, data)
}

// send writes framed requests in one sendmsg.
func (g *genl) send(b []byte) error {
	var serr error
	if err := g.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, nil)
		return serr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("send: %w", serr)
	}
	return nil
}

// recv reads one datagram of answers into g.in; the caller sets the
// deadline (deadline).
func (g *genl) recv() ([]syscall.NetlinkMessage, error) {
	if len(g.in) == 0 {
		g.in = make([]byte, recvBuf)
	}
	var n, flags int
	var rerr error
	if err := g.rc.Read(func(fd uintptr) bool {
		n, _, flags, _, rerr = unix.Recvmsg(int(fd), g.in, nil, 0)
		return rerr != unix.EAGAIN
	}); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("no answer from the kernel in %s: %w", genlWait, err)
		}
		return nil, fmt.Errorf("receive: %w", err)
	}
	switch {
	case errors.Is(rerr, unix.ENOBUFS):
		return nil, fmt.Errorf("the kernel's answers overflowed the receive buffer; the table must be read again: %w", rerr)
	case rerr != nil:
		return nil, fmt.Errorf("receive: %w", rerr)
	case flags&unix.MSG_TRUNC != 0:
		return nil, errors.New("answer larger than the receive buffer")
	}
	msgs, err := syscall.ParseNetlinkMessage(g.in[:n])
	if err != nil {
		return nil, fmt.Errorf("parse answer: %w", err)
	}
	return msgs, nil
}

// deadline bounds the reads of one exchange; the returned func lifts it.
func (g *genl) deadline() (func(), error) {
	if err := g.f.SetReadDeadline(time.Now().Add(genlWait)); err != nil {
		return nil, fmt.Errorf("set receive deadline: %w", err)
	}
	return func() { g.f.SetReadDeadline(time.Time{}) }, nil
}

// await reads the answers to the requests numbered first..last until the
// acknowledgement of last. Answers to other sequence numbers (of an
// earlier exchange given up on) are skipped.
func (g *genl) await(first, last uint32, data func(seq uint32, payload []byte) error) (acks, error) {
	lift, err := g.deadline()
	if err != nil {
		return acks{}, err
	}
	defer lift()
	var a acks
	var dataErr error
	for {
		msgs, err := g.recv()
		if err != nil {
			return a, err
		}
		for _, m := range msgs {
			s := m.Header.Seq
			if s-first > last-first { // outside first..last, wrapping included
				continue
			}
			if m.Header.Type != unix.NLMSG_ERROR {
				if data != nil && dataErr == nil && m.Header.Type >= unix.NLMSG_MIN_TYPE {
					var p []byte
					if p, dataErr = payload(m); dataErr == nil {
						dataErr = data(s, p)
					}
				}
				continue
			}
			if len(m.Data) < 4 {
				return a, fmt.Errorf("acknowledgement of %d bytes", len(m.Data))
			}
			a.answered++
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 && a.err == nil {
				a.refused, a.err = s, unix.Errno(-code)
			}
			if s == last {
				return a, dataErr
			}
		}
	}
}

// request sends one request and waits for its acknowledgement; the
// kernel's refusal is returned as its errno. answer, if not nil, gets the
// payload of every answer before the acknowledgement (a get's reply).
//
// A request the kernel's handler answers with EINTR gets no answer at all
// (netlink_rcv_skb skips the acknowledgement then), so the barrier
// request follows it in the same write: once that one is answered, a
// request left unanswered returns EINTR instead of waiting in vain. The
// IPVS family does that when a sync daemon is stopped before its thread
// first ran (kthread_stop's -EINTR): seen in the TCG test VM, in about
// one of ten restarts of a backup daemon under load.
func (g *genl) request(cmd uint8, attrs []byte, answer func([]byte) error) error {
	bt := g.batch()
	at := bt.begin()
	bt.b = append(bt.b, attrs...)
	seq := bt.end(at, cmd, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	want := 1
	if g.barrier.cmd != 0 {
		at = bt.begin()
		bt.b = append(bt.b, g.barrier.attrs...)
		bt.end(at, g.barrier.cmd, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
		want++
	}
	var data func(uint32, []byte) error
	if answer != nil {
		data = func(s uint32, b []byte) error {
			if s != seq { // the barrier's
				return nil
			}
			return answer(b)
		}
	}
	a, err := bt.exchange(data)
	switch {
	case err != nil:
		return err
	case a.err != nil && a.refused != seq:
		return fmt.Errorf("the barrier request after it (command %d): %w", g.barrier.cmd, a.err)
	case a.err != nil:
		return a.err
	case a.answered < want:
		return unix.EINTR
	}
	return nil
}

// dump sends one dump request and calls each with every answer's
// attributes (valid only during the call), until NLMSG_DONE.
func (g *genl) dump(cmd uint8, attrs []byte, each func([]byte) error) error {
	bt := g.batch()
	at := bt.begin()
	bt.b = append(bt.b, attrs...)
	seq := bt.end(at, cmd, unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	g.out = bt.b
	if err := g.send(bt.b); err != nil {
		return err
	}
	lift, err := g.deadline()
	if err != nil {
		return err
	}
	defer lift()
	var eachErr error
	for {
		msgs, err := g.recv()
		if err != nil {
			return err
		}
		if done, err := dumpAnswers(msgs, seq, each, &eachErr); done {
			return err
		}
	}
}

// dumpAnswers hands the answers to the dump request seq to each, and says
// whether the dump ended (NLMSG_DONE, or NLMSG_ERROR: both carry an errno)
// and with what error. An answer each refuses ends the calls, not the
// reading (*eachErr keeps the first refusal): the dump is read to its end,
// or the kernel would still be dumping when the next request comes
// (EBUSY). Answers to other requests (one given up on) are skipped.
func dumpAnswers(msgs []syscall.NetlinkMessage, seq uint32, each func([]byte) error, eachErr *error) (bool, error) {
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		switch m.Header.Type {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code < 0 {
					return true, unix.Errno(-code)
				}
			}
			return true, *eachErr
		}
		if *eachErr == nil {
			var p []byte
			if p, *eachErr = payload(m); *eachErr == nil {
				*eachErr = each(p)
			}
		}
	}
	return false, nil
}

// payload is the attributes of an answer of the family, after its generic
// netlink header.
func payload(m syscall.NetlinkMessage) ([]byte, error) {
	if len(m.Data) < 4 {
		return nil, fmt.Errorf("answer of %d bytes", len(m.Data))
	}
	return m.Data[4:], nil
}
