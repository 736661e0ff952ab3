package web

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/svclab/svclab/dataplane"
)

// ruleContext is what explainRule needs besides the rule.
type ruleContext struct {
	table       dataplane.Table
	chainKind   string
	service     string // ServicePortName
	share       *shareInfo
	pod         *TopoPod
	dest        string // DNAT destination (directly or via KUBE-SEP)
	clusterCIDR netip.Prefix
}

// explainRule is one paragraph on a rule: what it matches and does, why
// kube-proxy writes it, and which Service and pod it belongs to.
func explainRule(r *dataplane.Rule, rc ruleContext) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rule %d of %s %s matches %s. ", r.Num, rc.table, r.Chain, matchesSentence(r, rc))
	if why := whyRule(r, rc); why != "" {
		b.WriteString(why)
		b.WriteString(" ")
	}
	if rc.service != "" {
		svc, port, _ := strings.Cut(rc.service, ":")
		if port != "" {
			fmt.Fprintf(&b, "It belongs to Service %s (port %s). ", svc, port)
		} else {
			fmt.Fprintf(&b, "It belongs to Service %s. ", svc)
		}
	}
	if rc.dest != "" {
		switch p := rc.pod; {
		case p != nil && p.Node != "":
			fmt.Fprintf(&b, "The endpoint %s is pod %s/%s on %s. ", rc.dest, p.Namespace, p.Name, p.Node)
		case p != nil:
			fmt.Fprintf(&b, "The endpoint %s is pod %s/%s. ", rc.dest, p.Namespace, p.Name)
		default:
			fmt.Fprintf(&b, "No pod in the lab's topology has the endpoint address %s. ", rc.dest)
		}
	}
	return strings.TrimSpace(b.String())
}

// matchesSentence is the label's match part, or "every packet"; the
// endpoint share is said in words.
func matchesSentence(r *dataplane.Rule, rc ruleContext) string {
	noStat := *r
	noStat.Statistic = nil
	w := matchWords(&noStat, labelContext{clusterCIDR: rc.clusterCIDR})
	var s string
	switch {
	case len(w) == 1 && w[0] == r.Protocol:
		s = r.Protocol + " packets"
	case len(w) > 0 && (strings.HasPrefix(w[0], "new ") || strings.HasPrefix(w[0], "replies ") || strings.HasPrefix(w[0], "session ")):
		s = strings.Join(w, ", ")
	case len(w) > 0:
		s = "packets " + strings.Join(w, ", ")
	}
	switch {
	case r.Statistic != nil && r.Statistic.Mode == "random":
		s = joinNonEmpty(" and, of those, ", s, fmt.Sprintf("a random p=%.4f of the new connections that reach it", r.Statistic.Probability))
	case rc.share != nil && rc.share.last:
		s = joinNonEmpty(" and, of those, ", s, "the new connections that the earlier rules left")
	}
	if s == "" {
		return "every packet that reaches it"
	}
	return s
}

// whyRule explains a rule's purpose from its chain, target and comment.
func whyRule(r *dataplane.Rule, rc ruleContext) string {
	t, c := r.Target, r.Comment
	chain := r.Chain
	switch {
	case rc.chainKind == KindBuiltin && strings.HasPrefix(t, "KUBE-"):
		return fmt.Sprintf("kube-proxy keeps this jump at the top of the built-in chain %s so that its own chain %s sees the packets first.", chain, t)
	case rc.chainKind == KindBuiltin:
		return "It is not a kube-proxy rule."
	}
	switch {
	case chain == dataplane.ChainServices && rc.table == dataplane.TableNAT:
		switch {
		case strings.HasPrefix(t, dataplane.PrefixSVC) || strings.HasPrefix(t, dataplane.PrefixSVL):
			return "kube-proxy writes one such rule per Service port and cluster IP in KUBE-SERVICES, which the kernel scans from the top: a packet to the cluster IP leaves here for the Service's endpoint selection. With thousands of Services this scan is long (the seed's point that iptables mode is O(n))."
		case strings.HasPrefix(t, dataplane.PrefixEXT) && strings.HasSuffix(c, " external IP"):
			return "Traffic to one of the Service's externalIPs is external traffic and goes to the Service's KUBE-EXT chain."
		case strings.HasPrefix(t, dataplane.PrefixEXT):
			return "Traffic to the Service's load-balancer IP (the cloud LB keeps the VIP as destination) is external traffic and goes to the Service's KUBE-EXT chain — the seed's capture sent it to KUBE-FW, then KUBE-XLB, in 2019."
		case strings.HasPrefix(t, dataplane.PrefixFW):
			return "loadBalancerSourceRanges is set, so load-balancer traffic first passes the Service's KUBE-FW chain, which lets only the allowed source ranges through."
		case t == dataplane.ChainNodePorts:
			return "This must be the last rule: a packet to one of this node's own addresses that matched no Service IP may be for a NodePort."
		}
	case chain == dataplane.ChainNodePorts && rc.table == dataplane.TableNAT:
		return "This is the Service's NodePort: a packet to this port on any address of the node enters the Service's external chain."
	case chain == dataplane.ChainMarkMasq:
		return "Jumping here only sets the masquerade bit in the packet mark; the packet itself is unchanged until KUBE-POSTROUTING masquerades it."
	case chain == dataplane.ChainPostrouting:
		switch t {
		case "RETURN":
			return "Packets without kube-proxy's masquerade mark are left alone."
		case "MARK":
			return "The mark is cleared again so that it does not follow the packet (e.g. into a tunnel) after this node."
		case "MASQUERADE":
			return "Marked packets are source-NATed to the address of the interface they leave by, so the reply comes back through this node, where conntrack undoes both NATs."
		}
	case strings.HasPrefix(chain, dataplane.PrefixSVC) || strings.HasPrefix(chain, dataplane.PrefixSVL):
		switch {
		case t == dataplane.ChainMarkMasq:
			return "Traffic to the cluster IP that does not come from a pod (e.g. from the node itself or the host) is marked for masquerading, so the reply returns through this node and conntrack can undo the DNAT."
		case r.Recent != nil && (r.Recent.RCheck || r.Recent.Update):
			return fmt.Sprintf("sessionAffinity ClientIP: a client seen within %d s goes back to the same endpoint (the endpoint chain's DNAT rule remembers clients with -m recent --set). These rules come before the random choice.", r.Recent.Seconds)
		case rc.share != nil && rc.share.sole:
			return "The Service has a single endpoint here, so every new connection goes to it."
		case rc.share != nil && rc.share.last:
			return fmt.Sprintf("The last endpoint takes whatever the earlier rules left, so it needs no probability — the seed's question why the last KUBE-SEP has none. That rest is %s of new connections.", oneIn(rc.share.effective))
		case r.Statistic != nil && rc.share != nil:
			return fmt.Sprintf("Endpoint selection: the rule takes p=%.4f of the connections that reach it; the earlier rules already took their share, so this is %s of all new connections. kube-proxy writes 1/n, 1/(n−1), …, 1/2 for n endpoints, which gives each the same share — why the probability grows down the chain.", r.Statistic.Probability, oneIn(rc.share.effective))
		}
	case strings.HasPrefix(chain, dataplane.PrefixSEP):
		switch {
		case t == dataplane.ChainMarkMasq:
			return "Hairpin: when the endpoint pod reaches itself through the Service, the packet is masqueraded, otherwise the pod would answer itself directly and the client would not recognise the reply."
		case t == "DNAT" && r.Recent != nil && r.Recent.Set:
			return "The destination is rewritten to the endpoint (DNAT); conntrack remembers it for the replies and later packets. -m recent --set records the client for session affinity."
		case t == "DNAT":
			return "The destination is rewritten to the endpoint (DNAT); conntrack remembers the translation, so replies are rewritten back and the connection's later packets skip the nat table."
		}
	case strings.HasPrefix(chain, dataplane.PrefixEXT):
		switch {
		case t == dataplane.ChainMarkMasq && strings.Contains(c, "LOCAL traffic"):
			return "externalTrafficPolicy Local: traffic from this node itself is masqueraded and may use any endpoint."
		case t == dataplane.ChainMarkMasq:
			return "externalTrafficPolicy Cluster: external traffic may be forwarded to an endpoint on another node, so it is masqueraded — the pod sees the node's address, not the client's."
		case strings.HasPrefix(c, "pod traffic for"):
			return "externalTrafficPolicy Local: pods reaching the external address may use any endpoint (in 2019 the seed's KUBE-XLB did this: \"Redirect pods trying to reach external loadbalancer VIP to clusterIP\")."
		case strings.HasPrefix(c, "route LOCAL traffic"):
			return "externalTrafficPolicy Local: traffic from this node itself may use any endpoint."
		case strings.HasPrefix(t, dataplane.PrefixSVL):
			return "externalTrafficPolicy Local: external clients go only to endpoints on this node, and their address is preserved."
		case strings.HasPrefix(t, dataplane.PrefixSVC):
			return "Then the packet goes to the Service's endpoint selection."
		}
	case strings.HasPrefix(chain, dataplane.PrefixFW):
		switch {
		case strings.HasPrefix(t, dataplane.PrefixEXT):
			return "The source is in loadBalancerSourceRanges, so the packet may continue to the Service's external chain."
		case t == "":
			return "This rule does nothing (it has no target); it documents that packets falling through KUBE-FW are dropped by filter KUBE-PROXY-FIREWALL. In the seed's 2019 capture this was -j KUBE-MARK-DROP."
		}
	}
	switch {
	case strings.HasSuffix(c, " has no endpoints"):
		return "The Service has no ready endpoints, so kube-proxy rejects new connections at once (the client sees connection refused, not a timeout)."
	case strings.HasSuffix(c, " has no local endpoints"):
		return "The traffic policy is Local and no endpoint runs on this node, so the packet is dropped here (once KUBE-MARK-DROP's job)."
	case strings.Contains(c, " traffic not accepted by "):
		return "The source is not in the Service's loadBalancerSourceRanges: the load-balancer traffic KUBE-FW let fall through is dropped here (once KUBE-MARK-DROP's job)."
	case strings.HasSuffix(c, " health check node port"):
		return "It lets the cloud load balancer's health checks reach kube-proxy's health check server."
	case chain == dataplane.ChainForward:
		return "kube-proxy accepts forwarded Service traffic (marked packets and replies) even when the FORWARD policy is DROP, and drops packets conntrack finds INVALID."
	case chain == dataplane.ChainFirewall:
		return "Packets to 127.0.0.0/8 that do not come from loopback are dropped (protection for route_localnet)."
	}
	return ""
}

// explainNode is one paragraph on a chain, pod or verdict.
func explainNode(n *GNode, table dataplane.Table) string {
	switch n.Kind {
	case KindPod:
		if n.Pod != "" {
			s := fmt.Sprintf("%s is the address of pod %s", n.Name, n.Pod)
			if n.PodNode != "" {
				s += " on " + n.PodNode
			}
			return s + ". After the DNAT the packet is routed to it like any packet to a pod IP; the pod's answer is un-NATed by conntrack on the way back."
		}
		return fmt.Sprintf("%s is a DNAT destination; no pod in the lab's topology has this address.", n.Name)
	case KindVerdict:
		switch n.Name {
		case "REJECT":
			return "REJECT: the packet is dropped and the client is told at once (ICMP port unreachable, i.e. connection refused)."
		case "DROP":
			return "DROP: the packet is discarded silently; the client times out."
		case "MASQUERADE":
			return "MASQUERADE: source NAT to the address of the outgoing interface."
		}
		return n.Name
	}
	name := n.Name
	var s string
	switch {
	case name == "PREROUTING" && table == dataplane.TableNAT:
		s = "Built-in chain for packets arriving at the node (from its pods, other nodes or outside the cluster), before routing. kube-proxy's jump to KUBE-SERVICES sits at the top. (The seed's figure calls this \"internal traffic\" and OUTPUT \"external traffic\"; more precisely OUTPUT is what the node's own processes send.)"
	case name == "OUTPUT" && table == dataplane.TableNAT:
		s = "Built-in chain for packets the node's own processes send (host network), e.g. curl on the node to a cluster IP. kube-proxy's jump to KUBE-SERVICES sits at the top."
	case name == "POSTROUTING" && table == dataplane.TableNAT:
		s = "Built-in chain after routing, for packets leaving the node (also locally delivered ones): kube-proxy's KUBE-POSTROUTING masquerades the marked packets here."
	case name == "INPUT" && table == dataplane.TableNAT:
		s = "Built-in chain for packets delivered to the node itself (source NAT on input); kube-proxy does not use it."
	case n.Kind == KindBuiltin:
		s = fmt.Sprintf("Built-in chain %s of the %s table; kube-proxy jumps from here to its own chains for new connections.", name, table)
	case name == dataplane.ChainServices && table == dataplane.TableNAT:
		s = "kube-proxy's service portal: one rule per Service port and cluster IP (plus external and load-balancer IPs), tested from the top; the last rule sends packets for the node's own addresses to KUBE-NODEPORTS. It is one long list — with N Services a packet may be compared with N rules, the seed's conclusion that iptables mode is O(n). nftables mode replaces it with a map lookup."
	case name == dataplane.ChainServices:
		s = "Filter-table KUBE-SERVICES: REJECTs new connections to Services without endpoints (and DROPs those whose traffic policy is Local with no local endpoint), so clients fail at once instead of timing out."
	case name == dataplane.ChainNodePorts && table == dataplane.TableNAT:
		s = "One rule per NodePort: packets to that port on any of the node's addresses go to the Service's KUBE-EXT chain."
	case name == dataplane.ChainNodePorts:
		s = "Filter-table KUBE-NODEPORTS: accepts the health check node ports of Services with externalTrafficPolicy Local."
	case name == dataplane.ChainExternalServices:
		s = "Rejects or drops new external connections (NodePort, external and load-balancer IPs) to Services without (local) endpoints. Drops happen here and in KUBE-PROXY-FIREWALL today; in the seed's 2019 capture they were marked by KUBE-MARK-DROP instead."
	case name == dataplane.ChainProxyFirewall:
		s = "Drops load-balancer traffic from sources outside loadBalancerSourceRanges — the drop KUBE-FW-* announces. In the seed's 2019 capture KUBE-FW jumped to KUBE-MARK-DROP (mark 0x8000) for KUBE-FIREWALL to drop; that chain no longer exists."
	case name == dataplane.ChainMarkMasq:
		s = "Sets the masquerade bit (0x4000) in the packet mark and returns; the packet is unchanged. KUBE-POSTROUTING later masquerades marked packets. (The seed: \"marks the packets passing through\".)"
	case name == dataplane.ChainPostrouting:
		s = "After routing: packets without the masquerade mark return; marked ones get the mark cleared and are MASQUERADEd to the outgoing interface's address."
	case name == dataplane.ChainForward:
		s = "Accepts forwarded Service traffic (masquerade-marked packets and replies of known connections) and drops packets conntrack finds INVALID."
	case name == dataplane.ChainFirewall:
		s = "Drops packets to 127.0.0.0/8 that do not come from loopback (kubelet's and kube-proxy's guard for route_localnet)."
	case name == dataplane.CanaryChain:
		s = "Empty on purpose: if it disappears, someone flushed the tables and kube-proxy resyncs everything."
	case strings.HasPrefix(name, dataplane.PrefixSVC):
		s = "One chain per Service port (all endpoints): first it marks traffic to the cluster IP from outside the pod network for masquerading, then it picks an endpoint. For n endpoints the rules have probabilities 1/n, 1/(n−1), …, 1/2 and the last none, so each endpoint gets 1 in n of new connections — the seed's \"why does the probability grow\". With sessionAffinity ClientIP, -m recent rules first send returning clients to their endpoint."
	case strings.HasPrefix(name, dataplane.PrefixSVL):
		s = "Like KUBE-SVC, but only the endpoints on this node (internalTrafficPolicy or externalTrafficPolicy Local): the client address is kept and no other node is involved."
	case strings.HasPrefix(name, dataplane.PrefixEXT):
		s = "External destinations of one Service port: NodePort, external IPs and load-balancer IPs enter here. With externalTrafficPolicy Cluster it marks the packet for masquerading and goes on to KUBE-SVC; with Local, pod and node traffic may use any endpoint and external clients only node-local ones (KUBE-SVL), keeping the client address. Seed 2019 vs today: this is the job of the seed's KUBE-XLB-* chain; its KUBE-MARK-DROP for \"has no local endpoints\" became a DROP in filter KUBE-EXTERNAL-SERVICES."
	case strings.HasPrefix(name, dataplane.PrefixFW):
		s = "Load-balancer firewall of one Service port, written only when loadBalancerSourceRanges is set: allowed sources continue to KUBE-EXT, the rest falls through and is dropped in filter KUBE-PROXY-FIREWALL. Seed 2019 vs today: then every load-balancer IP went through KUBE-FW → KUBE-XLB, and the rest to KUBE-MARK-DROP (mark 0x8000)."
	case strings.HasPrefix(name, dataplane.PrefixSEP):
		s = "One chain per endpoint: the hairpin rule marks a pod reaching itself through the Service for masquerading, and the DNAT rule rewrites the destination to the pod's IP:port."
	case strings.HasPrefix(name, "KUBE-"):
		s = "A KUBE- chain that current kube-proxy does not write."
	default:
		s = "Not a kube-proxy chain."
	}
	if n.Service != "" {
		s += " It belongs to Service port " + n.Service + "."
	}
	if n.Pod != "" {
		s += " Its endpoint is pod " + n.Pod
		if n.PodNode != "" {
			s += " on " + n.PodNode
		}
		s += "."
	}
	return s
}

// Explanation is the answer of /lab/v1/explain: one chain, rule, pod or
// verdict of a node's rules.
type Explanation struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Text    string `json:"text"`
	Explain string `json:"explain"`
	Service string `json:"service,omitempty"`
	Pod     string `json:"pod,omitempty"`
}

// ExplainID explains one element of a graph by its ID ("nat/CHAIN/NUM" for
// a rule, "chain:NAME", "pod:IP:PORT" or "verdict:NAME") without building
// the graph, for graphs too large to carry every explanation. The Service
// of a chain without comments is taken from a rule that jumps to it. It
// returns false for an unknown ID.
func ExplainID(rs *dataplane.Ruleset, table dataplane.Table, id string, clusterCIDR netip.Prefix, topo *Topology) (Explanation, bool) {
	ix := newTopoIndex(topo)
	return explainID(rs, table, id, clusterCIDR, ix)
}

func explainID(rs *dataplane.Ruleset, table dataplane.Table, id string, clusterCIDR netip.Prefix, ix topoIndex) (Explanation, bool) {
	t := rs.Table(table)
	if t == nil {
		return Explanation{}, false
	}
	switch {
	case strings.HasPrefix(id, "pod:"):
		n := &GNode{ID: id, Kind: KindPod, Name: strings.TrimPrefix(id, "pod:")}
		if p := ix.podFor(n.Name); p != nil {
			n.Pod, n.PodNode = p.Namespace+"/"+p.Name, p.Node
		}
		return Explanation{ID: id, Title: n.Name, Text: n.Name, Explain: explainNode(n, table), Pod: n.Pod}, true
	case strings.HasPrefix(id, "verdict:"):
		n := &GNode{ID: id, Kind: KindVerdict, Name: strings.TrimPrefix(id, "verdict:")}
		return Explanation{ID: id, Title: n.Name, Text: "-j " + n.Name, Explain: explainNode(n, table)}, true
	case strings.HasPrefix(id, "chain:"):
		name := strings.TrimPrefix(id, "chain:")
		c := t.Chain(name)
		if c == nil {
			return Explanation{}, false
		}
		n := &GNode{ID: id, Kind: chainKind(table, name), Name: name, Policy: c.Policy}
		if n.Kind == KindService || n.Kind == KindEndpoint {
			n.Service = chainOwner(t, c)
		}
		if d := sepDestination(c); d != "" && n.Kind == KindEndpoint {
			if p := ix.podFor(d); p != nil {
				n.Pod, n.PodNode = p.Namespace+"/"+p.Name, p.Node
			}
		}
		text := ":" + name + " " + c.Policy
		return Explanation{ID: id, Title: name, Text: text, Explain: explainNode(n, table), Service: n.Service, Pod: n.Pod}, true
	}
	parts := strings.SplitN(id, "/", 3)
	if len(parts) != 3 || dataplane.Table(parts[0]) != table {
		return Explanation{}, false
	}
	c := t.Chain(parts[1])
	num := 0
	for _, ch := range parts[2] {
		if ch < '0' || ch > '9' {
			return Explanation{}, false
		}
		num = num*10 + int(ch-'0')
	}
	if c == nil || num < 1 || num > len(c.Rules) {
		return Explanation{}, false
	}
	r := c.Rules[num-1]
	kind := chainKind(table, c.Name)
	spn := ServicePortFromComment(r.Comment)
	if spn == "" && (kind == KindService || kind == KindEndpoint) {
		spn = chainOwner(t, c)
	}
	rc := ruleContext{table: table, chainKind: kind, service: spn, clusterCIDR: clusterCIDR}
	if s, ok := chainShares(c)[r]; ok {
		rc.share = &s
	}
	switch {
	case r.Target == "DNAT":
		rc.dest = r.ToDestination
	case strings.HasPrefix(r.Target, dataplane.PrefixSEP):
		rc.dest = sepDestination(t.Chain(r.Target))
	}
	lc := labelContext{clusterCIDR: clusterCIDR, share: rc.share}
	e := Explanation{ID: id, Text: r.Text, Service: spn}
	if rc.dest != "" {
		rc.pod = ix.podFor(rc.dest)
		if rc.pod != nil {
			e.Pod = rc.pod.Namespace + "/" + rc.pod.Name
			lc.pod = e.Pod
		}
	}
	e.Title = ruleLabel(r, lc)
	e.Explain = explainRule(r, rc)
	return e, true
}

// chainOwner returns the ServicePortName of a per-service or per-endpoint
// chain: from its own comments, else from a rule that jumps to it.
func chainOwner(t *dataplane.TableRules, c *dataplane.Chain) string {
	return chainOwnerDepth(t, c, 0)
}

func chainOwnerDepth(t *dataplane.TableRules, c *dataplane.Chain, depth int) string {
	if depth > 4 {
		return ""
	}
	for _, r := range c.Rules {
		if s := ServicePortFromComment(r.Comment); s != "" {
			return s
		}
	}
	for _, pc := range t.Chains {
		for _, r := range pc.Rules {
			if r.Target == c.Name {
				if s := ServicePortFromComment(r.Comment); s != "" {
					return s
				}
				if pc != c && dataplane.IsServiceChainName(pc.Name) {
					return chainOwnerDepth(t, pc, depth+1)
				}
			}
		}
	}
	return ""
}
