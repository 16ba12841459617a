package vrrp

import "time"

// SkewTime returns Skew_Time for a backup of the given priority, exactly, in
// nanoseconds.
//
// RFC 3768 §6.1 (v2): Skew_Time = (256 − Priority) / 256 seconds, whatever the
// advertisement interval. RFC 5798/9568 §6.1 (v3): Skew_Time = ((256 −
// Priority) × Master_Adver_Interval) / 256. Computing in nanoseconds avoids
// FRR's centisecond rounding, which gives every backup skew 0 at 10 ms.
func SkewTime(version uint8, priority uint8, masterAdverInterval time.Duration) time.Duration {
	base := masterAdverInterval
	if version == 2 {
		base = time.Second
	}
	return time.Duration(256-int64(priority)) * base / 256
}

// MasterDownInterval returns 3 × Master_Adver_Interval + Skew_Time (RFC 3768
// §6.1, RFC 5798 §6.1). For v2 the interval is the locally configured one,
// since v2 backups do not learn it.
func MasterDownInterval(version uint8, priority uint8, masterAdverInterval time.Duration) time.Duration {
	return 3*masterAdverInterval + SkewTime(version, priority, masterAdverInterval)
}
