package web

import (
	"fmt"
	"html"
	"strconv"
	"strings"
)

// DOT renders the graph in Graphviz's language (`dot -Tsvg` draws it):
// one box per chain with its name and title, one edge per rule with the
// rule's plain-words label.
func (g *Graph) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(strings.TrimSpace(g.Node+" "+g.Table)))
	b.WriteString("  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n")
	for _, s := range g.Summaries {
		fmt.Fprintf(&b, "  // %s\n", strings.ReplaceAll(s, "\n", " "))
	}
	for _, n := range g.Nodes {
		label := n.Name
		if n.Title != "" {
			label += "\n" + n.Title
		}
		attrs := "label=" + dotQuote(label)
		switch n.Kind {
		case KindBuiltin:
			attrs += ", style=filled, fillcolor=\"#e8eef7\""
		case KindPod:
			attrs += ", shape=ellipse, style=filled, fillcolor=\"#e6f4ea\""
		case KindVerdict:
			attrs += ", shape=octagon, style=filled, fillcolor=\"#fce8e6\""
		}
		fmt.Fprintf(&b, "  %s [%s];\n", dotQuote(n.ID), attrs)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", dotQuote(e.From), dotQuote(e.To), dotQuote(e.Label))
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote quotes s as a DOT string: backslashes and quotes escaped,
// newlines as \n.
func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

// Mermaid renders the graph as a Mermaid flowchart in the seed's style
// (`graph TB`, `a(NAME)-->|label|b(NAME)`), to paste into notes. Labels
// with characters Mermaid treats specially are quoted, and quotes, #, <
// and > in them become Mermaid entity codes.
func (g *Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("graph TB\n")
	if g.Node != "" || len(g.Services) > 0 {
		fmt.Fprintf(&b, "%%%% %s\n", mermaidComment(strings.TrimSpace(g.Node+" "+g.Table+" "+strings.Join(g.Services, ", "))))
	}
	for _, s := range g.Summaries {
		fmt.Fprintf(&b, "%%%% %s\n", mermaidComment(s))
	}
	ids := map[string]string{}
	for i, n := range g.Nodes {
		ids[n.ID] = "n" + strconv.Itoa(i)
	}
	label := func(n *GNode) string {
		text := n.Name
		if n.Kind == KindPod && n.Pod != "" {
			text = n.Name + " " + n.Pod
		}
		open, close := "(", ")"
		switch n.Kind {
		case KindPod:
			open, close = "([", "])"
		case KindVerdict:
			open, close = "{{", "}}"
		}
		return ids[n.ID] + open + mermaidText(text) + close
	}
	used := map[string]bool{}
	for _, e := range g.Edges {
		from, to := g.node(e.From), g.node(e.To)
		fmt.Fprintf(&b, "%s-->|%s|%s\n", label(from), mermaidText(e.Label), label(to))
		used[e.From], used[e.To] = true, true
	}
	for _, n := range g.Nodes {
		if !used[n.ID] {
			b.WriteString(label(n) + "\n")
		}
	}
	return b.String()
}

func (g *Graph) node(id string) *GNode {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n
		}
	}
	return &GNode{ID: id, Name: id}
}

// mermaidText returns s as Mermaid node or edge text: bare when it only
// has safe characters, else quoted with entity codes.
func mermaidText(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c == ' ' || c == '_' || c == '-' || c == '.' || c == ':' || c == '/' || c == '=' || c == ',' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	r := strings.NewReplacer("#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", " ", "\r", " ")
	return `"` + r.Replace(s) + `"`
}

func mermaidComment(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// SVG renders the laid-out graph as a standalone SVG document, the same
// drawing the UI makes. Every text is XML-escaped.
func (g *Graph) SVG() string {
	var b strings.Builder
	esc := html.EscapeString
	top := 0.0
	if len(g.Summaries) > 0 {
		top = float64(len(g.Summaries))*16 + 8
	}
	w, h := g.Width, g.Height+top
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="monospace" font-size="12">`+"\n", num(w), num(h), num(w), num(h))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#5f6368"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	for i, s := range g.Summaries {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#5f6368">%s</text>`+"\n", margin, 16*(i+1), esc(s))
	}
	fmt.Fprintf(&b, `<g transform="translate(0 %s)">`+"\n", num(top))
	for _, e := range g.Edges {
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#80868b" stroke-width="1.2" marker-end="url(#arrow)"><title>%s</title></path>`+"\n", esc(e.Path()), esc(e.Label))
		fmt.Fprintf(&b, `<text x="%s" y="%s" font-size="11" fill="#3c4043">%s</text>`+"\n", num(e.X1+edgeLabelDX), num(e.Y1-edgeLabelDY), esc(e.Short))
	}
	for _, n := range g.Nodes {
		fill, stroke := nodeColors(n.Kind)
		fmt.Fprintf(&b, `<g><title>%s</title>`, esc(n.Explain))
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" rx="6" fill="%s" stroke="%s"/>`, num(n.X), num(n.Y), num(n.W), num(n.H), fill, stroke)
		fmt.Fprintf(&b, `<text x="%s" y="%s" font-weight="bold">%s</text>`, num(n.X+padX), num(n.Y+16), esc(n.Name))
		switch {
		case n.Title != "":
			fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#5f6368">%s</text>`, num(n.X+padX), num(n.Y+31), esc(truncate(n.Title, int((n.W-2*padX)/charW))))
		case n.Policy != "":
			fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#1a73e8">%s</text>`, num(n.X+padX), num(n.Y+31), esc(policyText(n)))
		}
		y := n.Y + headerH
		if n.Summary != "" {
			fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#b06000" font-size="11">%s</text>`, num(n.X+padX), num(y+13), esc(truncate(nodeSummary(n), int((n.W-2*padX)/charW))))
			y += summaryH
		}
		b.WriteString("</g>\n")
		for _, r := range n.Rules {
			fmt.Fprintf(&b, `<g><title>%s</title>`, esc(r.Text))
			fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#5f6368">#%d</text>`, num(n.X+padX), num(r.Y+4), r.Num)
			fmt.Fprintf(&b, `<text x="%s" y="%s">%s</text>`, num(n.X+padX+numW), num(r.Y+4), esc(rowLabel(r)))
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" fill="#1a73e8">%s</text>`, num(n.X+n.W-padX), num(r.Y+4), esc(countersText(r.Packets, r.Bytes)))
			b.WriteString("</g>\n")
		}
	}
	b.WriteString("</g>\n</svg>\n")
	return b.String()
}

func nodeColors(kind string) (string, string) {
	switch kind {
	case KindBuiltin:
		return "#e8eef7", "#4a6fa5"
	case KindKube:
		return "#f1f3f4", "#5f6368"
	case KindService:
		return "#fef7e0", "#b06000"
	case KindEndpoint:
		return "#e8f0fe", "#1a73e8"
	case KindPod:
		return "#e6f4ea", "#188038"
	case KindVerdict:
		return "#fce8e6", "#c5221f"
	}
	return "#ffffff", "#5f6368"
}

// countersText renders counters as the UI does: "12 pkts · 720 B".
func countersText(pkts, bytes uint64) string {
	return groupThousands(int(pkts)) + " pkts · " + humanBytes(bytes)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit {
			return strconv.FormatFloat(f, 'f', 1, 64) + " " + u
		}
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " PiB"
}
