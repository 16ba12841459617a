package bench

import (
	"math"
	"slices"
	"time"
)

// Summary describes a set of measured durations.
type Summary struct {
	N      int
	Min    time.Duration
	Median time.Duration
	// P99 is the nearest-rank 99th percentile: the ⌈0.99·N⌉-th smallest
	// value, which is the maximum whenever N < 100.
	P99 time.Duration
	Max time.Duration
}

// Summarize computes the summary of ds (which it does not modify). The
// median of an even count is the mean of the two middle values.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	sum := Summary{N: n, Min: s[0], Max: s[n-1], P99: s[nearestRank(0.99, n)-1]}
	if n%2 == 1 {
		sum.Median = s[n/2]
	} else {
		sum.Median = (s[n/2-1] + s[n/2]) / 2
	}
	return sum
}

// nearestRank is ⌈p·n⌉, at least 1.
func nearestRank(p float64, n int) int {
	r := int(math.Ceil(p*float64(n) - 1e-9))
	return max(1, min(n, r))
}

// P99IsMax reports whether the nearest-rank p99 of n values is their maximum.
func P99IsMax(n int) bool { return n > 0 && nearestRank(0.99, n) == n }
