package router

import (
	"log/slog"
	"os"
)

// EnvTestPanic is a test-only switch: VIGIL_TEST_PANIC=vrrp_receive makes
// the first VRRP packet the daemon reads panic on the receive path, with
// the router's lock held, as a bug in the packet path would. It exists
// because nothing else can make a real daemon panic there, and the
// namespace test of issue 11 item 7 (test/e2e TestPanicMakesMasterResign)
// must show that such a panic makes a master resign (priority 0, VIPs
// removed, exit status 1) instead of ending the process with the VIPs held.
// It is read once, when the router is made; unset, it costs one bool test
// per packet. Never set it in production: the daemon stops at the first
// packet.
const EnvTestPanic = "VIGIL_TEST_PANIC"

// testPanicOnPacket reads EnvTestPanic; any other value is ignored with a
// warning.
func testPanicOnPacket(log *slog.Logger) bool {
	v := os.Getenv(EnvTestPanic)
	switch v {
	case "":
		return false
	case "vrrp_receive":
		log.Warn(EnvTestPanic+" is set (test only): the first VRRP packet read will panic and the node will stop", "component", v)
		return true
	}
	log.Warn(EnvTestPanic+" has an unknown component; ignored", "component", v)
	return false
}
