package ipvsnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/lb"
)

// Changes to the table go over the IPVS generic netlink family in batches:
// many requests in one sendmsg, an acknowledgement asked only of the last,
// so the kernel answers a batch with one message unless a request fails.
// moby/ipvs, which reads the table here, sends one request per change and
// waits for its answer, with a 64 KiB receive buffer allocated each time:
// on 10,000 destinations that made vigil's start slower than keepalived's.
// The numbers are from include/uapi/linux/ip_vs.h.
const (
	cmdNewService = 1 // IPVS_CMD_NEW_SERVICE
	cmdSetService = 2 // IPVS_CMD_SET_SERVICE
	cmdDelService = 3 // IPVS_CMD_DEL_SERVICE
	cmdNewDest    = 5 // IPVS_CMD_NEW_DEST
	cmdSetDest    = 6 // IPVS_CMD_SET_DEST
	cmdDelDest    = 7 // IPVS_CMD_DEL_DEST

	cmdAttrService = 1 // IPVS_CMD_ATTR_SERVICE (nested)
	cmdAttrDest    = 2 // IPVS_CMD_ATTR_DEST (nested)

	svcAttrAF        = 1 // u16
	svcAttrProtocol  = 2 // u16
	svcAttrAddr      = 3 // 4 or 16 bytes
	svcAttrPort      = 4 // be16
	svcAttrFWMark    = 5 // u32
	svcAttrSchedName = 6 // string
	svcAttrFlags     = 7 // struct ip_vs_flags {flags, mask u32}
	svcAttrTimeout   = 8 // u32, seconds
	svcAttrNetmask   = 9 // u32 (be32 for IPv4, a prefix length for IPv6)

	destAttrAddr      = 1 // 4 or 16 bytes
	destAttrPort      = 2 // be16
	destAttrFwdMethod = 3 // u32
	destAttrWeight    = 4 // u32
	destAttrUThresh   = 5 // u32
	destAttrLThresh   = 6 // u32

	svcAttrPEName      = 11 // string
	destAttrAddrFamily = 11 // u16, when it differs from the service's
	destAttrTunType    = 13 // u8
	destAttrTunPort    = 14 // be16
	destAttrTunFlags   = 15 // u16
)

// applyBatch bounds a batch: a request the kernel refuses is answered even
// without an acknowledgement asked for (with the request echoed, about
// 1 KiB of buffer each), and the receive buffer (about 200 KiB by default)
// must hold the answers of a batch that all fail.
const applyBatch = 128

// applyWait bounds the wait for a batch's answers.
const applyWait = 30 * time.Second

// Apply executes ops in order and stops at the first batch with an op the
// kernel refuses, with an error naming that op; the ops before it are
// applied, and so may be those after it in its batch (at most applyBatch
// - 1; the kernel goes on with a batch after a refusal). The caller
// re-reads the table after an error.
func (h *Handle) Apply(ops []lb.Op) error {
	for start := 0; start < len(ops); start += applyBatch {
		batch := ops[start:min(len(ops), start+applyBatch)]
		// The batch's requests go one after another into one buffer,
		// reused from batch to batch, and to the kernel in one write.
		buf := h.g.ebuf[:0]
		first := h.g.seq + 1
		lastAt := 0 // where the last request starts
		// An op that cannot be encoded ends the batch before it: the ops
		// before it are sent, then its error is returned.
		var encErr error
		for i, op := range batch {
			at := len(buf)
			cmd, out, err := encodeOp(beginMsg(buf), op)
			if err != nil {
				encErr = fmt.Errorf("ipvsnet: op %d of %d (%s): %w", start+i+1, len(ops), op, err)
				batch = batch[:i]
				buf = buf[:at]
				break
			}
			buf = out
			h.g.endMsg(buf, at, cmd, unix.NLM_F_REQUEST)
			lastAt = at
		}
		h.g.ebuf = buf
		if len(batch) == 0 {
			return encErr
		}
		last := h.g.seq
		// Only the last request asks for an acknowledgement.
		flags := binary.NativeEndian.Uint16(buf[lastAt+6:])
		binary.NativeEndian.PutUint16(buf[lastAt+6:], flags|unix.NLM_F_ACK)
		if err := h.g.send(buf); err != nil {
			return fmt.Errorf("ipvsnet: send ops %d-%d of %d: %w", start+1, start+len(batch), len(ops), err)
		}
		seq, opErr, _, err := h.g.await(first, last)
		switch {
		case err != nil:
			return fmt.Errorf("ipvsnet: answers to ops %d-%d of %d: %w", start+1, start+len(batch), len(ops), err)
		case opErr != nil:
			i := int(seq - first)
			return fmt.Errorf("ipvsnet: op %d of %d (%s): %w", start+i+1, len(ops), batch[i], opErr)
		case encErr != nil:
			return encErr
		}
	}
	return nil
}

// beginMsg appends the headers of a request to b, for endMsg to fill in
// once its attributes follow.
func beginMsg(b []byte) []byte {
	b = append(b, make([]byte, unix.SizeofNlMsghdr)...)
	return append(b, 0, genlVersion, 0, 0) // struct genlmsghdr
}

// endMsg completes the request that starts at b[at:] (beginMsg) as
// command cmd with the next sequence number, which it returns.
func (g *genl) endMsg(b []byte, at int, cmd uint8, flags uint16) uint32 {
	b[at+unix.SizeofNlMsghdr] = cmd
	g.seq++
	putNlMsghdr(b[at:], len(b)-at, g.family, flags, g.seq)
	return g.seq
}

// putNlMsghdr writes a struct nlmsghdr at the start of b.
func putNlMsghdr(b []byte, length int, typ, flags uint16, seq uint32) {
	binary.NativeEndian.PutUint32(b[0:], uint32(length))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[12:], 0) // the port id: the kernel knows the socket
}

// send writes requests already framed (putNlMsghdr) to the kernel in one
// sendmsg, through the socket netlink.Conn holds (netlink.Conn would copy
// each message again into a buffer of its own).
func (g *genl) send(b []byte) error {
	rc, err := g.nl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// await reads the kernel's answers to the requests with sequence numbers
// first..last until the acknowledgement of last, and returns the first
// refusal among them and how many of the requests were answered. Answers
// to other sequence numbers (of an earlier batch given up on) are skipped.
func (g *genl) await(first, last uint32) (seq uint32, opErr error, answered int, err error) {
	rc, err := g.nl.SyscallConn()
	if err != nil {
		return 0, nil, 0, err
	}
	if err := g.nl.SetReadDeadline(time.Now().Add(applyWait)); err != nil {
		return 0, nil, 0, err
	}
	defer g.nl.SetReadDeadline(time.Time{})
	if g.buf == nil {
		g.buf = make([]byte, 16<<10)
	}
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), g.buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return 0, nil, 0, err
		}
		if errors.Is(rerr, unix.ENOBUFS) {
			return 0, nil, 0, fmt.Errorf("the kernel's answers overflowed the receive buffer; the table must be read again: %w", rerr)
		}
		if rerr != nil {
			return 0, nil, 0, rerr
		}
		msgs, err := syscall.ParseNetlinkMessage(g.buf[:n])
		if err != nil {
			return 0, nil, 0, fmt.Errorf("parse answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4+unix.SizeofNlMsghdr {
				continue
			}
			code := int32(binary.NativeEndian.Uint32(m.Data[:4]))
			// The answer carries the request's header: its sequence number.
			s := binary.NativeEndian.Uint32(m.Data[4+8 : 4+12])
			if s-first > last-first { // outside first..last, wrapping included
				continue
			}
			answered++
			if code != 0 && opErr == nil {
				seq, opErr = s, unix.Errno(-code)
			}
			if s == last {
				return seq, opErr, answered, nil
			}
		}
	}
}

// encodeOp appends an op's attributes to b and returns its command. New
// and updated services carry every setting (the kernel requires them);
// destination and delete requests name the service by its key only. On an
// error, b may have grown; the caller cuts it back.
//
// It appends in place (nlattr.go) rather than through netlink's
// AttributeEncoder, which allocates for every attribute and closure: on a
// cold start of 11,000 requests in the 1-vCPU test VM that was 0.33 s of
// the 0.6 s Apply took.
func encodeOp(b []byte, op lb.Op) (uint8, []byte, error) {
	var cmd uint8
	full := false
	switch op.Kind {
	case lb.AddService:
		cmd, full = cmdNewService, true
	case lb.UpdateService:
		cmd, full = cmdSetService, true
	case lb.DelService:
		cmd = cmdDelService
	case lb.AddDest:
		cmd = cmdNewDest
	case lb.UpdateDest:
		cmd = cmdSetDest
	case lb.DelDest:
		cmd = cmdDelDest
	default:
		return 0, b, fmt.Errorf("unknown op kind %d", op.Kind)
	}
	s, err := kernelService(op.Service)
	if err != nil {
		return 0, b, err
	}
	var d kdest
	if op.IsDest() {
		if d, err = kernelDest(op.Dest); err != nil {
			return 0, b, err
		}
	}
	at := len(b)
	b = nestStart(b)
	b = attrU16(b, svcAttrAF, s.af)
	if s.key.FWMark != 0 {
		b = attrU32(b, svcAttrFWMark, s.key.FWMark)
	} else {
		b = attrU16(b, svcAttrProtocol, uint16(s.key.Protocol))
		b = appendAddr(b, svcAttrAddr, s.key.Addr)
		b = attrBE16(b, svcAttrPort, s.key.Port)
	}
	if full {
		b = attrString(b, svcAttrSchedName, s.sched)
		b = attrU32Pair(b, svcAttrFlags, s.flags, ^uint32(0)) // every flag as given
		b = attrU32(b, svcAttrTimeout, s.timeout)
		b = attrU32(b, svcAttrNetmask, s.netmask)
		if s.pe != "" {
			b = attrString(b, svcAttrPEName, s.pe)
		}
	}
	b = nestEnd(b, at, cmdAttrService)
	if !op.IsDest() {
		return cmd, b, nil
	}
	at = len(b)
	b = nestStart(b)
	b = appendAddr(b, destAttrAddr, d.d.Addr)
	b = attrBE16(b, destAttrPort, d.d.Port)
	if d.af != s.af {
		// A tunnelled destination of the other family; the kernel takes
		// the service's unless told.
		b = attrU16(b, destAttrAddrFamily, d.af)
	}
	if op.Kind != lb.DelDest {
		b = attrU32(b, destAttrFwdMethod, d.fwd)
		b = attrU32(b, destAttrWeight, uint32(d.d.Weight))
		b = attrU32(b, destAttrUThresh, d.d.Upper)
		b = attrU32(b, destAttrLThresh, d.d.Lower)
		if d.d.TunType != lb.IPIP { // ipip is the kernel's zero
			b = attrU8(b, destAttrTunType, uint8(d.d.TunType))
			b = attrBE16(b, destAttrTunPort, d.d.TunPort)
			b = attrU16(b, destAttrTunFlags, uint16(d.d.TunCsum))
		}
	}
	return cmd, nestEnd(b, at, cmdAttrDest), nil
}
