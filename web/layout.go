package web

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Layout metrics, shared with the UI (app.js draws with the same numbers:
// 12px monospace for rows, 11px for edge labels).
const (
	charW         = 7.2 // width of a 12px monospace character
	edgeCharW     = 6.6 // width of an 11px monospace character
	headerH       = 38  // chain name and title lines
	rowH          = 18  // one rule row
	summaryH      = 18  // the "showing N of M" line
	padX          = 8
	numW          = 34  // "#123"
	countersW     = 150 // "12,345 pkts · 1.2 KiB"
	maxLabelChars = 64  // longer row labels are cut with "…" (the full text is in the tooltip)
	minNodeW      = 220
	maxNodeW      = 680
	minColGap     = 90 // the gap between columns when no edge label needs more
	labelGap      = 10 // room kept between an edge label's end and the next column
	edgeLabelDX   = 6  // an edge label starts this far right of its rule's row end
	edgeLabelDY   = 4  // and has its baseline this far above the row's centre
	edgeAscent    = 10 // the part of an 11px label above its baseline
	edgeDescent   = 3  // and below it
	nodeGap       = 22
	margin        = 16
	maxEdgeChars  = 26 // edge labels are cut to this many characters
)

// rowLabel is the row text of a rule as the UI shows it.
func rowLabel(r *GRule) string {
	return truncate(r.Label, maxLabelChars)
}

// truncate cuts s to n characters, ending with "…" when cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s // no more runes than bytes
	}
	count, cut := 0, -1
	for i := range s {
		if count == n-1 {
			cut = i
		}
		count++
		if count > n {
			return s[:cut] + "…"
		}
	}
	return s
}

// shortEdgeLabel is the label drawn on the edge itself: the share for
// endpoint picks, else the label cut to maxEdgeChars.
func shortEdgeLabel(e *GEdge) string {
	l := e.Label
	// The last endpoint's rule has no probability: "the rest → 1 in 7 overall" keeps its "the rest"
	// (checked first: the general "→ … overall" case below would drop it).
	if strings.HasPrefix(l, "the rest → ") {
		return truncate("the rest: "+strings.TrimPrefix(l, "the rest → "), maxEdgeChars+8)
	}
	if i := strings.Index(l, "→ "); i >= 0 && strings.Contains(l, "overall") {
		// "p=0.3333 of what reaches this rule → 1 in 3 overall" → "1 in 3 overall (p=0.3333)"
		rest := l[i+len("→ "):]
		if j := strings.Index(l, "p="); j >= 0 {
			p := l[j:]
			if k := strings.IndexByte(p, ' '); k >= 0 {
				p = p[:k]
			}
			return truncate(rest+" ("+p+")", maxEdgeChars+8)
		}
		return truncate(rest, maxEdgeChars)
	}
	return truncate(l, maxEdgeChars)
}

// policyText is the second line of a built-in chain: its policy and the
// policy's counters.
func policyText(n *GNode) string {
	if n.Counters == nil {
		return "policy " + n.Policy
	}
	return "policy " + n.Policy + " · " + countersText(n.Counters.Packets, n.Counters.Bytes)
}

// nodeSummary is the summary as drawn inside the node (without the chain
// name that starts Summary).
func nodeSummary(n *GNode) string {
	return strings.TrimPrefix(n.Summary, n.Name+": ")
}

// nodeSize computes a node's width and height.
func nodeSize(n *GNode) (float64, float64) {
	chars := max(utf8.RuneCountInString(n.Name), utf8.RuneCountInString(n.Title))
	if n.Counters != nil {
		chars = max(chars, utf8.RuneCountInString(policyText(n)))
	}
	w := float64(chars)*charW + 2*padX
	for _, r := range n.Rules {
		w = max(w, numW+float64(utf8.RuneCountInString(rowLabel(r)))*charW+countersW+2*padX)
	}
	if n.Summary != "" {
		w = max(w, float64(utf8.RuneCountInString(nodeSummary(n)))*charW+2*padX)
	}
	w = math.Min(math.Max(w, minNodeW), maxNodeW)
	h := float64(headerH)
	if n.Summary != "" {
		h += summaryH
	}
	h += float64(len(n.Rules)) * rowH
	if len(n.Rules) > 0 {
		h += 6
	}
	return math.Round(w), h
}

// layout places the graph's nodes in columns by longest path from the
// roots (left to right, like the packet's way), orders each column by the
// position of the rules that lead to its nodes, and routes edges as curves
// from the rule's row to the target's header. The gap after each column is
// as wide as the edge labels that leave it need (at least minColGap), so
// no label runs under the next column's boxes. It is linear in the size of
// the graph (no crossing minimisation beyond that ordering), so a whole
// node with 1,000 Services lays out in milliseconds.
func layout(g *Graph) {
	idx := map[string]int{}
	rows := map[string]*GRule{}
	for i, n := range g.Nodes {
		idx[n.ID] = i
		for _, r := range n.Rules {
			rows[r.ID] = r
		}
	}
	ruleY := func(n *GNode, ruleID string) float64 {
		if r := rows[ruleID]; r != nil {
			return r.Y
		}
		return n.Y + headerH/2
	}
	out := make([][]*GEdge, len(g.Nodes))
	in := make([][]*GEdge, len(g.Nodes))
	for _, e := range g.Edges {
		f, t := idx[e.From], idx[e.To]
		out[f] = append(out[f], e)
		in[t] = append(in[t], e)
	}
	// Back edges (cycles) are ignored for ranking: DFS from each node in
	// order; an edge to a node on the stack is a back edge.
	back := map[*GEdge]bool{}
	state := make([]uint8, len(g.Nodes)) // 0 new, 1 on stack, 2 done
	var order []int                      // reverse postorder = topological order
	type frame struct{ v, i int }
	for s := range g.Nodes {
		if state[s] != 0 {
			continue
		}
		stack := []frame{{s, 0}}
		state[s] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.i < len(out[top.v]) {
				e := out[top.v][top.i]
				top.i++
				t := idx[e.To]
				switch state[t] {
				case 0:
					state[t] = 1
					stack = append(stack, frame{t, 0})
				case 1:
					back[e] = true
				}
				continue
			}
			state[top.v] = 2
			order = append(order, top.v)
			stack = stack[:len(stack)-1]
		}
	}
	slices.Reverse(order)
	rank := make([]int, len(g.Nodes))
	for _, v := range order {
		for _, e := range out[v] {
			if back[e] {
				continue
			}
			if t := idx[e.To]; rank[t] < rank[v]+1 {
				rank[t] = rank[v] + 1
			}
		}
	}
	nCols := 0
	for _, r := range rank {
		nCols = max(nCols, r+1)
	}
	cols := make([][]int, nCols)
	for i := range g.Nodes {
		cols[rank[i]] = append(cols[rank[i]], i)
	}
	for _, n := range g.Nodes {
		n.W, n.H = nodeSize(n)
	}
	// reach[c] is how far right of column c's left edge the labels on
	// the edges that leave its nodes end: the gap after the column leaves
	// room for them, so no label runs under the next column's boxes.
	reach := make([]float64, nCols)
	for _, e := range g.Edges {
		e.Short = shortEdgeLabel(e)
		f := idx[e.From]
		reach[rank[f]] = max(reach[rank[f]], g.Nodes[f].W+edgeLabelW(e.Short))
	}
	// Columns left to right.
	x := float64(margin)
	height := 0.0
	for c, col := range cols {
		colW := 0.0
		for _, v := range col {
			colW = max(colW, g.Nodes[v].W)
		}
		// Desired centre: the mean of the rows that lead here from earlier
		// columns (already placed); nodes without one keep their order at
		// the bottom.
		type want struct {
			v   int
			y   float64
			has bool
		}
		ws := make([]want, len(col))
		for i, v := range col {
			sum, k := 0.0, 0
			for _, e := range in[v] {
				f := idx[e.From]
				if rank[f] < c && !back[e] {
					sum += ruleY(g.Nodes[f], e.Rule)
					k++
				}
			}
			ws[i] = want{v: v}
			if k > 0 {
				ws[i].y, ws[i].has = sum/float64(k), true
			}
		}
		slices.SortStableFunc(ws, func(a, b want) int {
			switch {
			case a.has && b.has:
				if a.y < b.y {
					return -1
				}
				if a.y > b.y {
					return 1
				}
				return 0
			case a.has:
				return -1
			case b.has:
				return 1
			}
			return 0
		})
		y := float64(margin)
		for _, w := range ws {
			n := g.Nodes[w.v]
			top := y
			if w.has {
				top = max(y, w.y-headerH/2)
			}
			n.X, n.Y = x, math.Round(top)
			placeRows(n)
			y = n.Y + n.H + nodeGap
		}
		height = max(height, y)
		gap := max(minColGap, reach[c]+labelGap-colW)
		if c == nCols-1 {
			gap = max(0, reach[c]-colW) // the last column's labels (back edges) need room before the margin
		}
		x += colW + gap
	}
	g.Width = math.Round(x + margin)
	g.Height = math.Round(height - nodeGap + margin)
	if len(g.Nodes) == 0 {
		g.Width, g.Height = 2*margin, 2*margin
	}
	for _, e := range g.Edges {
		f, t := g.Nodes[idx[e.From]], g.Nodes[idx[e.To]]
		e.X1, e.Y1 = f.X+f.W, ruleY(f, e.Rule)
		e.X2, e.Y2 = t.X, t.Y+headerH/2
	}
}

// edgeLabelW is the width an edge label takes right of its rule's row end,
// from the row end to the end of the text.
func edgeLabelW(short string) float64 {
	return edgeLabelDX + float64(utf8.RuneCountInString(short))*edgeCharW
}

// placeRows sets the rows' centres once the node is placed.
func placeRows(n *GNode) {
	y := n.Y + headerH
	if n.Summary != "" {
		y += summaryH
	}
	for i, r := range n.Rules {
		r.Y = y + float64(i)*rowH + rowH/2
	}
}

func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
}
