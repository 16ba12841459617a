package bench

import (
	"net/netip"
	"testing"
	"time"

	"vigil/test/netlab"
)

var (
	tm = netip.MustParseAddr("192.0.2.11")
	tb = netip.MustParseAddr("192.0.2.12")
	t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func adv(src netip.Addr, prio int, at time.Duration) netlab.VRRPFrame {
	return netlab.VRRPFrame{Time: t0.Add(at), Src: src, Version: 3, Type: 1, VRID: takeoverVRID, Priority: prio}
}

func testFlow() flow { return flow{VRID: takeoverVRID, Master: tm, Backup: tb} }

func TestFindCutTakeover(t *testing.T) {
	s := time.Second
	frames := []netlab.VRRPFrame{
		adv(tm, 150, 0), adv(tm, 150, 1*s), adv(tm, 150, 2*s),
		{Time: t0.Add(2500 * time.Millisecond), Src: tb, Type: 1, VRID: 99, Priority: 100}, // other VRID
		adv(tb, 100, 5609*time.Millisecond), adv(tb, 100, 6609*time.Millisecond),
	}
	cut := t0.Add(2400 * time.Millisecond)
	if _, found, _ := findCutTakeover(frames[:4], testFlow(), cut); found {
		t.Error("found a takeover before the backup advertised")
	}
	to, found, err := findCutTakeover(frames, testFlow(), cut)
	if !found || err != nil {
		t.Fatalf("found %v, err %v", found, err)
	}
	if to.Gap() != 3609*time.Millisecond || !to.From.Time.Equal(t0.Add(2*s)) {
		t.Errorf("takeover %v from %v", to.Gap(), to.From.Time)
	}
	// A backup advert before the cut is a spurious takeover.
	_, found, err = findCutTakeover([]netlab.VRRPFrame{adv(tm, 150, 0), adv(tb, 100, 1*s), adv(tb, 100, 3*s)}, testFlow(), t0.Add(2*s))
	if !found || err == nil {
		t.Errorf("spurious advert: found %v err %v", found, err)
	}
	// No master advert at all.
	_, found, err = findCutTakeover([]netlab.VRRPFrame{adv(tb, 100, 3*s)}, testFlow(), t0)
	if !found || err == nil {
		t.Errorf("no master advert: found %v err %v", found, err)
	}
}

func TestFindResignTakeover(t *testing.T) {
	ms := time.Millisecond
	stop := t0.Add(100 * ms)
	frames := []netlab.VRRPFrame{adv(tm, 150, 0), adv(tm, 0, 150*ms), adv(tb, 100, 760*ms)}
	if _, found, _ := findResignTakeover(frames[:2], testFlow(), stop); found {
		t.Error("found before the backup advertised")
	}
	to, found, err := findResignTakeover(frames, testFlow(), stop)
	if !found || err != nil || to.Gap() != 610*ms {
		t.Errorf("got %v %v %v", to.Gap(), found, err)
	}
	if n := countResign(frames, testFlow(), stop); n != 1 {
		t.Errorf("countResign = %d", n)
	}
	_, found, err = findResignTakeover([]netlab.VRRPFrame{adv(tb, 100, 200*ms), adv(tm, 0, 300*ms)}, testFlow(), stop)
	if !found || err == nil {
		t.Errorf("backup before priority 0: found %v err %v", found, err)
	}
}

func TestQuietAndPreempt(t *testing.T) {
	ms := time.Millisecond
	frames := []netlab.VRRPFrame{
		adv(tb, 100, 0), adv(tb, 100, 100*ms), adv(tm, 150, 150*ms), adv(tb, 100, 200*ms),
		adv(tm, 150, 250*ms), adv(tm, 150, 350*ms),
	}
	m, b := quietCounts(frames, testFlow(), 150, t0.Add(210*ms), t0.Add(400*ms))
	if m != 2 || b != 0 {
		t.Errorf("quiet counts %d %d", m, b)
	}
	m, b = quietCounts(frames, testFlow(), 150, t0, t0.Add(400*ms))
	if m != 3 || b != 3 {
		t.Errorf("all counts %d %d", m, b)
	}
	if d, ok := preemptBack(frames, testFlow(), 150, t0.Add(50*ms)); !ok || d != 200*ms {
		t.Errorf("preemptBack = %v %v", d, ok)
	}
	if _, ok := preemptBack(frames[:4], testFlow(), 150, t0.Add(50*ms)); ok {
		t.Error("preemptBack without a later master advert")
	}
}

func TestAdvertStats(t *testing.T) {
	ms := time.Millisecond
	var frames []netlab.VRRPFrame
	for i := range 3 {
		for vrid := 1; vrid <= 2; vrid++ {
			f := adv(tm, 150, time.Duration(i)*10*ms+time.Duration(vrid)*ms)
			f.VRID = vrid
			frames = append(frames, f)
		}
	}
	frames = append(frames, adv(tb, 100, 5*ms))
	st := countAdverts(frames, t0, t0.Add(time.Second))
	if st.Count[tm] != 6 || len(st.VRIDs[tm]) != 2 || st.Count[tb] != 1 {
		t.Errorf("counts %+v", st)
	}
	gaps := advertGaps(frames, tm)
	if len(gaps) != 4 {
		t.Fatalf("gaps %v", gaps)
	}
	for _, g := range gaps {
		if g != 10*ms {
			t.Errorf("gap %v", g)
		}
	}
}
