package config

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
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Reading a file and turning its text into a Config.

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

// ParseOffHost is Parse for a file meant for another machine (vigil config
// import-keepalived --off-host): programs, users and the notify FIFO's
// directory are not looked up on this one; every other rule applies.
func ParseOffHost(data []byte) (*Config, error) {
	return parseWith(&decoder{offHost: true}, data, "")
}

func parse(data []byte, file string) (*Config, error) {
	return parseWith(&decoder{}, data, file)
}

func parseWith(d *decoder, data []byte, file string) (*Config, error) {
	if err := sizeProblem(data, file); err != nil {
		return nil, err
	}
	cfg, _, err := decode(data, file, d, data)
	return cfg, err
}

// sizeProblem refuses YAML over MaxFileSize that came another way than
// ReadFile, as ReadFile would have.
func sizeProblem(data []byte, file string) error {
	if len(data) <= MaxFileSize {
		return nil
	}
	return problems(file, []FieldError{{Msg: fmt.Sprintf(
		"the configuration is %d bytes, over the limit of %d bytes (%d MiB)", len(data), MaxFileSize, MaxFileSize>>20)}}, nil)
}

// decode parses text with d; the Config's hash is that of orig, the file
// (text differs from it when a Loader stands in placeholders).
func decode(text []byte, file string, d *decoder, orig []byte) (*Config, *decoder, error) {
	doc, errs := readDoc(text, d.reuseKey)
	if errs != nil {
		return nil, d, problems(file, errs, nil)
	}
	d.env = applyEnv(doc.root)
	d.facts, d.tree = &doc.facts, doc.tree
	cfg := d.config(doc.root)
	if len(d.errs) > 0 {
		return nil, d, problems(file, d.errs, d.warns)
	}
	sum := sha256.Sum256(orig)
	cfg.Path = file
	cfg.Hash = hex.EncodeToString(sum[:])
	cfg.Warnings = d.warns
	return cfg, d, nil
}

// Environment overrides: VIGIL_ + the key path upper-cased with "." and "-"
// turned into "_" (node.name -> VIGIL_NODE_NAME).
const envPrefix = "VIGIL"

var envReplacer = strings.NewReplacer(".", "_", "-", "_")

// envKey is a scalar key that the environment may override, and its
// default. A nil default (def is nil, or returns nil) leaves the default
// to the decoder, which then sees whether the key was given at all (strict
// mode needs to know).
type envKey struct {
	key string
	def func() any
}

// Defaults of the scalar keys. node.name defaults to the hostname.
const (
	DefaultListen        = "127.0.0.1:9730"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "text"
	DefaultGARPRepeat    = 5
	DefaultGARPDelay     = 5 * time.Second
	DefaultGARPInterval  = 0 * time.Second
	DefaultGARPRefresh   = 0 * time.Second
	DefaultRefreshRepeat = 1
	// DefaultNotifyTimeout bounds a notify command's run time.
	DefaultNotifyTimeout = 10 * time.Second
	// DefaultScriptInterval is a tracked script's interval.
	DefaultScriptInterval = time.Second
)

var envKeys = []envKey{
	{"node.name", func() any {
		if h, err := os.Hostname(); err == nil && h != "" {
			return h
		}
		return nil // no default: node.name is then required
	}},
	{"vrrp.strict", nil},
	{"vrrp.garp.repeat", nil},
	{"vrrp.garp.delay", nil},
	{"vrrp.garp.interval", nil},
	{"vrrp.garp.refresh", nil},
	{"vrrp.garp.refresh_repeat", nil},
	{"vrrp.garp.lower_prio_repeat", nil},
	{"vrrp.garp.lower_prio_delay", nil},
	{"vrrp.script_user", nil},
	{"vrrp.notify_fifo", nil},
	{"vrrp.notify_fifo_group", nil},
	{"telemetry.listen", func() any { return DefaultListen }},
	{"telemetry.log_level", func() any { return DefaultLogLevel }},
	{"telemetry.log_format", func() any { return DefaultLogFormat }},
	{"telemetry.pprof", func() any { return false }},
	// Setting one of these makes a gossip: section if the file has none
	// (as for every other section): a fleet of containers can take its
	// advertised address from the environment.
	{"gossip.bind", nil},
	{"gossip.advertise", nil},
	{"gossip.keyring", nil},
	{"gossip.cluster", nil},
}

// EnvKeys lists the keys the environment can override, in file order.
func EnvKeys() []string {
	keys := make([]string, len(envKeys))
	for i, k := range envKeys {
		keys[i] = k.key
	}
	return keys
}

// EnvVar returns the environment variable that overrides key.
func EnvVar(key string) string {
	return envPrefix + "_" + envReplacer.Replace(strings.ToUpper(key))
}

// inject sets m[path...] = val, creating missing or null intermediate maps.
// It reports false, changing nothing, when an intermediate value is not a map.
func inject(m map[string]any, path []string, val any) bool {
	for _, k := range path[:len(path)-1] {
		switch next := m[k].(type) {
		case nil:
			n := map[string]any{}
			m[k] = n
			m = n
		case map[string]any:
			m = next
		default:
			return false
		}
	}
	m[path[len(path)-1]] = val
	return true
}

// applyEnv merges the environment overrides and the defaults of the
// scalar keys in envKeys into root, read from the file, and returns the
// key paths whose value came from the environment with their variable.
// viper reads the environment (VIGIL_ + the key path upper-cased, "." and
// "-" as "_"; an empty variable counts as unset): file < environment, and
// a default only where neither gives a value.
func applyEnv(root map[string]any) map[string]string {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(envReplacer)
	env := map[string]string{}
	for _, k := range envKeys {
		_ = v.BindEnv(k.key) // viper only consults the environment for keys it knows (spf13/viper#761)
		path := strings.Split(k.key, ".")
		val := v.Get(k.key)
		if val != nil {
			if inject(root, path, val) {
				env[k.key] = EnvVar(k.key)
			}
			continue
		}
		if k.def == nil || has(root, path) {
			continue
		}
		if def := k.def(); def != nil {
			inject(root, path, def) // a parent that is not a mapping is reported on the parent
		}
	}
	return env
}

// has reports whether m holds a value at path.
func has(m map[string]any, path []string) bool {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return false
		}
		m = next
	}
	_, ok := m[path[len(path)-1]]
	return ok
}
