package interop

import (
	"net/netip"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
)

// vigil's vmac: true against keepalived's use_vmac (issue 3): both run the
// instance on a macvlan "vrrp.51" with the virtual MAC 00:00:5e:00:01:33,
// send their adverts from it and hand the VIP over in both directions.
func TestInteropVMAC(t *testing.T) {
	bin := peers(t)
	const vmacDev, vmacMAC = "vrrp.51", "00:00:5e:00:01:33"
	vip := netip.MustParsePrefix("192.0.2.100/24")
	for _, vigilMaster := range []bool{true, false} {
		name := "vigil-master"
		if !vigilMaster {
			name = "keepalived-master"
		}
		t.Run(name, func(t *testing.T) {
			lab := netlab.NewForTest(t, "vgiovm")
			nv, err := lab.AddNode("vigil", netip.MustParsePrefix("192.0.2.11/24"))
			if err != nil {
				t.Fatal(err)
			}
			nk, err := lab.AddNode("kad", netip.MustParsePrefix("192.0.2.12/24"))
			if err != nil {
				t.Fatal(err)
			}
			capture, err := lab.StartCapture(netlab.FilterVRRP)
			if err != nil {
				t.Fatal(err)
			}
			in := peer.Instance{Name: "VI_1", VRID: 51, Version: 3, Interval: 100 * time.Millisecond,
				VIPs: []netip.Prefix{vip}, Preempt: true, VMAC: true}
			vin, kin := in, in
			vin.Priority, kin.Priority = 100, 150
			master, backup := nk, nv
			if vigilMaster {
				vin.Priority, kin.Priority = 150, 100
				master, backup = nv, nk
			}
			pv, err := peer.StartVigil(nv, bin, []peer.Instance{vin})
			if err != nil {
				t.Fatal(err)
			}
			pk, err := peer.StartKeepalived(nk, []peer.Instance{kin})
			if err != nil {
				t.Fatal(err)
			}
			if err := master.WaitAddr(vmacDev, vip.Addr(), true, 5*time.Second); err != nil {
				t.Fatalf("master %s has no VIP on %s: %v\nvigil:\n%s\nkeepalived:\n%s", master.Name, vmacDev, err, pv.Log(), pk.Log())
			}
			time.Sleep(500 * time.Millisecond)
			if ok, _ := backup.HasAddr(vmacDev, vip.Addr()); ok {
				t.Fatalf("backup %s holds the VIP too", backup.Name)
			}
			// Both sides' adverts come from the virtual MAC.
			frames, err := capture.Frames()
			if err != nil {
				t.Fatal(err)
			}
			from := map[netip.Addr]bool{}
			for _, f := range netlab.VRRPFrames(frames) {
				if f.SrcMAC.String() != vmacMAC {
					t.Fatalf("advert from %s with source MAC %s, want %s", f.Src, f.SrcMAC, vmacMAC)
				}
				from[f.Src] = true
			}
			if len(from) == 0 {
				t.Fatal("no advert captured")
			}
			// Graceful stop of the master: the backup takes over on its vmac.
			stopped := pk
			if vigilMaster {
				stopped = pv
			}
			if err := stopped.Stop(5 * time.Second); err != nil {
				t.Fatalf("stopping the master: %v", err)
			}
			if err := backup.WaitAddr(vmacDev, vip.Addr(), true, 2*time.Second); err != nil {
				t.Fatalf("backup %s did not take over on %s: %v", backup.Name, vmacDev, err)
			}
			frames, _ = capture.Frames()
			var sawBackup bool
			for _, f := range netlab.VRRPFrames(frames) {
				if f.SrcMAC.String() != vmacMAC {
					t.Fatalf("advert from %s with source MAC %s after the takeover", f.Src, f.SrcMAC)
				}
				sawBackup = sawBackup || (f.Src == netip.MustParseAddr("192.0.2.11") && !vigilMaster) ||
					(f.Src == netip.MustParseAddr("192.0.2.12") && vigilMaster)
			}
			if !sawBackup {
				t.Fatal("no advert from the new master")
			}
		})
	}
}
