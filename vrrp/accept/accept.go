// Package accept enforces RFC 5798 Accept_Mode = False with nftables.
//
// vigil puts the virtual addresses on the interface when an instance becomes
// master, so the kernel would accept packets addressed to them. A non-owner
// master whose Accept_Mode is False MUST NOT accept those packets (RFC 5798
// §6.4.3); it still answers ARP for them (ARP never reaches an IP hook), and
// for IPv6 it MUST NOT drop Neighbor Solicitations and Advertisements for
// them. keepalived implements `no_accept` the same way: drop rules in the
// input path.
//
// # Ruleset
//
// A Filter owns one table and touches nothing else. `nft list ruleset`
// shows it as:
//
//	table inet vigil {
//		chain input {
//			type filter hook input priority filter - 1; policy accept;
//			icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept comment "vigil: IPv6 neighbour discovery"
//			ip daddr { 192.0.2.100, 192.0.2.101 } counter packets 0 bytes 0 drop comment "no_accept web ipv4"
//			ip6 daddr { 2001:db8::100 } counter packets 0 bytes 0 drop comment "no_accept web ipv6"
//		}
//	}
//
// (each rule also checks meta nfproto, which nft leaves implicit).
//
// The chain hooks input, so it sees exactly the packets the host is about to
// accept locally (forwarded traffic never matches an address the host
// holds). Its priority is filter - 1 (-1), keepalived's default
// `nftables_priority`: it runs before a distribution's `inet filter input`
// chain at priority 0, and well before IPVS, which takes packets in LOCAL_IN
// after the filter hooks; a drop in any base chain is final whatever other
// chains decide. The first rule lets NS/NA through before any drop rule; an
// accept verdict only ends this chain, so it opens nothing another chain
// drops. There is one drop rule per owner (a VRRP instance name) and address
// family, matching the destination against an anonymous set of that owner's
// addresses, with a counter. The owner is recorded in the rule's comment
// (nftables user data), which is how Unblock finds exactly that owner's
// rules; anonymous sets are bound to their rule and go with it.
//
// # Transactions and recovery
//
// Every change is one nftables transaction (one netlink batch): it applies
// completely or not at all, so there is never a moment with an owner's old
// rule gone and its new one missing. New replaces a "vigil" table left behind
// by a crashed run in the same transaction that creates the fresh one.
//
// The Filter remembers what every owner should have blocked. Each Block and
// Unblock first reads the chain; if the table, the chain or the leading
// neighbour-discovery rule is missing (`nft flush ruleset` by a firewall
// reload, say), it rebuilds the whole table with every owner's rules in one
// transaction, so the next call repairs what an outside tool removed. Rules
// in the chain that the Filter does not expect are deleted.
//
// # Namespaces
//
// Each operation opens a short-lived netlink socket (so a failed batch can
// never leave unread replies that confuse the next one). New works in the
// network namespace of the calling thread at each operation, which for a
// daemon is the process's namespace; NewAt pins another namespace (tests).
package accept

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Names and priority of what the Filter installs.
const (
	TableName = "vigil" // family inet
	ChainName = "input"
	// ChainPriority is the input chain's priority: filter - 1, as
	// keepalived's nftables_priority default.
	ChainPriority = -1
)

// ndComment tags the neighbour-discovery accept rule. Owner tags always end
// in " ipv4" or " ipv6", so it cannot collide with one.
const ndComment = "vigil: IPv6 neighbour discovery"

// maxOwnerInTag bounds the owner part of a rule comment: nft prints comments
// of up to 128 bytes. Longer owner names are shortened with a hash suffix.
const maxOwnerInTag = 100

// ErrClosed is returned by operations on a closed Filter.
var ErrClosed = errors.New("accept: filter closed")

// Filter drops packets addressed to blocked virtual addresses. Its methods
// are safe for concurrent use; they are serialized.
type Filter struct {
	mu     sync.Mutex
	nsFd   int // namespace to work in; -1 means the calling thread's
	closed bool
	owners map[string]blocked // what each owner should have blocked
}

// blocked is one owner's addresses, split by family, sorted, no duplicates.
type blocked struct{ v4, v6 []netip.Addr }

func (b blocked) empty() bool { return len(b.v4) == 0 && len(b.v6) == 0 }

func (b blocked) equal(o blocked) bool {
	return slices.Equal(b.v4, o.v4) && slices.Equal(b.v6, o.v6)
}

// New creates vigil's table in the current network namespace, replacing one
// a crashed run left behind. It fails with an error naming the cause, and
// hinting at a missing nf_tables, if the kernel refuses.
func New() (*Filter, error) { return NewAt(netns.None()) }

// NewAt is New for the network namespace ns; netns.None() means the calling
// thread's namespace at each operation, as New. The Filter keeps its own
// duplicate of ns, so the caller may close ns afterwards.
func NewAt(ns netns.NsHandle) (*Filter, error) {
	f := &Filter{nsFd: -1, owners: map[string]blocked{}}
	if ns.IsOpen() {
		// At least 3: mdlayher/netlink treats NetNS 0 as "current".
		fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("accept: duplicating network namespace handle: %w", err)
		}
		f.nsFd = fd
	}
	if err := f.rebuild(); err != nil {
		f.closeNS()
		return nil, fmt.Errorf("accept: creating nftables table inet %s: %w%s", TableName, err, hint(err))
	}
	return f, nil
}

// hint explains errors that mean the kernel cannot do nftables at all.
func hint(err error) string {
	for _, e := range []syscall.Errno{unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT, unix.EOPNOTSUPP, unix.ENOENT} {
		if errors.Is(err, e) {
			return " (does the kernel have nf_tables with the inet family? CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET)"
		}
	}
	if errors.Is(err, unix.EPERM) {
		return " (needs CAP_NET_ADMIN)"
	}
	return ""
}

// Block makes the filter drop every IPv4 and IPv6 packet addressed to one of
// addrs, except ICMPv6 Neighbor Solicitations and Advertisements, on behalf
// of owner (the VRRP instance name). It replaces what owner blocked before,
// atomically; blocking the same addresses again changes nothing (the rules
// and their counters stay). An empty addrs is Unblock. Addresses must be
// valid unicast IPv4 or IPv6 addresses; an IPv6 zone is ignored (the rule
// matches the address on every interface).
func (f *Filter) Block(owner string, addrs []netip.Addr) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	want, err := split(addrs)
	if err != nil {
		return fmt.Errorf("accept: block for %q: %w", owner, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	prev, had := f.owners[owner]
	dirty := ""
	if !had || !prev.equal(want) {
		dirty = owner
	}
	if want.empty() {
		delete(f.owners, owner)
	} else {
		f.owners[owner] = want
	}
	if err := f.apply(dirty); err != nil {
		if had {
			f.owners[owner] = prev
		} else {
			delete(f.owners, owner)
		}
		return fmt.Errorf("accept: block %s for %q: %w", want, owner, err)
	}
	return nil
}

// Unblock removes owner's drop rules. Unblocking an owner that blocks
// nothing is not an error.
func (f *Filter) Unblock(owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	prev, had := f.owners[owner]
	delete(f.owners, owner)
	if err := f.apply(owner); err != nil {
		if had {
			f.owners[owner] = prev
		}
		return fmt.Errorf("accept: unblock for %q: %w", owner, err)
	}
	return nil
}

// Blocked returns the addresses owner has blocked, as the Filter remembers
// them (IPv4 first, each family sorted).
func (f *Filter) Blocked(owner string) []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.owners[owner]
	return slices.Concat(b.v4, b.v6)
}

// Close deletes vigil's table, lifting every block (graceful stop). Later
// calls return ErrClosed; a second Close returns nil.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	defer f.closeNS()
	c, err := f.conn()
	if err != nil {
		return fmt.Errorf("accept: deleting table inet %s: %w", TableName, err)
	}
	t := table()
	c.AddTable(t) // so that the delete cannot fail with ENOENT
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("accept: deleting table inet %s: %w", TableName, err)
	}
	return nil
}

func (f *Filter) closeNS() {
	if f.nsFd >= 0 {
		unix.Close(f.nsFd)
		f.nsFd = -1
	}
}

func checkOwner(owner string) error {
	if owner == "" {
		return errors.New("accept: empty owner name")
	}
	if strings.IndexByte(owner, 0) >= 0 {
		return fmt.Errorf("accept: owner name %q contains a NUL byte", owner)
	}
	return nil
}

// split validates addrs and returns them by family, sorted and deduplicated.
func split(addrs []netip.Addr) (blocked, error) {
	var b blocked
	for _, a := range addrs {
		a = a.WithZone("")
		switch {
		case !a.IsValid():
			return blocked{}, errors.New("invalid (zero) address")
		case a.Is4In6():
			return blocked{}, fmt.Errorf("%s: IPv4-mapped IPv6 address; use the IPv4 form", a)
		case a.IsUnspecified() || a.IsMulticast():
			return blocked{}, fmt.Errorf("%s: not a unicast address", a)
		case a.Is4():
			b.v4 = append(b.v4, a)
		default:
			b.v6 = append(b.v6, a)
		}
	}
	slices.SortFunc(b.v4, netip.Addr.Compare)
	slices.SortFunc(b.v6, netip.Addr.Compare)
	b.v4, b.v6 = slices.Compact(b.v4), slices.Compact(b.v6)
	return b, nil
}

func (b blocked) String() string {
	return fmt.Sprint(slices.Concat(b.v4, b.v6))
}

func (f *Filter) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if f.nsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(f.nsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink connection: %w", err)
	}
	return c, nil
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

func chain(t *nftables.Table) *nftables.Chain {
	policy := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     ChainName,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(ChainPriority),
		Policy:   &policy,
	}
}

// tag is the comment on owner's drop rule for family fam (4 or 6). Distinct
// (owner, fam) pairs give distinct tags: the family is the fixed-length
// suffix and the owner is kept whole, or, when too long, shortened with a
// hash of the whole name.
func tag(owner string, fam int) string {
	if len(owner) > maxOwnerInTag {
		sum := sha256.Sum256([]byte(owner))
		owner = strings.ToValidUTF8(owner[:maxOwnerInTag-17], "") + "~" + hex.EncodeToString(sum[:8])
	}
	return fmt.Sprintf("no_accept %s ipv%d", owner, fam)
}

func comment(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// batch builds one transaction; anonymous set IDs are unique within it.
type batch struct {
	c     *nftables.Conn
	ch    *nftables.Chain
	setID uint32
}

func (b *batch) anonSet(key nftables.SetDatatype, elems [][]byte) (*nftables.Set, error) {
	b.setID++
	s := &nftables.Set{Table: b.ch.Table, Name: "__set%d", ID: b.setID, Anonymous: true, Constant: true, KeyType: key}
	els := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		els[i] = nftables.SetElement{Key: e}
	}
	if err := b.c.AddSet(s, els); err != nil {
		return nil, fmt.Errorf("building address set: %w", err)
	}
	return s, nil
}

// addND adds the rule that lets IPv6 neighbour discovery through:
// meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type { 135, 136 } accept.
func (b *batch) addND() error {
	s, err := b.anonSet(nftables.TypeICMP6Type, [][]byte{{135}, {136}})
	if err != nil {
		return err
	}
	b.c.AddRule(&nftables.Rule{
		Table: b.ch.Table,
		Chain: b.ch,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			&expr.Verdict{Kind: expr.VerdictAccept},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, ndComment),
	})
	return nil
}

// addDrop adds owner's drop rule for one family:
// meta nfproto ipvN ip[6] daddr { addrs } counter drop.
func (b *batch) addDrop(owner string, fam int, addrs []netip.Addr) error {
	key, proto, off, n := nftables.TypeIPAddr, byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if fam == 6 {
		key, proto, off, n = nftables.TypeIP6Addr, unix.NFPROTO_IPV6, 24, 16
	}
	elems := make([][]byte, len(addrs))
	for i, a := range addrs {
		elems[i] = a.AsSlice()
	}
	s, err := b.anonSet(key, elems)
	if err != nil {
		return err
	}
	b.c.AddRule(&nftables.Rule{
		Table: b.ch.Table,
		Chain: b.ch,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, tag(owner, fam)),
	})
	return nil
}

// want is one drop rule the Filter expects.
type want struct {
	owner string
	fam   int
	addrs []netip.Addr
}

// wanted lists the expected drop rules by tag, and the tags in a stable
// order.
func (f *Filter) wanted() (map[string]want, []string) {
	m := map[string]want{}
	for owner, b := range f.owners {
		if len(b.v4) > 0 {
			m[tag(owner, 4)] = want{owner, 4, b.v4}
		}
		if len(b.v6) > 0 {
			m[tag(owner, 6)] = want{owner, 6, b.v6}
		}
	}
	tags := make([]string, 0, len(m))
	for t := range m {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return m, tags
}

// rebuild replaces the table with a fresh one holding every owner's rules,
// in one transaction.
func (f *Filter) rebuild() error {
	c, err := f.conn()
	if err != nil {
		return err
	}
	t := table()
	// add + delete + add: replaces an old table, and the delete cannot fail
	// with ENOENT when there is none.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	b := &batch{c: c, ch: c.AddChain(chain(t))}
	if err := b.addND(); err != nil {
		return err
	}
	m, tags := f.wanted()
	for _, tg := range tags {
		w := m[tg]
		if err := b.addDrop(w.owner, w.fam, w.addrs); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables transaction: %w", err)
	}
	return nil
}

// apply brings the kernel in line with f.owners. dirty names the owner whose
// addresses changed (its rules are replaced); "" if none did. Other owners'
// rules are only added when missing, so their counters survive.
func (f *Filter) apply(dirty string) error {
	c, err := f.conn()
	if err != nil {
		return err
	}
	t := table()
	rules, err := c.GetRules(t, chain(t))
	if err != nil || len(rules) == 0 || comment(rules[0]) != ndComment {
		// Table or chain gone (an outside flush), or not ours any more.
		if rerr := f.rebuild(); rerr != nil {
			if err != nil {
				return fmt.Errorf("reading chain inet %s %s: %v; rebuilding the table: %w", TableName, ChainName, err, rerr)
			}
			return fmt.Errorf("rebuilding the table: %w", rerr)
		}
		return nil
	}
	m, tags := f.wanted()
	have := map[string]bool{}
	var del []*nftables.Rule
	for _, r := range rules[1:] {
		tg := comment(r)
		w, ok := m[tg]
		if !ok || w.owner == dirty || have[tg] {
			del = append(del, r) // not expected, being replaced, or a duplicate
			continue
		}
		have[tg] = true
	}
	b := &batch{c: c, ch: chain(t)}
	for _, r := range del {
		r.Table, r.Chain = t, b.ch
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("deleting rule %d: %w", r.Handle, err)
		}
	}
	adds := 0
	for _, tg := range tags {
		if have[tg] {
			continue
		}
		w := m[tg]
		if err := b.addDrop(w.owner, w.fam, w.addrs); err != nil {
			return err
		}
		adds++
	}
	if len(del) == 0 && adds == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables transaction: %w", err)
	}
	return nil
}
