package bench

import (
	"fmt"
	"net/netip"
	"time"

	"vigil/test/netlab"
)

// Takeover is one measured takeover on the wire.
type Takeover struct {
	// From is the old master's last advert (link cut) or its priority-0
	// advert (graceful stop); To is the new master's first advert.
	From, To netlab.VRRPFrame
}

// Gap is the takeover time: To − From, in capture (kernel) time.
func (t Takeover) Gap() time.Duration { return t.To.Time.Sub(t.From.Time) }

// flow selects the adverts of one virtual router between two speakers.
type flow struct {
	VRID   int
	Master netip.Addr // the old master (higher priority)
	Backup netip.Addr // the node that takes over
}

func (f flow) from(v netlab.VRRPFrame, src netip.Addr) bool {
	return v.Type == 1 && v.VRID == f.VRID && v.Src == src
}

// findCutTakeover looks, among frames (capture order), for the backup's
// first advert captured after cut and the master's last advert captured
// before that one. found is false while the backup has not advertised yet.
// A master advert of priority 0 or a backup advert between the master's last
// advert and cut make the run unusable (err).
func findCutTakeover(frames []netlab.VRRPFrame, f flow, cut time.Time) (to Takeover, found bool, err error) {
	first := -1
	for i, v := range frames {
		if f.from(v, f.Backup) && v.Time.After(cut) {
			first = i
			break
		}
	}
	if first < 0 {
		return Takeover{}, false, nil
	}
	last := -1
	for i := first - 1; i >= 0; i-- {
		if f.from(frames[i], f.Master) {
			last = i
			break
		}
	}
	if last < 0 {
		return Takeover{}, true, fmt.Errorf("backup %v advertised at %s but no advert from master %v precedes it in the capture",
			f.Backup, frames[first].Time.Format(time.StampMicro), f.Master)
	}
	for _, v := range frames[last+1 : first] {
		if f.from(v, f.Backup) {
			return Takeover{}, true, fmt.Errorf("backup %v advertised (priority %d) at %s, before the link cut at %s: a spurious takeover",
				f.Backup, v.Priority, v.Time.Format(time.StampMicro), cut.Format(time.StampMicro))
		}
	}
	to = Takeover{From: frames[last], To: frames[first]}
	if to.From.Priority == 0 {
		return to, true, fmt.Errorf("the master's last advert before the takeover has priority 0")
	}
	return to, true, nil
}

// findResignTakeover looks for the master's first priority-0 advert captured
// after stop and the backup's first advert captured after that. found is
// false while either is missing. A backup advert between stop and the
// priority-0 advert makes the run unusable.
func findResignTakeover(frames []netlab.VRRPFrame, f flow, stop time.Time) (to Takeover, found bool, err error) {
	zero := -1
	for i, v := range frames {
		if !v.Time.After(stop) {
			continue
		}
		if f.from(v, f.Backup) && zero < 0 {
			return Takeover{}, true, fmt.Errorf("backup %v advertised (priority %d) at %s, after SIGTERM but before any priority-0 advert",
				f.Backup, v.Priority, v.Time.Format(time.StampMicro))
		}
		if f.from(v, f.Master) && v.Priority == 0 {
			zero = i
			break
		}
	}
	if zero < 0 {
		return Takeover{}, false, nil
	}
	for _, v := range frames[zero+1:] {
		if f.from(v, f.Backup) {
			return Takeover{From: frames[zero], To: v}, true, nil
		}
	}
	return Takeover{}, false, nil
}

// countResign counts the master's priority-0 adverts in frames after t.
func countResign(frames []netlab.VRRPFrame, f flow, after time.Time) int {
	n := 0
	for _, v := range frames {
		if v.Time.After(after) && f.from(v, f.Master) && v.Priority == 0 {
			n++
		}
	}
	return n
}

// quietCounts counts, in [from, to], the master's adverts at priority prio
// and every advert of the backup.
func quietCounts(frames []netlab.VRRPFrame, f flow, prio int, from, to time.Time) (master, backup int) {
	for _, v := range frames {
		if v.Time.Before(from) || v.Time.After(to) {
			continue
		}
		switch {
		case f.from(v, f.Master) && v.Priority == prio:
			master++
		case f.from(v, f.Backup):
			backup++
		}
	}
	return master, backup
}

// preemptBack is the time from since (link restored, daemon restarted) to
// the first advert of the master at priority prio after the backup's last
// advert (or after since, when the backup did not advertise again). ok is
// false when there is no such advert.
func preemptBack(frames []netlab.VRRPFrame, f flow, prio int, since time.Time) (time.Duration, bool) {
	start := since
	for _, v := range frames {
		if v.Time.After(start) && f.from(v, f.Backup) {
			start = v.Time
		}
	}
	for _, v := range frames {
		if v.Time.After(start) && f.from(v, f.Master) && v.Priority == prio {
			return v.Time.Sub(since), true
		}
	}
	return 0, false
}

// advertStats counts the adverts in [from, to] per source and the distinct
// VRIDs each source advertised.
type advertStats struct {
	Count map[netip.Addr]int
	VRIDs map[netip.Addr]map[int]bool
}

func countAdverts(frames []netlab.VRRPFrame, from, to time.Time) advertStats {
	s := advertStats{Count: map[netip.Addr]int{}, VRIDs: map[netip.Addr]map[int]bool{}}
	for _, v := range frames {
		if v.Type != 1 || v.Time.Before(from) || v.Time.After(to) {
			continue
		}
		s.Count[v.Src]++
		if s.VRIDs[v.Src] == nil {
			s.VRIDs[v.Src] = map[int]bool{}
		}
		s.VRIDs[v.Src][v.VRID] = true
	}
	return s
}

// advertGaps returns the times between consecutive adverts of each VRID
// from src, over all VRIDs.
func advertGaps(frames []netlab.VRRPFrame, src netip.Addr) []time.Duration {
	last := map[int]time.Time{}
	var gaps []time.Duration
	for _, v := range frames {
		if v.Type != 1 || v.Src != src {
			continue
		}
		if t, ok := last[v.VRID]; ok {
			gaps = append(gaps, v.Time.Sub(t))
		}
		last[v.VRID] = v.Time
	}
	return gaps
}
