package dataplane

import (
	"bytes"
	"context"
	"fmt"
)

// counterTables are the tables kube-proxy writes, read for live counters.
var counterTables = []Table{TableFilter, TableNAT}

// SaveLive returns `iptables-save -c -t filter; iptables-save -c -t nat` as
// run by r: the live rules with their [packets:bytes] counters.
func SaveLive(ctx context.Context, r Runner) ([]byte, error) {
	var buf bytes.Buffer
	for _, t := range counterTables {
		out, err := r.SaveCounters(ctx, t)
		if err != nil {
			return nil, err
		}
		buf.Write(out)
	}
	return buf.Bytes(), nil
}

// ReadCounters reads the live filter and nat tables through r (SaveLive) and
// parses them with ParseSave, so every Rule carries its Counters. Counters
// of chains a partial sync did not rewrite keep counting across syncs; a
// rewritten chain starts again from zero, as in kube-proxy. Unlike
// kube-proxy, a Proxier's partial sync does not rewrite the top-level chains
// (KUBE-SERVICES & co.): their rules keep their counters until a full sync.
func ReadCounters(ctx context.Context, r Runner) (*Ruleset, error) {
	out, err := SaveLive(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	rs, err := ParseSave(out)
	if err != nil {
		return nil, fmt.Errorf("parse counters: %w", err)
	}
	return rs, nil
}

// Counters returns the node's live filter and nat rules with their counters
// (see ReadCounters). It may be called at any time, also before the first
// sync and concurrently with syncs.
func (p *Proxier) Counters(ctx context.Context) (*Ruleset, error) {
	rs, err := ReadCounters(ctx, p.runner)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", p.node.Name, err)
	}
	return rs, nil
}

// SaveLive returns the node's live filter and nat tables as
// `iptables-save -c` prints them.
func (p *Proxier) SaveLive(ctx context.Context) ([]byte, error) {
	out, err := SaveLive(ctx, p.runner)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", p.node.Name, err)
	}
	return out, nil
}
