package ipvsnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"vigil/lb"
)

// fakeFamily is the family id the client is given against a fake kernel.
const fakeFamily = 0x30

// fakeKernel connects a client to a test's fake kernel over a socket pair
// (SOCK_SEQPACKET keeps each write one record, as netlink keeps each
// sendmsg one skb). serve is called with each write's requests, in order,
// and returns the records to answer with. The channel is closed once
// every serve has run.
func fakeKernel(t *testing.T, serve ...func(reqs []syscall.NetlinkMessage) [][]byte) (*genl, <-chan struct{}) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGenl(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	g.family, g.seq = fakeFamily, 100
	k := os.NewFile(uintptr(fds[1]), "fake kernel")
	done := make(chan struct{})
	t.Cleanup(func() { k.Close(); <-done; g.Close() })
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for _, answer := range serve {
			n, err := k.Read(buf)
			if err != nil {
				t.Errorf("fake kernel: read: %v", err)
				return
			}
			reqs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				t.Errorf("fake kernel: parse: %v", err)
				return
			}
			for _, rec := range answer(reqs) {
				if _, err := k.Write(rec); err != nil {
					t.Errorf("fake kernel: write: %v", err)
					return
				}
			}
		}
	}()
	return g, done
}

// nlmsg frames one answer.
func nlmsg(typ, flags uint16, seq uint32, data []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(data)+3)
	putNlMsghdr(b, unix.SizeofNlMsghdr+len(data), typ, flags, seq)
	b = append(b, data...)
	return append(b, make([]byte, (4-len(b)%4)%4)...)
}

// ack is the kernel's acknowledgement (errno 0) or refusal of req: the
// negative errno, then the request's header.
func ack(req syscall.NetlinkMessage, errno unix.Errno) []byte {
	d := errnoData(errno)
	h := make([]byte, unix.SizeofNlMsghdr)
	putNlMsghdr(h, int(req.Header.Len), req.Header.Type, req.Header.Flags, req.Header.Seq)
	return nlmsg(unix.NLMSG_ERROR, 0, req.Header.Seq, append(d, h...))
}

// genlData is an answer of the family carrying payload after its generic
// netlink header.
func genlData(seq uint32, flags uint16, payload ...byte) []byte {
	return nlmsg(fakeFamily, flags, seq, append([]byte{1, genlVersion, 0, 0}, payload...))
}

// A batch goes in one write: consecutive sequence numbers from the one
// after the socket's last, the family's type, each request's length and
// generic netlink header, an acknowledgement asked of the last request
// only. The next batch goes on numbering.
func TestBatchFraming(t *testing.T) {
	var got [][]syscall.NetlinkMessage
	record := func(reqs []syscall.NetlinkMessage) [][]byte {
		got = append(got, reqs)
		return [][]byte{ack(reqs[len(reqs)-1], 0)}
	}
	g, served := fakeKernel(t, record, record)
	attrs := [][]byte{attrU32(nil, 1, 7), attrString(nil, 2, "wrr"), nil}
	for round := range 2 {
		bt := g.batch()
		for i, a := range attrs {
			at := bt.begin()
			bt.b = append(bt.b, a...)
			bt.end(at, uint8(i+1), unix.NLM_F_REQUEST)
		}
		a, err := bt.exchange(nil)
		if err != nil || a.answered != 1 || a.err != nil {
			t.Fatalf("round %d: exchange = %+v, %v", round, a, err)
		}
	}
	<-served
	if len(got) != 2 {
		t.Fatalf("%d writes, want 2", len(got))
	}
	seq := uint32(101)
	for round, reqs := range got {
		if len(reqs) != len(attrs) {
			t.Fatalf("round %d: %d requests in the write, want %d", round, len(reqs), len(attrs))
		}
		for i, m := range reqs {
			h := m.Header
			wantFlags := uint16(unix.NLM_F_REQUEST)
			if i == len(reqs)-1 {
				wantFlags |= unix.NLM_F_ACK
			}
			if h.Seq != seq || h.Type != fakeFamily || h.Flags != wantFlags || int(h.Len) != unix.SizeofNlMsghdr+4+len(attrs[i]) {
				t.Errorf("round %d request %d: header %+v, want seq %d type %#x flags %#x", round, i, h, seq, fakeFamily, wantFlags)
			}
			if m.Data[0] != uint8(i+1) || m.Data[1] != genlVersion || string(m.Data[4:]) != string(attrs[i]) {
				t.Errorf("round %d request %d: body %x", round, i, m.Data)
			}
			seq++
		}
	}
}

// Apply names the op the kernel refuses in a batch, among answers to an
// earlier exchange given up on (skipped) and the acknowledgement of the
// batch's last request.
func TestApplyRefusal(t *testing.T) {
	svc := lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, Scheduler: "rr"}
	ops := []lb.Op{{Kind: lb.AddService, Service: svc}}
	for i := range 3 {
		ops = append(ops, lb.Op{Kind: lb.AddDest, Service: svc, Dest: lb.Dest{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), Port: 80, Forward: lb.NAT, Weight: 1}})
	}
	g, _ := fakeKernel(t, func(reqs []syscall.NetlinkMessage) [][]byte {
		stale := reqs[0]
		stale.Header.Seq--
		return [][]byte{ack(stale, unix.ENOENT), ack(reqs[1], unix.EEXIST), ack(reqs[3], 0)}
	})
	err := (&Handle{g: g}).Apply(ops)
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "op 2 of 4 (") {
		t.Fatalf("Apply = %v, want op 2 of 4 refused with EEXIST", err)
	}
}

// request: the kernel's refusal comes back as its errno, the barrier's
// refusal says so, a get's answer goes to the caller (the barrier's does
// not), and a request the kernel leaves unanswered (EINTR in its handler)
// returns EINTR once the barrier is answered.
func TestRequest(t *testing.T) {
	info := genlRequest{cmd: 15}
	g, _ := fakeKernel(t,
		func(r []syscall.NetlinkMessage) [][]byte { return [][]byte{ack(r[0], unix.ESRCH), ack(r[1], 0)} },
		func(r []syscall.NetlinkMessage) [][]byte { return [][]byte{ack(r[0], 0), ack(r[1], unix.EINVAL)} },
		func(r []syscall.NetlinkMessage) [][]byte {
			return [][]byte{genlData(r[0].Header.Seq, 0, 1, 2), ack(r[0], 0), genlData(r[1].Header.Seq, 0, 9), ack(r[1], 0)}
		},
		func(r []syscall.NetlinkMessage) [][]byte { return [][]byte{ack(r[1], 0)} },
	)
	g.barrier = info
	if err := g.request(10, nil, nil); !errors.Is(err, unix.ESRCH) {
		t.Errorf("refused request: %v, want ESRCH", err)
	}
	if err := g.request(10, nil, nil); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "barrier") {
		t.Errorf("refused barrier: %v, want EINVAL naming the barrier", err)
	}
	var answers []string
	if err := g.request(13, nil, func(b []byte) error { answers = append(answers, string(b)); return nil }); err != nil || len(answers) != 1 || answers[0] != "\x01\x02" {
		t.Errorf("get: %v, answers %q, want one \"\\x01\\x02\"", err, answers)
	}
	if err := g.request(10, nil, nil); !errors.Is(err, unix.EINTR) {
		t.Errorf("unanswered request: %v, want EINTR", err)
	}
}

// A dump reads multi-part answers over several reads to NLMSG_DONE,
// skipping another request's, and NLMSG_DONE's errno fails it.
func TestDump(t *testing.T) {
	g, _ := fakeKernel(t,
		func(r []syscall.NetlinkMessage) [][]byte {
			s, f := r[0].Header.Seq, uint16(unix.NLM_F_MULTI)
			if r[0].Header.Flags != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || r[0].Data[0] != 4 {
				t.Errorf("dump request %+v %x", r[0].Header, r[0].Data)
			}
			return [][]byte{
				slices.Concat(genlData(s, f, 1), genlData(s-1, f, 7), genlData(s, f, 2)),
				slices.Concat(genlData(s, f, 3), nlmsg(unix.NLMSG_DONE, f, s, make([]byte, 4))),
			}
		},
		func(r []syscall.NetlinkMessage) [][]byte {
			s, f := r[0].Header.Seq, uint16(unix.NLM_F_MULTI)
			return [][]byte{slices.Concat(genlData(s, f, 1), nlmsg(unix.NLMSG_DONE, f, s, errnoData(unix.EMSGSIZE)))}
		},
	)
	var got []byte
	each := func(b []byte) error { got = append(got, b...); return nil }
	if err := g.dump(4, nil, each); err != nil || string(got) != "\x01\x02\x03" {
		t.Errorf("dump = %v, payloads %x, want 010203", err, got)
	}
	if err := g.dump(4, nil, each); !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("dump failed at its end = %v, want EMSGSIZE", err)
	}
}

// An answer longer than the receive buffer is an error, not a silently
// cut message.
func TestRecvTruncated(t *testing.T) {
	g, _ := fakeKernel(t, func(r []syscall.NetlinkMessage) [][]byte {
		return [][]byte{slices.Concat(genlData(r[0].Header.Seq, 0, make([]byte, 100)...), ack(r[0], 0))}
	})
	g.in = make([]byte, 64)
	if err := g.request(13, nil, func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "larger than the receive buffer") {
		t.Fatalf("request = %v, want a truncation error", err)
	}
}

// Against the kernel's generic netlink controller (present without IPVS):
// a family is looked up by name, a missing one is a *familyError with
// ENOENT; an answer left unread by a request given up on is skipped, not
// taken for the next request's; data answers before the acknowledgement
// are passed over.
func TestGenlKernel(t *testing.T) {
	g, err := dialGenl("", "nlctrl")
	if err != nil {
		t.Skipf("no generic netlink here: %v", err)
	}
	defer g.Close()
	if g.family != unix.GENL_ID_CTRL {
		t.Errorf("nlctrl's id %#x, want %#x", g.family, unix.GENL_ID_CTRL)
	}
	var ferr *familyError
	if _, err := dialGenl("", "vigil-nofamily"); !errors.As(err, &ferr) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing family: %v, want a familyError with ENOENT", err)
	}

	family := func(name string) []byte { return attrString(nil, unix.CTRL_ATTR_FAMILY_NAME, name) }
	g.barrier = genlRequest{unix.CTRL_CMD_GETFAMILY, family("nlctrl")}
	// Requests whose answers nobody reads: a refusal, then a family.
	for _, name := range []string{"vigil-nofamily", "nlctrl"} {
		bt := g.batch()
		at := bt.begin()
		bt.b = append(bt.b, family(name)...)
		bt.end(at, unix.CTRL_CMD_GETFAMILY, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
		if err := g.send(bt.b); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.request(unix.CTRL_CMD_GETFAMILY, family("nlctrl"), nil); err != nil {
		t.Fatalf("request after unread answers: %v", err)
	}
	if err := g.request(unix.CTRL_CMD_GETFAMILY, family("vigil-nofamily"), nil); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("request for a missing family: %v, want ENOENT", err)
	}
	if err := g.request(unix.CTRL_CMD_GETFAMILY, family("nlctrl"), nil); err != nil {
		t.Fatalf("request after a refusal: %v", err)
	}
}

// socketIn opens the socket in the namespace asked for and leaves no
// thread of the process there: a thread left behind keeps a deleted
// namespace alive, and the main thread, which the runtime does not end,
// also changes what the process's /proc/net shows.
func TestSocketInNetns(t *testing.T) {
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skip(err)
	}
	// A namespace of the test's own, held by a thread locked into it.
	type held struct {
		path string
		tid  int
		err  error
	}
	ready, release, finished := make(chan held), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ready <- held{err: err}
			return
		}
		defer self.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ready <- held{err: err}
			return
		}
		ready <- held{path: fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), tid: unix.Gettid()}
		<-release
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	h := <-ready
	if h.err != nil {
		t.Skipf("no namespace of the test's own: %v", h.err)
	}
	defer func() { close(release); <-finished }()
	want, err := os.Stat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	// The socketOnThreadIn check below: the calling thread is back home.
	runtime.LockOSThread()
	fd, err := socketOnThreadIn(mustOpen(t, h.path))
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if ns, _ := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())); ns != home {
		t.Errorf("socketOnThreadIn left its thread in %s, not %s", ns, home)
	}
	runtime.UnlockOSThread()
	for range 20 {
		fd, err := socketIn(h.path)
		if err != nil {
			t.Fatal(err)
		}
		nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
		unix.Close(fd)
		if err != nil {
			t.Skipf("SIOCGSKNS: %v", err)
		}
		var st unix.Stat_t
		err = unix.Fstat(nsfd, &st)
		unix.Close(nsfd)
		if err != nil || st.Ino != want.Sys().(*syscall.Stat_t).Ino {
			t.Fatalf("socket in namespace inode %d (%v), want %d", st.Ino, err, want.Sys().(*syscall.Stat_t).Ino)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		if e.Name() == strconv.Itoa(h.tid) {
			continue
		}
		if ns, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net"); err == nil && ns != home {
			t.Errorf("thread %s left in %s (the process's is %s)", e.Name(), ns, home)
		}
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// benchOps is a cold start of 1,000 services × 10 destinations.
func benchOps() []lb.Op {
	var ops []lb.Op
	for i := range 1000 {
		s := lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)}), Port: uint16(1000 + i/250)}, Scheduler: "wrr"}
		ops = append(ops, lb.Op{Kind: lb.AddService, Service: s})
		for j := range 10 {
			ops = append(ops, lb.Op{Kind: lb.AddDest, Service: s, Dest: lb.Dest{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(j + 1)}), Port: 8080, Forward: lb.NAT, Weight: 1}})
		}
	}
	return ops
}

// BenchmarkBatches and BenchmarkBatchesMdlayher send the 11,000 requests
// of a cold start in batches of applyBatch to nlctrl (present without
// IPVS), through this client and through mdlayher/netlink's SendMessages
// and Receive. The requests lack NLM_F_REQUEST, so the kernel skips them
// (netlink_rcv_skb) and acknowledges the last of each batch: what is
// timed is framing, the system calls and reading the acknowledgements,
// the client's whole share of an Apply. The package doc has the figures.
func BenchmarkBatches(b *testing.B) {
	g, err := dialGenl("", "nlctrl")
	if err != nil {
		b.Skip(err)
	}
	defer g.Close()
	ops := benchOps()
	b.ReportAllocs()
	for b.Loop() {
		for start := 0; start < len(ops); start += applyBatch {
			bt := g.batch()
			for _, op := range ops[start:min(len(ops), start+applyBatch)] {
				at := bt.begin()
				cmd, out, err := encodeOp(bt.b, op)
				if err != nil {
					b.Fatal(err)
				}
				bt.b = out
				bt.end(at, cmd, 0)
			}
			if a, err := bt.exchange(nil); err != nil || a.err != nil || a.answered != 1 {
				b.Fatal(a, err)
			}
		}
	}
}

func BenchmarkBatchesMdlayher(b *testing.B) {
	nc, err := netlink.Dial(unix.NETLINK_GENERIC, nil)
	if err != nil {
		b.Skip(err)
	}
	defer nc.Close()
	ops := benchOps()
	var attrs []byte
	msgs := make([]netlink.Message, 0, applyBatch)
	b.ReportAllocs()
	for b.Loop() {
		for start := 0; start < len(ops); start += applyBatch {
			attrs, msgs = attrs[:0], msgs[:0]
			for _, op := range ops[start:min(len(ops), start+applyBatch)] {
				at := len(attrs)
				cmd, out, err := encodeOp(append(attrs, 0, genlVersion, 0, 0), op)
				if err != nil {
					b.Fatal(err)
				}
				attrs = out
				attrs[at] = cmd
				msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: unix.GENL_ID_CTRL}, Data: attrs[at:len(attrs):len(attrs)]})
			}
			msgs[len(msgs)-1].Header.Flags = netlink.Acknowledge
			sent, err := nc.SendMessages(msgs)
			if err != nil {
				b.Fatal(err)
			}
			last := sent[len(sent)-1].Header.Sequence
		read:
			for {
				answers, err := nc.Receive()
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range answers {
					if m.Header.Sequence == last {
						break read
					}
				}
			}
		}
	}
}

// errnoData is the negative errno that starts NLMSG_ERROR and NLMSG_DONE.
func errnoData(errno unix.Errno) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
}
