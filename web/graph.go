package web

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svclab/svclab/dataplane"
)

// Node kinds of a Graph.
const (
	KindBuiltin  = "builtin"  // PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
	KindKube     = "kube"     // kube-proxy's shared chains (KUBE-SERVICES, KUBE-MARK-MASQ, …)
	KindService  = "service"  // per-service-port chains (KUBE-SVC/SVL/EXT/FW)
	KindEndpoint = "endpoint" // per-endpoint chains (KUBE-SEP)
	KindChain    = "chain"    // any other user chain
	KindPod      = "pod"      // a DNAT destination
	KindVerdict  = "verdict"  // DROP, REJECT, MASQUERADE
)

// GraphOptions select what BuildGraph draws.
type GraphOptions struct {
	// Node is only copied into the Graph.
	Node string
	// Table is the table to draw (default nat).
	Table dataplane.Table
	// Services selects Services: "namespace/name" (every port) or
	// "namespace/name:port". Empty with an empty Namespace means the whole
	// node.
	Services []string
	// Namespace selects every Service of a namespace.
	Namespace string
	// ClusterCIDR is the pod network ("not from the pod network" labels).
	ClusterCIDR netip.Prefix
	// Topology names the pods behind DNAT addresses; may be nil.
	Topology *Topology

	// countersOnly skips labels, explanations and layout (the counters
	// endpoint needs only the displayed rules and the hash).
	countersOnly bool
	// ExplainLimit: explanations are included when the graph shows at
	// most this many rules (else Graph.ExplainOmitted is set and
	// ExplainID gives them one by one); 0 means always.
	ExplainLimit int

	// index is Topology's pod index when the caller keeps one.
	index *topoIndex
}

// Graph is the chain graph of one node and table: chains as nodes holding
// their (displayed) rules, jumps and DNATs as edges, laid out left to right.
type Graph struct {
	Node     string   `json:"node"`
	Table    string   `json:"table"`
	Services []string `json:"services,omitempty"`
	// Namespace is the namespace filter, if any.
	Namespace string `json:"namespace,omitempty"`
	// Summaries say which shared chains are shown only in part, e.g.
	// "KUBE-SERVICES: 10,003 rules — showing 4 for default/testsvc".
	Summaries []string `json:"summaries,omitempty"`
	Nodes     []*GNode `json:"nodes"`
	Edges     []*GEdge `json:"edges"`
	// Width and Height are the size of the layout in pixels.
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	// Hash identifies the displayed rules (chains, positions and texts);
	// /lab/v1/counters returns the same hash while they are unchanged.
	Hash string `json:"hash"`
	// SeedNote compares the seed's 2019 capture with today's chains.
	SeedNote string `json:"seedNote"`
	// ExplainOmitted is set when the graph is too large to carry every
	// explanation; fetch them from /lab/v1/explain.
	ExplainOmitted bool `json:"explainOmitted,omitempty"`
}

// GNode is a chain, a DNAT destination or a verdict.
type GNode struct {
	// ID is "chain:NAME", "pod:IP:PORT" or "verdict:NAME".
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Title is a second line: the Service port of a per-service chain, the
	// pod of a DNAT destination.
	Title string `json:"title,omitempty"`
	// Service is the ServicePortName the node belongs to, if any.
	Service string `json:"service,omitempty"`
	// Pod is "ns/name" of a pod node (or of the endpoint chain's DNAT).
	Pod     string `json:"pod,omitempty"`
	PodNode string `json:"podNode,omitempty"`
	// Policy and Counters of a built-in chain.
	Policy   string     `json:"policy,omitempty"`
	Counters *GCounters `json:"counters,omitempty"`
	Rules    []*GRule   `json:"rules,omitempty"`
	// TotalRules is the chain's rule count; Summary is set when fewer are
	// shown.
	TotalRules int    `json:"totalRules"`
	Summary    string `json:"summary,omitempty"`
	// CountersAt is set (RFC 3339) when the chain's counters were not read
	// for this answer: a shared chain of more than 1,000 rules, whose
	// counters a ChainReader backend refreshes every 5 s in the background.
	// It is when they were read. Unset: the counters are live.
	CountersAt string `json:"countersAt,omitempty"`
	Explain    string `json:"explain"`
	// Layout: top-left corner and size in pixels.
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// GCounters are a built-in chain's policy counters.
type GCounters struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// GRule is one displayed rule.
type GRule struct {
	// ID is "TABLE/CHAIN/NUM".
	ID  string `json:"id"`
	Num int    `json:"num"`
	// Text is the rule as iptables-save prints it.
	Text string `json:"text"`
	// Label is the rule in plain words.
	Label  string `json:"label"`
	Target string `json:"target,omitempty"`
	// Packets and Bytes are the live counters (0 when the dump had none).
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Explain string `json:"explain"`
	// Service is the ServicePortName from the rule's comment (or its
	// chain), Pod the pod behind its DNAT (directly or via a KUBE-SEP).
	Service string `json:"service,omitempty"`
	Pod     string `json:"pod,omitempty"`
	DNAT    string `json:"dnat,omitempty"`
	// Edge is the ID of the edge this rule starts, "" if none.
	Edge string `json:"edge,omitempty"`
	// Y is the row's vertical centre (layout).
	Y float64 `json:"y"`
}

// GEdge is a jump, goto, DNAT or verdict of one rule.
type GEdge struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to"`
	Rule string `json:"rule"`
	// Label is the rule's matches in plain words (DOT, Mermaid, tooltips);
	// left out of large graphs' JSON (see Graph.ExplainOmitted).
	Label string `json:"label,omitempty"`
	// Short is the label as drawn on the edge (layout).
	Short string `json:"short"`
	// X1, Y1 (the rule's row, right side) and X2, Y2 (the target's header,
	// left side) are the edge's ends (layout); Path draws it.
	X1 float64 `json:"x1"`
	Y1 float64 `json:"y1"`
	X2 float64 `json:"x2"`
	Y2 float64 `json:"y2"`
}

// Path is the SVG path of the edge: a curve from its rule to its target,
// looping out to the right for an edge to a column at or left of its
// source. The UI draws the same curve.
func (e *GEdge) Path() string {
	dx := (e.X2 - e.X1) / 2
	if e.X2 <= e.X1 {
		dx = 80
	}
	return "M" + num(e.X1) + " " + num(e.Y1) + " C" + num(e.X1+dx) + " " + num(e.Y1) + " " + num(e.X2-dx) + " " + num(e.Y2) + " " + num(e.X2) + " " + num(e.Y2)
}

// SeedNote is the "seed 2019 vs today" note shown with the graph.
const SeedNote = "Seed 2019 vs today: the seed's capture (kube-proxy v1.12) sent load-balancer traffic " +
	"KUBE-SERVICES → KUBE-FW-* → KUBE-XLB-* → KUBE-SVC-*, and marked unwanted packets with KUBE-MARK-DROP " +
	"(mark 0x8000) for KUBE-FIREWALL to drop. Current kube-proxy has no KUBE-XLB-* and no KUBE-MARK-DROP: " +
	"KUBE-EXT-* does KUBE-XLB's job (NodePort, external and load-balancer IPs → masquerade mark or the " +
	"node-local KUBE-SVL-*), KUBE-FW-* exists only when loadBalancerSourceRanges is set, and drops happen " +
	"directly in the filter table (KUBE-PROXY-FIREWALL for source ranges, KUBE-EXTERNAL-SERVICES and " +
	"KUBE-SERVICES for \"no (local) endpoints\")."

// selection decides which Service ports are selected.
type selection struct {
	all       bool
	services  map[string]bool // ns/name
	ports     map[string]bool // ns/name:port
	namespace string
}

func newSelection(opts GraphOptions) selection {
	s := selection{services: map[string]bool{}, ports: map[string]bool{}, namespace: opts.Namespace}
	for _, x := range opts.Services {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		if strings.Contains(x, ":") {
			s.ports[x] = true
		} else {
			s.services[x] = true
		}
	}
	s.all = len(s.services) == 0 && len(s.ports) == 0 && s.namespace == ""
	return s
}

// mayMatch is a cheap pre-check for a rule comment: false means the
// comment names no selected Service (it may still name another one or none).
func (s selection) mayMatch(comment string) bool {
	if s.all {
		return true
	}
	for k := range s.services {
		if strings.Contains(comment, k) {
			return true
		}
	}
	for k := range s.ports {
		if strings.Contains(comment, k) {
			return true
		}
	}
	return s.namespace != "" && strings.Contains(comment, s.namespace+"/")
}

func (s selection) matches(spn string) bool {
	if s.all {
		return true
	}
	if spn == "" {
		return false
	}
	if s.ports[spn] || s.services[serviceOf(spn)] {
		return true
	}
	return s.namespace != "" && strings.HasPrefix(spn, s.namespace+"/")
}

func (s selection) describe() string {
	var parts []string
	for k := range s.services {
		parts = append(parts, k)
	}
	for k := range s.ports {
		parts = append(parts, k)
	}
	slices.Sort(parts)
	if s.namespace != "" {
		parts = append(parts, "namespace "+s.namespace)
	}
	return strings.Join(parts, ", ")
}

// topoIndex looks up pods by IP.
type topoIndex struct {
	podByIP map[string]*TopoPod
}

func newTopoIndex(t *Topology) topoIndex {
	ix := topoIndex{podByIP: map[string]*TopoPod{}}
	if t == nil {
		return ix
	}
	for i := range t.Pods {
		p := &t.Pods[i]
		if p.IP != "" {
			ix.podByIP[p.IP] = p
		}
	}
	return ix
}

// podFor returns the pod behind a DNAT destination "IP:port".
func (ix topoIndex) podFor(dest string) *TopoPod {
	ip := dest
	if ap, err := netip.ParseAddrPort(dest); err == nil {
		ip = ap.Addr().String()
	}
	return ix.podByIP[ip]
}

// chainKind classifies a chain name.
func chainKind(table dataplane.Table, name string) string {
	switch {
	case dataplane.IsBuiltinChain(table, name):
		return KindBuiltin
	case strings.HasPrefix(name, dataplane.PrefixSEP):
		return KindEndpoint
	case dataplane.IsServiceChainName(name):
		return KindService
	case strings.HasPrefix(name, "KUBE-"):
		return KindKube
	}
	return KindChain
}

// builtinOrder is the order built-in chains are drawn in.
var builtinOrder = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// topLevelChains are kube-proxy's shared chains, drawn even when no
// built-in chain jumps to them (e.g. a restore payload).
var topLevelChains = []string{
	dataplane.ChainServices, dataplane.ChainNodePorts, dataplane.ChainExternalServices,
	dataplane.ChainProxyFirewall, dataplane.ChainForward, dataplane.ChainPostrouting, dataplane.ChainFirewall,
}

// BuildGraph draws one table of a node's rules: the built-in chains, the
// kube-proxy chains they lead to and, for the selected Services, their
// KUBE-SVC/SVL/EXT/FW/SEP chains down to the DNAT destinations (pods). Shared
// chains show only the selected Services' rules (plus rules that belong to
// no Service) and get a summary line. A missing table gives an empty graph.
// The result is laid out (see layout) and deterministic.
func BuildGraph(rs *dataplane.Ruleset, opts GraphOptions) *Graph {
	if opts.Table == "" {
		opts.Table = dataplane.TableNAT
	}
	sel := newSelection(opts)
	g := &Graph{Node: opts.Node, Table: string(opts.Table), Services: opts.Services, Namespace: opts.Namespace, SeedNote: SeedNote,
		Nodes: []*GNode{}, Edges: []*GEdge{}}
	t := rs.Table(opts.Table)
	if t == nil {
		g.Hash = hashGraph(g)
		return g
	}
	var ix topoIndex
	if opts.index != nil {
		ix = *opts.index
	} else {
		ix = newTopoIndex(opts.Topology)
	}
	lcBase := labelContext{clusterCIDR: opts.ClusterCIDR}

	nodes := map[string]*GNode{}
	owner := map[string]string{} // chain → ServicePortName inherited from the rule that jumps to it
	var queue []string
	enqueue := func(name, svc string) {
		id := "chain:" + name
		if _, ok := nodes[id]; ok {
			return
		}
		c := t.Chain(name)
		if c == nil {
			return
		}
		n := &GNode{ID: id, Kind: chainKind(opts.Table, name), Name: name, TotalRules: len(c.Rules)}
		if c.Builtin {
			n.Policy = c.Policy
			if c.Counters != nil {
				n.Counters = &GCounters{Packets: c.Counters.Packets, Bytes: c.Counters.Bytes}
			}
		}
		nodes[id] = n
		g.Nodes = append(g.Nodes, n)
		if svc != "" && owner[name] == "" && (n.Kind == KindService || n.Kind == KindEndpoint) {
			owner[name] = svc
		}
		queue = append(queue, name)
	}
	for _, b := range builtinOrder {
		if c := t.Chain(b); c != nil {
			enqueue(b, "")
		}
	}
	for _, name := range topLevelChains {
		enqueue(name, "")
	}
	addTerminal := func(id, kind, name string) *GNode {
		if n := nodes[id]; n != nil {
			return n
		}
		n := &GNode{ID: id, Kind: kind, Name: name}
		nodes[id] = n
		g.Nodes = append(g.Nodes, n)
		return n
	}

	type pendingExplain struct {
		gr *GRule
		r  *dataplane.Rule
		rc ruleContext
	}
	var explains []pendingExplain
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		c := t.Chain(name)
		n := nodes["chain:"+name]
		kind := n.Kind
		chainSvc := owner[name]
		var shares map[*dataplane.Rule]shareInfo
		if kind == KindService || kind == KindChain {
			shares = chainShares(c) // endpoint picks live in KUBE-SVC/SVL
		}
		shown := 0
		shared := kind != KindBuiltin && chainSvc == ""
		for _, r := range c.Rules {
			// Shared chains (built-ins excepted) show the selection's rules
			// and the rules that belong to no Service. Most rules of a
			// long KUBE-SERVICES are skipped on a substring test.
			if shared && strings.IndexByte(r.Comment, '/') >= 0 && !sel.mayMatch(r.Comment) {
				continue
			}
			spn := ServicePortFromComment(r.Comment)
			if spn == "" {
				spn = chainSvc
			}
			if shared && spn != "" && !sel.matches(spn) {
				continue
			}
			shown++
			gr := &GRule{
				ID:      string(opts.Table) + "/" + name + "/" + strconv.Itoa(r.Num),
				Num:     r.Num,
				Text:    r.Text,
				Target:  r.Target,
				Service: spn,
			}
			if r.Counters != nil {
				gr.Packets, gr.Bytes = r.Counters.Packets, r.Counters.Bytes
			}
			lc := lcBase
			if s, ok := shares[r]; ok {
				lc.share = &s
			}
			var dest string
			switch {
			case r.Target == "DNAT":
				dest = r.ToDestination
			case strings.HasPrefix(r.Target, dataplane.PrefixSEP):
				dest = sepDestination(t.Chain(r.Target))
			}
			if dest != "" {
				gr.DNAT = dest
				if p := ix.podFor(dest); p != nil {
					gr.Pod = p.Namespace + "/" + p.Name
					lc.pod = gr.Pod
				}
			}
			if !opts.countersOnly {
				gr.Label = ruleLabel(r, lc)
				explains = append(explains, pendingExplain{gr, r, ruleContext{
					table: opts.Table, chainKind: kind, service: spn, share: lc.share,
					pod: podOf(ix, dest), dest: dest, clusterCIDR: opts.ClusterCIDR,
				}})
			}
			n.Rules = append(n.Rules, gr)

			// The edge this rule starts.
			var to *GNode
			switch {
			case r.Target == "":
			case t.Chain(r.Target) != nil:
				enqueue(r.Target, spn)
				to = nodes["chain:"+r.Target]
			case r.Target == "DNAT":
				to = addTerminal("pod:"+r.ToDestination, KindPod, r.ToDestination)
				if p := ix.podFor(r.ToDestination); p != nil {
					to.Pod, to.PodNode = p.Namespace+"/"+p.Name, p.Node
					to.Title = "pod " + to.Pod
					if p.Node != "" {
						to.Title += " on " + p.Node
					}
				} else {
					to.Title = "no pod known at this address"
				}
				if to.Service == "" {
					to.Service = spn
				}
			case r.Target == "DROP" || r.Target == "REJECT" || r.Target == "MASQUERADE":
				to = addTerminal("verdict:"+r.Target, KindVerdict, r.Target)
			}
			if to != nil {
				e := &GEdge{ID: "edge:" + gr.ID, From: n.ID, To: to.ID, Rule: gr.ID}
				if !opts.countersOnly {
					e.Label = edgeLabel(r, lc)
				}
				gr.Edge = e.ID
				g.Edges = append(g.Edges, e)
			}
		}
		if shown < len(c.Rules) {
			n.Summary = name + ": " + groupThousands(len(c.Rules)) + " rules — showing " + groupThousands(shown) + " for " + sel.describe()
			g.Summaries = append(g.Summaries, n.Summary)
		}
		if chainSvc != "" {
			n.Service = chainSvc
			n.Title = chainSvc
		}
		if kind == KindEndpoint {
			if d := sepDestination(c); d != "" {
				if p := ix.podFor(d); p != nil {
					n.Pod, n.PodNode = p.Namespace+"/"+p.Name, p.Node
					n.Title = joinNonEmpty(" · ", chainSvc, "pod "+n.Pod)
				} else {
					n.Title = joinNonEmpty(" · ", chainSvc, d)
				}
			}
		}
	}
	// Drop shared top-level chains that show nothing and that nothing
	// displayed jumps to (e.g. an empty KUBE-NODEPORTS with a selection).
	g.pruneEmpty()
	g.Hash = hashGraph(g)
	if opts.countersOnly {
		return g
	}
	if opts.ExplainLimit > 0 && len(explains) > opts.ExplainLimit {
		g.ExplainOmitted = true
	} else {
		for _, e := range explains {
			e.gr.Explain = explainRule(e.r, e.rc)
		}
		for _, n := range g.Nodes {
			n.Explain = explainNode(n, opts.Table)
		}
	}
	layout(g)
	return g
}

func podOf(ix topoIndex, dest string) *TopoPod {
	if dest == "" {
		return nil
	}
	return ix.podFor(dest)
}

// sepDestination returns the DNAT destination of an endpoint chain.
func sepDestination(c *dataplane.Chain) string {
	if c == nil {
		return ""
	}
	for _, r := range c.Rules {
		if r.Target == "DNAT" {
			return r.ToDestination
		}
	}
	return ""
}

// edgeLabel is the label drawn on an edge: the rule's matches in plain
// words (the edge itself shows the target), plus what it does for DNAT,
// marks and verdicts.
func edgeLabel(r *dataplane.Rule, lc labelContext) string {
	m := strings.Join(matchWords(r, lc), ", ")
	switch r.Target {
	case dataplane.ChainMarkMasq:
		return joinNonEmpty(": ", m, "masquerade mark")
	case "DNAT":
		return joinNonEmpty(": ", m, "DNAT to "+r.ToDestination)
	case "REJECT", "DROP":
		return ruleLabel(r, lc)
	}
	if m == "" {
		return "everything"
	}
	return m
}

// pruneEmpty removes kube chains with no displayed rules that no edge
// reaches, and their absence from the selection's summaries.
func (g *Graph) pruneEmpty() {
	reached := map[string]bool{}
	for _, e := range g.Edges {
		reached[e.To] = true
	}
	keep := g.Nodes[:0]
	for _, n := range g.Nodes {
		if n.Kind == KindKube && len(n.Rules) == 0 && !reached[n.ID] && n.TotalRules > 0 {
			continue
		}
		if n.Kind == KindKube && n.TotalRules == 0 && !reached[n.ID] {
			continue
		}
		keep = append(keep, n)
	}
	g.Nodes = keep
	var sums []string
	for _, n := range g.Nodes {
		if n.Summary != "" {
			sums = append(sums, n.Summary)
		}
	}
	g.Summaries = sums
}

// hashGraph identifies the displayed rules.
func hashGraph(g *Graph) string {
	h := fnv.New64a()
	for _, n := range g.Nodes {
		h.Write([]byte(n.ID))
		h.Write([]byte{0})
		for _, r := range n.Rules {
			h.Write([]byte(r.ID))
			h.Write([]byte{0})
			h.Write([]byte(r.Text))
			h.Write([]byte{0})
		}
	}
	return strconv.FormatUint(h.Sum64(), 16)
}
