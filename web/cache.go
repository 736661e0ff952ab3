package web

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/svclab/svclab/dataplane"
)

// bigChainRules is the rule count above which a chain's counters are not
// read on every request (with a ChainReader): `iptables -S KUBE-SERVICES
// -v` at 10,000 Services takes ~110 ms, more than the whole latency
// budget of one counters refresh. Such chains are shared (KUBE-SERVICES,
// KUBE-NODEPORTS at scale); a Service's own chains are far below it.
const bigChainRules = 1000

// bigChainRefresh is the age after which a big chain's counters are read
// again, in the background: requests never wait for that read and show
// counters at most this old (plus the read's own time).
const bigChainRefresh = 5 * time.Second

// ruleCache hands out a node's parsed rules. Without a ChainReader every
// call asks the Backend (live rules, live counters). With one, the parsed
// Ruleset is kept until the node's RulesGeneration changes and counters of
// the displayed chains are read separately (chainCounters).
type ruleCache struct {
	b   Backend
	cr  ChainReader
	log *slog.Logger
	// bigRules and bigRefresh are bigChainRules and bigChainRefresh
	// (tests lower them).
	bigRules   int
	bigRefresh time.Duration

	mu    sync.Mutex
	nodes map[string]*cachedRules
}

type cachedRules struct {
	gen      uint64
	rs       *dataplane.Ruleset
	readAt   time.Time      // when rs was read
	services []ServiceEntry // lazily built index of rs

	// big holds the latest counters of the big chains (bigChainRules),
	// keyed by table and chain; guarded by ruleCache.mu.
	big map[chainKey]*bigChain
}

type chainKey struct {
	table dataplane.Table
	chain string
}

// bigChain is one read of a big chain and whether a newer one is under way.
type bigChain struct {
	chain   *dataplane.Chain // nil when the chain is gone
	at      time.Time        // when chain's counters were read
	retry   time.Time        // after a failed read: not before then
	loading bool
}

func newRuleCache(b Backend, log *slog.Logger) *ruleCache {
	c := &ruleCache{b: b, log: log, nodes: map[string]*cachedRules{}, bigRules: bigChainRules, bigRefresh: bigChainRefresh}
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
	e := &cachedRules{gen: gen, rs: rs, readAt: time.Now(), big: map[chainKey]*bigChain{}}
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

// perServiceChainPrefixes name the chains that belong to one Service or
// endpoint: their counters are always read live, however long they are.
var perServiceChainPrefixes = []string{"KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-"}

// isBig reports whether the cached chain is a shared chain of more than
// bigChainRules rules (only with a ChainReader: without one, every read is
// a whole dump). A Service's own chains are never big.
func (c *ruleCache) isBig(rs *dataplane.Ruleset, table dataplane.Table, chain string) bool {
	if c.cr == nil || slices.ContainsFunc(perServiceChainPrefixes, func(p string) bool { return strings.HasPrefix(chain, p) }) {
		return false
	}
	ch := rs.Chain(table, chain)
	return ch != nil && len(ch.Rules) > c.bigRules
}

// bigCounters returns the latest read of the node's big chains (their rules
// with counters) and when each was read. Reads older than bigChainRefresh
// start one background read of those chains; until it lands, the older
// counters are returned. The first read is the cached dump itself. It
// returns nil when rs is no longer the node's cached Ruleset.
func (c *ruleCache) bigCounters(node string, rs *dataplane.Ruleset, table dataplane.Table, chains []string) (map[string]*dataplane.Chain, map[string]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.nodes[node]
	if e == nil || e.rs != rs || e.big == nil {
		return nil, nil
	}
	out, at := map[string]*dataplane.Chain{}, map[string]time.Time{}
	var stale []string
	for _, name := range chains {
		k := chainKey{table, name}
		bc := e.big[k]
		if bc == nil {
			bc = &bigChain{chain: rs.Chain(table, name), at: e.readAt}
			e.big[k] = bc
		}
		out[name], at[name] = bc.chain, bc.at
		if now := time.Now(); !bc.loading && now.Sub(bc.at) >= c.bigRefresh && !now.Before(bc.retry) {
			bc.loading = true
			stale = append(stale, name)
		}
	}
	if len(stale) > 0 {
		go c.refreshBig(node, e, table, stale)
	}
	return out, at
}

// refreshBig reads big chains' counters for a cache entry and stores them
// while the entry is still current.
func (c *ruleCache) refreshBig(node string, e *cachedRules, table dataplane.Table, chains []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	rs, err := c.cr.ChainRules(ctx, node, table, chains)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range chains {
		bc := e.big[chainKey{table, name}]
		if bc == nil {
			continue
		}
		bc.loading = false
		if err != nil {
			// Keep the older counters (and their time); retry later.
			bc.retry = time.Now().Add(c.bigRefresh)
			continue
		}
		// The read began at start: that is the age its counters have. A
		// chain gone since is nil: the graph then no longer matches and
		// is rebuilt from a fresh dump.
		bc.chain, bc.at = rs.Chain(table, name), start
	}
	if err != nil {
		c.log.Warn("background read of big chains' counters", "node", node, "table", table, "chains", chains, "err", err)
	}
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
	return applyChainCounters(g, func(name string) *dataplane.Chain { return fresh.Chain(t, name) })
}

// applyChainCounters is applyCounters with the chains looked up by name
// (nil: missing).
func applyChainCounters(g *Graph, chain func(name string) *dataplane.Chain) bool {
	for _, n := range g.Nodes {
		if n.Kind == KindPod || n.Kind == KindVerdict {
			continue
		}
		c := chain(n.Name)
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
			if r.Num < 1 || r.Num > len(c.Rules) || c.Rules[r.Num-1].Text != r.Text {
				return false
			}
			if fc := c.Rules[r.Num-1].Counters; fc != nil {
				r.Packets, r.Bytes = fc.Packets, fc.Bytes
			}
		}
	}
	return true
}
