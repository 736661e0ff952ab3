package web

import (
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/svclab/svclab/dataplane"
)

// ruleCache hands out a node's parsed rules. Without a ChainReader every
// call asks the Backend (live rules, live counters). With one, the parsed
// Ruleset is kept until the node's RulesGeneration changes and counters of
// the displayed chains are read separately (chainCounters).
type ruleCache struct {
	b  Backend
	cr ChainReader

	mu    sync.Mutex
	nodes map[string]*cachedRules
}

type cachedRules struct {
	gen      uint64
	rs       *dataplane.Ruleset
	services []ServiceEntry // lazily built index of rs
}

func newRuleCache(b Backend) *ruleCache {
	c := &ruleCache{b: b, nodes: map[string]*cachedRules{}}
	if cr, ok := b.(ChainReader); ok {
		c.cr = cr
	}
	return c
}

// entry returns the node's current rules (from the cache when allowed).
func (c *ruleCache) entry(ctx context.Context, node string) (*cachedRules, error) {
	if c.cr == nil {
		rs, err := c.b.Rules(ctx, node)
		if err != nil {
			return nil, fmt.Errorf("rules of node %s: %w", node, err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		// Keep the last one only to reuse its Service index when the
		// Backend hands out the same Ruleset again.
		if e := c.nodes[node]; e != nil && e.rs == rs {
			return e, nil
		}
		e := &cachedRules{rs: rs}
		c.nodes[node] = e
		return e, nil
	}
	gen, err := c.cr.RulesGeneration(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("rules generation of node %s: %w", node, err)
	}
	c.mu.Lock()
	if e := c.nodes[node]; e != nil && e.gen == gen {
		c.mu.Unlock()
		return e, nil
	}
	c.mu.Unlock()
	rs, err := c.b.Rules(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("rules of node %s: %w", node, err)
	}
	e := &cachedRules{gen: gen, rs: rs}
	c.mu.Lock()
	c.nodes[node] = e
	c.mu.Unlock()
	return e, nil
}

// rules returns the node's parsed rules.
func (c *ruleCache) rules(ctx context.Context, node string) (*dataplane.Ruleset, error) {
	e, err := c.entry(ctx, node)
	if err != nil {
		return nil, err
	}
	return e.rs, nil
}

// services returns the Service index of the node's rules.
func (c *ruleCache) services(ctx context.Context, node string) ([]ServiceEntry, error) {
	e, err := c.entry(ctx, node)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.services == nil {
		e.services = indexServices(e.rs)
	}
	return e.services, nil
}

// chainCounters returns the live rules of the named chains when the rules
// came from the cache (ChainReader), nil when they are already live.
func (c *ruleCache) chainCounters(ctx context.Context, node string, table dataplane.Table, chains []string) (*dataplane.Ruleset, error) {
	if c.cr == nil || len(chains) == 0 {
		return nil, nil
	}
	rs, err := c.cr.ChainRules(ctx, node, table, chains)
	if err != nil {
		return nil, fmt.Errorf("counters of node %s: %w", node, err)
	}
	return rs, nil
}

// invalidate drops the node's cached rules.
func (c *ruleCache) invalidate(node string) {
	c.mu.Lock()
	delete(c.nodes, node)
	c.mu.Unlock()
}

// applyCounters copies live counters onto the graph's rules and built-in
// chains. It returns false when a displayed rule is missing from fresh or
// has another text (the rules changed since the graph's Ruleset was read).
func applyCounters(g *Graph, fresh *dataplane.Ruleset) bool {
	t := dataplane.Table(g.Table)
	for _, n := range g.Nodes {
		if n.Kind == KindPod || n.Kind == KindVerdict {
			continue
		}
		c := fresh.Chain(t, n.Name)
		if c == nil {
			if len(n.Rules) > 0 {
				return false
			}
			continue
		}
		if n.Counters != nil && c.Counters != nil {
			n.Counters = &GCounters{Packets: c.Counters.Packets, Bytes: c.Counters.Bytes}
		}
		for _, r := range n.Rules {
			if r.Num < 1 || r.Num > len(c.Rules) || withoutCounters(c.Rules[r.Num-1].Text) != r.Text {
				return false
			}
			if fc := c.Rules[r.Num-1].Counters; fc != nil {
				r.Packets, r.Bytes = fc.Packets, fc.Bytes
			}
		}
	}
	return true
}

// countersArgRE matches the "-c PACKETS BYTES" that `iptables -S -v`
// prints after "-A CHAIN".
var countersArgRE = regexp.MustCompile(`^(-A \S+) -c \d+ \d+`)

// withoutCounters returns a rule text as iptables-save prints it (counters
// in front, not in the rule), so that `iptables -S CHAIN -v` output
// compares equal to the dump's rules.
func withoutCounters(text string) string {
	return countersArgRE.ReplaceAllString(text, "$1")
}
