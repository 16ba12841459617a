package config

import (
	"fmt"
	"strings"
	"testing"
)

// largeLB is a config with nSvc virtual servers of nRS real servers each,
// written the way the VM daemon benchmark writes it (flow style).
func largeLB(nSvc, nRS int) []byte {
	var b strings.Builder
	b.WriteString("node: {name: bench}\ntelemetry: {listen: \"\"}\nlb:\n  virtual_servers:\n")
	for i := 0; i < nSvc; i++ {
		var rs []string
		for j := 0; j < nRS; j++ {
			rs = append(rs, fmt.Sprintf("{address: \"198.51.100.%d:%d\", weight: %d}", 1+j, 8000+i, 1+j%5))
		}
		fmt.Fprintf(&b, "    - {name: vs%d, address: \"203.0.113.%d:%d\", protocol: tcp, scheduler: wrr, real_servers: [%s]}\n",
			i, 1+i%250, 1000+i, strings.Join(rs, ", "))
	}
	return []byte(b.String())
}

// largeLBBlock is largeLB in block style, with comments, as people write
// files by hand.
func largeLBBlock(nSvc, nRS int) []byte {
	var b strings.Builder
	b.WriteString("node:\n  name: bench\ntelemetry:\n  listen: \"\"\nlb:\n  virtual_servers:\n")
	for i := 0; i < nSvc; i++ {
		fmt.Fprintf(&b, "    - name: vs%d   # service %d\n      address: 203.0.113.%d:%d\n      protocol: tcp\n      scheduler: wrr\n      real_servers:\n",
			i, i, 1+i%250, 1000+i)
		for j := 0; j < nRS; j++ {
			fmt.Fprintf(&b, "        - address: 198.51.100.%d:%d\n          weight: %d\n", 1+j, 8000+i, 1+j%5)
		}
	}
	return []byte(b.String())
}

// BenchmarkParseLarge times parsing, decoding and validating a 1,000 × 10
// virtual-server config: the work a reload of such a file costs.
func BenchmarkParseLarge(b *testing.B) {
	data := largeLB(1000, 10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
