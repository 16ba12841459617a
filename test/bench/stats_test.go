package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	if s := Summarize(nil); s.N != 0 {
		t.Errorf("empty: %+v", s)
	}
	s := Summarize([]time.Duration{5 * ms, 1 * ms, 3 * ms})
	if s != (Summary{N: 3, Min: ms, Median: 3 * ms, P99: 5 * ms, Max: 5 * ms}) {
		t.Errorf("odd: %+v", s)
	}
	s = Summarize([]time.Duration{4 * ms, 1 * ms, 2 * ms, 3 * ms})
	if s.Median != 2500*time.Microsecond || s.P99 != 4*ms {
		t.Errorf("even: %+v", s)
	}
	// 200 values 1..200 ms: nearest rank ⌈0.99·200⌉ = 198.
	var many []time.Duration
	for i := 200; i >= 1; i-- {
		many = append(many, time.Duration(i)*ms)
	}
	if s := Summarize(many); s.P99 != 198*ms || s.Max != 200*ms {
		t.Errorf("200 values: %+v", s)
	}
}

func TestP99IsMax(t *testing.T) {
	for n, want := range map[int]bool{0: false, 1: true, 20: true, 99: true, 100: false, 101: false, 1000: false} {
		if got := P99IsMax(n); got != want {
			t.Errorf("P99IsMax(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestTimers(t *testing.T) {
	// RFC 5798 §6.1 with priority 100: skew 156/256 of the interval.
	if got := masterDown(100, time.Second); got != 3609375*time.Microsecond {
		t.Errorf("Master_Down_Interval at 1 s = %v", got)
	}
	if got := masterDown(100, 10*time.Millisecond); got != 36093750*time.Nanosecond {
		t.Errorf("Master_Down_Interval at 10 ms = %v", got)
	}
	if got := skew(100, time.Second); got != 609375*time.Microsecond {
		t.Errorf("Skew_Time at 1 s = %v", got)
	}
}
