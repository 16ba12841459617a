package check

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

type fileProber struct{ s Spec }

func (p fileProber) probe(context.Context) outcome {
	v, err := readFileValue(p.s.FilePath)
	if err != nil {
		return fail(Failure, "%v", err)
	}
	return fileOutcome(v, p.s.Weight, p.s.Dynamic)
}

// fileOutcome maps a file's value (see Spec.Weight).
func fileOutcome(v, weight int, dynamic bool) outcome {
	if weight == 0 {
		if v != 0 {
			return fail(Failure, "value %d", v)
		}
		return ok("value 0")
	}
	w := v * weight
	if w < 0 {
		return fail(Failure, "value %d × weight %d < 0", v, weight)
	}
	o := ok("value %d × weight %d = %d", v, weight, w)
	if dynamic {
		o.weight, o.setWeight = min(w, maxWeight), true
	}
	return o
}

// maxWeight is the largest IPVS weight vigil sets.
const maxWeight = 65535

// readFileValue reads the integer on the first line of a file; an empty
// file is 0, as in keepalived. Unlike keepalived's strtol, text that is not
// a number is an error (down), not 0.
func readFileValue(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a FIFO must not block a worker
	if err != nil {
		return 0, fmt.Errorf("file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return 0, fmt.Errorf("file %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(line, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("file %s: value %q: not an integer", path, line)
	}
	return int(v), nil
}
