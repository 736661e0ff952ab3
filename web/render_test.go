package web

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/svclab/svclab/dataplane"
)

func testsvcGraph(t *testing.T) *Graph {
	t.Helper()
	return BuildGraph(loadDump(t, "node-1"), GraphOptions{Node: "node-1", Services: []string{"default/testsvc"}, ClusterCIDR: labClusterCIDR, Topology: labTopology(t)})
}

func TestDOTGolden(t *testing.T) {
	assertGolden(t, "graph-testsvc.dot.golden", testsvcGraph(t).DOT())
}

func TestMermaidGolden(t *testing.T) {
	assertGolden(t, "graph-testsvc.mermaid.golden", testsvcGraph(t).Mermaid())
}

func TestSVGGolden(t *testing.T) {
	svg := testsvcGraph(t).SVG()
	assertGolden(t, "graph-testsvc.svg.golden", svg)
	assertWellFormedXML(t, svg)
}

func assertWellFormedXML(t *testing.T, doc string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}

// hostileDump is a rule set whose comments carry HTML and quotes, as a
// Service (or a hand-written rule) could.
const hostileDump = `*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-EVIL - [0:0]
:KUBE-SEP-EVIL - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.6.6/32 -p tcp -m comment --comment "default/<script>window.pwned=1</script>:x\"|y cluster IP" -m tcp --dport 80 -j KUBE-SVC-EVIL
-A KUBE-SVC-EVIL -m comment --comment "default/<img src=x onerror=window.pwned=1>:p -> 10.244.1.66:80" -j KUBE-SEP-EVIL
-A KUBE-SEP-EVIL -p tcp -m comment --comment "default/<img src=x onerror=window.pwned=1>:p" -m tcp -j DNAT --to-destination 10.244.1.66:80
COMMIT
`

func TestRenderersEscape(t *testing.T) {
	rs, err := dataplane.ParseSave([]byte(hostileDump))
	if err != nil {
		t.Fatal(err)
	}
	topo := &Topology{Pods: []TopoPod{{Namespace: "default", Name: `<b onmouseover="x">pod</b>`, IP: "10.244.1.66", Node: "node-1"}}}
	g := BuildGraph(rs, GraphOptions{Node: "node-1", Topology: topo})
	if got := g.Nodes[2].Service; got != `default/<script>window.pwned=1</script>:x"|y` {
		t.Fatalf("service of KUBE-SVC-EVIL = %q", got)
	}

	svg := g.SVG()
	assertWellFormedXML(t, svg)
	for _, bad := range []string{"<script", "<img", "<b ", `onmouseover="x"`} {
		if strings.Contains(svg, bad) {
			t.Errorf("SVG contains unescaped %q", bad)
		}
	}
	if !strings.Contains(svg, "&lt;script&gt;") {
		t.Errorf("SVG lacks the escaped service name")
	}

	dot := g.DOT()
	for _, l := range strings.Split(dot, "\n") {
		// Every quote inside a DOT string is escaped: the count of
		// unescaped quotes per line is even.
		n := strings.Count(l, `"`) - strings.Count(l, `\"`)
		if n%2 != 0 {
			t.Errorf("DOT line with an unbalanced quote: %s", l)
		}
	}

	mm := g.Mermaid()
	for _, bad := range []string{"<script", "<img", `x"|y`} {
		if strings.Contains(mm, bad) {
			t.Errorf("Mermaid contains %q:\n%s", bad, mm)
		}
	}
	if !strings.Contains(mm, "#lt;b onmouseover=#quot;x#quot;#gt;") {
		t.Errorf("Mermaid lacks entity codes:\n%s", mm)
	}
}

func TestMermaidText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"KUBE-SERVICES", "KUBE-SERVICES"},
		{"to 10.96.0.100:6379/tcp", "to 10.96.0.100:6379/tcp"},
		{"p=0.5000 of what reaches this rule → 1 in 2 overall", `"p=0.5000 of what reaches this rule → 1 in 2 overall"`},
		{`a "quoted" (x) #1 <y>`, `"a #quot;quoted#quot; (x) #35;1 #lt;y#gt;"`},
	}
	for _, tt := range tests {
		if got := mermaidText(tt.in); got != tt.want {
			t.Errorf("mermaidText(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}}
	for _, tt := range tests {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	if got := countersText(12345, 2048); got != "12,345 pkts · 2.0 KiB" {
		t.Errorf("countersText = %q", got)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"→→→", 3, "→→→"}, {"→→→→", 3, "→→…"}, {"a→b→c", 4, "a→b…"}, {"", 2, ""},
	}
	for _, tt := range tests {
		if got := truncate(tt.s, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
