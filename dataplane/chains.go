package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// ReadChains returns the live rules, with their counters, of only the named chains of one table
// inside the network namespace at netnsPath:
//
//	ip netns exec NODE iptables -w -t TABLE -S CHAIN -v    # for each chain
//
// parsed as one table. Unlike iptables-save, which reads and prints the whole ruleset (about a
// second per table at 10,000 Services with iptables-nft), its cost follows the length of the
// chains asked for, which is what a UI refreshing the counters of one Service every second needs.
// Chains that do not exist are absent from the result, not an error. iptablesPath is the iptables
// binary of the backend the node is programmed with; "" means "iptables" from PATH.
func ReadChains(ctx context.Context, netnsPath, iptablesPath string, table Table, chains []string) (*Ruleset, error) {
	if iptablesPath == "" {
		iptablesPath = "iptables"
	}
	var dump bytes.Buffer
	fmt.Fprintf(&dump, "*%s\n", table)
	err := onFreshThread(func() error {
		return inNetns(netnsPath, func() error {
			for _, chain := range chains {
				var stderr bytes.Buffer
				cmd := exec.CommandContext(ctx, iptablesPath, "-w", "5", "-t", string(table), "-S", chain, "-v")
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				var exitErr *exec.ExitError
				if errors.As(err, &exitErr) && exitErr.ExitCode() == 1 && chainMissing(stderr.Bytes()) {
					continue // gone since the caller saw it: absent, as documented
				}
				if err != nil {
					return fmt.Errorf("%s -t %s -S %s -v: %w: %s", iptablesPath, table, chain, err, bytes.TrimSpace(stderr.Bytes()))
				}
				dump.Write(out)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read chains in %s: %w", netnsPath, err)
	}
	dump.WriteString("COMMIT\n")
	rs, err := ParseSave(dump.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read chains in %s: %w", netnsPath, err)
	}
	return rs, nil
}

// chainMissing reports whether iptables' complaint means the chain does not exist. iptables-legacy
// says "No chain/target/match by that name"; iptables-nft 1.8.9 says the chain "is incompatible,
// use 'nft' tool" for a chain it cannot find (a known quirk of that version) — a node's namespace
// holds no nft-native chains, so there it means the same.
func chainMissing(stderr []byte) bool {
	return bytes.Contains(stderr, []byte("No chain")) || bytes.Contains(stderr, []byte("is incompatible"))
}
