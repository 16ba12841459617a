package ipvsnet

import (
	"fmt"

	"golang.org/x/sys/unix"

	"vigil/lb"
)

// Changes to the table go to the kernel in batches (genl.go): many
// requests in one sendmsg, an acknowledgement asked only of the last, so
// the kernel answers a batch with one message unless a request fails.
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

// Apply executes ops in order and stops at the first batch with an op the
// kernel refuses, with an error naming that op; the ops before it are
// applied, and so may be those after it in its batch (at most applyBatch
// - 1; the kernel goes on with a batch after a refusal). The caller
// re-reads the table after an error.
func (h *Handle) Apply(ops []lb.Op) error {
	for start := 0; start < len(ops); start += applyBatch {
		batch := ops[start:min(len(ops), start+applyBatch)]
		bt := h.g.batch()
		// An op that cannot be encoded ends the batch before it: the ops
		// before it are sent, then its error is returned.
		var encErr error
		for i, op := range batch {
			at := bt.begin()
			cmd, b, err := encodeOp(bt.b, op)
			if err != nil {
				encErr = fmt.Errorf("ipvsnet: op %d of %d (%s): %w", start+i+1, len(ops), op, err)
				batch = batch[:i]
				bt.cut(at)
				break
			}
			bt.b = b
			bt.end(at, cmd, unix.NLM_F_REQUEST)
		}
		if len(batch) == 0 {
			return encErr
		}
		a, err := bt.exchange(nil)
		switch {
		case err != nil:
			return fmt.Errorf("ipvsnet: ops %d-%d of %d: %w", start+1, start+len(batch), len(ops), err)
		case a.err != nil:
			i := int(a.refused - bt.first)
			return fmt.Errorf("ipvsnet: op %d of %d (%s): %w", start+i+1, len(ops), batch[i], a.err)
		case encErr != nil:
			return encErr
		}
	}
	return nil
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
