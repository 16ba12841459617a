// Package kaconf reads keepalived.conf as keepalived 2.2 does: it expands
// includes, conditional lines (@ID, @^ID), parameters ($NAME=value, $NAME,
// ${NAME}, the predefined ${_...} names) and generators (~SEQ, ~SEQx, ~LST)
// line by line, then splits the lines into words and builds the tree of
// keyword lines and { } blocks. It knows no keyword's meaning: turning the
// tree into a vigil config is the importer's job.
//
// The behaviour follows keepalived.conf(5) ("include", "Quoted strings",
// "ADVANCED CONFIGURATION") and, where the man page is silent or differs
// from the program, what `keepalived -t` of Debian's 2.2.7 does; the tests
// cite which. Where 2.2.7 differs from its man page, kaconf does what 2.2.7
// does:
//   - only double quotes quote, a quote ends the word before it and after
//     it (`a"b c"d` is a, "b c", d), and keyword lines know no backslash
//     escapes: those apply to script command lines (SplitScript);
//   - include lines are recognised after conditions, parameters and
//     generators, and take the rest of the line as the pattern;
//   - a blank line ends a multi-line definition;
//   - '#' or '!' put on a line by ${_HASH}/${_BANG} start a comment unless
//     they are inside quotes.
//
// Deliberate differences: an include loop is an *Error (keepalived reads
// on until it runs out of file descriptors), a definition that uses itself
// is an *Error after 64 levels, ${_RANDOM} gives its MIN (with a Diag) so
// that an import is reproducible, and expansion is bounded by
// Options.MaxLines.
package kaconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Pos is where a line came from (after include expansion): the file as
// written in the include (joined to the including file's directory when
// relative) and its 1-based line.
type Pos struct {
	File string
	Line int
}

// String is "FILE:LINE", as compilers print places.
func (p Pos) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// Node is one keyword line: the keyword, its arguments (quotes removed,
// after parameter substitution and generator expansion), and, when the line
// opened a `{ ... }` block, the block's lines. Block is true for `kw {}`
// (empty block) too.
//
// A line produced by a parameter or generator carries the Pos of the line
// where the parameter was used or the generator written, not of the
// definition: that is the line which made it appear at that place.
type Node struct {
	Keyword  string
	Args     []string
	Block    bool
	Children []*Node
	Pos      Pos
}

// Find returns the first child with that keyword, nil if none.
func (n *Node) Find(keyword string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Keyword == keyword {
			return c
		}
	}
	return nil
}

// FindAll returns every child with that keyword, in order.
func (n *Node) FindAll(keyword string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Keyword == keyword {
			out = append(out, c)
		}
	}
	return out
}

// DefaultMaxLines bounds the lines that expansion may produce (Options.MaxLines 0).
// keepalived's own man page generates 65,024 instances from one line; a
// million lines is well above real configs and keeps a hostile input
// (a definition doubling itself, a ~SEQ to 2^62) from eating the machine.
const DefaultMaxLines = 1 << 20

// maxLineLen bounds one line after substitution, for the same reason.
const maxLineLen = 1 << 20

// Options controls preprocessing. Zero value: config id = short hostname
// (as keepalived), files from the OS, environment from os.Getenv.
type Options struct {
	ConfigID string                                 // `@ID` lines; "" = short hostname
	ReadFile func(path string) ([]byte, error)      // nil = os.ReadFile
	Glob     func(pattern string) ([]string, error) // nil = filepath.Glob (brace expansion is done before)
	Getenv   func(string) string                    // nil = os.Getenv (for ${_ENV VAR})
	// MaxLines bounds the lines after include, parameter and generator
	// expansion; more is an *Error. 0 = DefaultMaxLines.
	MaxLines int
}

// Diag is a non-fatal problem (an include that matched nothing, an unknown
// parameter, ...).
type Diag struct {
	Pos Pos
	Msg string
}

// String is "FILE:LINE: message".
func (d Diag) String() string { return d.Pos.String() + ": " + d.Msg }

// File is a parsed configuration.
type File struct {
	Nodes []*Node  // top-level lines in order
	Diags []Diag   // non-fatal problems, in the order found
	Files []string // every file read, in order (the main file first)
}

// Error is a fatal syntax error; Error() is "FILE:LINE: message".
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func errorf(pos Pos, format string, a ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, a...)}
}

// Parse reads the file at path and everything it includes.
func Parse(path string, opts Options) (*File, error) {
	opts = opts.withDefaults()
	data, err := opts.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kaconf: read %s: %w", path, err)
	}
	return ParseBytes(path, data, opts)
}

// ParseBytes parses data as the file name; includes are relative to name's
// directory and read with opts.ReadFile.
func ParseBytes(name string, data []byte, opts Options) (*File, error) {
	opts = opts.withDefaults()
	p := newPre(opts)
	if err := p.readFile(name, data); err != nil {
		return nil, err
	}
	nodes, err := buildTree(p.out)
	if err != nil {
		return nil, err
	}
	return &File{Nodes: nodes, Diags: p.diags, Files: p.files}, nil
}

func (o Options) withDefaults() Options {
	if o.ConfigID == "" {
		o.ConfigID = shortHostname()
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Glob == nil {
		o.Glob = filepath.Glob
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.MaxLines <= 0 {
		o.MaxLines = DefaultMaxLines
	}
	return o
}

// shortHostname is keepalived's default config id: the node name up to the
// first dot (keepalived.conf(5), "Conditional configuration").
func shortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	if i := strings.IndexByte(h, '.'); i >= 0 {
		h = h[:i]
	}
	return h
}
