package router

import (
	"testing"
	"time"
)

// TestRxTime: a packet counts at its kernel time unless it waited longer
// than an advert interval, when later adverts may be queued behind it
// (RFC 5798 §6.4.2 resets Master_Down_Timer on receipt; a backlog must not
// let it fire between two queued adverts).
func TestRxTime(t *testing.T) {
	read := time.Unix(1000, 0)
	iv := 100 * time.Millisecond
	for _, tc := range []struct {
		name   string
		age    time.Duration
		iv     time.Duration
		wantAt time.Time
	}{
		{"fresh packet keeps the kernel time", 200 * time.Microsecond, iv, read.Add(-200 * time.Microsecond)},
		{"exactly one interval old keeps it", iv, iv, read.Add(-iv)},
		{"older than an interval counts at read time", iv + time.Millisecond, iv, read},
		{"a stall's backlog counts at read time", 730 * time.Millisecond, iv, read},
		{"no interval known keeps the kernel time", time.Second, 0, read.Add(-time.Second)},
	} {
		if got := rxTime(read.Add(-tc.age), read, tc.iv); !got.Equal(tc.wantAt) {
			t.Errorf("%s: rxTime = %v, want %v", tc.name, got.Sub(read), tc.wantAt.Sub(read))
		}
	}
}
