package dataplane

import (
	"bytes"
	"slices"
	"strings"
)

// How a Proxier turns a render into iptables-restore transactions.
//
// What ends up in the kernel is always what Render's full payload describes
// (same chains, same rules), but the transactions that get it there are
// shaped for the cost model of each backend, measured with iptables 1.8.9
// (Debian 12) and Linux 6.18 on a 2-core VM, 10,000 Services × 2 endpoints
// (30,000 chains, 80,000 rules; see BenchmarkFullSync10kServices and
// BenchmarkNetworkProgrammingLatency10k):
//
//   - iptables-nft-restore's userspace cost grows with commands × distinct
//     chains named in one transaction: its cache request keeps the chain
//     names of every command in a sorted linked list (cache_chain_list_insert).
//     The full payload takes ~87 s of CPU as one transaction, ~2.5 s in
//     batches. A small transaction is cheap in userspace whatever the
//     ruleset's size (-D fetches the rules of its chain: ~0.1 s for
//     KUBE-SERVICES), but the kernel re-validates every rule reachable from
//     the built-in chains whenever a transaction adds a rule: ~60 ms of
//     system time per transaction at 10,000 Services, ~6 ms at 1,000.
//   - iptables-legacy-restore reads and replaces the whole table blob on
//     every COMMIT (~0.35 s of CPU at 10,000 Services, however small the
//     change), but one big transaction is cheap (~0.6 s of CPU).
//
// So a full sync is kube-proxy's single transaction, except with nft when
// there are more than nftBatchChains per-service chains: then the
// per-service chains are written first in batches (each batch one
// transaction), and the top-level chains, the filter table and the deletion
// of stale chains follow in a last transaction. Every intermediate state is
// consistent (a chain always exists before a rule jumps to it, and is deleted
// only after the last jump to it is gone): it is the state a sequence of
// partial syncs would leave. Chains are declared in descending name order,
// which both backends insert in constant time (see planFull).
//
// A partial sync is incremental in the top-level chains too: where kube-proxy
// re-declares KUBE-SERVICES & co. and rewrites their thousands of rules on
// every sync, the Proxier, which knows exactly what the previous sync left in
// each chain, deletes the rules that went away (-D CHAIN rule) and inserts
// the new ones at the top (-I CHAIN 1 rule), and leaves a table it does not
// change alone. That changes the order of rules only in KUBE-SERVICES and
// KUBE-NODEPORTS (both tables), where kube-proxy's own order is that of a Go
// map iteration, and keeps nat KUBE-SERVICES' nodeports jump last. Every
// other top-level chain that changed is re-declared and rewritten in
// Render's order. The per-service chains of the changed Services are
// re-declared and rewritten exactly as kube-proxy does, stale ones are
// deleted after the last rule jumping to them.

// nftBatchChains is the number of per-service chains a full sync with
// iptables-nft writes per transaction. Smaller batches cut the userspace
// cost that grows with chains × commands per transaction; but once the
// kernel's chains are reachable from the built-in chains (a resync), every
// transaction that adds rules also pays the kernel's validation of the whole
// nat ruleset (~70 ms at 10,000 Services). Measured at 10,000 Services (2
// endpoints each): 750 → first sync 2.5 s, resync 7.7 s; 1500 → 2.6 s /
// 6.3 s; 3000 → 2.7 s / 6.1 s.
const nftBatchChains = 1500

// orderFreeChains are the top-level chains where rule order carries no
// meaning (one rule per Service port and address, in Go map order in
// kube-proxy), so that rules can be inserted at the top and deleted one by
// one. In nat KUBE-SERVICES the nodeports jump must stay last: it is never
// deleted or inserted by an incremental sync.
var orderFreeChains = map[string]bool{ChainServices: true, ChainNodePorts: true}

// planFull returns the transactions of a full sync of res (see above): one,
// or with nft batches of about batch per-service chains and a last
// transaction for the top-level chains. Chains are declared in descending
// name order: both backends keep their chain lists sorted by name and insert
// a new chain after a walk from the front, so that order makes every
// insertion immediate (iptables-save prints the chains sorted either way).
// It cuts iptables-legacy-restore's CPU time for 10,000 Services by about a
// third.
func planFull(res *Result, out *renderOutput, backend IPTablesBackend, batch int) [][]byte {
	total := 0
	for _, f := range out.frags {
		total += len(f.chains)
	}
	if backend != BackendNFT || total <= batch {
		return [][]byte{fullPayload(res, out)}
	}
	var steps [][]byte
	var names []string
	var rules bytes.Buffer
	flush := func(first bool) {
		var b bytes.Buffer
		b.Grow(rules.Len() + len(names)*40 + 256)
		b.WriteString("*nat\n")
		if first {
			// The chains every SEP/SVC chain jumps to; rewriting them first
			// is harmless (their content only depends on the Config).
			names = append(names, ChainPostrouting, ChainMarkMasq)
		}
		writeDeclsDesc(&b, names)
		if first {
			for _, l := range out.natFixed {
				b.WriteString(l + "\n")
			}
		}
		b.Write(rules.Bytes())
		b.WriteString("COMMIT\n")
		steps = append(steps, b.Bytes())
		names = names[:0]
		rules.Reset()
	}
	for _, f := range out.frags {
		if len(f.chains) == 0 {
			continue
		}
		names = append(names, f.chains...)
		rules.WriteString(f.chainRules)
		if len(names) >= batch {
			flush(len(steps) == 0)
		}
	}
	if len(names) > 0 {
		flush(len(steps) == 0)
	}

	var b bytes.Buffer
	b.WriteString("*filter\n")
	for _, c := range filterTopChains {
		writeDecl(&b, c)
	}
	writeChainRules(&b, TableFilter, "", out)
	b.WriteString("COMMIT\n*nat\n")
	writeDeclsDesc(&b, append([]string{ChainServices, ChainNodePorts}, out.stale...))
	for _, f := range out.frags {
		b.WriteString(f.natTop)
	}
	for _, c := range out.stale {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString(out.natTail + "\nCOMMIT\n")
	return append(steps, b.Bytes())
}

// fullPayload is res.Payload (a full sync's) with the nat chains declared in
// descending name order.
func fullPayload(res *Result, out *renderOutput) []byte {
	at := bytes.Index(res.Payload, []byte("COMMIT\n*nat\n"))
	if at < 0 || out.written != nil {
		return res.Payload
	}
	at += len("COMMIT\n*nat\n")
	names := slices.Clone(natTopChains)
	for _, f := range out.frags {
		names = append(names, f.chains...)
	}
	names = append(names, out.stale...)
	var b bytes.Buffer
	b.Grow(len(res.Payload))
	b.Write(res.Payload[:at])
	writeDeclsDesc(&b, names)
	rest := res.Payload[at:]
	for len(rest) > 0 && rest[0] == ':' {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return res.Payload
		}
		rest = rest[nl+1:]
	}
	b.Write(rest)
	return b.Bytes()
}

// writeDeclsDesc declares names in descending order (sorting names).
func writeDeclsDesc(b *bytes.Buffer, names []string) {
	slices.SortFunc(names, func(x, y string) int { return strings.Compare(y, x) })
	for _, c := range names {
		writeDecl(b, c)
	}
}

// writeChainRules writes the rules of the top-level chain of table in
// Render's order ("" = every top-level chain of the table, as in the full
// payload).
func writeChainRules(b *bytes.Buffer, table Table, chain string, out *renderOutput) {
	want := func(line string) bool { return chain == "" || ruleChain(line) == chain }
	fixed, tail := out.filterFixed, []string(nil)
	if table == TableNAT {
		fixed, tail = out.natFixed, []string{out.natTail}
	}
	head, rest := fixed, []string(nil)
	if table == TableFilter && len(fixed) > 0 {
		// KUBE-FIREWALL's rule comes first, KUBE-FORWARD's last.
		head, rest = fixed[:1], fixed[1:]
	}
	for _, l := range head {
		if want(l) {
			b.WriteString(l + "\n")
		}
	}
	for _, f := range out.frags {
		block := f.natTop
		if table == TableFilter {
			block = f.filterTop
		}
		if chain == "" {
			b.WriteString(block)
			continue
		}
		for _, l := range lines(block) {
			if want(l) {
				b.WriteString(l + "\n")
			}
		}
	}
	for _, l := range slices.Concat(rest, tail) {
		if want(l) {
			b.WriteString(l + "\n")
		}
	}
}

// ruleChain returns CHAIN of a "-A CHAIN …" line.
func ruleChain(line string) string {
	rest, ok := strings.CutPrefix(line, "-A ")
	if !ok {
		return ""
	}
	chain, _, _ := strings.Cut(rest, " ")
	return chain
}

// incrementalPlan is the single transaction of an incremental partial sync.
type incrementalPlan struct {
	// payload is nil when the kernel is already in the wanted state.
	payload []byte
	// guardLines are the payload lines of the canary guards ("-Z
	// KUBE-PROXY-CANARY"): a failure there means the tables were flushed.
	guardLines []int
	// inserted and deleted count the -I and -D lines per table.
	inserted, deleted map[Table]int
}

// planIncremental returns the transaction that takes the kernel from what
// prev (the last applied render) left to what next describes, as explained
// at the top of this file. next must have been rendered with the same Config
// and largeCluster mode as prev. With guard, each table section starts with
// "-Z KUBE-PROXY-CANARY", which fails when the canary chain is gone (someone
// flushed the tables) and changes nothing otherwise; the Proxier uses it
// where a separate `iptables -S` check would cost a whole-table read
// (legacy).
func planIncremental(prev, next *renderOutput, guard bool) incrementalPlan {
	added, removed := next.added, next.removed
	if next.base != prev {
		added, removed = diffFragments(prev.frags, next.frags)
	}

	// The fragments whose per-service chains are rewritten: those of the
	// Services the caller says changed, plus any new fragment (a safety net:
	// the renderer only rebuilds fragments of Services whose objects
	// changed), in payload order.
	writeSet := map[*portFragment]bool{}
	for f := range next.written {
		writeSet[f] = true
	}
	for _, f := range added {
		writeSet[f] = true
	}
	var svcFrags []*portFragment
	for f := range writeSet {
		if len(f.chains) > 0 {
			svcFrags = append(svcFrags, f)
		}
	}
	slices.SortFunc(svcFrags, compareFragments)

	plan := incrementalPlan{inserted: map[Table]int{}, deleted: map[Table]int{}}
	var b bytes.Buffer
	lineNo := 0
	emit := func(s string) {
		b.WriteString(s)
		b.WriteByte('\n')
		lineNo++
	}
	for _, table := range []Table{TableFilter, TableNAT} {
		block := func(f *portFragment) string {
			if table == TableNAT {
				return f.natTop
			}
			return f.filterTop
		}
		// Multiset difference of the top-level lines.
		delta := map[string]int{}
		var order []string
		count := func(frags []*portFragment, d int) {
			for _, f := range frags {
				for _, l := range lines(block(f)) {
					if _, seen := delta[l]; !seen {
						order = append(order, l)
					}
					delta[l] += d
				}
			}
		}
		count(removed, -1)
		count(added, +1)
		rewrite := map[string]bool{}
		for _, l := range order {
			if delta[l] != 0 && !orderFreeChains[ruleChain(l)] {
				rewrite[ruleChain(l)] = true
			}
		}
		// In the order-free chains (KUBE-SERVICES, KUBE-NODEPORTS) a service port whose block
		// changed is replaced whole — its old lines deleted, its new ones inserted — so that a
		// port's rules stay together and in kube-proxy's order (cluster IP, external IPs, LB
		// IPs). Inserting only the lines that differ would put, say, a newly assigned LB IP's
		// rule above its port's cluster IP rule. Ports whose block is unchanged (an endpoint
		// change) are left alone.
		oldBlocks, newBlocks := map[string][]string{}, map[string][]string{}
		var keys []string
		collect := func(frags []*portFragment, into map[string][]string) {
			for _, f := range frags {
				k := f.name + "/" + f.protocol
				if _, seen := oldBlocks[k]; !seen {
					if _, seen := newBlocks[k]; !seen {
						keys = append(keys, k)
					}
				}
				into[k] = append(into[k], lines(block(f))...)
			}
		}
		collect(removed, oldBlocks)
		collect(added, newBlocks)
		slices.Sort(keys)
		var dels, ins []string
		for _, k := range keys {
			if slices.Equal(oldBlocks[k], newBlocks[k]) {
				continue
			}
			for _, l := range oldBlocks[k] {
				if orderFreeChains[ruleChain(l)] {
					dels = append(dels, l)
				}
			}
			for _, l := range newBlocks[k] {
				if orderFreeChains[ruleChain(l)] {
					ins = append(ins, l)
				}
			}
		}
		// Chains whose content only depends on the Config, and the tail.
		prevFixed, nextFixed := prev.filterFixed, next.filterFixed
		if table == TableNAT {
			prevFixed = append(slices.Clone(prev.natFixed), prev.natTail)
			nextFixed = append(slices.Clone(next.natFixed), next.natTail)
		}
		if !slices.Equal(prevFixed, nextFixed) {
			for _, l := range slices.Concat(prevFixed, nextFixed) {
				rewrite[ruleChain(l)] = true
			}
		}
		var rewritten []string
		for c := range rewrite {
			rewritten = append(rewritten, c)
		}
		slices.Sort(rewritten)
		if len(rewritten) > 0 {
			// A rewritten chain gets all its rules back: drop its deltas.
			keep := func(l string) bool { return !rewrite[ruleChain(l)] }
			dels = slices.DeleteFunc(dels, func(l string) bool { return !keep(l) })
			ins = slices.DeleteFunc(ins, func(l string) bool { return !keep(l) })
		}

		var tableFrags []*portFragment
		var stale []string
		if table == TableNAT {
			tableFrags, stale = svcFrags, next.stale
		}
		if len(rewritten) == 0 && len(dels) == 0 && len(ins) == 0 && len(tableFrags) == 0 && len(stale) == 0 {
			continue
		}

		emit("*" + string(table))
		for _, f := range tableFrags {
			b.WriteString(f.chainDecls)
			lineNo += len(f.chains)
		}
		for _, c := range rewritten {
			emit(":" + c + " - [0:0]")
		}
		for _, c := range stale {
			emit(":" + c + " - [0:0]")
		}
		if guard {
			emit("-Z " + CanaryChain)
			plan.guardLines = append(plan.guardLines, lineNo)
		}
		for _, f := range tableFrags {
			b.WriteString(f.chainRules)
			lineNo += f.ruleCount
		}
		for _, c := range rewritten {
			var cb bytes.Buffer
			writeChainRules(&cb, table, c, next)
			b.Write(cb.Bytes())
			lineNo += bytes.Count(cb.Bytes(), []byte("\n"))
		}
		for _, l := range dels {
			emit("-D" + strings.TrimPrefix(l, "-A"))
			plan.deleted[table]++
		}
		// Each -I CHAIN 1 goes above the previous one: inserting in reverse leaves the lines
		// in render order.
		for _, l := range slices.Backward(ins) {
			c := ruleChain(l)
			emit("-I " + c + " 1" + strings.TrimPrefix(l, "-A "+c))
			plan.inserted[table]++
		}
		for _, c := range stale {
			emit("-X " + c)
		}
		emit("COMMIT")
	}
	if b.Len() > 0 {
		plan.payload = b.Bytes()
	}
	return plan
}

// diffFragments returns the fragments in next and not in prev, and those in
// prev and not in next.
func diffFragments(prev, next []*portFragment) (added, removed []*portFragment) {
	prevSet := make(map[*portFragment]bool, len(prev))
	for _, f := range prev {
		prevSet[f] = true
	}
	nextSet := make(map[*portFragment]bool, len(next))
	for _, f := range next {
		nextSet[f] = true
		if !prevSet[f] {
			added = append(added, f)
		}
	}
	for _, f := range prev {
		if !nextSet[f] {
			removed = append(removed, f)
		}
	}
	return added, removed
}

// countWrittenRules counts the rules a transaction writes per table: its
// "-A" and "-I" lines (kubeproxy_sync_proxy_rules_iptables_last).
func countWrittenRules(payload []byte, into map[Table]int) {
	var table Table
	for line := range bytes.Lines(payload) {
		switch {
		case len(line) > 0 && line[0] == '*':
			table = Table(strings.TrimSpace(string(line[1:])))
			into[table] += 0
		case bytes.HasPrefix(line, []byte("-A ")), bytes.HasPrefix(line, []byte("-I ")):
			into[table]++
		}
	}
}
