package dataplane

import (
	"maps"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// udpState is the UDP part of the desired state that conntrack must agree
// with: for each UDP Service frontend (cluster IP, external IP or load
// balancer IP, with the service port) and each UDP node port, the endpoints
// (IP:targetPort) that may answer it.
type udpState struct {
	frontends map[netip.AddrPort]map[netip.AddrPort]bool
	nodePorts map[uint16]map[netip.AddrPort]bool
	// services are the Services with a UDP port, the only ones whose
	// changes can change the state.
	services map[types.NamespacedName]bool
}

func (s udpState) empty() bool { return len(s.frontends) == 0 && len(s.nodePorts) == 0 }

func (s udpState) equal(o udpState) bool {
	eq := func(a, b map[netip.AddrPort]bool) bool { return maps.Equal(a, b) }
	return maps.EqualFunc(s.frontends, o.frontends, eq) && maps.EqualFunc(s.nodePorts, o.nodePorts, eq)
}

// endpointServing is kube-proxy's notion of a usable endpoint: serving, where
// an unset serving condition falls back to ready, and an unset ready means
// ready.
func endpointServing(c discoveryv1.EndpointConditions) bool {
	ready := c.Ready == nil || *c.Ready
	if c.Serving == nil {
		return ready
	}
	return *c.Serving
}

// buildUDPState computes the udpState of services and slices. Headless
// and ExternalName Services and slices that name no Service are ignored;
// IPv4 and IPv6 are both handled.
func buildUDPState(services []*corev1.Service, slices []*discoveryv1.EndpointSlice) udpState {
	st := udpState{
		frontends: map[netip.AddrPort]map[netip.AddrPort]bool{},
		nodePorts: map[uint16]map[netip.AddrPort]bool{},
		services:  map[types.NamespacedName]bool{},
	}
	type portKey struct {
		svc  types.NamespacedName
		name string
	}
	// Serving endpoints of each (service, UDP port name).
	eps := map[portKey]map[netip.AddrPort]bool{}
	for _, sl := range slices {
		svcName := sl.Labels[discoveryv1.LabelServiceName]
		if svcName == "" {
			continue
		}
		for _, p := range sl.Ports {
			if p.Port == nil || p.Protocol == nil || *p.Protocol != corev1.ProtocolUDP {
				continue
			}
			k := portKey{types.NamespacedName{Namespace: sl.Namespace, Name: svcName}, ""}
			if p.Name != nil {
				k.name = *p.Name
			}
			for _, ep := range sl.Endpoints {
				if !endpointServing(ep.Conditions) {
					continue
				}
				for _, a := range ep.Addresses {
					ip, err := netip.ParseAddr(a)
					if err != nil {
						continue
					}
					if eps[k] == nil {
						eps[k] = map[netip.AddrPort]bool{}
					}
					eps[k][netip.AddrPortFrom(ip, uint16(*p.Port))] = true
				}
			}
		}
	}
	for _, svc := range services {
		if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		var ips []netip.Addr
		addIP := func(s string) {
			if ip, err := netip.ParseAddr(s); err == nil {
				ips = append(ips, ip)
			}
		}
		if len(svc.Spec.ClusterIPs) > 0 {
			for _, s := range svc.Spec.ClusterIPs {
				addIP(s)
			}
		} else {
			addIP(svc.Spec.ClusterIP)
		}
		for _, s := range svc.Spec.ExternalIPs {
			addIP(s)
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			addIP(ing.IP)
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol != corev1.ProtocolUDP {
				continue
			}
			st.services[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = true
			serving := eps[portKey{types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, sp.Name}]
			if serving == nil {
				serving = map[netip.AddrPort]bool{}
			}
			for _, ip := range ips {
				st.frontends[netip.AddrPortFrom(ip, uint16(sp.Port))] = serving
			}
			if sp.NodePort != 0 {
				st.nodePorts[uint16(sp.NodePort)] = serving
			}
		}
	}
	return st
}

// hasUDPPort reports whether svc has a UDP port that buildUDPState would
// count (headless and ExternalName Services have none).
func hasUDPPort(svc *corev1.Service) bool {
	if svc == nil || svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	for _, sp := range svc.Spec.Ports {
		if sp.Protocol == corev1.ProtocolUDP {
			return true
		}
	}
	return false
}

// staleUDPFilter is a netlink.CustomConntrackFilter matching the UDP conntrack
// entries that point where the current rules no longer send traffic, as
// kube-proxy's conntrack cleanup does:
//
//   - to a current frontend, answered by something that is not one of its
//     serving endpoints (a removed endpoint, or a flow that was never DNATed
//     because the Service had no rules yet): `conntrack -D -p udp --orig-dst
//     VIP --orig-port-dst P --reply-src EP`;
//   - to a current frontend without serving endpoints, when DNATed (reply
//     source differs from the original destination);
//   - to a frontend that existed at the previous sync and is gone (Service
//     deleted, port or IP removed): every entry;
//   - to a UDP node port (any local address), DNATed to a non-serving
//     endpoint; and to a node port that is gone, DNATed.
type staleUDPFilter struct {
	cur  udpState
	gone map[netip.AddrPort]bool
	// goneNodePorts are node ports in the previous state but not the current.
	goneNodePorts map[uint16]bool
}

var _ netlink.CustomConntrackFilter = (*staleUDPFilter)(nil)

// newStaleUDPFilter builds the filter for the transition prev → cur.
func newStaleUDPFilter(prev, cur udpState) *staleUDPFilter {
	f := &staleUDPFilter{cur: cur, gone: map[netip.AddrPort]bool{}, goneNodePorts: map[uint16]bool{}}
	for fe := range prev.frontends {
		if _, ok := cur.frontends[fe]; !ok {
			f.gone[fe] = true
		}
	}
	for np := range prev.nodePorts {
		if _, ok := cur.nodePorts[np]; !ok {
			f.goneNodePorts[np] = true
		}
	}
	return f
}

// families returns the address families (unix.AF_INET, AF_INET6) the filter
// can match, so callers dump only those conntrack tables.
func (f *staleUDPFilter) families() []uint8 {
	var v4, v6 bool
	note := func(a netip.Addr) {
		if a.Is4() || a.Is4In6() {
			v4 = true
		} else {
			v6 = true
		}
	}
	for fe := range f.cur.frontends {
		note(fe.Addr())
	}
	for fe := range f.gone {
		note(fe.Addr())
	}
	for _, m := range f.cur.nodePorts {
		for ep := range m {
			note(ep.Addr())
		}
	}
	if len(f.cur.nodePorts) > 0 || len(f.goneNodePorts) > 0 {
		v4 = true // node ports listen on every local address
	}
	var fams []uint8
	if v4 {
		fams = append(fams, unix.AF_INET)
	}
	if v6 {
		fams = append(fams, unix.AF_INET6)
	}
	return fams
}

func toAddrPort(ip net.IP, port uint16) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), port)
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f *staleUDPFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	dst := toAddrPort(flow.Forward.DstIP, flow.Forward.DstPort)
	replySrc := toAddrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort)
	natted := dst != replySrc
	if serving, ok := f.cur.frontends[dst]; ok {
		if len(serving) == 0 {
			return natted
		}
		return !serving[replySrc]
	}
	if f.gone[dst] {
		return true
	}
	if !natted {
		return false
	}
	if serving, ok := f.cur.nodePorts[dst.Port()]; ok {
		return !serving[replySrc]
	}
	return f.goneNodePorts[dst.Port()]
}
