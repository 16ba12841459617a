package kaconf

import "strconv"

// frame is a block being filled: the node that opened it (nil for the top
// level) and where its '{' was, for the error when it is never closed.
type frame struct {
	node *Node
	open Pos
}

// buildTree turns the expanded lines into nodes. A line's first word is a
// keyword and the words after it its arguments, up to a brace or the end of
// the line; '{' opens the block of the keyword before it, '}' closes the
// innermost block, and words after a brace on the same line start a new
// keyword line (keepalived -t accepts `global_defs { router_id r1 }` and
// `virtual_ipaddress { 192.0.2.10/24 }`). A '{' alone at the start of a line
// opens the block of the keyword line just before it (keepalived -t accepts
// `vrrp_instance VI_1` then `{` on the next line).
func buildTree(lines []logical) ([]*Node, error) {
	root := &Node{}
	stack := []frame{{node: root}}
	var prevLine *Node // keyword line that ended the previous line without a block
	for _, ln := range lines {
		toks, unterminated := tokenize(ln.text)
		if unterminated {
			return nil, errorf(ln.pos, "unterminated quoted string: a '\"' without its closing '\"' (keepalived: \"Unterminated quote\")")
		}
		var cur *Node
		for i, t := range toks {
			top := stack[len(stack)-1].node
			switch t.kind {
			case tokWord:
				if cur == nil {
					cur = &Node{Keyword: t.text, Pos: ln.pos}
					top.Children = append(top.Children, cur)
				} else {
					cur.Args = append(cur.Args, t.text)
				}
			case tokOpen:
				switch {
				case cur != nil:
				case i == 0 && prevLine != nil:
					cur = prevLine
				default:
					return nil, errorf(ln.pos, "'{' without a keyword before it")
				}
				cur.Block = true
				stack = append(stack, frame{node: cur, open: ln.pos})
				cur = nil
			case tokClose:
				if len(stack) == 1 {
					return nil, errorf(ln.pos, "'}' closes no block (an extra '}' or a missing '{')")
				}
				stack = stack[:len(stack)-1]
				cur = nil
			}
		}
		prevLine = nil
		if cur != nil && !cur.Block { // braces reset cur, so the line ended with this keyword line
			prevLine = cur
		}
	}
	if len(stack) > 1 {
		f := stack[len(stack)-1]
		more := ""
		if n := len(stack) - 2; n > 0 {
			more = " (and " + strconv.Itoa(n) + " enclosing block(s))"
		}
		return nil, errorf(f.open, "block of %q opened here is never closed: missing '}'%s", f.node.Keyword, more)
	}
	return root.Children, nil
}
