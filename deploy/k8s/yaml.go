package k8s

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// A small builder of yaml.v3 node trees: Kubernetes readers expect the
// usual key order (apiVersion, kind, metadata, spec), which Go maps lose,
// and the manifest carries comments, which structs cannot.

// m is a mapping in order: key, value, key, value...
type m []any

// l is a sequence.
type l []any

// commented is a value with a comment above its key (or item).
type commented struct {
	v       any
	comment string
}

func withComment(v any, c string) commented { return commented{v, c} }

func doc(comment string, v any) (*yaml.Node, error) {
	var b builder
	d := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{b.node(v)}}
	d.HeadComment = comment
	return d, b.err
}

// builder keeps the first value it had no YAML for.
type builder struct{ err error }

// node converts a builder value.
func (b *builder) node(v any) *yaml.Node {
	switch v := v.(type) {
	case m:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := 0; i+1 < len(v); i += 2 {
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v[i].(string)}
			val := v[i+1]
			if c, ok := val.(commented); ok {
				k.HeadComment = c.comment
				val = c.v
			}
			n.Content = append(n.Content, k, b.node(val))
		}
		return n
	case l:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			var c string
			if cv, ok := e.(commented); ok {
				c, e = cv.comment, cv.v
			}
			item := b.node(e)
			item.HeadComment = c
			n.Content = append(n.Content, item)
		}
		return n
	case commented:
		n := b.node(v.v)
		n.HeadComment = v.comment
		return n
	case string:
		// Tagged !!str, the encoder quotes what would read as another
		// type ("true", "1").
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	}
	if b.err == nil {
		b.err = fmt.Errorf("no YAML for a %T", v)
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}
