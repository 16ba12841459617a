package config

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodeValue converts a parsed YAML node to the value the whole parse
// (viper over yaml.v3) gives for it: map[string]any, []any, string, int,
// float64, bool or nil. It reports false for anything it is not sure to
// convert exactly so, or that the whole parse warns of (other tags,
// aliases, merge keys, duplicate keys, keys with capitals, integers other
// than plain decimals, floats other than d.d): the caller then leaves that
// text to the whole parse.
//
// It exists for speed: yaml.v3's decoding into interface values and
// viper's copies cost about a third of parsing a large file.
func nodeValue(n *yaml.Node) (any, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		return scalarValue(n)
	case yaml.SequenceNode:
		if n.Tag != "!!seq" {
			return nil, false
		}
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, ok := nodeValue(c)
			if !ok {
				return nil, false
			}
			out[i] = v
		}
		return out, true
	case yaml.MappingNode:
		if n.Tag != "!!map" || len(n.Content)%2 != 0 {
			return nil, false
		}
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				return nil, false
			}
			key := k.Value
			if strings.ToLower(key) != key {
				// The whole parse warns of a key with capitals, and
				// refuses two that differ in case only; an item decoded
				// apart would lose that.
				return nil, false
			}
			if _, dup := out[key]; dup {
				return nil, false
			}
			v, ok := nodeValue(n.Content[i+1])
			if !ok {
				return nil, false
			}
			out[key] = v
		}
		return out, true
	}
	return nil, false // aliases, documents
}

// scalarValue converts a scalar whose tag the parser resolved (or the file
// gave) as yaml.v3 would decode it into an interface value.
func scalarValue(n *yaml.Node) (any, bool) {
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!int":
		if plainDecimal(n.Value, false) {
			if v, err := strconv.Atoi(n.Value); err == nil {
				return v, true
			}
		}
	case "!!float":
		if plainDecimal(n.Value, true) {
			if v, err := strconv.ParseFloat(n.Value, 64); err == nil {
				return v, true
			}
		}
	case "!!bool":
		switch n.Value {
		case "true", "True", "TRUE":
			return true, true
		case "false", "False", "FALSE":
			return false, true
		}
	case "!!null":
		switch n.Value {
		case "", "~", "null", "Null", "NULL":
			return nil, true
		}
	}
	return nil, false
}

// plainDecimal reports whether s is an optional sign and 1 to 18 digits
// without a leading zero (yaml.v3 reads 0755 as octal), followed when
// frac by a point and 1 to 15 digits.
func plainDecimal(s string, frac bool) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	intPart, fracPart, hasPoint := strings.Cut(s, ".")
	if hasPoint != frac || !digits(intPart, 18) || (len(intPart) > 1 && intPart[0] == '0') {
		return false
	}
	return !frac || digits(fracPart, 15)
}

func digits(s string, most int) bool {
	if s == "" || len(s) > most {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
