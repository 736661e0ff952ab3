package web

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svclab/svclab/dataplane"
)

// ServicePortFromComment returns the kube-proxy ServicePortName
// ("namespace/name:port", or "namespace/name" for an unnamed port) that a
// rule comment names, or "" if it names none. It understands every comment
// kube-proxy writes: "C cluster IP", "C -> 10.1.0.3:80", "masquerade
// traffic for C external destinations", "other traffic to C will be
// dropped by KUBE-PROXY-FIREWALL", "C has no endpoints", plain "C", ….
func ServicePortFromComment(comment string) string {
	for tok := range strings.FieldsSeq(comment) {
		ns, rest, ok := strings.Cut(tok, "/")
		if !ok || ns == "" || rest == "" {
			continue
		}
		if _, err := netip.ParsePrefix(tok); err == nil {
			continue
		}
		name, _, _ := strings.Cut(rest, ":")
		if name == "" {
			continue
		}
		return tok
	}
	return ""
}

// serviceOf returns "namespace/name" of a ServicePortName.
func serviceOf(spn string) string {
	ns, rest, ok := strings.Cut(spn, "/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, ":")
	return ns + "/" + name
}

// shareInfo is a rule's part of the endpoint selection of its chain.
type shareInfo struct {
	// conditional is the rule's own probability (of what reaches it), 1 for
	// the last endpoint rule.
	conditional float64
	// effective is the share of the chain's new connections (from clients
	// without an affinity entry) the rule takes.
	effective float64
	// last is true for the final endpoint rule without a statistic match.
	last bool
	// sole is true when the chain has a single endpoint rule.
	sole bool
}

// chainShares computes, for the rules of a chain that pick endpoints (jumps
// to KUBE-SEP chains, or any rule with -m statistic), what share of new
// connections each takes. kube-proxy's 1/n, 1/(n-1), …, rest sequence gives
// every endpoint the same effective share. Session-affinity rules (-m
// recent --rcheck) take none: only returning clients match them.
func chainShares(c *dataplane.Chain) map[*dataplane.Rule]shareInfo {
	out := map[*dataplane.Rule]shareInfo{}
	remaining := 1.0
	var picks []*dataplane.Rule
	for _, r := range c.Rules {
		if r.Recent != nil && (r.Recent.RCheck || r.Recent.Update) {
			continue
		}
		if r.Statistic != nil && r.Statistic.Mode == "random" && !r.Statistic.Negate {
			p := r.Statistic.Probability
			out[r] = shareInfo{conditional: p, effective: remaining * p}
			remaining *= 1 - p
			picks = append(picks, r)
			continue
		}
		if strings.HasPrefix(r.Target, dataplane.PrefixSEP) && r.Source == (dataplane.AddrMatch{}) && r.Destination == (dataplane.AddrMatch{}) {
			out[r] = shareInfo{conditional: 1, effective: remaining, last: len(picks) > 0, sole: len(picks) == 0}
			remaining = 0
			picks = append(picks, r)
		}
	}
	return out
}

// oneIn renders a share as "1 in N" when it is (close to) 1/N, otherwise
// as a percentage.
func oneIn(share float64) string {
	switch {
	case share <= 0:
		return "none"
	case share >= 0.9999:
		return "all"
	}
	n := 1 / share
	if r := math.Round(n); math.Abs(n-r) < 0.01*r {
		return "1 in " + strconv.Itoa(int(r))
	}
	return strconv.FormatFloat(share*100, 'f', 1, 64) + "%"
}

// labelContext is what ruleLabel needs besides the rule.
type labelContext struct {
	clusterCIDR netip.Prefix
	masqMark    uint32
	share       *shareInfo
	pod         string // "ns/name" of a DNAT destination, "" if unknown
}

// addrWords renders an address match: a /32 prefix as the bare address.
func addrWords(m dataplane.AddrMatch) string {
	p := m.Prefix
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// matchWords renders a rule's matches in plain words, e.g.
// "to 10.96.0.100:6379/tcp, not from the pod network".
func matchWords(r *dataplane.Rule, lc labelContext) []string {
	var w []string
	proto := r.Protocol
	if proto == "all" {
		proto = ""
	}
	switch {
	case r.Destination.Prefix.IsValid():
		s := addrWords(r.Destination)
		if r.DPort != nil && !r.DPort.Negate {
			s += ":" + portWords(r.DPort)
		}
		if proto != "" && !r.ProtocolNegate {
			s += "/" + proto
		}
		if r.Destination.Negate {
			w = append(w, "not to "+s)
		} else {
			w = append(w, "to "+s)
		}
	case r.DPort != nil:
		s := "to port " + portWords(r.DPort)
		if proto != "" {
			s += "/" + proto
		}
		if r.DPort.Negate {
			s = "not " + s
		}
		w = append(w, s)
	}
	if r.Source.Prefix.IsValid() {
		switch {
		case lc.clusterCIDR.IsValid() && r.Source.Prefix == lc.clusterCIDR && r.Source.Negate:
			w = append(w, "not from the pod network")
		case lc.clusterCIDR.IsValid() && r.Source.Prefix == lc.clusterCIDR:
			w = append(w, "from the pod network")
		case r.Source.Negate:
			w = append(w, "not from "+addrWords(r.Source))
		case strings.HasPrefix(r.Chain, dataplane.PrefixSEP) && r.Source.Prefix.IsSingleIP():
			w = append(w, "from the endpoint itself ("+addrWords(r.Source)+", hairpin)")
		default:
			w = append(w, "from "+addrWords(r.Source))
		}
	}
	if r.InIface != "" {
		w = append(w, negWord(r.InNegate)+"in via "+r.InIface)
	}
	if r.OutIface != "" {
		w = append(w, negWord(r.OutNegate)+"out via "+r.OutIface)
	}
	if a := r.AddrType; a != nil {
		if a.DstType == "LOCAL" {
			w = append(w, negWord(a.DstNegate)+"to an address of this node")
		} else if a.DstType != "" {
			w = append(w, negWord(a.DstNegate)+"to a "+strings.ToLower(a.DstType)+" address")
		}
		if a.SrcType == "LOCAL" {
			w = append(w, negWord(a.SrcNegate)+"from this node")
		} else if a.SrcType != "" {
			w = append(w, negWord(a.SrcNegate)+"from a "+strings.ToLower(a.SrcType)+" address")
		}
	}
	if m := r.Mark; m != nil {
		masq := lc.masqMark
		if masq == 0 {
			masq = 0x4000
		}
		if m.Value == masq && m.Mask == masq {
			if m.Negate {
				w = append(w, "without the masquerade mark")
			} else {
				w = append(w, "with the masquerade mark")
			}
		} else {
			w = append(w, fmt.Sprintf("%smark %#x/%#x", negWord(m.Negate), m.Value, m.Mask))
		}
	}
	if ct := r.CTState; ct != nil {
		w = append(w, ctWords(ct))
	}
	if rc := r.Recent; rc != nil && (rc.RCheck || rc.Update) {
		w = append(w, fmt.Sprintf("session affinity (recent): a client seen in the last %d s", rc.Seconds))
	}
	if st := r.Statistic; st != nil {
		switch {
		case st.Mode == "random" && lc.share != nil:
			w = append(w, fmt.Sprintf("p=%.4f of what reaches this rule → %s overall", st.Probability, oneIn(lc.share.effective)))
		case st.Mode == "random":
			w = append(w, fmt.Sprintf("p=%.4f at random", st.Probability))
		case st.Mode == "nth":
			w = append(w, fmt.Sprintf("every %d. packet", st.Every))
		}
	} else if lc.share != nil {
		switch {
		case lc.share.sole:
			w = append(w, "all new connections (the only endpoint)")
		case lc.share.last:
			w = append(w, "the rest → "+oneIn(lc.share.effective)+" overall")
		}
	}
	if len(w) == 0 && proto != "" {
		w = append(w, negWord(r.ProtocolNegate)+proto)
	}
	return w
}

func negWord(neg bool) string {
	if neg {
		return "not "
	}
	return ""
}

func portWords(p *dataplane.PortMatch) string {
	if p.First == p.Last {
		return strconv.Itoa(int(p.First))
	}
	return strconv.Itoa(int(p.First)) + "-" + strconv.Itoa(int(p.Last))
}

func ctWords(ct *dataplane.CTStateMatch) string {
	states := slices.Clone(ct.States)
	if !ct.Negate && len(states) == 1 && states[0] == "NEW" {
		return "new connections"
	}
	if !ct.Negate && (slices.Equal(states, []string{"RELATED", "ESTABLISHED"}) || slices.Equal(states, []string{"ESTABLISHED", "RELATED"})) {
		return "replies and related packets of known connections"
	}
	return negWord(ct.Negate) + "in conntrack state " + strings.Join(states, ",")
}

// actionWords renders what a rule does, "" for a jump to an ordinary chain
// (the edge shows where it goes).
func actionWords(r *dataplane.Rule, lc labelContext) string {
	switch r.Target {
	case "":
		return "count only"
	case dataplane.ChainMarkMasq:
		return "masquerade mark"
	case "MARK":
		if m := r.SetMark; m != nil {
			masq := lc.masqMark
			if masq == 0 {
				masq = 0x4000
			}
			switch {
			case m.Value == masq && m.Mask == masq:
				return fmt.Sprintf("set the masquerade mark (%#x)", masq)
			case m.Value == masq && m.Mask == 0:
				return fmt.Sprintf("flip (clear) the masquerade mark (%#x)", masq)
			}
			return fmt.Sprintf("set mark %#x/%#x", m.Value, m.Mask)
		}
		return "set a mark"
	case "DNAT":
		s := "DNAT to " + r.ToDestination
		if lc.pod != "" {
			s += " (pod " + lc.pod + ")"
		}
		return s
	case "MASQUERADE":
		return "masquerade (SNAT to the node's address)"
	case "SNAT":
		return "SNAT " + strings.Join(r.TargetArgs, " ")
	case "REJECT":
		return "reject (the client gets connection refused)"
	case "DROP":
		return "drop"
	case "ACCEPT":
		return "accept"
	case "RETURN":
		return "return to the calling chain"
	}
	return ""
}

// ruleLabel is a rule's label in plain words: its matches, then what it
// does, e.g. "to 10.96.0.100:6379/tcp, not from the pod network →
// masquerade mark", or "everything" for a rule without matches.
func ruleLabel(r *dataplane.Rule, lc labelContext) string {
	m := strings.Join(matchWords(r, lc), ", ")
	a := actionWords(r, lc)
	if c := r.Comment; c != "" {
		switch {
		case strings.HasSuffix(c, " has no endpoints"):
			m = joinNonEmpty(", ", "the Service has no endpoints", m)
		case strings.HasSuffix(c, " has no local endpoints"):
			m = joinNonEmpty(", ", "the Service has no endpoint on this node", m)
		case strings.Contains(c, " traffic not accepted by "):
			m = joinNonEmpty(", ", "not from an allowed source range", m)
		case strings.HasPrefix(c, "other traffic to "):
			m = joinNonEmpty(", ", "not from an allowed source range (dropped later in filter KUBE-PROXY-FIREWALL)", m)
		case strings.HasSuffix(c, " health check node port"):
			m = joinNonEmpty(", ", "health check", m)
		}
	}
	if m == "" {
		m = "everything"
	}
	if a == "" {
		return m
	}
	return m + " → " + a
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// groupThousands formats n with commas: 10003 → "10,003".
func groupThousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
