package web

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/svclab/svclab/dataplane"
)

// describeGraph renders the graph model as text for golden comparison:
// nodes with kind, title and summary, each displayed rule with its
// counters, label and edge, and the explanations.
func describeGraph(g *Graph, withExplain bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph node=%s table=%s services=%v namespace=%q hash-present=%v\n", g.Node, g.Table, g.Services, g.Namespace, g.Hash != "")
	for _, s := range g.Summaries {
		fmt.Fprintf(&b, "summary: %s\n", s)
	}
	edges := map[string]*GEdge{}
	for _, e := range g.Edges {
		edges[e.ID] = e
	}
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "\n[%s] %s", n.Kind, n.Name)
		if n.Title != "" {
			fmt.Fprintf(&b, " — %s", n.Title)
		}
		if n.Policy != "" {
			fmt.Fprintf(&b, " (policy %s", n.Policy)
			if n.Counters != nil {
				fmt.Fprintf(&b, " [%d:%d]", n.Counters.Packets, n.Counters.Bytes)
			}
			b.WriteString(")")
		}
		fmt.Fprintf(&b, " %d/%d rules\n", len(n.Rules), n.TotalRules)
		if withExplain {
			fmt.Fprintf(&b, "  explain: %s\n", n.Explain)
		}
		for _, r := range n.Rules {
			fmt.Fprintf(&b, "  #%d [%d:%d] %s\n", r.Num, r.Packets, r.Bytes, r.Label)
			if e := edges[r.Edge]; e != nil {
				fmt.Fprintf(&b, "      edge → %s: %s\n", e.To, e.Label)
			}
			if withExplain {
				fmt.Fprintf(&b, "      text: %s\n      explain: %s\n", r.Text, r.Explain)
			}
		}
	}
	return b.String()
}

func TestBuildGraphGolden(t *testing.T) {
	rs := loadDump(t, "node-1")
	topo := labTopology(t)
	tests := []struct {
		golden  string
		opts    GraphOptions
		explain bool
	}{
		{"graph-testsvc-nat.golden", GraphOptions{Node: "node-1", Services: []string{"default/testsvc"}}, true},
		{"graph-fwsvc-nat.golden", GraphOptions{Node: "node-1", Services: []string{"default/fwsvc"}}, true},
		{"graph-fwsvc-filter.golden", GraphOptions{Node: "node-1", Table: dataplane.TableFilter, Services: []string{"default/fwsvc", "default/noep"}}, true},
		{"graph-kube-system-nat.golden", GraphOptions{Node: "node-1", Namespace: "kube-system"}, false},
		{"graph-dns-tcp-port-nat.golden", GraphOptions{Node: "node-1", Services: []string{"kube-system/kube-dns:dns-tcp"}}, false},
		{"graph-node-nat.golden", GraphOptions{Node: "node-1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			tt.opts.ClusterCIDR = labClusterCIDR
			tt.opts.Topology = topo
			g := BuildGraph(rs, tt.opts)
			assertGolden(t, tt.golden, describeGraph(g, tt.explain))
		})
	}
}

func TestBuildGraphMissingTable(t *testing.T) {
	rs, err := dataplane.ParseSave([]byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := BuildGraph(rs, GraphOptions{Table: dataplane.TableNAT})
	if len(g.Nodes) != 0 || len(g.Edges) != 0 || g.Hash == "" {
		t.Errorf("graph of a missing table = %d nodes, %d edges, hash %q; want empty with a hash", len(g.Nodes), len(g.Edges), g.Hash)
	}
}

func TestServicePortFromComment(t *testing.T) {
	tests := []struct{ comment, want string }{
		{"default/testsvc cluster IP", "default/testsvc"},
		{"default/fwsvc:http loadbalancer IP", "default/fwsvc:http"},
		{"default/fwsvc:http -> 10.244.1.9:80", "default/fwsvc:http"},
		{"masquerade traffic for default/testsvc external destinations", "default/testsvc"},
		{"pod traffic for default/fwsvc:http external destinations", "default/fwsvc:http"},
		{"other traffic to default/fwsvc:http will be dropped by KUBE-PROXY-FIREWALL", "default/fwsvc:http"},
		{"default/fwsvc:http traffic not accepted by KUBE-FW-M36YWU5DIGVFZLKD", "default/fwsvc:http"},
		{"default/noep has no endpoints", "default/noep"},
		{"kube-system/kube-dns:dns-tcp", "kube-system/kube-dns:dns-tcp"},
		{"kubernetes service portals", ""},
		{"kubernetes service nodeports; NOTE: this must be the last rule in this chain", ""},
		{"block 10.0.0.0/8 here", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ServicePortFromComment(tt.comment); got != tt.want {
			t.Errorf("ServicePortFromComment(%q) = %q, want %q", tt.comment, got, tt.want)
		}
	}
}

func TestChainSharesSeed(t *testing.T) {
	// The seed's KUBE-SVC-M42ZCW2EYUCRBVAF: seven endpoints, probabilities
	// 1/7 … 1/2 and a last rule without one; each gets 1 in 7.
	var b strings.Builder
	b.WriteString("*nat\n:KUBE-SVC-M42ZCW2EYUCRBVAF - [0:0]\n")
	for i, p := range []string{"0.14286000002", "0.16667000018", "0.20000000019", "0.25000000000", "0.33332999982", "0.50000000000", ""} {
		stat := ""
		if p != "" {
			stat = " -m statistic --mode random --probability " + p
		}
		fmt.Fprintf(&b, "-A KUBE-SVC-M42ZCW2EYUCRBVAF%s -j KUBE-SEP-%d\n", stat, i)
	}
	b.WriteString(":KUBE-SEP-0 - [0:0]\n:KUBE-SEP-1 - [0:0]\n:KUBE-SEP-2 - [0:0]\n:KUBE-SEP-3 - [0:0]\n:KUBE-SEP-4 - [0:0]\n:KUBE-SEP-5 - [0:0]\n:KUBE-SEP-6 - [0:0]\nCOMMIT\n")
	rs, err := dataplane.ParseSave([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Chain(dataplane.TableNAT, "KUBE-SVC-M42ZCW2EYUCRBVAF")
	shares := chainShares(c)
	var got []string
	for _, r := range c.Rules {
		s := shares[r]
		if math.Abs(s.effective-1.0/7) > 1e-4 {
			t.Errorf("rule %d: effective share %.5f, want 1/7", r.Num, s.effective)
		}
		got = append(got, ruleLabel(r, labelContext{share: &s}))
	}
	want := []string{
		"p=0.1429 of what reaches this rule → 1 in 7 overall",
		"p=0.1667 of what reaches this rule → 1 in 7 overall",
		"p=0.2000 of what reaches this rule → 1 in 7 overall",
		"p=0.2500 of what reaches this rule → 1 in 7 overall",
		"p=0.3333 of what reaches this rule → 1 in 7 overall",
		"p=0.5000 of what reaches this rule → 1 in 7 overall",
		"the rest → 1 in 7 overall",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

func TestOneIn(t *testing.T) {
	tests := []struct {
		share float64
		want  string
	}{{1, "all"}, {0, "none"}, {1.0 / 3, "1 in 3"}, {0.14286, "1 in 7"}, {0.3, "30.0%"}, {0.0001, "1 in 10000"}}
	for _, tt := range tests {
		if got := oneIn(tt.share); got != tt.want {
			t.Errorf("oneIn(%v) = %q, want %q", tt.share, got, tt.want)
		}
	}
}

func TestRuleLabels(t *testing.T) {
	cidr := netip.MustParsePrefix("10.244.0.0/16")
	tests := []struct{ rule, want string }{
		{`-A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.0.100/32 -p tcp -m comment --comment "default/redis cluster IP" -m tcp --dport 6379 -j KUBE-MARK-MASQ`,
			"to 10.96.0.100:6379/tcp, not from the pod network → masquerade mark"},
		{`-A KUBE-EXT-X -s 10.244.0.0/16 -m comment --comment "pod traffic for default/fwsvc:http external destinations" -j KUBE-SVC-X`,
			"from the pod network"},
		{`-A KUBE-SEP-X -s 10.244.1.8/32 -m comment --comment "default/testsvc" -j KUBE-MARK-MASQ`,
			"from the endpoint itself (10.244.1.8, hairpin) → masquerade mark"},
		{`-A KUBE-SEP-X -p tcp -m comment --comment "default/fwsvc:http" -m recent --set --name KUBE-SEP-X --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.9:80`,
			"tcp → DNAT to 10.244.1.9:80"},
		{`-A KUBE-SVC-X -m comment --comment "default/fwsvc:http -> 10.244.1.9:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource -j KUBE-SEP-X`,
			"session affinity (recent): a client seen in the last 10800 s"},
		{`-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN`, "without the masquerade mark → return to the calling chain"},
		{`-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0`, "everything → flip (clear) the masquerade mark (0x4000)"},
		{`-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000`, "everything → set the masquerade mark (0x4000)"},
		{`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
			"to an address of this node"},
		{`-A KUBE-NODEPORTS -p tcp -m comment --comment "default/myapp" -m tcp --dport 30080 -j KUBE-EXT-X`, "to port 30080/tcp"},
		{`-A KUBE-SERVICES -d 10.96.9.9/32 -p tcp -m comment --comment "default/noep has no endpoints" -m tcp --dport 8080 -j REJECT --reject-with icmp-port-unreachable`,
			"the Service has no endpoints, to 10.96.9.9:8080/tcp → reject (the client gets connection refused)"},
		{`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
			"replies and related packets of known connections → accept"},
		{`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`, "new connections"},
		{`-A KUBE-FW-X -m comment --comment "other traffic to default/fwsvc:http will be dropped by KUBE-PROXY-FIREWALL"`,
			"not from an allowed source range (dropped later in filter KUBE-PROXY-FIREWALL) → count only"},
		{`-A KUBE-FW-X -s 172.29.0.0/16 -m comment --comment "default/fwsvc:http loadbalancer IP" -j KUBE-EXT-X`, "from 172.29.0.0/16"},
	}
	for _, tt := range tests {
		rs, err := dataplane.ParseSave([]byte("*nat\n" + tt.rule + "\nCOMMIT\n"))
		if err != nil {
			t.Fatalf("parse %q: %v", tt.rule, err)
		}
		r := rs.Tables[0].Chains[0].Rules[0]
		if got := ruleLabel(r, labelContext{clusterCIDR: cidr}); got != tt.want {
			t.Errorf("label of %s\n got %q\nwant %q", tt.rule, got, tt.want)
		}
	}
}

func TestGraphSelection(t *testing.T) {
	rs := loadDump(t, "node-1")
	chains := func(g *Graph) []string {
		var out []string
		for _, n := range g.Nodes {
			out = append(out, n.Name)
		}
		return out
	}
	g := BuildGraph(rs, GraphOptions{Services: []string{"default/redis"}})
	want := []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SVC-OKJCEJEOAS2LLIDR", "MASQUERADE", "KUBE-MARK-MASQ", "KUBE-SEP-7PFXXPBHE4AJG7XF", "10.244.1.2:6379"}
	if diff := cmp.Diff(want, chains(g)); diff != "" {
		t.Errorf("nodes for default/redis (-want +got):\n%s", diff)
	}
	// Every displayed service rule belongs to the selection.
	for _, n := range g.Nodes {
		for _, r := range n.Rules {
			if r.Service != "" && serviceOf(r.Service) != "default/redis" {
				t.Errorf("rule %s of %s shown for default/redis", r.ID, r.Service)
			}
		}
	}
	// The same selection gives the same hash; another one another.
	if g2 := BuildGraph(rs, GraphOptions{Services: []string{"default/redis"}}); g2.Hash != g.Hash {
		t.Errorf("hash not stable: %s vs %s", g.Hash, g2.Hash)
	}
	if g3 := BuildGraph(rs, GraphOptions{Services: []string{"default/myapp"}}); g3.Hash == g.Hash {
		t.Errorf("different selections have the same hash %s", g.Hash)
	}
	// countersOnly keeps the rules and the hash.
	gc := BuildGraph(rs, GraphOptions{Services: []string{"default/redis"}, countersOnly: true})
	if gc.Hash != g.Hash || len(gc.Nodes) != len(g.Nodes) {
		t.Errorf("countersOnly graph differs: hash %s vs %s, %d vs %d nodes", gc.Hash, g.Hash, len(gc.Nodes), len(g.Nodes))
	}
}

func TestLayout(t *testing.T) {
	rs := loadDump(t, "node-1")
	for _, opts := range []GraphOptions{{}, {Services: []string{"default/testsvc"}}, {Table: dataplane.TableFilter}} {
		g := BuildGraph(rs, opts)
		for i, a := range g.Nodes {
			if a.W <= 0 || a.H <= 0 || a.X < 0 || a.Y < 0 || a.X+a.W > g.Width || a.Y+a.H > g.Height {
				t.Errorf("%v: node %s at (%v,%v) size %vx%v outside %vx%v", opts, a.Name, a.X, a.Y, a.W, a.H, g.Width, g.Height)
			}
			for _, b := range g.Nodes[i+1:] {
				if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
					t.Errorf("%v: nodes %s and %s overlap", opts, a.Name, b.Name)
				}
			}
			for _, r := range a.Rules {
				if r.Y <= a.Y || r.Y >= a.Y+a.H {
					t.Errorf("%v: row %s outside its node", opts, r.ID)
				}
			}
		}
		for _, e := range g.Edges {
			if e.X1 <= 0 || e.X2 <= 0 || e.Y1 <= 0 || e.Y2 <= 0 || !strings.HasPrefix(e.Path(), "M") {
				t.Errorf("edge %s at (%v,%v)-(%v,%v)", e.ID, e.X1, e.Y1, e.X2, e.Y2)
			}
		}
	}
}

// TestExplainIDMatchesGraph: the one-by-one explanations (large graphs)
// are the ones a graph carries inline.
func TestExplainIDMatchesGraph(t *testing.T) {
	rs := loadDump(t, "node-1")
	topo := labTopology(t)
	for _, opts := range []GraphOptions{
		{Services: []string{"default/testsvc"}},
		{Services: []string{"default/fwsvc"}},
		{Table: dataplane.TableFilter},
	} {
		opts.ClusterCIDR, opts.Topology = labClusterCIDR, topo
		g := BuildGraph(rs, opts)
		table := dataplane.Table(g.Table)
		for _, n := range g.Nodes {
			e, ok := ExplainID(rs, table, n.ID, labClusterCIDR, topo)
			if !ok || e.Explain != n.Explain {
				t.Errorf("ExplainID(%s) = %v %q\nwant %q", n.ID, ok, e.Explain, n.Explain)
			}
			for _, r := range n.Rules {
				e, ok := ExplainID(rs, table, r.ID, labClusterCIDR, topo)
				if !ok || e.Explain != r.Explain || e.Title != r.Label || e.Text != r.Text {
					t.Errorf("ExplainID(%s) = %v %+v\nwant %q / %q", r.ID, ok, e, r.Label, r.Explain)
				}
			}
		}
	}
	for _, bad := range []string{"", "nat/NOPE/1", "nat/KUBE-SERVICES/0", "nat/KUBE-SERVICES/99", "filter/KUBE-SERVICES/1", "chain:NOPE", "nat/KUBE-SERVICES/x"} {
		if _, ok := ExplainID(rs, dataplane.TableNAT, bad, labClusterCIDR, topo); ok {
			t.Errorf("ExplainID(%q) succeeded", bad)
		}
	}
}

func TestExplainLimit(t *testing.T) {
	rs := loadDump(t, "node-1")
	g := BuildGraph(rs, GraphOptions{ExplainLimit: 10})
	if !g.ExplainOmitted {
		t.Fatal("whole node with ExplainLimit 10 carries explanations")
	}
	for _, n := range g.Nodes {
		if n.Explain != "" {
			t.Errorf("%s has an explanation", n.ID)
		}
	}
	if g := BuildGraph(rs, GraphOptions{Services: []string{"default/redis"}, ExplainLimit: 400}); g.ExplainOmitted || g.Nodes[0].Explain == "" {
		t.Errorf("small graph lost its explanations")
	}
}

// edgeLabelBox is the box the edge's short label covers as the SVG and the
// UI draw it: 11px monospace text at (X1+6, Y1-4), its baseline at Y1-4.
func edgeLabelBox(e *GEdge) (x0, y0, x1, y1 float64) {
	x0, base := e.X1+edgeLabelDX, e.Y1-edgeLabelDY
	return x0, base - edgeAscent, x0 + float64(utf8.RuneCountInString(e.Short))*edgeCharW, base + edgeDescent
}

// TestEdgeLabelsClearNodes: no edge label runs under a node box (the
// column gap leaves room for the labels that leave each column).
func TestEdgeLabelsClearNodes(t *testing.T) {
	rs := loadDump(t, "node-1")
	topo := labTopology(t)
	for _, tt := range []struct {
		name string
		opts GraphOptions
	}{
		{"whole node nat", GraphOptions{}},
		{"testsvc", GraphOptions{Services: []string{"default/testsvc"}}},
		{"fwsvc", GraphOptions{Services: []string{"default/fwsvc"}}},
		{"kube-system", GraphOptions{Namespace: "kube-system"}},
		{"whole node filter", GraphOptions{Table: dataplane.TableFilter}},
	} {
		opts, name := tt.opts, tt.name
		opts.ClusterCIDR, opts.Topology = labClusterCIDR, topo
		g := BuildGraph(rs, opts)
		checked := 0
		for _, e := range g.Edges {
			if e.Short == "" {
				continue
			}
			checked++
			x0, y0, x1, y1 := edgeLabelBox(e)
			if x1 > g.Width {
				t.Errorf("%s: label %q of %s ends at x=%v, beyond the width %v", name, e.Short, e.ID, x1, g.Width)
			}
			for _, n := range g.Nodes {
				if x0 < n.X+n.W && n.X < x1 && y0 < n.Y+n.H && n.Y < y1 {
					t.Errorf("%s: label %q of %s (%v,%v)-(%v,%v) runs under node %s (%v,%v) %vx%v", name, e.Short, e.ID, x0, y0, x1, y1, n.Name, n.X, n.Y, n.W, n.H)
				}
			}
		}
		if checked == 0 {
			t.Errorf("%s: no edge labels to check", name)
		}
	}
}
