// Package netlab is the test harness around internal/nslab's network-namespace labs for vigil's
// end-to-end tests, keepalived interop tests and benchmarks.
//
// It re-exports the lab (Lab, Node, Process, Capture, VRRPFrames, ...; see internal/nslab for the
// segment a lab builds) and adds what only tests need: Require, which gates the root-only tiers on
// VIGIL_NETNS=1, and NewForTest, which removes an earlier crashed run's leftovers, builds a lab
// with the VIGIL_LAB_TAG-tagged prefix and closes it when the test ends. The lab's directory (the
// daemons' configs and logs) is kept when the test fails, or always with VIGIL_LAB_KEEP=1.
//
// Typical use in a root-only test:
//
//	lab := netlab.NewForTest(t, "vge2e")                 // skips unless VIGIL_NETNS=1
//	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
//	cap, err := lab.StartCapture(netlab.FilterVRRP)
//	p, err := n1.Start(os.Getenv("VIGIL_BIN"), "run", "--config", cfg)
//	...
//	frames, err := cap.Stop()
//	adverts := netlab.VRRPFrames(frames)
//
// A test lab (NewForTest) starts every `vigil run` under the shipped systemd unit's capability
// bounding set, ambient set and no_new_privs (read from deploy/systemd/vigil.service, or
// $VIGIL_UNIT, and applied with setpriv), so the unit and the features it must allow cannot
// drift apart unnoticed; StartOptions.FullPrivileges opts out.
//
// One prefix per test package is the convention: Cleanup goes by prefix, and a prefix must not be
// the beginning of another package's prefix.
package netlab
