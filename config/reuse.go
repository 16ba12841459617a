package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"vigil/internal/fastyaml"

	"go.yaml.in/yaml/v3"
)

// Loader parses configuration files like Load and remembers the virtual
// servers of the last file it parsed, keyed by their exact text. A reload
// of a file with 1,000 virtual servers of which one changed then parses and
// decodes that one and a skeleton of placeholders, instead of 1.1 MB of
// YAML (YAML parsing is most of a large reload's cost).
//
// Reuse only ever changes speed, never the result: it applies when the file
// is in the plain block layout vsItems understands, and any doubt (an
// error, a placeholder out of place) sends the file through Load's whole
// parse. The virtual servers taken over are shared between the Configs a
// Loader returns, which is safe because a Config is never modified.
//
// A Loader is safe for concurrent use; the zero value is ready.
type Loader struct {
	mu     sync.Mutex
	known  map[string]VirtualServer // item text -> decoded
	key    string                   // placeholder key, random per Loader
	reused int
	// fellBack: the last parse tried placeholders and had to parse the
	// whole file instead.
	fellBack bool
	// par overrides the parallel decoding's limits (tests; zero fields
	// mean the defaults), apart counts the items it decoded last time.
	par   parallelism
	apart int
}

// parallelism bounds decodeItems: up to procs goroutines, each given unit
// items at least, and none below min items to decode.
type parallelism struct{ procs, min, unit int }

func (p parallelism) orDefaults() parallelism {
	if p.procs <= 0 {
		p.procs = runtime.GOMAXPROCS(0)
	}
	if p.min <= 0 {
		p.min = 64
	}
	if p.unit <= 0 {
		p.unit = 32
	}
	return p
}

// Load reads and parses the file at path (see the package Load).
func (l *Loader) Load(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return l.parse(data, path)
}

// ParseFile is Load for a file already read: data is its content, path
// names it in messages.
func (l *Loader) ParseFile(data []byte, path string) (*Config, error) {
	return l.parse(data, path)
}

// Parse is Load for YAML in memory.
func (l *Loader) Parse(data []byte) (*Config, error) {
	return l.parse(data, "")
}

// Reused reports how many virtual servers the last successful parse took
// over from the one before.
func (l *Loader) Reused() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reused
}

func (l *Loader) parse(data []byte, file string) (*Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := sizeProblem(data, file); err != nil {
		return nil, err
	}
	items, ok := vsItems(data)
	if !ok {
		l.known, l.reused = nil, 0
		return parse(data, file)
	}
	d := &decoder{}
	text := data
	l.fellBack = false
	fresh := decodeItems(data, items, l.known, l.par.orDefaults())
	l.apart = len(fresh)
	if len(fresh) > 0 {
		// The items no parse has seen, decoded apart, are then
		// placeholders like those known from the last parse.
		if l.known == nil {
			l.known = fresh
		} else {
			maps.Copy(l.known, fresh)
		}
	}
	if len(l.known) > 0 {
		if l.key == "" {
			var b [8]byte
			_, _ = rand.Read(b[:]) // never fails (crypto/rand)
			l.key = "vigil-reuse-" + hex.EncodeToString(b[:])
		}
		text, d.reuse = l.skeleton(data, items)
		d.reuseKey = l.key
	}
	cfg, d, err := decode(text, file, d, data)
	if len(d.reuse) > 0 && (err != nil || d.reuseBad || d.reusedN != len(d.reuse)) {
		// Report problems against the file as written, and never trust a
		// placeholder that did not land where it was put.
		d = &decoder{}
		cfg, d, err = decode(data, file, d, data)
		l.fellBack = true
	}
	if err != nil {
		return nil, err
	}
	l.reused = 0
	if !l.fellBack {
		l.reused = d.reusedN - len(fresh) // those known from the last parse
	}
	l.known = make(map[string]VirtualServer, len(items))
	if len(d.items) == len(items) {
		for i, it := range items {
			if j := d.items[i]; j >= 0 {
				l.known[string(data[it[0]:it[1]])] = cfg.LB.VirtualServers[j]
			}
		}
	}
	return cfg, nil
}

// decodeItems decodes the items not in known apart from the file, each run
// of consecutive items as a document of its own, in up to p.procs
// goroutines, and returns those that decoded without an error or a
// warning, keyed by their text. Anything else is left to the parse of the
// whole file (with placeholders for these), which reports it with its
// place in the file.
//
// This is for a start, or a reload that changes most of a large file:
// YAML parsing is most of a large start's time, and several cores share
// the items. Each item of the list means the same on its own (see
// vsItems).
func decodeItems(data []byte, items [][2]int, known map[string]VirtualServer, p parallelism) map[string]VirtualServer {
	var todo [][2]int // runs of unknown items, as indices into items
	n := 0
	for i, it := range items {
		if _, ok := known[string(data[it[0]:it[1]])]; ok {
			continue
		}
		n++
		if k := len(todo); k > 0 && todo[k-1][1] == i {
			todo[k-1][1] = i + 1
		} else {
			todo = append(todo, [2]int{i, i + 1})
		}
	}
	if n < p.min {
		return nil
	}
	out := make(map[string]VirtualServer, n)
	workers := max(1, min(p.procs, n/p.unit))
	if workers == 1 {
		for _, r := range todo {
			maps.Copy(out, decodeChunk(data, items[r[0]:r[1]]))
		}
		return out
	}
	// Cut the runs into chunks of about a quarter of a worker's share, so
	// that a slow chunk does not leave the other workers idle.
	per := max(p.unit, (n+4*workers-1)/(4*workers))
	var chunks [][2]int
	for _, r := range todo {
		for a := r[0]; a < r[1]; a += per {
			chunks = append(chunks, [2]int{a, min(r[1], a+per)})
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan [2]int, len(chunks))
	for _, c := range chunks {
		next <- c
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for c := range next {
				got := decodeChunk(data, items[c[0]:c[1]])
				mu.Lock()
				maps.Copy(out, got)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// decodeChunk decodes consecutive items apart and returns those that
// decoded cleanly, keyed by their text; see decodeItems. Each item is read
// by fastyaml.Item, or when it cannot, with the others it cannot as the
// list of a document of their own, parsed by yaml.v3 to nodes and
// converted as the whole read converts them (itemValue).
func decodeChunk(data []byte, items [][2]int) map[string]VirtualServer {
	out := make(map[string]VirtualServer, len(items))
	var slow [][2]int
	for _, it := range items {
		if raw, ok := fastyaml.Item(data[it[0]:it[1]]); ok {
			decodeItem(out, data[it[0]:it[1]], raw)
		} else {
			slow = append(slow, it)
		}
	}
	if len(slow) == 0 {
		return out
	}
	const key = "items"
	doc := []byte(key + ":\n")
	for _, it := range slow {
		doc = append(doc, data[it[0]:it[1]]...)
		if doc[len(doc)-1] != '\n' {
			doc = append(doc, '\n') // the last item of a file without a final newline
		}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return out // the whole parse will say why
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return out
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode || len(m.Content) != 2 || m.Content[1].Kind != yaml.SequenceNode {
		return out
	}
	list := m.Content[1].Content
	if len(list) != len(slow) {
		return out
	}
	for i, n := range list {
		if raw, ok := itemValue(n, slow[i][1]-slow[i][0]); ok {
			decodeItem(out, data[slow[i][0]:slow[i][1]], raw)
		}
	}
	return out
}

// decodeItem decodes the value raw of the item text into out when it
// decodes without an error or a warning.
func decodeItem(out map[string]VirtualServer, text []byte, raw any) {
	d := &decoder{}
	o, ok := d.object("items", raw)
	if !ok {
		return
	}
	if vs, ok := d.virtualServer(o); ok && len(d.errs) == 0 && len(d.warns) == 0 {
		out[string(text)] = vs
	}
}

// skeleton returns data with every run of items already known replaced by
// a one-line placeholder {key: [first, count]} and as many empty lines as
// the run had more (line numbers in messages stay those of the file), and
// the virtual servers the placeholders stand for, in order.
func (l *Loader) skeleton(data []byte, items [][2]int) ([]byte, []VirtualServer) {
	var out bytes.Buffer
	var reuse []VirtualServer
	at := 0       // data before at is in out
	runFrom := -1 // where the current run of known items starts
	first := 0    // its first index in reuse
	flush := func(end int) {
		if runFrom < 0 {
			return
		}
		out.Write(data[at:runFrom])
		run := data[runFrom:end]
		out.Write(run[:bytes.IndexByte(run, '-')])
		fmt.Fprintf(&out, "- {%s: [%d, %d]}\n", l.key, first, len(reuse)-first)
		for range bytes.Count(run, []byte{'\n'}) - 1 {
			out.WriteByte('\n')
		}
		at, runFrom, first = end, -1, len(reuse)
	}
	for _, it := range items {
		vs, ok := l.known[string(data[it[0]:it[1]])]
		if !ok {
			flush(it[0])
			continue
		}
		if runFrom < 0 {
			runFrom = it[0]
		}
		reuse = append(reuse, vs)
	}
	if len(items) > 0 {
		flush(items[len(items)-1][1])
	}
	out.Write(data[at:])
	return out.Bytes(), reuse
}

// reused returns the run of virtual servers a placeholder stands for;
// false when raw is not a placeholder.
func (d *decoder) reused(raw any) ([]VirtualServer, bool) {
	if d.reuseKey == "" {
		return nil, false
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, false
	}
	v, ok := m[d.reuseKey]
	if !ok {
		return nil, false
	}
	span, _ := v.([]any)
	if len(m) != 1 || len(span) != 2 {
		d.reuseBad = true
		return nil, false
	}
	first, ok1 := span[0].(int)
	n, ok2 := span[1].(int)
	if !ok1 || !ok2 || first != d.reusedN || n < 1 || first+n > len(d.reuse) {
		d.reuseBad = true
		return nil, false
	}
	run := d.reuse[first : first+n]
	d.reusedN += n
	for _, vs := range run {
		d.vsNames = append(d.vsNames, vs.Spec.Name)
	}
	return run, true
}

// vsItems finds the items of the block sequence lb.virtual_servers in a
// file written in plain block style:
//
//	lb:
//	  virtual_servers:
//	    - name: web          (or "- {name: web, ...}" on one line)
//	      ...
//
// and returns each item's byte range, from the start of its "- " line to
// the start of the next item or the end of the list (comment and empty
// lines included). ok is false for anything it does not understand: no
// such list, tabs or carriage returns, anchors (an item could then mean
// something else in another file), directives or several documents, a
// top level in flow style or quoted keys, a duplicate lb key. YAML gives an
// item of a block sequence the same meaning wherever it stands when it has
// no aliases, so equal text is an equal item; the parse that uses the
// ranges checks that every placeholder landed as an item of its own.
func vsItems(data []byte) (items [][2]int, ok bool) {
	if bytes.ContainsAny(data, "\t\r&") || bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, false
	}
	const (
		top = iota
		inLB
		inList
		after
	)
	state := top
	lbIndent, itemIndent := -1, -1
	seenLB := false
	for at := 0; at < len(data); {
		end := bytes.IndexByte(data[at:], '\n')
		next := len(data)
		if end >= 0 {
			next = at + end + 1
		}
		line := data[at:next]
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		body := bytes.TrimRight(line[indent:], " \n")
		blank := len(body) == 0 || body[0] == '#'
		if indent == 0 && (bytes.HasPrefix(body, []byte("---")) || bytes.HasPrefix(body, []byte("...")) || bytes.HasPrefix(body, []byte("%"))) {
			return nil, false
		}
		if blank {
			at = next
			continue
		}
		if indent == 0 {
			if c := body[0]; c == '{' || c == '[' || c == '"' || c == '\'' || c == '?' || c == '-' {
				return nil, false
			}
			if state == inList {
				if n := len(items); n > 0 {
					items[n-1][1] = at
				}
				state = after
			}
			if isKey(body, "lb") {
				if seenLB {
					return nil, false
				}
				seenLB, state, lbIndent = true, inLB, -1
			} else if state == inLB {
				state = after
			}
			at = next
			continue
		}
		switch state {
		case inLB:
			if lbIndent < 0 {
				lbIndent = indent
			}
			if indent < lbIndent {
				return nil, false
			}
			if indent == lbIndent && isKey(body, "virtual_servers") {
				if items != nil || itemIndent >= 0 {
					return nil, false // a duplicate key: the whole parse reports it
				}
				state, itemIndent = inList, -1
			}
		case inList:
			isItem := body[0] == '-' && (len(body) == 1 || body[1] == ' ')
			if itemIndent < 0 {
				if indent < lbIndent || !isItem {
					if indent != lbIndent {
						return nil, false
					}
					// an empty list (null): no items
					itemIndent = indent
					state = inLB
					continue
				}
				itemIndent = indent
			}
			switch {
			case indent == itemIndent && isItem:
				if n := len(items); n > 0 {
					items[n-1][1] = at
				}
				items = append(items, [2]int{at, len(data)})
			case indent > itemIndent:
			case indent == lbIndent:
				if n := len(items); n > 0 {
					items[n-1][1] = at
				}
				state = inLB
				continue // the line is lb's next key
			default:
				return nil, false
			}
		}
		at = next
	}
	if itemIndent < 0 && len(items) == 0 {
		return nil, false
	}
	return items, true
}

// isKey reports whether a line's text (indentation removed) is "key:" with
// nothing after it but a comment.
func isKey(body []byte, key string) bool {
	rest, ok := bytes.CutPrefix(body, []byte(key+":"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " ")
	return len(rest) == 0 || rest[0] == '#'
}
