package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"vigil/test/netlab"
)

// nftTable is the table the loss rules live in: its own, so that vigil's table (inet vigil, for
// accept mode) is never touched.
const nftTable = "vgfault"

// DropVRRP makes n's namespace drop VRRP (IP protocol 112, IPv4 and IPv6) on one hook, "input"
// (what the node receives) or "output" (what it sends), at random with the given percentage (100:
// all of it), with a counter. HealVRRP removes it.
func DropVRRP(n *netlab.Node, hook string, percent int) error {
	if hook != "input" && hook != "output" {
		return fmt.Errorf("fault: nft hook %q: want input or output", hook)
	}
	if percent < 1 || percent > 100 {
		return fmt.Errorf("fault: drop percentage %d: want 1..100", percent)
	}
	match := "meta l4proto 112"
	if percent < 100 {
		match += fmt.Sprintf(" numgen random mod 100 < %d", percent)
	}
	script := fmt.Sprintf("table inet %s {\n  chain %s {\n    type filter hook %s priority 0; policy accept;\n    %s counter drop\n  }\n}\n",
		nftTable, hook, hook, match)
	path := filepath.Join(n.Lab().Dir(), fmt.Sprintf("%s-nft-%s.conf", n.Name, hook))
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return fmt.Errorf("fault: nft script for %s: %w", n.Name, err)
	}
	if _, err := nft(n, "-f", path); err != nil {
		return err
	}
	return nil
}

var packetsRE = regexp.MustCompile(`counter packets (\d+)`)

// DroppedVRRP returns how many packets the rules of DropVRRP in n's namespace have dropped.
func DroppedVRRP(n *netlab.Node) (int, error) {
	out, err := nft(n, "list", "table", "inet", nftTable)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, m := range packetsRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.Atoi(m[1])
		total += v
	}
	return total, nil
}

// HealVRRP removes what DropVRRP added to n's namespace.
func HealVRRP(n *netlab.Node) error {
	_, err := nft(n, "delete", "table", "inet", nftTable)
	return err
}

func nft(n *netlab.Node, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := n.Run(ctx, "nft", args...)
	if err != nil {
		return out, fmt.Errorf("fault: nft %v in %s (test/deps.sh installs nftables): %w", args, n.NS, err)
	}
	return out, nil
}
