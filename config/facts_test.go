package config

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// viperRead is read before vigil had its own YAML codec: viper's.
func viperRead(data []byte) (map[string]any, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return v.AllSettings(), nil
}

// anyAfterFirst reports whether anything but empty documents follows the
// first, by decoding them all.
func anyAfterFirst(b []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		return false
	}
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
		if !(len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			return true
		}
	}
}

// FuzzCodecMatchesViper holds yamlCodec to its promise: for any file
// without keys differing only in case and with one document, viper with
// it reads exactly what viper with its own codec reads (values and
// errors); and it reports a file with more than one document exactly
// when there is something after the first.
func FuzzCodecMatchesViper(f *testing.F) {
	f.Add("a: 1\n")
	f.Add("a: &x {b: 1}\nc: {<<: *x, d: 2}\n")
	f.Add("a: 1\n---\nb: 2\n")
	f.Add("---\na: [1, {b: ~}]\n...\n")
	f.Add(string(largeLB(3, 2)))
	f.Add("x:\n  y:\n  z: {w: }\n")
	f.Add("\xef\xbb\xbfa: 1\n\xef\xbb\xbf---\nb: 1\n")
	f.Add("{}0")
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		codec := &yamlCodec{}
		v := viper.NewWithOptions(viper.WithDecoderRegistry(codec))
		v.SetConfigType("yaml")
		err := v.ReadConfig(bytes.NewReader(b))
		if err == nil && !caseDup(codec) && (len(codec.facts.errs) > 0) != anyAfterFirst(b) {
			t.Fatalf("second document: %v vs reference %v", codec.facts.errs, anyAfterFirst(b))
		}
		if len(codec.facts.errs) > 0 {
			return
		}
		want, werr := viperRead(b)
		var got map[string]any
		if err == nil {
			got = v.AllSettings()
		}
		if fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Fatalf("error %v, viper's %v", err, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v\nwant %#v", got, want)
		}
	})
}

// caseDup reports whether the codec found keys differing only in case.
func caseDup(c *yamlCodec) bool {
	for _, e := range c.facts.errs {
		if e.Path != "" {
			return true
		}
	}
	return false
}
