package dataplane

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LargeClusterEndpointsThreshold is kube-proxy's largeClusterEndpointsThreshold:
// when the Services have more endpoints than this in total, Render drops the
// comments on the KUBE-SVC/KUBE-SVL → KUBE-SEP rules and in the KUBE-SEP
// chains to keep the payload small.
const LargeClusterEndpointsThreshold = 1000

// DefaultMasqueradeBit is kube-proxy's default --iptables-masquerade-bit.
const DefaultMasqueradeBit = 14

// MasqueradeMark returns the fwmark value kube-proxy uses for packets that
// need SNAT: 1<<bit, with bit 0 meaning DefaultMasqueradeBit (0x4000).
func (c Config) MasqueradeMark() uint32 {
	bit := c.MasqueradeBit
	if bit <= 0 || bit > 31 {
		bit = DefaultMasqueradeBit
	}
	return 1 << uint(bit)
}

// masqueradeMarkString formats the mark exactly as kube-proxy does
// (fmt.Sprintf("%#08x", value)), which prints 0x4000 as "0x00004000". The
// kernel stores the number, so iptables-save shows it as 0x4000.
func (c Config) masqueradeMarkString() string {
	return fmt.Sprintf("%#08x", c.MasqueradeMark())
}

// Probability returns the --probability argument kube-proxy writes for the
// rule that picks one of n remaining endpoints: 1/n printed with "%0.10f"
// (n=3 → "0.3333333333"). n must be ≥ 1.
func Probability(n int) string {
	if n > 0 && n < len(precomputedProbabilities) {
		return precomputedProbabilities[n]
	}
	return fmt.Sprintf("%0.10f", 1.0/float64(n))
}

// precomputedProbabilities caches Probability(1…1000), as kube-proxy does.
var precomputedProbabilities = func() []string {
	p := make([]string, 1001)
	for n := 1; n < len(p); n++ {
		p[n] = fmt.Sprintf("%0.10f", 1.0/float64(n))
	}
	return p
}()

// svcPortInfo is one Service port as kube-proxy's servicePortInfo sees it.
type svcPortInfo struct {
	nn                  types.NamespacedName
	name                string // ServicePortName string: ns/name[:port]
	protocol            string // lower case: tcp, udp, sctp
	protocolUpper       corev1.Protocol
	portName            string
	clusterIP           string
	port                string
	nodePort            int32
	externalIPs         []string
	lbVIPs              []string
	lbSourceRanges      []netip.Prefix
	affinityClientIP    bool
	stickySeconds       string
	healthCheckNodePort int32
	externalPolicyLocal bool
	internalPolicyLocal bool

	clusterChain, localChain, extChain, fwChain string
}

func (s *svcPortInfo) externallyAccessible() bool {
	return s.nodePort != 0 || len(s.lbVIPs) != 0 || len(s.externalIPs) != 0
}

func (s *svcPortInfo) usesClusterEndpoints() bool {
	return !s.internalPolicyLocal || s.externallyAccessible()
}

func (s *svcPortInfo) usesLocalEndpoints() bool {
	return s.internalPolicyLocal || (s.externalPolicyLocal && s.externallyAccessible())
}

// endpointInfo is one endpoint of one service port (kube-proxy's
// BaseEndpointInfo plus the SEP chain name).
type endpointInfo struct {
	ip          string
	str         string // "IP:port"
	local       bool
	ready       bool
	serving     bool
	terminating bool
	zoneHints   []string
	chain       string
}

// endpointKey identifies the endpoints of one service port, as kube-proxy's
// ServicePortName (which includes the protocol).
type endpointKey struct {
	nn       types.NamespacedName
	portName string
	protocol corev1.Protocol
}

// lineBuffer mirrors kube-proxy's LineBuffer: it joins words with spaces and
// counts lines. A lineBuffer with a nil buf only counts (the "discard" buffer
// used for unchanged services in a partial sync).
type lineBuffer struct {
	buf   *bytes.Buffer
	lines int
}

func (lb *lineBuffer) write(words ...string) {
	lb.lines++
	if lb.buf == nil {
		return
	}
	for i, w := range words {
		if i > 0 {
			lb.buf.WriteByte(' ')
		}
		lb.buf.WriteString(w)
	}
	lb.buf.WriteByte('\n')
}

func (lb *lineBuffer) chainLine(chain string) {
	lb.write(":" + chain + " - [0:0]")
}

// Render computes the iptables-restore payload kube-proxy (iptables mode,
// v1.30+, IPv4) writes in one syncProxyRules call for the given Services and
// EndpointSlices, as seen from in.Node. It does no I/O.
//
// Faithfulness notes:
//   - Services are processed in order of their ServicePortName string (then
//     protocol); kube-proxy iterates a Go map, so its order varies between
//     syncs, but every rule and every per-chain rule order is identical.
//   - Headless Services (clusterIP None or empty), ExternalName Services and
//     Services without an IPv4 cluster IP produce no rules; EndpointSlices
//     that are not IPv4 or lack the kubernetes.io/service-name label are
//     ignored.
//   - Optional kube-proxy features that depend on the host are rendered as on
//     a host without them: no nfacct counters, no --random-fully (unless
//     Config.RandomFully), nodePortAddresses unset, localhost NodePorts
//     enabled (hence the KUBE-FIREWALL chain), conntrack be_liberal off.
//
// Partial sync and cleanup follow kube-proxy: with Input.Changed set, only
// the per-service chains (KUBE-SVC/SVL/EXT/FW/SEP) of the named Services are
// declared and rewritten, the top-level chains always are; Result.RuleCounts
// and Result.Chains still describe the full desired state. Chains listed in
// Input.Existing[nat] that are per-service chains no longer wanted are
// declared and deleted with -X (other chains, and other tables, are never
// deleted). kube-proxy skips that cleanup in large clusters between sync
// periods; here the caller decides by passing Existing or not.
//
// Render never returns nil.
func Render(in Input) *Result {
	res, _ := (&renderer{}).render(in, nil)
	return res
}

// portFragment is everything one service port contributes to a sync (the
// body of kube-proxy's per-servicePort loop): its lines in the top-level
// chains and its own per-service nat chains. A fragment is immutable once
// built, so Results share them and a renderer reuses them between syncs.
type portFragment struct {
	nn             types.NamespacedName
	name, protocol string // sort key: ServicePortName, then protocol
	// natTop and filterTop are the fragment's lines in the top-level chains
	// (nat KUBE-SERVICES/KUBE-NODEPORTS; filter KUBE-SERVICES,
	// KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL, KUBE-NODEPORTS), each
	// ending in "\n", in kube-proxy's write order.
	natTop, filterTop string
	// chainDecls declares the per-service chains (":CHAIN - [0:0]\n" lines)
	// and chainRules holds their rules, ruleCount lines.
	chainDecls, chainRules string
	ruleCount              int
	// natTopCount and filterTopCount are the lines in natTop and filterTop.
	natTopCount, filterTopCount int
	// chains are the per-service chains, in declaration order.
	chains []string
}

// lines splits a block of "\n"-terminated lines.
func lines(block string) []string {
	if block == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(block, "\n"), "\n")
}

// renderOutput is what the Proxier needs from a render besides the Result:
// the fragments in payload order and how the payload was put together, to
// build incremental and batched restores (see apply.go).
type renderOutput struct {
	frags []*portFragment
	// base is the renderer's previous output and added/removed the
	// fragments that are new or gone since then (nil base: unknown).
	base           *renderOutput
	added, removed []*portFragment
	// written tells which fragments' per-service chains the payload declares
	// and rewrites (those of the Services in Input.Changed); nil means all (a
	// full sync).
	written map[*portFragment]bool
	// largeCluster is whether the comments of SVC→SEP and SEP rules were
	// dropped (see LargeClusterEndpointsThreshold).
	largeCluster bool
	// natFixed and filterFixed are the lines of the chains whose content
	// depends only on the Config (KUBE-POSTROUTING, KUBE-MARK-MASQ;
	// KUBE-FIREWALL, KUBE-FORWARD), natTail the nodeports jump that must stay
	// last in nat KUBE-SERVICES.
	natFixed, filterFixed []string
	natTail               string
	// stale are the per-service chains the payload deletes, sorted.
	stale []string
}

// writes reports whether the payload declares and rewrites f's chains.
func (o *renderOutput) writes(f *portFragment) bool {
	return o.written == nil || o.written[f]
}

// renderer renders like Render and caches, between calls, each Service's
// ports, endpoints and fragments, reusing them while the Service and
// EndpointSlice objects (compared by pointer: they must not be modified once
// passed in, as with informer caches), the node, the Config and the
// large-cluster mode are unchanged. Its output is identical to Render's; it
// only saves work, so that a sync that changes one Service among 10,000 costs
// milliseconds. The zero value is ready to use; a renderer is not safe for
// concurrent use.
type renderer struct {
	node    Node
	cfg     Config
	entries map[types.NamespacedName]*svcEntry
	gen     uint64 // render calls; svcEntry.seen marks the current ones
	last    *renderOutput
	// natChains and svcChains are the last output's Result.Chains[nat] and
	// Result.ServiceChains, maintained as fragments come and go; Results get
	// copies.
	natChains map[string]bool
	svcChains map[types.NamespacedName][]string
}

// svcEntry is the cached state of one Service.
type svcEntry struct {
	seen   uint64 // renderer.gen of the last render that used it
	svc    *corev1.Service
	slices []*discoveryv1.EndpointSlice // sorted by namespace/name
	ports  []*svcPortInfo
	eps    [][]*endpointInfo // per port
	// frags were built with largeCluster == large; nil until built.
	frags []*portFragment
	large bool
}

// sameNode reports whether a and b render the same.
func sameNode(a, b Node) bool {
	return a.Name == b.Name && a.Zone == b.Zone && slices.Equal(a.IPs, b.IPs)
}

func compareSlices(a, b *discoveryv1.EndpointSlice) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func compareFragments(a, b *portFragment) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return strings.Compare(a.protocol, b.protocol)
}

// render is Render with the renderer's cache. base, when not nil, must be
// the output whose Result's Chains in.Existing is (the Proxier passes its
// last applied sync); if it is also the renderer's previous output, stale
// chains are found from the fragments that went away instead of by scanning
// in.Existing.
func (r *renderer) render(in Input, base *renderOutput) (*Result, *renderOutput) {
	if r.entries == nil || !sameNode(r.node, in.Node) || r.cfg != in.Config {
		r.entries = map[types.NamespacedName]*svcEntry{}
		r.last, r.natChains, r.svcChains = nil, nil, nil
		r.node, r.cfg = in.Node, in.Config
		r.node.IPs = slices.Clone(in.Node.IPs)
	}
	cfg := in.Config
	mark := cfg.masqueradeMarkString()
	markMatch := mark + "/" + mark

	// Group the EndpointSlices by Service (the ones buildEndpointsMap would
	// use at all).
	bySvc := make(map[types.NamespacedName][]*discoveryv1.EndpointSlice, len(in.Services))
	for _, es := range in.EndpointSlices {
		if es == nil || es.AddressType != discoveryv1.AddressTypeIPv4 || es.Namespace == "" {
			continue
		}
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		nn := types.NamespacedName{Namespace: es.Namespace, Name: name}
		bySvc[nn] = append(bySvc[nn], es)
	}

	// Per Service: ports and endpoints (cached while the objects are the same).
	r.gen++
	order := make([]*svcEntry, 0, len(in.Services))
	var dropped []*svcEntry // replaced or deleted entries that had fragments
	totalEndpoints := 0
	for _, svc := range in.Services {
		if svc == nil {
			continue
		}
		nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		e := r.entries[nn]
		if e != nil && e.seen == r.gen {
			continue // a duplicate: the first one wins, as in buildServicePorts
		}
		sls := bySvc[nn]
		if len(sls) > 1 {
			slices.SortStableFunc(sls, compareSlices)
		}
		if e == nil || e.svc != svc || !slices.Equal(e.slices, sls) {
			if e != nil && e.frags != nil {
				dropped = append(dropped, e)
			}
			e = &svcEntry{svc: svc, slices: sls, ports: buildServicePorts([]*corev1.Service{svc})}
			var epMap map[endpointKey][]*endpointInfo
			if len(e.ports) > 0 && len(sls) > 0 {
				epMap = buildEndpointsMap(sls, in.Node.Name)
			}
			e.eps = make([][]*endpointInfo, len(e.ports))
			for i, sp := range e.ports {
				e.eps[i] = epMap[endpointKey{sp.nn, sp.portName, sp.protocolUpper}]
			}
			r.entries[nn] = e
		}
		e.seen = r.gen
		order = append(order, e)
		for _, eps := range e.eps {
			totalEndpoints += len(eps)
		}
	}
	if len(r.entries) > len(order) {
		for nn, e := range r.entries {
			if e.seen != r.gen {
				if e.frags != nil {
					dropped = append(dropped, e)
				}
				delete(r.entries, nn)
			}
		}
	}
	largeCluster := totalEndpoints > LargeClusterEndpointsThreshold

	var localDetect, notLocalDetect []string
	if cfg.ClusterCIDR.IsValid() {
		cidr := cfg.ClusterCIDR.Masked().String()
		localDetect = []string{"-s", cidr}
		notLocalDetect = []string{"!", "-s", cidr}
	}
	pr := portRenderer{node: in.Node, cfg: cfg, largeCluster: largeCluster, localDetect: localDetect, notLocalDetect: notLocalDetect}
	var added, removed []*portFragment
	for _, e := range dropped {
		removed = append(removed, e.frags...)
	}
	for _, e := range order {
		if e.frags == nil || e.large != largeCluster {
			removed = append(removed, e.frags...)
			e.frags = make([]*portFragment, len(e.ports))
			for i, sp := range e.ports {
				e.frags[i] = pr.render(sp, e.eps[i])
			}
			e.large = largeCluster
			added = append(added, e.frags...)
		}
	}

	out := &renderOutput{largeCluster: largeCluster}
	if r.last != nil {
		// Only the latest output links to its predecessor, so outputs do
		// not pile up in memory.
		r.last.base, r.last.added, r.last.removed = nil, nil, nil
		out.base, out.added, out.removed = r.last, added, removed
		out.frags = mergeFragments(r.last.frags, added, removed)
	} else {
		for _, e := range order {
			out.frags = append(out.frags, e.frags...)
		}
		slices.SortFunc(out.frags, compareFragments)
	}
	if in.Changed != nil {
		out.written = map[*portFragment]bool{}
		for nn := range in.Changed {
			if e := r.entries[nn]; e != nil {
				for _, f := range e.frags {
					out.written[f] = true
				}
			}
		}
	}

	// The chains in use, kept up to date from the fragments that changed.
	if r.last == nil || r.natChains == nil {
		r.natChains = make(map[string]bool, 3*len(out.frags)+len(natTopChains))
		r.svcChains = make(map[types.NamespacedName][]string, len(order))
		for _, c := range natTopChains {
			r.natChains[c] = true
		}
		removed, added = nil, out.frags
	}
	touched := map[types.NamespacedName]bool{}
	for _, f := range removed {
		for _, c := range f.chains {
			delete(r.natChains, c)
		}
		touched[f.nn] = true
	}
	for _, f := range added {
		for _, c := range f.chains {
			r.natChains[c] = true
		}
		touched[f.nn] = true
	}
	for nn := range touched {
		var owned []string
		if e := r.entries[nn]; e != nil {
			for _, f := range e.frags {
				owned = append(owned, f.chains...)
			}
		}
		if len(owned) > 0 {
			r.svcChains[nn] = owned
		} else {
			delete(r.svcChains, nn)
		}
	}

	postrouting := []string{
		"-A " + ChainPostrouting + " -m mark ! --mark " + markMatch + " -j RETURN",
		"-A " + ChainPostrouting + " -j MARK --xor-mark " + mark,
	}
	if cfg.RandomFully {
		postrouting = append(postrouting, "-A "+ChainPostrouting+` -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`)
	} else {
		postrouting = append(postrouting, "-A "+ChainPostrouting+` -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE`)
	}
	out.natFixed = append(postrouting, "-A "+ChainMarkMasq+" -j MARK --or-mark "+mark)
	// localhostNodePorts is on by default for IPv4, so kube-proxy duplicates
	// kubelet's anti-martian rule.
	out.filterFixed = []string{
		"-A " + ChainFirewall + ` -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
		"-A " + ChainForward + " -m conntrack --ctstate INVALID -j DROP",
		"-A " + ChainForward + ` -m comment --comment "kubernetes forwarding rules" -m mark --mark ` + markMatch + " -j ACCEPT",
		"-A " + ChainForward + ` -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
	}
	// Finally, tail-call to the nodePorts chain (nodePortAddresses unset,
	// localhost NodePorts allowed on IPv4).
	out.natTail = "-A " + ChainServices + ` -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j ` + ChainNodePorts

	res := &Result{
		Chains:        map[Table]map[string]bool{TableFilter: {}, TableNAT: maps.Clone(r.natChains)},
		RuleCounts:    map[Table]int{},
		ServiceChains: maps.Clone(r.svcChains),
	}
	for _, c := range filterTopChains {
		res.Chains[TableFilter][c] = true
	}

	var filterLen, natTopLen, natSvcLen, declLen int
	filterRules, natRules := len(out.filterFixed), len(out.natFixed)+1
	for _, f := range out.frags {
		filterLen += len(f.filterTop)
		natTopLen += len(f.natTop)
		filterRules += f.filterTopCount
		natRules += f.natTopCount + f.ruleCount
		if out.writes(f) {
			natSvcLen += len(f.chainRules)
			declLen += len(f.chainDecls)
		}
	}
	res.RuleCounts[TableFilter] = filterRules
	res.RuleCounts[TableNAT] = natRules

	// Delete chains no longer in use (only our per-service chains, only in
	// the nat table, as kube-proxy).
	if base != nil && base == r.last && base == out.base {
		// in.Existing[nat] is the previous output's chain set: what left it
		// is what the removed fragments had and nobody has now.
		for _, f := range out.removed {
			for _, c := range f.chains {
				if in.Existing[TableNAT][c] && !r.natChains[c] && IsServiceChainName(c) {
					out.stale = append(out.stale, c)
				}
			}
		}
		slices.Sort(out.stale)
		out.stale = slices.Compact(out.stale)
	} else {
		for c := range in.Existing[TableNAT] {
			if !r.natChains[c] && IsServiceChainName(c) {
				out.stale = append(out.stale, c)
			}
		}
		slices.Sort(out.stale)
	}
	r.last = out

	b := bytes.NewBuffer(make([]byte, 0, filterLen+natTopLen+natSvcLen+declLen+len(out.stale)*60+2048))
	b.WriteString("*filter\n")
	for _, c := range filterTopChains {
		writeDecl(b, c)
	}
	b.WriteString(out.filterFixed[0] + "\n")
	for _, f := range out.frags {
		b.WriteString(f.filterTop)
	}
	for _, l := range out.filterFixed[1:] {
		b.WriteString(l + "\n")
	}
	b.WriteString("COMMIT\n*nat\n")
	for _, c := range natTopChains {
		writeDecl(b, c)
	}
	for _, f := range out.frags {
		if out.writes(f) {
			b.WriteString(f.chainDecls)
		}
	}
	for _, c := range out.stale {
		writeDecl(b, c)
	}
	for _, l := range out.natFixed {
		b.WriteString(l + "\n")
	}
	for _, f := range out.frags {
		b.WriteString(f.natTop)
		if out.writes(f) {
			b.WriteString(f.chainRules)
		}
	}
	for _, c := range out.stale {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString(out.natTail + "\nCOMMIT\n")
	res.Payload = b.Bytes()
	return res, out
}

// mergeFragments returns prev (in payload order) without the removed
// fragments, with the added ones merged in at their place.
func mergeFragments(prev, added, removed []*portFragment) []*portFragment {
	gone := make(map[*portFragment]bool, len(removed))
	for _, f := range removed {
		gone[f] = true
	}
	added = slices.Clone(added)
	slices.SortFunc(added, compareFragments)
	out := make([]*portFragment, 0, len(prev)-len(removed)+len(added))
	j := 0
	for _, f := range prev {
		if len(gone) > 0 && gone[f] {
			continue
		}
		for j < len(added) && compareFragments(added[j], f) < 0 {
			out = append(out, added[j])
			j++
		}
		out = append(out, f)
	}
	return append(out, added[j:]...)
}

// filterTopChains and natTopChains are the chains every sync declares and
// rewrites, in the payload's declaration order.
var (
	filterTopChains = []string{ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall, ChainFirewall}
	natTopChains    = []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq}
)

func writeDecl(b *bytes.Buffer, chain string) {
	b.WriteString(":" + chain + " - [0:0]\n")
}

// portRenderer renders portFragments for one sync.
type portRenderer struct {
	node                        Node
	cfg                         Config
	largeCluster                bool
	localDetect, notLocalDetect []string
	// Scratch buffers, reused from port to port.
	natTop, filterTop, chainDecls, chainRules bytes.Buffer
	args                                      []string
}

// render is the body of kube-proxy's per-servicePort loop for sp with its
// endpoints allEndpoints.
func (pr *portRenderer) render(sp *svcPortInfo, allEndpoints []*endpointInfo) *portFragment {
	cfg := pr.cfg
	pr.natTop.Reset()
	pr.filterTop.Reset()
	pr.chainDecls.Reset()
	pr.chainRules.Reset()
	natTop, filterTop := lineBuffer{buf: &pr.natTop}, lineBuffer{buf: &pr.filterTop}
	chainDecls, chainRules := lineBuffer{buf: &pr.chainDecls}, lineBuffer{buf: &pr.chainRules}
	natRules, filterRules := &natTop, &filterTop
	svcChains, svcRules := &chainDecls, &chainRules
	frag := &portFragment{nn: sp.nn, name: sp.name, protocol: sp.protocol}
	withComment := func(args []string, comment string) []string {
		if pr.largeCluster {
			return args
		}
		return append(args, "-m", "comment", "--comment", comment)
	}
	localDetect, notLocalDetect := pr.localDetect, pr.notLocalDetect
	if pr.args == nil {
		pr.args = make([]string, 0, 64)
	}
	args := pr.args[:0]
	defer func() { pr.args = args[:0] }()

	clusterEndpoints, localEndpoints, allReachable, hasEndpoints := categorizeEndpoints(allEndpoints, sp, pr.node)
	proto := sp.protocol
	name := sp.name

	usesClusterPolicyChain := len(clusterEndpoints) > 0 && sp.usesClusterEndpoints()
	usesLocalPolicyChain := len(localEndpoints) > 0 && sp.usesLocalEndpoints()

	internalPolicyChain := sp.clusterChain
	hasInternalEndpoints := hasEndpoints
	if sp.internalPolicyLocal {
		internalPolicyChain = sp.localChain
		if len(localEndpoints) == 0 {
			hasInternalEndpoints = false
		}
	}
	externalPolicyChain := sp.clusterChain
	hasExternalEndpoints := hasEndpoints
	if sp.externalPolicyLocal {
		externalPolicyChain = sp.localChain
		if len(localEndpoints) == 0 {
			hasExternalEndpoints = false
		}
	}
	usesExternalTrafficChain := hasEndpoints && sp.externallyAccessible()
	loadBalancerTrafficChain := sp.extChain
	usesFWChain := hasEndpoints && len(sp.lbVIPs) > 0 && len(sp.lbSourceRanges) > 0
	if usesFWChain {
		loadBalancerTrafficChain = sp.fwChain
	}

	var internalFilterTarget, internalFilterComment, externalFilterTarget, externalFilterComment string
	if !hasEndpoints {
		internalFilterTarget = "REJECT"
		internalFilterComment = `"` + name + ` has no endpoints"`
		externalFilterTarget = "REJECT"
		externalFilterComment = internalFilterComment
	} else {
		if !hasInternalEndpoints {
			internalFilterTarget = "DROP"
			internalFilterComment = `"` + name + ` has no local endpoints"`
		}
		if !hasExternalEndpoints {
			externalFilterTarget = "DROP"
			externalFilterComment = `"` + name + ` has no local endpoints"`
		}
	}

	// Capture the clusterIP.
	if hasInternalEndpoints {
		natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"`+name+` cluster IP"`,
			"-m", proto, "-p", proto, "-d", sp.clusterIP, "--dport", sp.port, "-j", internalPolicyChain)
	} else {
		filterRules.write("-A", ChainServices, "-m", "comment", "--comment", internalFilterComment,
			"-m", proto, "-p", proto, "-d", sp.clusterIP, "--dport", sp.port, "-j", internalFilterTarget)
	}

	// Capture externalIPs.
	for _, eip := range sp.externalIPs {
		if hasEndpoints {
			natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"`+name+` external IP"`,
				"-m", proto, "-p", proto, "-d", eip, "--dport", sp.port, "-j", sp.extChain)
		}
		if !hasExternalEndpoints {
			filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", externalFilterComment,
				"-m", proto, "-p", proto, "-d", eip, "--dport", sp.port, "-j", externalFilterTarget)
		}
	}

	// Capture load-balancer ingress.
	for _, lbip := range sp.lbVIPs {
		if hasEndpoints {
			natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"`+name+` loadbalancer IP"`,
				"-m", proto, "-p", proto, "-d", lbip, "--dport", sp.port, "-j", loadBalancerTrafficChain)
		}
		if usesFWChain {
			filterRules.write("-A", ChainProxyFirewall, "-m", "comment", "--comment", `"`+name+` traffic not accepted by `+sp.fwChain+`"`,
				"-m", proto, "-p", proto, "-d", lbip, "--dport", sp.port, "-j", "DROP")
		}
	}
	if !hasExternalEndpoints {
		for _, lbip := range sp.lbVIPs {
			filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", externalFilterComment,
				"-m", proto, "-p", proto, "-d", lbip, "--dport", sp.port, "-j", externalFilterTarget)
		}
	}

	// Capture nodeports.
	if sp.nodePort != 0 {
		np := strconv.Itoa(int(sp.nodePort))
		if hasEndpoints {
			natRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", name,
				"-m", proto, "-p", proto, "--dport", np, "-j", sp.extChain)
		}
		if !hasExternalEndpoints {
			filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", externalFilterComment,
				"-m", "addrtype", "--dst-type", "LOCAL", "-m", proto, "-p", proto, "--dport", np, "-j", externalFilterTarget)
		}
	}

	// Capture healthCheckNodePorts.
	if sp.healthCheckNodePort != 0 {
		filterRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", `"`+name+` health check node port"`,
			"-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(int(sp.healthCheckNodePort)), "-j", "ACCEPT")
	}

	// Per-service chains.
	owned := frag.chains
	if hasInternalEndpoints {
		args = append(args[:0], "-A", internalPolicyChain, "-m", "comment", "--comment", `"`+name+` cluster IP"`,
			"-m", proto, "-p", proto, "-d", sp.clusterIP, "--dport", sp.port)
		if cfg.MasqueradeAll {
			svcRules.write(append(args, "-j", ChainMarkMasq)...)
		} else if notLocalDetect != nil {
			args = append(args, notLocalDetect...)
			svcRules.write(append(args, "-j", ChainMarkMasq)...)
		}
	}

	if usesExternalTrafficChain {
		svcChains.chainLine(sp.extChain)
		owned = append(owned, sp.extChain)
		if !sp.externalPolicyLocal {
			svcRules.write("-A", sp.extChain, "-m", "comment", "--comment", `"masquerade traffic for `+name+` external destinations"`,
				"-j", ChainMarkMasq)
		} else {
			if localDetect != nil {
				svcRules.write(slices.Concat([]string{"-A", sp.extChain, "-m", "comment", "--comment", `"pod traffic for ` + name + ` external destinations"`},
					localDetect, []string{"-j", sp.clusterChain})...)
			}
			svcRules.write("-A", sp.extChain, "-m", "comment", "--comment", `"masquerade LOCAL traffic for `+name+` external destinations"`,
				"-m", "addrtype", "--src-type", "LOCAL", "-j", ChainMarkMasq)
			svcRules.write("-A", sp.extChain, "-m", "comment", "--comment", `"route LOCAL traffic for `+name+` external destinations"`,
				"-m", "addrtype", "--src-type", "LOCAL", "-j", sp.clusterChain)
		}
		if hasExternalEndpoints {
			svcRules.write("-A", sp.extChain, "-j", externalPolicyChain)
		}
	}

	if usesFWChain {
		svcChains.chainLine(sp.fwChain)
		owned = append(owned, sp.fwChain)
		prefix := []string{"-A", sp.fwChain, "-m", "comment", "--comment", `"` + name + ` loadbalancer IP"`}
		allowFromNode := false
		for _, cidr := range sp.lbSourceRanges {
			svcRules.write(slices.Concat(prefix, []string{"-s", cidr.String(), "-j", sp.extChain})...)
			for _, ip := range pr.node.IPs {
				if ip.Is4() && cidr.Contains(ip) {
					allowFromNode = true
				}
			}
		}
		if allowFromNode {
			for _, lbip := range sp.lbVIPs {
				svcRules.write(slices.Concat(prefix, []string{"-s", lbip, "-j", sp.extChain})...)
			}
		}
		svcRules.write("-A", sp.fwChain, "-m", "comment", "--comment", `"other traffic to `+name+` will be dropped by KUBE-PROXY-FIREWALL"`)
	}

	if usesClusterPolicyChain {
		svcChains.chainLine(sp.clusterChain)
		owned = append(owned, sp.clusterChain)
		args = writeServiceToEndpointRules(svcRules, sp, sp.clusterChain, clusterEndpoints, args, withComment)
	}
	if usesLocalPolicyChain {
		svcChains.chainLine(sp.localChain)
		owned = append(owned, sp.localChain)
		args = writeServiceToEndpointRules(svcRules, sp, sp.localChain, localEndpoints, args, withComment)
	}

	for _, ep := range allReachable {
		svcChains.chainLine(ep.chain)
		owned = append(owned, ep.chain)
		args = withComment(append(args[:0], "-A", ep.chain), name)
		svcRules.write(slices.Concat(args, []string{"-s", ep.ip, "-j", ChainMarkMasq})...)
		if sp.affinityClientIP {
			args = append(args, "-m", "recent", "--name", ep.chain, "--set")
		}
		args = append(args, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.str)
		svcRules.write(args...)
	}
	frag.chains = owned
	frag.natTop, frag.natTopCount = natTop.buf.String(), natTop.lines
	frag.filterTop, frag.filterTopCount = filterTop.buf.String(), filterTop.lines
	frag.chainDecls = chainDecls.buf.String()
	frag.chainRules = chainRules.buf.String()
	frag.ruleCount = chainRules.lines
	return frag
}

// writeServiceToEndpointRules writes the KUBE-SVC/KUBE-SVL → KUBE-SEP rules:
// session-affinity rules first, then one statistic rule per endpoint with
// probability 1/(n-i), the last without a statistic match.
func writeServiceToEndpointRules(rules *lineBuffer, sp *svcPortInfo, chain string, eps []*endpointInfo, args []string, withComment func([]string, string) []string) []string {
	if sp.affinityClientIP {
		for _, ep := range eps {
			args = withComment(append(args[:0], "-A", chain), `"`+sp.name+` -> `+ep.str+`"`)
			args = append(args, "-m", "recent", "--name", ep.chain, "--rcheck", "--seconds", sp.stickySeconds, "--reap", "-j", ep.chain)
			rules.write(args...)
		}
	}
	n := len(eps)
	for i, ep := range eps {
		args = withComment(append(args[:0], "-A", chain), `"`+sp.name+` -> `+ep.str+`"`)
		if i < n-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", Probability(n-i))
		}
		args = append(args, "-j", ep.chain)
		rules.write(args...)
	}
	return args
}

// clusterIPv4 is kube-proxy's GetClusterIPByFamily for IPv4.
func clusterIPv4(svc *corev1.Service) string {
	if len(svc.Spec.ClusterIPs) == 0 {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return ""
		}
		if a, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && a.Is4() {
			return a.String()
		}
		return ""
	}
	for _, ip := range svc.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
			return a.String()
		}
	}
	return ""
}

// shouldSkipService is kube-proxy's ShouldSkipService.
func shouldSkipService(svc *corev1.Service) bool {
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		return true
	}
	return svc.Spec.Type == corev1.ServiceTypeExternalName
}

// externalPolicyLocal is apiservice.ExternalPolicyLocal.
func externalPolicyLocal(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer && svc.Spec.Type != corev1.ServiceTypeNodePort && len(svc.Spec.ExternalIPs) == 0 {
		return false
	}
	return svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// internalPolicyLocal is apiservice.InternalPolicyLocal.
func internalPolicyLocal(svc *corev1.Service) bool {
	return svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
}

// isVIPMode is proxyutil.IsVIPMode: ingress IPs in Proxy mode are not
// captured by kube-proxy.
func isVIPMode(ing corev1.LoadBalancerIngress) bool {
	return ing.IPMode == nil || *ing.IPMode == corev1.LoadBalancerIPModeVIP
}

// buildServicePorts turns Services into kube-proxy service-port infos,
// sorted by ServicePortName string, then protocol.
func buildServicePorts(svcs []*corev1.Service) []*svcPortInfo {
	var out []*svcPortInfo
	seen := map[string]bool{}
	for _, svc := range svcs {
		if svc == nil || shouldSkipService(svc) {
			continue
		}
		cip := clusterIPv4(svc)
		if cip == "" {
			continue
		}
		nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		extLocal := externalPolicyLocal(svc)
		intLocal := internalPolicyLocal(svc)
		sticky := ""
		affinity := svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP
		if affinity {
			secs := int32(corev1.DefaultClientIPServiceAffinitySeconds)
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				secs = *c.ClientIP.TimeoutSeconds
			}
			sticky = strconv.Itoa(int(secs))
		}
		var extIPs []string
		for _, s := range svc.Spec.ExternalIPs {
			if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && a.Is4() {
				extIPs = append(extIPs, a.String())
			}
		}
		var ranges []netip.Prefix
		for _, s := range svc.Spec.LoadBalancerSourceRanges {
			if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil && p.Addr().Is4() {
				ranges = append(ranges, p.Masked())
			}
		}
		var vips []string
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP == "" || !isVIPMode(ing) {
				continue
			}
			if a, err := netip.ParseAddr(ing.IP); err == nil && a.Is4() {
				vips = append(vips, a.String())
			}
		}
		var hcnp int32
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && extLocal {
			hcnp = svc.Spec.HealthCheckNodePort
		}
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			name := ServicePortName(svc.Namespace, svc.Name, p.Name)
			lproto := strings.ToLower(string(proto))
			key := name + "/" + lproto
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, &svcPortInfo{
				nn:                  nn,
				name:                name,
				protocol:            lproto,
				protocolUpper:       proto,
				portName:            p.Name,
				clusterIP:           cip,
				port:                strconv.Itoa(int(p.Port)),
				nodePort:            p.NodePort,
				externalIPs:         extIPs,
				lbVIPs:              vips,
				lbSourceRanges:      ranges,
				affinityClientIP:    affinity,
				stickySeconds:       sticky,
				healthCheckNodePort: hcnp,
				externalPolicyLocal: extLocal,
				internalPolicyLocal: intLocal,
				clusterChain:        ServicePortChainName(PrefixSVC, name, lproto),
				localChain:          ServicePortChainName(PrefixSVL, name, lproto),
				extChain:            ServicePortChainName(PrefixEXT, name, lproto),
				fwChain:             ServicePortChainName(PrefixFW, name, lproto),
			})
		}
	}
	slices.SortFunc(out, func(a, b *svcPortInfo) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.protocol, b.protocol)
	})
	return out
}

// buildEndpointsMap is kube-proxy's EndpointSliceCache: endpoints grouped by
// service port, deduplicated by "IP:port" across slices (a non-terminating
// endpoint wins over a terminating one), sorted by "IP:port".
func buildEndpointsMap(slicesIn []*discoveryv1.EndpointSlice, nodeName string) map[endpointKey][]*endpointInfo {
	sets := map[endpointKey]map[string]*endpointInfo{}
	// Process slices in a stable order so that ties are deterministic.
	ordered := slices.Clone(slicesIn)
	slices.SortStableFunc(ordered, func(a, b *discoveryv1.EndpointSlice) int {
		if a == nil || b == nil {
			return 0
		}
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, es := range ordered {
		if es == nil || es.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		svcName := es.Labels[discoveryv1.LabelServiceName]
		if svcName == "" || es.Namespace == "" {
			continue
		}
		nn := types.NamespacedName{Namespace: es.Namespace, Name: svcName}
		for _, port := range es.Ports {
			if port.Name == nil || port.Port == nil || *port.Port == 0 {
				continue
			}
			proto := corev1.ProtocolTCP
			if port.Protocol != nil {
				proto = *port.Protocol
			}
			key := endpointKey{nn: nn, portName: *port.Name, protocol: proto}
			spn := ServicePortName(nn.Namespace, nn.Name, *port.Name)
			set := sets[key]
			if set == nil {
				set = map[string]*endpointInfo{}
				sets[key] = set
			}
			for _, ep := range es.Endpoints {
				if len(ep.Addresses) == 0 {
					continue
				}
				addr, err := netip.ParseAddr(ep.Addresses[0])
				if err != nil {
					continue
				}
				info := &endpointInfo{
					ip:          addr.String(),
					str:         netip.AddrPortFrom(addr, uint16(*port.Port)).String(),
					local:       nodeName != "" && ep.NodeName != nil && *ep.NodeName == nodeName,
					ready:       ep.Conditions.Ready == nil || *ep.Conditions.Ready,
					serving:     ep.Conditions.Serving == nil || *ep.Conditions.Serving,
					terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
				}
				if ep.Hints != nil {
					for _, z := range ep.Hints.ForZones {
						info.zoneHints = append(info.zoneHints, z.Name)
					}
				}
				info.chain = EndpointChainName(spn, string(proto), info.str)
				if _, exists := set[info.str]; !exists || !info.terminating {
					set[info.str] = info
				}
			}
		}
	}
	out := make(map[endpointKey][]*endpointInfo, len(sets))
	for k, set := range sets {
		if len(set) == 0 {
			continue
		}
		list := make([]*endpointInfo, 0, len(set))
		for _, e := range set {
			list = append(list, e)
		}
		slices.SortFunc(list, func(a, b *endpointInfo) int { return strings.Compare(a.str, b.str) })
		out[k] = list
	}
	return out
}

// categorizeEndpoints is kube-proxy's CategorizeEndpoints: usable endpoints
// are Ready ones; if there are none, serving+terminating ones (separately for
// Cluster and Local policy). Zone hints are honoured when every ready
// endpoint has one and one matches node.Zone.
func categorizeEndpoints(eps []*endpointInfo, sp *svcPortInfo, node Node) (cluster, local, all []*endpointInfo, hasAny bool) {
	useTopology := false
	useServingTerminating := false
	if sp.usesClusterEndpoints() {
		useTopology = topologyZoneMode(eps, node.Zone)
		for _, ep := range eps {
			if ep.ready && (!useTopology || slices.Contains(ep.zoneHints, node.Zone)) {
				cluster = append(cluster, ep)
			}
		}
		if len(cluster) == 0 {
			for _, ep := range eps {
				if ep.serving && ep.terminating {
					cluster = append(cluster, ep)
				}
			}
		}
		if len(cluster) > 0 {
			hasAny = true
		}
	}
	if !sp.usesLocalEndpoints() {
		return cluster, nil, cluster, hasAny
	}
	var hasLocalReady, hasLocalServingTerminating bool
	for _, ep := range eps {
		if ep.ready {
			hasAny = true
			if ep.local {
				hasLocalReady = true
			}
		} else if ep.serving && ep.terminating {
			hasAny = true
			if ep.local {
				hasLocalServingTerminating = true
			}
		}
	}
	if hasLocalReady {
		for _, ep := range eps {
			if ep.local && ep.ready {
				local = append(local, ep)
			}
		}
	} else if hasLocalServingTerminating {
		useServingTerminating = true
		for _, ep := range eps {
			if ep.local && ep.serving && ep.terminating {
				local = append(local, ep)
			}
		}
	}
	if !sp.usesClusterEndpoints() {
		return cluster, local, local, hasAny
	}
	if !useTopology && !useServingTerminating {
		return cluster, local, cluster, hasAny
	}
	// Merge: kube-proxy builds a map and iterates it (random order); we sort
	// by "IP:port" for a stable payload.
	merged := map[string]*endpointInfo{}
	for _, ep := range cluster {
		merged[ep.str] = ep
	}
	for _, ep := range local {
		merged[ep.str] = ep
	}
	for _, ep := range merged {
		all = append(all, ep)
	}
	slices.SortFunc(all, func(a, b *endpointInfo) int { return strings.Compare(a.str, b.str) })
	return cluster, local, all, hasAny
}

// topologyZoneMode reports whether zone hints apply: every ready endpoint has
// a zone hint and at least one is for zone (kube-proxy's topologyModeFromHints
// returning PreferSameZone). Node hints (PreferSameNode) are not evaluated.
func topologyZoneMode(eps []*endpointInfo, zone string) bool {
	if zone == "" {
		return false
	}
	hasForZone := false
	for _, ep := range eps {
		if !ep.ready {
			continue
		}
		if len(ep.zoneHints) == 0 {
			return false
		}
		if slices.Contains(ep.zoneHints, zone) {
			hasForZone = true
		}
	}
	return hasForZone
}
