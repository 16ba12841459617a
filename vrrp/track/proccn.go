package track

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's process-event connector (include/uapi/linux/connector.h and
// cn_proc.h): a NETLINK_CONNECTOR socket bound to the CN_IDX_PROC group
// receives a proc_event for every fork, exec, exit, ... once a
// PROC_CN_MCAST_LISTEN message was sent. All fields are in host byte order.

const (
	cnIdxProc = 1 // CN_IDX_PROC
	cnValProc = 1 // CN_VAL_PROC

	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2 // PROC_CN_MCAST_IGNORE

	procEventNone = 0x00000000 // the acknowledgement of a listen request
	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventComm = 0x00000200
	procEventExit = 0x80000000

	nlmsgHdrLen = 16 // struct nlmsghdr
	cnMsgLen    = 20 // struct cn_msg without data
	procEvHdr   = 16 // what, cpu, timestamp_ns

	cnAckTimeout = time.Second
	cnRcvBuf     = 1 << 20
)

var cnSeq atomic.Uint32

// procEvent is what the tracker needs from one event: which process to
// re-check, or that events were lost.
type procEvent struct {
	pid      int
	overflow bool
}

// procConn is a subscription to the process-event connector.
type procConn struct {
	f *os.File
}

// openProcConnector subscribes to process events. It fails when the
// connector is unavailable or refuses the subscription (not privileged, not
// in the initial namespaces: then no acknowledgement ever comes).
func openProcConnector(ctx context.Context) (*procConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding to the process events group: %w", err)
	}
	// A burst of forks must not overflow the socket; failing to enlarge it
	// is not fatal (overflows lead to a rescan).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cnRcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cnRcvBuf)
	}
	c := &procConn{f: os.NewFile(uintptr(fd), "netlink-proc-connector")}
	// The answer is multicast to every listener: make ours recognizable.
	seq := uint32(os.Getpid())<<16 | cnSeq.Add(1)&0xffff
	if err := c.send(procCnMcastListen, seq); err != nil {
		c.f.Close()
		return nil, fmt.Errorf("subscribing to process events: %w", err)
	}
	if err := c.waitAck(ctx, seq); err != nil {
		c.f.Close()
		return nil, err
	}
	return c, nil
}

// send sends a multicast control operation to the connector.
func (c *procConn) send(op uint32, seq uint32) error {
	b := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))        // nlmsg_len
	ne.PutUint16(b[4:], unix.NLMSG_DONE)       // nlmsg_type
	ne.PutUint32(b[8:], seq)                   // nlmsg_seq
	ne.PutUint32(b[16:], cnIdxProc)            // cn_msg.id.idx
	ne.PutUint32(b[20:], cnValProc)            // cn_msg.id.val
	ne.PutUint32(b[24:], seq)                  // cn_msg.seq
	ne.PutUint32(b[28:], seq)                  // cn_msg.ack: the answer carries ack+1
	ne.PutUint16(b[32:], 4)                    // cn_msg.len
	ne.PutUint32(b[nlmsgHdrLen+cnMsgLen:], op) // the operation
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// waitAck waits for the connector's answer to the listen request seq.
func (c *procConn) waitAck(ctx context.Context, seq uint32) error {
	deadline := time.Now().Add(cnAckTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	defer c.f.SetReadDeadline(time.Time{})
	buf := make([]byte, 8192)
	for {
		msgs, err := c.recv(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errors.New("no answer to the subscription (the connector only serves the initial namespaces)")
			}
			if errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return fmt.Errorf("waiting for the subscription's answer: %w", err)
		}
		for _, m := range msgs {
			what, data, ack, ok := parseProcEvent(m)
			if !ok || what != procEventNone || ack != seq+1 || len(data) < 4 {
				continue
			}
			if e := binary.NativeEndian.Uint32(data); e != 0 {
				return fmt.Errorf("subscribing to process events: %w", syscall.Errno(e))
			}
			return nil
		}
	}
}

// recv reads one datagram and splits it into netlink messages; messages not
// from the kernel are dropped.
func (c *procConn) recv(buf []byte) ([]syscall.NetlinkMessage, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		n    int
		from unix.Sockaddr
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
		return nil, nil
	}
	return syscall.ParseNetlinkMessage(buf[:n])
}

// parseProcEvent returns a connector message's proc_event type, its
// event_data and the cn_msg ack number (which identifies the answer to a
// request: its ack plus one; the kernel does not echo the sequence number).
func parseProcEvent(m syscall.NetlinkMessage) (what uint32, data []byte, ack uint32, ok bool) {
	ne := binary.NativeEndian
	b := m.Data
	if m.Header.Type == unix.NLMSG_ERROR || m.Header.Type == unix.NLMSG_NOOP || len(b) < cnMsgLen+procEvHdr {
		return 0, nil, 0, false
	}
	if ne.Uint32(b[0:]) != cnIdxProc || ne.Uint32(b[4:]) != cnValProc {
		return 0, nil, 0, false
	}
	ack = ne.Uint32(b[12:])
	l := int(ne.Uint16(b[16:]))
	ev := b[cnMsgLen:]
	if l < procEvHdr || l > len(ev) {
		return 0, nil, 0, false
	}
	ev = ev[:l]
	return ne.Uint32(ev[0:]), ev[procEvHdr:], ack, true
}

// read delivers events to ch until the connection is closed or ctx ends,
// then closes ch.
func (c *procConn) read(ctx context.Context, ch chan<- procEvent) {
	defer close(ch)
	send := func(e procEvent) bool {
		select {
		case ch <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	buf := make([]byte, 64<<10)
	ne := binary.NativeEndian
	for {
		msgs, err := c.recv(buf)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				if !send(procEvent{overflow: true}) {
					return
				}
				continue
			}
			return // closed (shutdown) or broken: Run falls back to polling
		}
		for _, m := range msgs {
			what, d, _, ok := parseProcEvent(m)
			if !ok {
				continue
			}
			var pids []uint32
			switch what {
			case procEventFork: // parent_pid, parent_tgid, child_pid, child_tgid
				if len(d) >= 16 && ne.Uint32(d[8:]) == ne.Uint32(d[12:]) { // a process, not a thread
					pids = append(pids, ne.Uint32(d[12:]))
				}
			case procEventExec, procEventComm, procEventExit: // process_pid, process_tgid, ...
				if len(d) >= 8 {
					pids = append(pids, ne.Uint32(d[4:]))
				}
			}
			for _, pid := range pids {
				if !send(procEvent{pid: int(pid)}) {
					return
				}
			}
		}
	}
}

// close unsubscribes (best effort: older kernels count listeners and only
// forget one on this message) and closes the socket, which ends read.
func (c *procConn) close() {
	_ = c.send(procCnMcastIgnore, cnSeq.Add(1))
	c.f.Close()
}
