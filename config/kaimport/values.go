package kaimport

import (
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Reading keepalived's value syntax (keepalived.conf(5) "PARAMETER SYNTAX").

// parseBool reads <BOOL>: on|off|true|false|yes|no; a keyword without a
// value means true.
func parseBool(args []string) (bool, bool) {
	if len(args) == 0 {
		return true, true
	}
	switch strings.ToLower(args[0]) {
	case "on", "true", "yes":
		return true, true
	case "off", "false", "no":
		return false, true
	}
	return false, false
}

// parseTimer reads <TIMER>: seconds with fractions, micro-second resolution.
func parseTimer(s string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e9 {
		return 0, false
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, true
}

// parseInt reads a decimal integer within lo..hi.
func parseInt(s string, lo, hi int64) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// duration writes d as vigil reads it, in the largest unit that keeps it
// exact ("60s", "500ms", "1500us").
func duration(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
}

// userGroup joins keepalived's "USER [GROUP]" words into vigil's
// "user[:group]"; "" when none.
func userGroup(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return words[0] + ":" + words[1]
}

// maskBits turns a dotted IPv4 netmask (or a prefix length) into a prefix
// length; false for a mask that is not contiguous.
func maskBits(s string, v6 bool) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		max := 32
		if v6 {
			max = 128
		}
		return n, n >= 1 && n <= max
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := bits.LeadingZeros32(^m)
	if m<<ones != 0 || ones == 0 {
		return 0, false
	}
	return ones, true
}

// hostPort writes an address and port as vigil's ADDRESS:PORT
// ([V6]:PORT).
func hostPort(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// hexPayload turns keepalived's free-format hex string into pairs of
// digits: each word is read two digits at a time and a last odd digit is
// one byte ("Ab12f 3" is AB 12 0F 03, keepalived.conf(5) UDP_CHECK). X
// (any digit) is kept for reply patterns when wild.
func hexPayload(words []string, wild bool) (string, bool) {
	var b strings.Builder
	for _, w := range words {
		for i := 0; i < len(w); i += 2 {
			pair := w[i:min(i+2, len(w))]
			if len(pair) == 1 {
				pair = "0" + pair
			}
			for _, c := range pair {
				ok := strings.ContainsRune("0123456789abcdefABCDEF", c) || wild && (c == 'x' || c == 'X')
				if !ok {
					return "", false
				}
			}
			b.WriteString(strings.ToLower(pair))
		}
	}
	return b.String(), b.Len() > 0
}
