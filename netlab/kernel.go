package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// kernel is the part of the Linux kernel netlab drives: named network
// namespaces and, inside each, links, addresses, routes and sysctls. The
// Lab owns this interface; linuxKernel implements it with netlink and
// netns, and the tests' fakeKernel models it in memory.
//
// Namespace names are relative to the lab's netns directory; the name ""
// is the host namespace. Missing things are reported with errors that
// match fs.ErrNotExist, existing ones with fs.ErrExist.
type kernel interface {
	// AddNetns creates a named namespace (ip netns add NAME).
	AddNetns(name string) error
	// DelNetns removes a named namespace (ip netns del NAME); nil when absent.
	DelNetns(name string) error
	// ListNetns lists the named namespaces (ip netns list).
	ListNetns() ([]string, error)
	// NetnsID identifies the namespace behind name (its nsfs inode), so a
	// namespace deleted and re-created under the same name is noticed. It
	// returns errStaleNetns for a name that is a plain file, not a mount.
	NetnsID(name string) (uint64, error)
	// Open returns a connection to the namespace's links, routes and sysctls.
	Open(name string) (nsConn, error)
	// Listen opens a stream listener inside the namespace.
	Listen(nsName, network, address string) (net.Listener, error)
	// ListenPacket opens a packet socket inside the namespace.
	ListenPacket(nsName, network, address string) (net.PacketConn, error)
}

// nsConn manipulates one namespace. All setters are idempotent.
type nsConn interface {
	Close() error
	// Link returns one link (ip -d link show NAME).
	Link(name string) (linkInfo, error)
	// Links returns every link (ip -d link show).
	Links() ([]linkInfo, error)
	// AddBridge creates a bridge with a fixed MAC (ip link add NAME address MAC type bridge).
	AddBridge(name string, mac net.HardwareAddr) error
	// AddVeth creates a veth pair with its peer in peerNS (ip link add NAME type veth peer PEER netns PEERNS).
	AddVeth(name string, peerNS nsConn, peerName string) error
	// DelLink deletes a link, and a veth's peer with it (ip link del NAME); nil when absent.
	DelLink(name string) error
	// LinkReady reports whether a link passes traffic: operationally up
	// (the kernel's link watcher has seen its carrier) and, for a bridge
	// port, forwarding (ip -d link show NAME: "state UP … bridge_slave
	// state forwarding"). Right after `ip link set up` this is false for a
	// few milliseconds, during which packets are dropped.
	LinkReady(name string) (bool, error)
	// SetUp brings a link up (ip link set NAME up).
	SetUp(name string) error
	// SetMaster enslaves a link to a bridge (ip link set NAME master BRIDGE).
	SetMaster(name, bridge string) error
	// SetHairpin sets a bridge port's hairpin mode (bridge link set dev NAME hairpin on).
	SetHairpin(name string, on bool) error
	// SetAlias sets a link's alias (ip link set NAME alias TEXT).
	SetAlias(name, alias string) error
	// Addrs lists a link's IPv4 addresses (ip -4 addr show dev NAME).
	Addrs(link string) ([]netip.Prefix, error)
	// AddAddr adds an IPv4 address (ip addr add P dev NAME).
	AddAddr(link string, p netip.Prefix) error
	// DelAddr removes an IPv4 address (ip addr del P dev NAME).
	DelAddr(link string, p netip.Prefix) error
	// Routes lists the IPv4 routes of the main table (ip route show), including the kernel's connected routes.
	Routes() ([]route, error)
	// ReplaceRoute adds or replaces a route in the main table with protocol routeProto (ip route replace …).
	ReplaceRoute(r route) error
	// DelRoute deletes a route; nil when absent (ip route del …).
	DelRoute(r route) error
	// WriteSysctls writes sysctls inside the namespace, keys like
	// "net/ipv4/ip_forward" (echo V > /proc/sys/KEY); a missing key
	// matches fs.ErrNotExist.
	WriteSysctls(kvs ...sysctl) error
	// ReadSysctl reads one sysctl inside the namespace.
	ReadSysctl(key string) (string, error)
}

// errStaleNetns marks a namespace file that is not a mounted namespace
// (left behind by a crash between creating the file and mounting it).
var errStaleNetns = errors.New("netns file is not a mounted namespace")

// sysctl is one /proc/sys key and value.
type sysctl struct{ Key, Value string }

// linkInfo is what netlab needs to know about a link.
type linkInfo struct {
	Name   string
	Kind   string // "veth", "bridge", "device" (lo), …
	Up     bool
	Master string // bridge this link is a port of, "" if none
	Alias  string
}

// routeProto marks every route netlab adds (ip route … proto 115), so
// that Down and Preflight can tell the lab's routes from the host's.
const routeProto = 115

// routeType is a route's rtm_type as netlab uses it.
type routeType int

const (
	routeUnicast routeType = iota
	routeUnreachable
	routeOther // local, broadcast, blackhole, … (never written by netlab)
)

// route is an IPv4 route of the main table.
type route struct {
	Dst  netip.Prefix
	Type routeType
	// Dev is the output link ("" for unreachable routes).
	Dev string
	// Gws are the gateways: none for an on-link (scope link) route, one
	// for "via", several for an ECMP multipath route (sorted).
	Gws []netip.Addr
	// Proto is the routing protocol (2 kernel, 4 static, routeProto netlab).
	Proto int
}

// String renders r like `ip route`: "10.244.2.0/24 via 172.29.0.3 dev
// eth0", "unreachable 10.96.0.0/12", "172.29.255.0/24 nexthop via
// 172.29.0.2 dev svclab0 nexthop via 172.29.0.3 dev svclab0".
func (r route) String() string {
	var b strings.Builder
	switch r.Type {
	case routeUnreachable:
		b.WriteString("unreachable ")
	case routeOther:
		b.WriteString("other ")
	}
	b.WriteString(r.Dst.String())
	switch len(r.Gws) {
	case 0:
		if r.Dev != "" {
			fmt.Fprintf(&b, " dev %s", r.Dev)
		}
	case 1:
		fmt.Fprintf(&b, " via %s dev %s", r.Gws[0], r.Dev)
	default:
		for _, gw := range r.Gws {
			fmt.Fprintf(&b, " nexthop via %s dev %s", gw, r.Dev)
		}
	}
	return b.String()
}

// sameRoute compares routes as netlab writes them (ignoring Proto).
func sameRoute(a, b route) bool { return a.String() == b.String() }

// sortedAddrs returns a sorted copy of addrs.
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	s := slices.Clone(addrs)
	slices.SortFunc(s, func(a, b netip.Addr) int { return a.Compare(b) })
	return s
}
