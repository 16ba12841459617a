package config

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestVSItems(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string // item texts; nil with ok false
		ok   bool
	}{
		{"flow items", "node: {name: a}\nlb:\n  virtual_servers:\n    - {name: a}\n    - {name: b}\nvrrp: {}\n",
			[]string{"    - {name: a}\n", "    - {name: b}\n"}, true},
		{"block items with comments and blank lines", "lb:\n  on_stop: keep\n  virtual_servers:\n  # first\n  - name: a\n    real_servers:\n    - {address: x}\n\n  # b next\n  - name: b\n  timeouts: {tcp: 1s}\n",
			[]string{"  - name: a\n    real_servers:\n    - {address: x}\n\n  # b next\n", "  - name: b\n"}, true},
		{"last item at end of file without newline", "lb:\n  virtual_servers:\n    - {name: a}",
			[]string{"    - {name: a}"}, true},
		{"empty list", "lb:\n  virtual_servers:\n  on_stop: keep\n", nil, true},
		{"empty list at end", "lb:\n  virtual_servers:\n", nil, false},
		{"no lb", "node: {name: a}\n", nil, false},
		{"flow list", "lb:\n  virtual_servers: [{name: a}]\n", nil, false},
		{"flow lb", "lb: {virtual_servers: [{name: a}]}\n", nil, false},
		{"anchor", "lb:\n  virtual_servers:\n    - &x {name: a}\n", nil, false},
		{"tab", "lb:\n  virtual_servers:\n    - {name:\ta}\n", nil, false},
		{"crlf", "lb:\r\n  virtual_servers:\r\n    - {name: a}\r\n", nil, false},
		{"second document", "lb:\n  virtual_servers:\n    - {name: a}\n---\nlb: {}\n", nil, false},
		{"directive", "%YAML 1.2\n---\nlb:\n  virtual_servers:\n    - {name: a}\n", nil, false},
		{"duplicate lb", "lb:\n  virtual_servers:\n    - {name: a}\nlb:\n  on_stop: keep\n", nil, false},
		{"duplicate list", "lb:\n  virtual_servers:\n    - {name: a}\n  virtual_servers:\n    - {name: b}\n", nil, false},
		{"odd indentation", "lb:\n  virtual_servers:\n    - {name: a}\n   x: 1\n", nil, false},
		{"top-level list", "- lb\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, ok := vsItems([]byte(tc.in))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			var got []string
			for _, it := range items {
				got = append(got, tc.in[it[0]:it[1]])
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("items = %q, want %q", got, tc.want)
			}
		})
	}
}

// reuseConfig writes a config of n virtual servers whose details come from
// vals (one entry per server, changed by the caller between parses), in
// block and flow style alternately, with comments.
func reuseConfig(vals []int) string {
	var b strings.Builder
	b.WriteString("node: {name: t}\ntelemetry: {listen: \"\"}\nlb:\n  on_stop: keep\n  # the services\n  virtual_servers:\n")
	for i, v := range vals {
		switch {
		case v < 0: // an invalid entry
			fmt.Fprintf(&b, "    - {name: vs%d, address: \"203.0.113.%d:%d\", protocol: tcp, weight: nope}\n", i, 1+i%250, 1000+i)
		case v%3 == 0:
			fmt.Fprintf(&b, "    - {name: vs%d, address: \"203.0.113.%d:%d\", protocol: tcp, real_servers: [{address: \"198.51.100.1:80\", weight: %d}]}\n",
				i, 1+i%250, 1000+i, 1+v%7)
		case v%3 == 1:
			fmt.Fprintf(&b, "    # vs%d\n    - name: vs%d\n      address: \"203.0.113.%d:%d\"\n      protocol: udp\n      scheduler: %s\n      real_servers:\n        - address: \"198.51.100.2:53\"\n          weight: %d\n\n",
				i, i, 1+i%250, 1000+i, []string{"rr", "wrr", "lc"}[v%3], v%5)
		default: // a flow mapping over several lines
			fmt.Fprintf(&b, "    - {name: vs%d,\n       address: \"203.0.113.%d:%d\", protocol: tcp,\n       sorry_server: \"198.51.100.9:%d\"}\n", i, 1+i%250, 1000+i, 1+v)
		}
	}
	b.WriteString("  timeouts: {tcp: 900s}\nvrrp:\n  instances: []\n")
	return b.String()
}

// TestLoaderReuseMatchesParse edits random virtual servers of a config
// between parses: whatever a Loader takes over from its last parse, its
// result (or error) must be exactly Parse's.
func TestLoaderReuseMatchesParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		par  parallelism
	}{
		{"whole parses", parallelism{procs: 1, min: 1 << 30}},
		// Every parse with two or more new items decodes them apart: on
		// one core, and on four in chunks as small as one item.
		{"new items decoded apart", parallelism{procs: 1, min: 2}},
		{"new items decoded apart on four cores", parallelism{procs: 4, min: 2, unit: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) { loaderRounds(t, tc.par) })
	}
}

func loaderRounds(t *testing.T, par parallelism) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]int, 40)
	for i := range vals {
		vals[i] = rng.IntN(100)
	}
	l := Loader{par: par}
	reusedSome, apart := false, 0
	for round := range 60 {
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(vals))
			switch rng.IntN(10) {
			case 0:
				vals[i] = -1
			case 1:
				vals = append(vals[:i], vals[i+1:]...) // remove one: later names shift
			case 2:
				vals = append(vals, rng.IntN(100))
			default:
				vals[i] = rng.IntN(100)
			}
		}
		text := []byte(reuseConfig(vals))
		want, wantErr := Parse(text)
		got, gotErr := l.Parse(text)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("round %d: error\n%v\nwant\n%v", round, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: the Loader's config differs from Parse's", round)
		}
		if wantErr == nil && l.fellBack {
			t.Fatalf("round %d: the placeholders were refused; the skeleton is wrong", round)
		}
		if wantErr == nil && l.Reused() > 0 {
			reusedSome = true
		}
		if round == 0 && l.Reused() != 0 {
			t.Fatalf("first parse reused %d: nothing was known before it", l.Reused())
		}
		apart += l.apart
	}
	if !reusedSome {
		t.Fatal("no parse reused a virtual server: the test checks nothing")
	}
	if par.min == 2 && apart < 40 {
		t.Fatalf("%d items decoded apart in all rounds: that path was not taken", apart)
	}
	if par.min > 2 && apart != 0 {
		t.Fatalf("%d items decoded apart", apart)
	}
}

// A cold parse of a large file on several cores decodes its items apart
// and reuses none (nothing was known before), and gives Parse's result.
func TestLoaderColdParallel(t *testing.T) {
	data := largeLB(200, 3)
	want, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	l := Loader{par: parallelism{procs: 2}}
	got, err := l.Parse(data)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parallel parse differs from Parse (err %v)", err)
	}
	if l.apart != 200 || l.Reused() != 0 || l.fellBack {
		t.Errorf("decoded apart %d, reused %d, fell back %v; want 200, 0, false", l.apart, l.Reused(), l.fellBack)
	}
	// An invalid item is left to the whole parse, which names its place.
	bad := []byte(strings.Replace(string(data), "name: vs150,", "name: vs150, wieght: 2,", 1))
	_, wantErr := Parse(bad)
	_, gotErr := (&Loader{par: parallelism{procs: 2}}).Parse(bad)
	if wantErr == nil || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Errorf("error\n%v\nwant\n%v", gotErr, wantErr)
	}
}

// A line that looks like a list item inside a quoted string fools vsItems;
// the parse must notice the placeholder did not land as an item and give
// Parse's result.
func TestLoaderPlaceholderInsideString(t *testing.T) {
	head := "node: {name: t}\ntelemetry: {listen: \"\"}\nlb:\n  virtual_servers:\n    - {name: a, address: \"203.0.113.1:80\", protocol: tcp, real_servers: [{address: \"198.51.100.1:80\"}], notify: {quorum_up: [/bin/echo, \"text\n"
	tail := "    - x\"]}}\n    - {name: c, address: \"203.0.113.3:80\", protocol: tcp, sorry_server: \"198.51.100.1:80\"}\n"
	fake := "    - {name: b, address: '203.0.113.2:80', protocol: tcp, sorry_server: '198.51.100.1:80'}\n"
	var l Loader
	// First parse: learns "fake" as an item only if the counts agree.
	if _, err := l.Parse([]byte(head + fake + tail)); err != nil {
		t.Fatal(err)
	}
	// Make "fake" a real item somewhere, so the Loader knows its text.
	real := "node: {name: t}\ntelemetry: {listen: \"\"}\nlb:\n  virtual_servers:\n" + fake
	if _, err := l.Parse([]byte(real)); err != nil {
		t.Fatal(err)
	}
	text := []byte(head + fake + tail)
	want, wantErr := Parse(text)
	got, gotErr := l.Parse(text)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v\nwant %+v, %v", got, gotErr, want, wantErr)
	}
	if n := len(want.LB.VirtualServers); n != 2 {
		t.Fatalf("%d virtual servers, want 2 (a, whose command spans lines, and c)", n)
	}
	if !l.fellBack {
		t.Error("the placeholder was not tried: the test checks nothing")
	}
	if l.Reused() != 0 {
		t.Errorf("reused %d, want 0: the placeholder sat inside a string", l.Reused())
	}
}

// A reload that changes one of 1,000 virtual servers: the cost the Loader
// saves (compare BenchmarkParseLarge).
func BenchmarkLoaderOneChange(b *testing.B) {
	a, c := largeLB(1000, 10), largeLB(1000, 10)
	c = []byte(strings.Replace(string(c), "weight: 2}", "weight: 3}", 1))
	var l Loader
	if _, err := l.Parse(a); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(a)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		next := a
		if i%2 == 0 {
			next = c
		}
		if _, err := l.Parse(next); err != nil {
			b.Fatal(err)
		}
	}
	if l.Reused() != 999 {
		b.Fatalf("reused %d, want 999", l.Reused())
	}
}

// BenchmarkLoaderCold is a start's parse of 1,000 virtual servers: the
// items decoded apart, on every core (compare BenchmarkParseLarge, the
// whole parse; -cpu 1 for one core), in flow style (one line each) and in
// block style.
func BenchmarkLoaderCold(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{{"flow", largeLB(1000, 10)}, {"block", largeLBBlock(1000, 10)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				var l Loader
				if _, err := l.Parse(c.data); err != nil {
					b.Fatal(err)
				}
				if l.apart != 1000 {
					b.Fatalf("decoded apart %d, want 1000", l.apart)
				}
			}
		})
	}
}

// FuzzLoaderMatchesParse parses a, then b, with one Loader: b's result or
// error must be exactly Parse's, whatever of a's virtual servers the
// Loader takes over (make fuzz).
func FuzzLoaderMatchesParse(f *testing.F) {
	base := reuseConfig([]int{1, 2, 3, 4, 5, 6})
	f.Add(base, reuseConfig([]int{1, 2, 9, 4, 5, 6}))
	f.Add(base, reuseConfig([]int{4, 5, 6, 1, 2, 3}))
	f.Add(base, strings.Replace(base, "protocol: udp", "protocol: \"udp\n    - x\"", 1))
	f.Add(base, strings.Replace(base, "  virtual_servers:\n", "  virtual_servers:\n    - &a {name: z}\n", 1))
	f.Add(base, "lb:\n  virtual_servers:\n  - {name: vs0}\n")
	// Keys with capitals, alone and beside their lower-case form; a list
	// with no value; a second document.
	f.Add(base, strings.Replace(base, "protocol: udp", "Protocol: udp", 1))
	f.Add(base, strings.Replace(base, "protocol: udp", "protocol: udp\n      PROTOCOL: tcp", 1))
	f.Add(base, strings.Replace(base, "      real_servers:\n        - address: \"198.51.100.2:53\"\n", "      real_servers:\n", 1))
	f.Add(base, base+"---\nnode: {name: x}\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		want, wantErr := Parse([]byte(b))
		// Whole parses, and every two new items decoded apart on one core
		// and on three.
		for _, par := range []parallelism{{procs: 1, min: 1 << 30}, {procs: 1, min: 2}, {procs: 3, min: 2, unit: 1}} {
			l := Loader{par: par}
			_, _ = l.Parse([]byte(a))
			got, gotErr := l.Parse([]byte(b))
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("procs %d: error\n%v\nwant\n%v", par.procs, gotErr, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("procs %d: the Loader's config differs from Parse's", par.procs)
			}
		}
	})
}
