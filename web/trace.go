package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/dataplane"
)

// traceTimeout bounds one trace request (probe and kernel trace together).
const traceTimeout = 20 * time.Second

// TraceRequest is the body of POST /lab/v1/trace.
type TraceRequest struct {
	// Source is "host", "node:NAME" (a process on the node itself) or
	// "NAMESPACE/POD".
	Source string `json:"source"`
	// Destination is a Service ("ns/name" or "ns/name:portName"), an IP
	// (then Port is needed) or "IP:port": a cluster IP, node IP with a
	// NodePort, load-balancer VIP, external IP or pod IP.
	Destination string `json:"destination"`
	// Port overrides or completes the destination's port.
	Port int `json:"port,omitempty"`
	// Protocol is "tcp" (default) or "udp".
	Protocol string `json:"protocol,omitempty"`
	// Simulate traces through the node's live rules with dataplane.Trace
	// without sending anything.
	Simulate bool `json:"simulate,omitempty"`
	// Node is the node whose rules a packet from the host to a cluster or
	// load-balancer IP enters (default: every node for a real trace, the
	// first node for a simulated one).
	Node string `json:"node,omitempty"`
}

// TraceResponse is the answer of POST /lab/v1/trace.
type TraceResponse struct {
	// Mode is "kernel" (the kernel's own trace of a real probe) or
	// "simulated" (dataplane.Trace over the live rules, no packet sent).
	Mode      string `json:"mode"`
	Simulated bool   `json:"simulated"`
	Source    string `json:"source"`
	SourceIP  string `json:"sourceIP,omitempty"`
	// Destination as given; DestIP, Port, Protocol as resolved.
	Destination string `json:"destination"`
	DestIP      string `json:"destIP"`
	Port        int    `json:"port"`
	Protocol    string `json:"protocol"`
	// DestinationKind says what the address is, e.g. "cluster IP of default/redis".
	DestinationKind string `json:"destinationKind"`
	// Service is "ns/name" when the destination belongs to a Service.
	Service string `json:"service,omitempty"`
	// Node is the node whose rules the packet went through, Hook the
	// built-in chain it entered (PREROUTING or OUTPUT).
	Node string `json:"node"`
	Hook string `json:"hook"`
	// Paths: one for a kernel trace (what the packet did), every possible
	// one for a simulated trace.
	Paths []TracePath `json:"paths"`
	// DNAT, Pod, PodNode: the endpoint the (first) path chose.
	DNAT    string `json:"dnat,omitempty"`
	Pod     string `json:"pod,omitempty"`
	PodNode string `json:"podNode,omitempty"`
	Verdict string `json:"verdict"`
	// Reply is the echo's answer; ProbeError why there was none.
	Reply      string `json:"reply,omitempty"`
	ProbeError string `json:"probeError,omitempty"`
	// Lines are xtables-monitor's lines (kernel mode).
	Lines []string `json:"lines,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// TracePath is one way through the rules.
type TracePath struct {
	Verdict string `json:"verdict"`
	// Probability is the share of new connections taking this path
	// (simulated; 1 for the kernel's observed path), Share the same in
	// words ("1 in 3").
	Probability float64 `json:"probability"`
	Share       string  `json:"share"`
	// Affinity is the -m recent list this path needs (session affinity).
	Affinity    string     `json:"affinity,omitempty"`
	DNAT        string     `json:"dnat,omitempty"`
	Pod         string     `json:"pod,omitempty"`
	Masqueraded bool       `json:"masqueraded"`
	Delivery    string     `json:"delivery,omitempty"`
	Hits        []TraceHit `json:"hits"`
}

// TraceHit is one rule (or policy) on a path.
type TraceHit struct {
	// ID is the graph's rule ID ("nat/KUBE-SVC-…/2"), "" for policies and
	// rules whose position is unknown.
	ID      string `json:"id,omitempty"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Num     int    `json:"num,omitempty"`
	Kind    string `json:"kind"` // rule, return, policy
	Verdict string `json:"verdict,omitempty"`
	Text    string `json:"text,omitempty"`
	Note    string `json:"note,omitempty"`
}

// resolvedTrace is a TraceRequest made concrete.
type resolvedTrace struct {
	srcIP    netip.Addr
	dst      netip.Addr
	port     uint16
	proto    string
	hook     dataplane.Hook
	nodes    []string // candidate entry nodes
	kind     string
	service  string
	inLab    bool // the destination is an address of the lab
	topo     *Topology
	nodeInfo map[string]TopoNode
}

func (h *handler) trace(w http.ResponseWriter, r *http.Request) {
	if !h.mayProbe(r) {
		h.fail(w, r, forbidden("trace"))
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		se := apierrors.NewBadRequest(fmt.Sprintf("Content-Type %q: send application/json", r.Header.Get("Content-Type")))
		se.ErrStatus.Code, se.ErrStatus.Reason = http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType
		h.fail(w, r, se)
		return
	}
	var req TraceRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64*1024))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		h.fail(w, r, apierrors.NewBadRequest("decode trace request: "+err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), traceTimeout)
	defer cancel()
	topo, err := h.b.Topology(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if topo == nil {
		topo = &Topology{}
	}
	rt, err := resolveTrace(req, topo)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp := &TraceResponse{
		Source: req.Source, SourceIP: addrString(rt.srcIP), Destination: req.Destination,
		DestIP: rt.dst.String(), Port: int(rt.port), Protocol: rt.proto,
		DestinationKind: rt.kind, Service: rt.service, Hook: string(rt.hook),
	}
	if req.Simulate {
		err = h.simulate(ctx, rt, resp)
	} else {
		if !rt.inLab {
			h.fail(w, r, invalid("destination", fmt.Sprintf("%s is not an address of the lab; a real probe could leave the machine (use simulate)", rt.dst)))
			return
		}
		h.traceMu.Lock()
		err = h.kernelTrace(ctx, req, rt, resp)
		h.traceMu.Unlock()
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, resp)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// resolveTrace turns the request into addresses, the hook and the
// candidate nodes, using the topology. Errors are 422 Statuses naming the
// field.
func resolveTrace(req TraceRequest, topo *Topology) (*resolvedTrace, error) {
	rt := &resolvedTrace{topo: topo, nodeInfo: map[string]TopoNode{}}
	var nodeNames []string
	for _, n := range topo.Nodes {
		rt.nodeInfo[n.Name] = n
		nodeNames = append(nodeNames, n.Name)
	}
	rt.proto = strings.ToLower(strings.TrimSpace(req.Protocol))
	if rt.proto == "" {
		rt.proto = "tcp"
	}
	if rt.proto != "tcp" && rt.proto != "udp" && !(rt.proto == "sctp" && req.Simulate) {
		return nil, invalid("protocol", fmt.Sprintf("%q: want tcp or udp (sctp only simulated)", req.Protocol))
	}
	if req.Port < 0 || req.Port > 65535 {
		return nil, invalid("port", fmt.Sprintf("%d is not a port", req.Port))
	}

	// Destination.
	dest := strings.TrimSpace(req.Destination)
	switch {
	case dest == "":
		return nil, invalid("destination", "required: a Service (namespace/name) or an IP[:port]")
	case strings.Contains(dest, "/"):
		svcName, portName, _ := strings.Cut(dest, ":")
		svc := findService(topo, svcName)
		if svc == nil {
			return nil, invalid("destination", fmt.Sprintf("no Service %s", svcName))
		}
		switch {
		case svc.Type == "ExternalName":
			return nil, invalid("destination", fmt.Sprintf("%s is an ExternalName Service: cluster DNS answers a CNAME to %s; there are no iptables rules to trace", svcName, svc.ExternalName))
		case svc.ClusterIP == "" || svc.ClusterIP == "None":
			return nil, invalid("destination", fmt.Sprintf("%s is headless (clusterIP: None): DNS returns the pod IPs and there are no iptables rules; trace a pod IP instead", svcName))
		}
		ip, err := netip.ParseAddr(svc.ClusterIP)
		if err != nil {
			return nil, invalid("destination", fmt.Sprintf("Service %s has cluster IP %q", svcName, svc.ClusterIP))
		}
		rt.dst = ip
		var sp *TopoServicePort
		for i := range svc.Ports {
			p := &svc.Ports[i]
			if (portName != "" && p.Name == portName) || (portName == "" && req.Port != 0 && int(p.Port) == req.Port) {
				sp = p
				break
			}
		}
		if sp == nil && portName == "" && req.Port == 0 && len(svc.Ports) > 0 {
			sp = &svc.Ports[0]
		}
		switch {
		case sp != nil:
			rt.port = uint16(sp.Port)
			if req.Protocol == "" && sp.Protocol != "" {
				rt.proto = strings.ToLower(sp.Protocol)
			}
		case portName != "":
			return nil, invalid("destination", fmt.Sprintf("Service %s has no port named %q", svcName, portName))
		default:
			rt.port = uint16(req.Port)
		}
		rt.service = svc.Namespace + "/" + svc.Name
		rt.kind = "cluster IP of " + rt.service
		rt.inLab = true
	default:
		if ap, err := netip.ParseAddrPort(dest); err == nil {
			rt.dst, rt.port = ap.Addr(), ap.Port()
		} else if a, err := netip.ParseAddr(dest); err == nil {
			rt.dst = a
		} else {
			return nil, invalid("destination", fmt.Sprintf("%q is neither namespace/name, IP nor IP:port", dest))
		}
		if req.Port != 0 {
			rt.port = uint16(req.Port)
		}
		rt.kind, rt.service, rt.inLab = classify(topo, rt.dst, rt.port)
	}
	if rt.port == 0 {
		return nil, invalid("port", "required for "+rt.dst.String())
	}
	if !rt.dst.Is4() {
		return nil, invalid("destination", "only IPv4 is traced")
	}

	// Source and entry node.
	src := strings.TrimSpace(req.Source)
	switch {
	case src == "" || src == "host":
		rt.hook = dataplane.HookPrerouting
		if a, err := netip.ParseAddr(topo.Host.IP); err == nil {
			rt.srcIP = a
		}
		switch {
		case req.Node != "":
			rt.nodes = []string{req.Node}
		default:
			for _, n := range topo.Nodes {
				if n.IP == rt.dst.String() {
					rt.nodes = []string{n.Name}
				}
			}
			if rt.nodes == nil {
				rt.nodes = nodeNames
			}
		}
	case strings.HasPrefix(src, "node:"):
		name := strings.TrimPrefix(src, "node:")
		n, ok := rt.nodeInfo[name]
		if !ok {
			return nil, invalid("source", fmt.Sprintf("no node %q", name))
		}
		rt.hook = dataplane.HookOutput
		rt.srcIP, _ = netip.ParseAddr(n.IP)
		rt.nodes = []string{name}
	case strings.Contains(src, "/"):
		ns, name, _ := strings.Cut(src, "/")
		var pod *TopoPod
		for i := range topo.Pods {
			if topo.Pods[i].Namespace == ns && topo.Pods[i].Name == name {
				pod = &topo.Pods[i]
			}
		}
		if pod == nil {
			return nil, invalid("source", fmt.Sprintf("no pod %s", src))
		}
		if pod.Node == "" {
			return nil, invalid("source", fmt.Sprintf("pod %s is not on a node", src))
		}
		rt.hook = dataplane.HookPrerouting
		rt.srcIP, _ = netip.ParseAddr(pod.IP)
		rt.nodes = []string{pod.Node}
	default:
		return nil, invalid("source", fmt.Sprintf("%q: want host, node:NAME or namespace/pod", src))
	}
	if len(rt.nodes) == 0 {
		return nil, apierrors.NewServiceUnavailable("the lab has no nodes")
	}
	return rt, nil
}

func findService(topo *Topology, nsName string) *TopoService {
	for i := range topo.Services {
		s := &topo.Services[i]
		if s.Namespace+"/"+s.Name == nsName {
			return s
		}
	}
	return nil
}

// classify says what an address is in the lab, which Service it belongs to
// and whether it is an address of the lab (probes go only there).
func classify(topo *Topology, ip netip.Addr, port uint16) (kind, service string, inLab bool) {
	s := ip.String()
	for _, svc := range topo.Services {
		name := svc.Namespace + "/" + svc.Name
		if svc.ClusterIP == s {
			return "cluster IP of " + name, name, true
		}
		if slices.Contains(svc.LBIPs, s) {
			return "load-balancer IP of " + name, name, true
		}
	}
	for _, n := range topo.Nodes {
		if n.IP != s && !slices.Contains(n.LocalAddrs, s) {
			continue
		}
		for _, svc := range topo.Services {
			for _, p := range svc.Ports {
				if p.NodePort != 0 && uint16(p.NodePort) == port {
					return "NodePort " + strconv.Itoa(int(p.NodePort)) + " of " + svc.Namespace + "/" + svc.Name + " on " + n.Name, svc.Namespace + "/" + svc.Name, true
				}
			}
		}
		return "address of node " + n.Name, "", true
	}
	for _, p := range topo.Pods {
		if p.IP == s {
			return "IP of pod " + p.Namespace + "/" + p.Name + " (no Service rules involved)", "", true
		}
	}
	inLab = false
	for _, c := range []string{topo.ClusterCIDR, topo.ServiceCIDR, topo.UnderlayCIDR} {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(ip) {
			inLab = true
		}
	}
	for _, svc := range topo.Services {
		if slices.Contains(svc.ExternalIPs, s) {
			return "external IP of " + svc.Namespace + "/" + svc.Name, svc.Namespace + "/" + svc.Name, inLab
		}
	}
	if inLab {
		return "an unused address of the lab", "", true
	}
	return "an address outside the lab", "", false
}

// localAddrs are the node's own addresses for -m addrtype LOCAL.
func localAddrs(n TopoNode) []netip.Addr {
	var out []netip.Addr
	list := n.LocalAddrs
	if len(list) == 0 {
		list = []string{n.IP, n.BridgeIP}
		if n.BridgeIP == "" {
			if p, err := netip.ParsePrefix(n.PodCIDR); err == nil {
				list = append(list, p.Masked().Addr().Next().String())
			}
		}
	}
	for _, s := range list {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// simulate traces the packet through the entry node's live rules.
func (h *handler) simulate(ctx context.Context, rt *resolvedTrace, resp *TraceResponse) error {
	node := rt.nodes[0]
	if len(rt.nodes) > 1 {
		resp.Notes = append(resp.Notes, fmt.Sprintf("The host's packets to %s may enter any node; simulated on %s (choose another with \"node\").", rt.dst, node))
	}
	rs, err := h.cache.rules(ctx, node)
	if err != nil {
		return err
	}
	resp.Mode, resp.Simulated, resp.Node = "simulated", true, node
	src := rt.srcIP
	if !src.IsValid() {
		src = netip.MustParseAddr("192.0.2.1")
		resp.Notes = append(resp.Notes, "The source address is unknown; 192.0.2.1 (outside the pod network) is assumed.")
	}
	pkt := dataplane.Packet{Src: src, Dst: rt.dst, Proto: rt.proto, DstPort: rt.port, Hook: rt.hook, LocalAddrs: localAddrs(rt.nodeInfo[node])}
	res := dataplane.Trace(rs, pkt, dataplane.TraceOptions{})
	ix := newTopoIndex(rt.topo)
	for _, p := range res.Paths {
		tp := TracePath{Verdict: string(p.Verdict), Probability: p.Probability, Share: oneIn(p.Probability), Affinity: p.Affinity,
			Masqueraded: p.Masqueraded, Delivery: p.Delivery}
		if p.Affinity != "" {
			tp.Share = "returning clients only (session affinity)"
		}
		if p.DNAT.IsValid() {
			tp.DNAT = p.DNAT.String()
			if pod := ix.podFor(tp.DNAT); pod != nil {
				tp.Pod = pod.Namespace + "/" + pod.Name
			}
		}
		for _, s := range p.Steps {
			hit := TraceHit{Table: string(s.Table), Chain: s.Chain, Num: s.Num, Kind: dataplane.KernelHitRule, Verdict: s.Target, Text: s.Text, Note: s.Note}
			if s.Num > 0 && !s.Synthetic {
				hit.ID = string(s.Table) + "/" + s.Chain + "/" + strconv.Itoa(s.Num)
			}
			if s.Num == 0 {
				hit.Kind = dataplane.KernelHitPolicy
			}
			tp.Hits = append(tp.Hits, hit)
		}
		resp.Paths = append(resp.Paths, tp)
	}
	slices.SortStableFunc(resp.Paths, func(a, b TracePath) int {
		if a.Probability != b.Probability {
			if a.Probability > b.Probability {
				return -1
			}
			return 1
		}
		return strings.Compare(a.DNAT, b.DNAT)
	})
	if len(resp.Paths) > 0 {
		first := resp.Paths[0]
		resp.Verdict, resp.DNAT, resp.Pod = first.Verdict, first.DNAT, first.Pod
	}
	resp.Notes = append(resp.Notes, "Simulated: no packet was sent; dataplane.Trace followed the node's live rules. Summary: "+res.Summary())
	if len(res.Unsupported) > 0 {
		resp.Notes = append(resp.Notes, "Not modelled (treated as not matching): "+strings.Join(res.Unsupported, "; "))
	}
	return nil
}

// kernelTrace sends the real probe while the kernel traces it on the
// candidate nodes, and reports the node the packet went through.
func (h *handler) kernelTrace(ctx context.Context, req TraceRequest, rt *resolvedTrace, resp *TraceResponse) error {
	resp.Mode = "kernel"
	m := dataplane.TraceMatch{Proto: rt.proto, Dst: rt.dst, DstPort: rt.port, Src: rt.srcIP}
	type running struct {
		node string
		kt   KernelTraceStopper
	}
	var tracers []running
	var startErrs []string
	for _, node := range rt.nodes {
		path := h.b.NodeNetns(node)
		if path == "" {
			startErrs = append(startErrs, node+": network namespace unknown")
			continue
		}
		kt, err := h.startTrace(ctx, path, m)
		if err != nil {
			h.log.Warn("kernel trace", "node", node, "err", err)
			startErrs = append(startErrs, node+": "+err.Error())
			continue
		}
		tracers = append(tracers, running{node, kt})
	}
	// Whatever happens, stop every tracer (it deletes its TRACE rules).
	results := map[string]*dataplane.KernelTraceResult{}
	stopAll := func() {
		for _, t := range tracers {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			res, err := t.kt.Stop(stopCtx)
			cancel()
			if err != nil {
				h.log.Warn("stop kernel trace", "node", t.node, "err", err)
				resp.Notes = append(resp.Notes, "kernel trace on "+t.node+": "+err.Error())
			}
			if res != nil {
				results[t.node] = res
			}
		}
		tracers = nil
	}
	defer stopAll()
	if len(startErrs) > 0 {
		resp.Notes = append(resp.Notes, "No kernel trace on "+strings.Join(startErrs, "; "))
	}

	pr, perr := h.b.Probe(ctx, ProbeRequest{Source: req.Source, DestIP: rt.dst.String(), Port: int(rt.port), Protocol: rt.proto})
	stopAll()
	if pr != nil {
		resp.Reply = pr.Reply
		if pr.SourceIP != "" {
			resp.SourceIP = pr.SourceIP
		}
		resp.Pod = pr.Pod
	}
	if perr != nil {
		if errors.Is(perr, context.Canceled) && ctx.Err() != nil {
			return perr
		}
		resp.ProbeError = perr.Error()
	}

	// The node whose trace saw the packet (with nat rules, preferably).
	node, best := "", -1
	for _, n := range rt.nodes {
		res := results[n]
		if res == nil || res.First() == nil {
			continue
		}
		score := 0
		for _, hit := range res.First().Hits {
			if hit.Table == dataplane.TableNAT {
				score++
			}
		}
		if score > best {
			node, best = n, score
		}
	}
	if node == "" {
		resp.Node = rt.nodes[0]
		resp.Verdict = "unknown"
		if perr == nil {
			resp.Verdict = string(dataplane.VerdictAccept)
		}
		if len(tracers) == 0 && len(results) == 0 && len(startErrs) == len(rt.nodes) {
			resp.Notes = append(resp.Notes, "The kernel could not be traced; the probe was sent anyway. Try \"simulate\".")
		} else {
			resp.Notes = append(resp.Notes, "No node's kernel reported the probe's packets.")
		}
		return nil
	}
	resp.Node = node
	res := results[node]
	first := res.First()
	resp.Lines = res.Lines
	path := TracePath{Verdict: string(first.Verdict()), Probability: 1, Share: "the packet that was sent"}
	if d, ok := first.DNAT(); ok {
		path.DNAT = d.String()
	}
	ix := newTopoIndex(rt.topo)
	if p := ix.podFor(path.DNAT); p != nil && path.DNAT != "" {
		path.Pod = p.Namespace + "/" + p.Name
		resp.PodNode = p.Node
	}
	for _, kh := range first.Hits {
		if kh.Table == "raw" {
			continue
		}
		hit := TraceHit{Table: string(kh.Table), Chain: kh.Chain, Num: kh.Num, Kind: kh.Kind, Verdict: kh.Verdict, Text: kh.Text}
		if kh.JumpTarget != "" {
			hit.Verdict += ":" + kh.JumpTarget
		}
		if kh.Kind == dataplane.KernelHitRule && kh.Num > 0 {
			hit.ID = string(kh.Table) + "/" + kh.Chain + "/" + strconv.Itoa(kh.Num)
		}
		if kh.Rule != nil && kh.Rule.Target == "MASQUERADE" {
			path.Masqueraded = true
		}
		path.Hits = append(path.Hits, hit)
	}
	resp.Paths = []TracePath{path}
	resp.Verdict, resp.DNAT = path.Verdict, path.DNAT
	if resp.Pod == "" {
		resp.Pod = path.Pod
	}
	if len(res.Packets) > 1 {
		resp.Notes = append(resp.Notes, fmt.Sprintf("The kernel traced %d packets of the connection; shown is the first, the only one that goes through the nat table.", len(res.Packets)))
	}
	return nil
}
