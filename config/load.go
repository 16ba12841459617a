package config

// Reading a file and turning its text into a Config.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
)

// MaxFileSize bounds a configuration file: far above any real one (1,000
// virtual servers of 10 real servers each are 1.1 MB), low enough that a
// wrong path (a log, a disk image) is refused before it is read into
// memory, where parsing takes several times its size.
const MaxFileSize = 64 << 20

// ErrFileTooLarge is the error, wrapped, of a file over MaxFileSize.
var ErrFileTooLarge = errors.New("configuration file too large")

func tooLarge(path string, size string) error {
	return fmt.Errorf("%s: %w: %s bytes, the limit is %d bytes (%d MiB)", path, ErrFileTooLarge, size, MaxFileSize, MaxFileSize>>20)
}

// ReadFile reads a configuration file of at most MaxFileSize bytes; a
// larger one is an error wrapping ErrFileTooLarge, naming its size and the
// limit, and is not read into memory. Errors of the file system come back
// as they are (an *fs.PathError).
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if fi.Mode().IsRegular() && size > MaxFileSize {
		return nil, tooLarge(path, strconv.FormatInt(size, 10))
	}
	// Read at most one byte more than the limit: the file may have grown
	// since, and devices and pipes have no size to check.
	data := make([]byte, 0, min(max(size, 512), MaxFileSize)+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if len(data) > MaxFileSize {
			return nil, tooLarge(path, "more than "+strconv.Itoa(MaxFileSize))
		}
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, min(cap(data), MaxFileSize+1-len(data)))
		}
	}
}

// Load reads, decodes, defaults and validates the YAML file at path.
// Configuration problems come back as a *ValidationError; a file that cannot
// be read comes back as the wrapped *fs.PathError, one over MaxFileSize as
// a wrapped ErrFileTooLarge.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, path)
}

// Parse is Load for YAML already in memory (tests, the embedded demo
// config). Environment overrides apply here too.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

func parse(data []byte, file string) (*Config, error) {
	if err := sizeProblem(data, file); err != nil {
		return nil, err
	}
	cfg, _, err := decode(data, file, &decoder{}, data)
	return cfg, err
}

// sizeProblem refuses YAML over MaxFileSize that came another way than
// ReadFile, as ReadFile would have.
func sizeProblem(data []byte, file string) error {
	if len(data) <= MaxFileSize {
		return nil
	}
	return &ValidationError{File: file, Errors: []FieldError{{Msg: fmt.Sprintf(
		"the configuration is %d bytes, over the limit of %d bytes (%d MiB)", len(data), MaxFileSize, MaxFileSize>>20)}}}
}

// decode parses text with d; the Config's hash is that of orig, the file
// (text differs from it when a Loader stands in placeholders).
func decode(text []byte, file string, d *decoder, orig []byte) (*Config, *decoder, error) {
	root, env, facts, errs := readFacts(text, d.reuseKey)
	if errs != nil {
		return nil, d, &ValidationError{File: file, Errors: errs}
	}
	d.env = env
	d.facts = facts
	cfg := d.config(root)
	if len(d.errs) > 0 {
		return nil, d, &ValidationError{File: file, Errors: d.errs, Warnings: d.warns}
	}
	sum := sha256.Sum256(orig)
	cfg.Path = file
	cfg.Hash = hex.EncodeToString(sum[:])
	cfg.Warnings = d.warns
	return cfg, d, nil
}
