package netlab

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
)

// Default values for the zero fields of Config.
const (
	DefaultName          = "svclab"
	DefaultClusterDomain = "cluster.local"
	DefaultNetnsDir      = "/var/run/netns"
	DefaultEtcNetnsDir   = "/etc/netns"
)

// Default address ranges of the lab (see the package documentation).
var (
	DefaultUnderlay    = netip.MustParsePrefix("172.29.0.0/16")
	DefaultPodCIDR     = netip.MustParsePrefix("10.244.0.0/16")
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
	DefaultLBPool      = netip.MustParsePrefix("172.29.255.0/24")
	DefaultDNSServer   = netip.MustParseAddr("10.96.0.10")
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidConfig wraps every Config validation failure.
	ErrInvalidConfig = errors.New("invalid lab config")
	// ErrInvalidSpec wraps every NodeSpec or PodSpec validation failure.
	ErrInvalidSpec = errors.New("invalid spec")
	// ErrUnknownNode is returned by EnsurePod for a pod whose node was not
	// given to the last Up.
	ErrUnknownNode = errors.New("unknown node")
	// ErrNotFound is returned by ExecInPod and ExecInNode when the
	// namespace to enter does not exist.
	ErrNotFound = errors.New("not found")
	// ErrClosed is returned by every Lab method called after Close.
	ErrClosed = errors.New("lab closed")
	// ErrPreflight wraps every problem Preflight reports.
	ErrPreflight = errors.New("preflight")
	// ErrBridgeNetfilter is returned when net.bridge.bridge-nf-call-iptables
	// cannot be set inside a node (br_netfilter missing).
	ErrBridgeNetfilter = errors.New("bridge netfilter unavailable")
)

// Config describes one lab. Every name the lab creates (netns, links,
// files) derives from Name, so two labs with different names and
// non-overlapping ranges can run side by side. Zero fields take the
// defaults documented on each field.
type Config struct {
	// Name prefixes every netns, link and file of the lab; default
	// "svclab". It must be a lowercase DNS-label-like word of at most 32
	// characters whose '-'-separated parts after the first are not "net",
	// "node" or "pod" (so that Down of one lab never matches another's).
	Name string
	// Underlay is the network of the node IPs; the host holds its first
	// address (172.29.0.1) on the link "<Name>0". Default 172.29.0.0/16.
	Underlay netip.Prefix
	// PodCIDR is the cluster's pod network; default 10.244.0.0/16.
	PodCIDR netip.Prefix
	// ServiceCIDR is the Service (ClusterIP) network; default 10.96.0.0/12.
	ServiceCIDR netip.Prefix
	// LBPool holds LoadBalancer VIPs, routed by the host to the nodes
	// (ECMP); default 172.29.255.0/24. It may lie inside Underlay.
	LBPool netip.Prefix
	// DNSServer is the nameserver written into pods' resolv.conf; default
	// 10.96.0.10.
	DNSServer netip.Addr
	// ClusterDomain is the DNS suffix of the cluster; default cluster.local.
	ClusterDomain string
	// HostNetns is the path of the network namespace that plays the host;
	// "" means the calling process's network namespace.
	HostNetns string
	// NetnsDir is where named namespaces are bind-mounted; default
	// /var/run/netns (where `ip netns` looks).
	NetnsDir string
	// EtcNetnsDir holds per-namespace files (resolv.conf, hosts, hostname)
	// like `ip netns exec` expects; default /etc/netns.
	EtcNetnsDir string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Workloads are the workloads pods may name in PodSpec.Workload, by
	// name. "echo" is built in (Echo) and used when PodSpec.Workload is "";
	// an entry named "echo" replaces it.
	Workloads map[string]Workload
}

// NodeSpec is one node of the lab.
type NodeSpec struct {
	// Name is the node name, e.g. "node-1".
	Name string
	// IP is the node's address on the underlay (e.g. 172.29.0.2).
	IP netip.Addr
	// PodCIDR is the node's slice of Config.PodCIDR (e.g. 10.244.1.0/24);
	// its first address is the node's cni0 gateway.
	PodCIDR netip.Prefix
}

// PodSpec is one pod: a network namespace on Node with address IP.
type PodSpec struct {
	// Namespace and Name identify the pod (and name its netns, see
	// PodNetnsName).
	Namespace string
	Name      string
	// UID is informational, but a changed UID (the pod was re-created
	// under the same name) restarts the workload, like any spec change.
	UID string
	// Node names a node given to Up.
	Node string
	// IP must lie in the node's PodCIDR and differ from its gateway.
	IP netip.Addr
	// Ports are the pod's container ports, served by the workload.
	Ports []PortSpec
	// Workload names an entry of Config.Workloads; "" means "echo".
	Workload string
	// Hostname is the pod's hostname; "" means Name.
	Hostname string
}

// PortSpec is one container port.
type PortSpec struct {
	// Name is informational (Services may target ports by name).
	Name string
	Port int32
	// Protocol is "TCP", "UDP" or "SCTP"; "" means "TCP".
	Protocol string
}

// labRange is one of the lab's address ranges with the flag that sets it.
type labRange struct {
	what   string
	prefix netip.Prefix
	flag   string
}

func (c Config) ranges() []labRange {
	return []labRange{
		{"underlay", c.Underlay, "--underlay-cidr"},
		{"pod CIDR", c.PodCIDR, "--pod-cidr"},
		{"service CIDR", c.ServiceCIDR, "--service-cidr"},
		{"LoadBalancer pool", c.LBPool, "--lb-pool"},
	}
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !c.Underlay.IsValid() {
		c.Underlay = DefaultUnderlay
	}
	if !c.PodCIDR.IsValid() {
		c.PodCIDR = DefaultPodCIDR
	}
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if !c.LBPool.IsValid() {
		c.LBPool = DefaultLBPool
	}
	if !c.DNSServer.IsValid() {
		c.DNSServer = DefaultDNSServer
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	if c.NetnsDir == "" {
		c.NetnsDir = DefaultNetnsDir
	}
	if c.EtcNetnsDir == "" {
		c.EtcNetnsDir = DefaultEtcNetnsDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a defaulted Config.
func (c Config) validate() error {
	if err := validateLabName(c.Name); err != nil {
		return err
	}
	for _, r := range c.ranges() {
		if !r.prefix.Addr().Is4() {
			return fmt.Errorf("%w: %s %s is not IPv4", ErrInvalidConfig, r.what, r.prefix)
		}
		if r.prefix != r.prefix.Masked() {
			return fmt.Errorf("%w: %s %s is not a network address (did you mean %s?)", ErrInvalidConfig, r.what, r.prefix, r.prefix.Masked())
		}
	}
	if c.Underlay.Bits() > 29 {
		return fmt.Errorf("%w: underlay %s is too small (need /29 or larger)", ErrInvalidConfig, c.Underlay)
	}
	rs := c.ranges()
	for i := 0; i < len(rs); i++ {
		for j := i + 1; j < len(rs); j++ {
			a, b := rs[i], rs[j]
			if a.prefix.Overlaps(b.prefix) && !(a.what == "underlay" && b.what == "LoadBalancer pool" && a.prefix.Bits() < b.prefix.Bits()) {
				return fmt.Errorf("%w: %s %s overlaps %s %s", ErrInvalidConfig, a.what, a.prefix, b.what, b.prefix)
			}
		}
	}
	if c.LBPool.Contains(hostIP(c)) {
		return fmt.Errorf("%w: LoadBalancer pool %s contains the host address %s", ErrInvalidConfig, c.LBPool, hostIP(c))
	}
	if !c.DNSServer.Is4() {
		return fmt.Errorf("%w: DNS server %s is not IPv4", ErrInvalidConfig, c.DNSServer)
	}
	if strings.ContainsAny(c.ClusterDomain, " \t\n/") {
		return fmt.Errorf("%w: cluster domain %q", ErrInvalidConfig, c.ClusterDomain)
	}
	return nil
}

// validateNodes checks the nodes given to Up against the config and each
// other.
func (c Config) validateNodes(nodes []NodeSpec) error {
	names := map[string]bool{}
	ips := map[netip.Addr]string{}
	for i, n := range nodes {
		switch {
		case n.Name == "":
			return fmt.Errorf("%w: node %d has no name", ErrInvalidSpec, i)
		case names[n.Name]:
			return fmt.Errorf("%w: node %q given twice", ErrInvalidSpec, n.Name)
		case !n.IP.Is4() || !c.Underlay.Contains(n.IP):
			return fmt.Errorf("%w: node %q IP %s is not in the underlay %s", ErrInvalidSpec, n.Name, n.IP, c.Underlay)
		case n.IP == hostIP(c) || n.IP == c.Underlay.Addr() || n.IP == lastAddr(c.Underlay):
			return fmt.Errorf("%w: node %q IP %s is reserved (network, host or broadcast address)", ErrInvalidSpec, n.Name, n.IP)
		case c.LBPool.Contains(n.IP):
			return fmt.Errorf("%w: node %q IP %s is in the LoadBalancer pool %s", ErrInvalidSpec, n.Name, n.IP, c.LBPool)
		case ips[n.IP] != "":
			return fmt.Errorf("%w: nodes %q and %q share IP %s", ErrInvalidSpec, ips[n.IP], n.Name, n.IP)
		case !n.PodCIDR.IsValid() || n.PodCIDR != n.PodCIDR.Masked() || !n.PodCIDR.Addr().Is4():
			return fmt.Errorf("%w: node %q pod CIDR %s is not an IPv4 network address", ErrInvalidSpec, n.Name, n.PodCIDR)
		case n.PodCIDR.Bits() > 30 || n.PodCIDR.Bits() < c.PodCIDR.Bits() || !c.PodCIDR.Contains(n.PodCIDR.Addr()):
			return fmt.Errorf("%w: node %q pod CIDR %s is not a /30-or-larger part of %s", ErrInvalidSpec, n.Name, n.PodCIDR, c.PodCIDR)
		}
		for _, m := range nodes[:i] {
			if m.PodCIDR.Overlaps(n.PodCIDR) {
				return fmt.Errorf("%w: nodes %q and %q have overlapping pod CIDRs %s and %s", ErrInvalidSpec, m.Name, n.Name, m.PodCIDR, n.PodCIDR)
			}
		}
		names[n.Name] = true
		ips[n.IP] = n.Name
	}
	return nil
}

// normalizePod returns p with defaults filled in (Protocol TCP, Hostname,
// Workload "echo") and checks it against its node.
func normalizePod(p PodSpec, node NodeSpec) (PodSpec, error) {
	id := p.Namespace + "/" + p.Name
	if p.Namespace == "" || p.Name == "" {
		return p, fmt.Errorf("%w: pod %q needs a namespace and a name", ErrInvalidSpec, id)
	}
	if !p.IP.Is4() || !node.PodCIDR.Contains(p.IP) {
		return p, fmt.Errorf("%w: pod %s IP %s is not in node %q pod CIDR %s", ErrInvalidSpec, id, p.IP, node.Name, node.PodCIDR)
	}
	if p.IP == node.PodCIDR.Addr() || p.IP == gatewayIP(node.PodCIDR) || p.IP == lastAddr(node.PodCIDR) {
		return p, fmt.Errorf("%w: pod %s IP %s is reserved in %s (network, gateway or broadcast address)", ErrInvalidSpec, id, p.IP, node.PodCIDR)
	}
	if p.Hostname == "" {
		p.Hostname = p.Name
	}
	if p.Workload == "" {
		p.Workload = "echo"
	}
	ports := make([]PortSpec, 0, len(p.Ports))
	for _, pt := range p.Ports {
		if pt.Protocol == "" {
			pt.Protocol = "TCP"
		}
		pt.Protocol = strings.ToUpper(pt.Protocol)
		switch pt.Protocol {
		case "TCP", "UDP", "SCTP":
		default:
			return p, fmt.Errorf("%w: pod %s port %d has unknown protocol %q", ErrInvalidSpec, id, pt.Port, pt.Protocol)
		}
		if pt.Port < 1 || pt.Port > 65535 {
			return p, fmt.Errorf("%w: pod %s port %d is out of range", ErrInvalidSpec, id, pt.Port)
		}
		ports = append(ports, pt)
	}
	p.Ports = ports
	return p, nil
}

// hostIP is the host's address on the underlay: its first host address.
func hostIP(c Config) netip.Addr { return c.Underlay.Addr().Next() }

// gatewayIP is a node's cni0 address: the first host address of its pod CIDR.
func gatewayIP(podCIDR netip.Prefix) netip.Addr { return podCIDR.Addr().Next() }

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	hostBits := 32 - p.Bits()
	for i := 3; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		a[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	return netip.AddrFrom4(a)
}
