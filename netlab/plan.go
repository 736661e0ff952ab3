package netlab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Pure functions: the routes, addresses, sysctls and files the lab wants,
// computed from the config and the specs, with no I/O.

// hostRoutes are the routes the lab adds to the host namespace: the pod
// and service ranges unreachable (a mistyped curl fails at once instead of
// leaving through the default gateway), and the LoadBalancer pool routed
// to every node (ECMP), like a cloud load balancer that keeps the
// destination address. With no nodes the pool is unreachable too.
func hostRoutes(c Config, nodes []NodeSpec) []route {
	rs := []route{
		{Dst: c.PodCIDR, Type: routeUnreachable},
		{Dst: c.ServiceCIDR, Type: routeUnreachable},
	}
	var gws []netip.Addr
	for _, n := range nodes {
		gws = append(gws, n.IP)
	}
	if len(gws) == 0 {
		return append(rs, route{Dst: c.LBPool, Type: routeUnreachable})
	}
	return append(rs, route{Dst: c.LBPool, Dev: HostLinkName(c.Name), Gws: sortedAddrs(gws)})
}

// ownsHostRoute is the ownership rule in the host namespace: only routes
// netlab marked, for one of the lab's ranges (from cfg or from the host
// link's alias after a crash), either unreachable or through the host link.
func ownsHostRoute(labName string, ranges []netip.Prefix) func(route) bool {
	link := HostLinkName(labName)
	return func(r route) bool {
		return r.Proto == routeProto && slices.Contains(ranges, r.Dst) &&
			(r.Type == routeUnreachable || r.Dev == link)
	}
}

// nodeRoutes are the routes inside node self: every other node's pod CIDR
// via that node (host-gw), and an on-link route for the service range and
// for a LoadBalancer pool outside the underlay, so that the node's own
// sockets find a route to a ClusterIP before kube-proxy's OUTPUT DNAT
// rewrites it (like a real node's default route, without one: nothing
// leaves the lab).
func nodeRoutes(c Config, nodes []NodeSpec, self string) []route {
	var rs []route
	for _, n := range nodes {
		if n.Name != self {
			rs = append(rs, route{Dst: n.PodCIDR, Dev: nodeUplink, Gws: []netip.Addr{n.IP}})
		}
	}
	rs = append(rs, route{Dst: c.ServiceCIDR, Dev: nodeUplink})
	if !c.Underlay.Contains(c.LBPool.Addr()) {
		rs = append(rs, route{Dst: c.LBPool, Dev: nodeUplink})
	}
	return rs
}

// nodeSysctls are the sysctls of a node namespace (see the package doc).
func nodeSysctls() []sysctl {
	return []sysctl{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
	}
}

// bridgeNFKey is net.bridge.bridge-nf-call-iptables.
const bridgeNFKey = "net/bridge/bridge-nf-call-iptables"

// podRoutes are a pod's routes: the default route via its node's cni0.
func podRoutes(node NodeSpec) []route {
	return []route{{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Dev: podIface, Gws: []netip.Addr{gatewayIP(node.PodCIDR)}}}
}

// resolvConf is a pod's /etc/resolv.conf, as the kubelet writes it for
// dnsPolicy ClusterFirst.
func resolvConf(c Config, namespace string) string {
	return fmt.Sprintf("nameserver %s\nsearch %s.svc.%s svc.%s %s\noptions ndots:5\n",
		c.DNSServer, namespace, c.ClusterDomain, c.ClusterDomain, c.ClusterDomain)
}

// hostsFile is a pod's /etc/hosts, as the kubelet writes it.
func hostsFile(p PodSpec) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	fmt.Fprintf(&b, "%s\t%s\n", p.IP, p.Hostname)
	return b.String()
}

// hostLinkAlias records the lab's ranges on the host link, so Down finds
// the host routes after a crash even when called with other ranges.
func hostLinkAlias(c Config) string {
	return fmt.Sprintf("svclab lab=%s pod=%s service=%s lb=%s", c.Name, c.PodCIDR, c.ServiceCIDR, c.LBPool)
}

// aliasRanges parses hostLinkAlias; unknown text yields nothing.
func aliasRanges(alias string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Fields(alias) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "lab" {
			continue
		}
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}
