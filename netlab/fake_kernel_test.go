package netlab

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// fakeKernel models the kernel in memory for tests that run as any user.
// It rejects what the kernel would reject: duplicate or over-long link
// names, addresses on missing links, routes through links that are down
// or gateways that are not on-link, masters that are not bridges, hairpin
// on a link that is no bridge port, sysctls that do not exist. Deleting a
// veth deletes its peer; deleting a namespace deletes its links (and their
// peers elsewhere) — synchronously, where the kernel is eventually.
type fakeKernel struct {
	mu       sync.Mutex
	nextID   uint64
	ns       map[string]*fakeNS // "" is the host
	stale    map[string]bool    // plain files under the netns dir
	bridgeNF bool               // br_netfilter loaded: new namespaces have net/bridge sysctls
	listens  map[string]string  // "ns network address" -> loopback address actually bound
	notReady int                // LinkReady answers false this many times first
}

type fakeNS struct {
	name    string
	id      uint64
	links   map[string]*fakeLink
	routes  []route
	sysctls map[string]string
}

type fakeLink struct {
	name, kind string
	ns         *fakeNS
	up         bool
	master     string
	hairpin    bool
	alias      string
	addrs      []netip.Prefix
	peer       *fakeLink
}

var (
	_ kernel = (*fakeKernel)(nil)
	_ nsConn = (*fakeConn)(nil)
)

// newFakeKernel returns a kernel whose host has lo and an eth0 with
// 192.0.2.2/24 and a default route, like a small VM.
func newFakeKernel() *fakeKernel {
	k := &fakeKernel{ns: map[string]*fakeNS{}, stale: map[string]bool{}, bridgeNF: true, listens: map[string]string{}}
	host := k.newNS("")
	eth0 := &fakeLink{name: "eth0", kind: "device", ns: host, up: true}
	host.links["eth0"] = eth0
	k.addAddrLocked(eth0, mustPrefix("192.0.2.2/24"))
	host.routes = append(host.routes, route{Dst: mustPrefix("0.0.0.0/0"), Dev: "eth0", Gws: []netip.Addr{mustAddr("192.0.2.1")}, Proto: 3})
	return k
}

func (k *fakeKernel) newNS(name string) *fakeNS {
	k.nextID++
	n := &fakeNS{name: name, id: k.nextID, links: map[string]*fakeLink{}, sysctls: map[string]string{
		"net/ipv4/ip_forward":              "0",
		"net/ipv4/conf/all/rp_filter":      "0",
		"net/ipv4/conf/default/rp_filter":  "0",
		"net/ipv4/conf/all/route_localnet": "0",
	}}
	if k.bridgeNF {
		n.sysctls[bridgeNFKey] = "1"
	}
	n.links["lo"] = &fakeLink{name: "lo", kind: "device", ns: n}
	k.ns[name] = n
	return n
}

func errno(e syscall.Errno, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), e)
}

func (k *fakeKernel) AddNetns(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.ns[name]; ok || k.stale[name] || name == "" {
		return errno(syscall.EEXIST, "netns %s", name)
	}
	k.newNS(name)
	return nil
}

func (k *fakeKernel) DelNetns(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.stale, name)
	n, ok := k.ns[name]
	if !ok || name == "" {
		return nil
	}
	for _, l := range n.links {
		k.delLinkLocked(l)
	}
	delete(k.ns, name)
	return nil
}

func (k *fakeKernel) ListNetns() ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for name := range k.ns {
		if name != "" {
			out = append(out, name)
		}
	}
	for name := range k.stale {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

func (k *fakeKernel) NetnsID(name string) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stale[name] {
		return 0, fmt.Errorf("%s: %w", name, errStaleNetns)
	}
	n, ok := k.ns[name]
	if !ok {
		return 0, errno(syscall.ENOENT, "netns %s", name)
	}
	return n.id, nil
}

func (k *fakeKernel) Open(name string) (nsConn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, ok := k.ns[name]
	if !ok {
		return nil, errno(syscall.ENOENT, "open netns %s", name)
	}
	return &fakeConn{k: k, n: n}, nil
}

// Listen binds a loopback port instead (every fake namespace would
// otherwise want the same port) and records where.
func (k *fakeKernel) Listen(nsName, network, address string) (net.Listener, error) {
	k.mu.Lock()
	_, ok := k.ns[nsName]
	k.mu.Unlock()
	if !ok {
		return nil, errno(syscall.ENOENT, "netns %s", nsName)
	}
	ln, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.listens[nsName+" "+network+" "+address] = ln.Addr().String()
	k.mu.Unlock()
	return ln, nil
}

func (k *fakeKernel) ListenPacket(nsName, network, address string) (net.PacketConn, error) {
	k.mu.Lock()
	_, ok := k.ns[nsName]
	k.mu.Unlock()
	if !ok {
		return nil, errno(syscall.ENOENT, "netns %s", nsName)
	}
	pc, err := net.ListenPacket(network, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.listens[nsName+" "+network+" "+address] = pc.LocalAddr().String()
	k.mu.Unlock()
	return pc, nil
}

// listenAddr is where a fake namespace's socket really listens.
func (k *fakeKernel) listenAddr(nsName, network, address string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.listens[nsName+" "+network+" "+address]
}

// delLinkLocked deletes l, its veth peer and everything that refers to them.
func (k *fakeKernel) delLinkLocked(l *fakeLink) {
	for _, x := range []*fakeLink{l, l.peer} {
		if x == nil || x.ns.links[x.name] != x {
			continue
		}
		delete(x.ns.links, x.name)
		x.ns.routes = slices.DeleteFunc(x.ns.routes, func(r route) bool { return r.Dev == x.name })
		for _, o := range x.ns.links {
			if o.master == x.name {
				o.master, o.hairpin = "", false
			}
		}
	}
}

func (k *fakeKernel) addAddrLocked(l *fakeLink, p netip.Prefix) {
	l.addrs = append(l.addrs, p)
	if p.Bits() < 32 {
		l.ns.routes = append(l.ns.routes, route{Dst: p.Masked(), Dev: l.name, Proto: protoKernel})
	}
}

// dump renders every namespace, for whole-state comparisons.
func (k *fakeKernel) dump() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var names []string
	for name := range k.ns {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		n := k.ns[name]
		if name == "" {
			name = "(host)"
		}
		fmt.Fprintf(&b, "netns %s\n", name)
		var lnames []string
		for ln := range n.links {
			lnames = append(lnames, ln)
		}
		sort.Strings(lnames)
		for _, ln := range lnames {
			l := n.links[ln]
			fmt.Fprintf(&b, "  link %s %s", l.name, l.kind)
			if l.up {
				b.WriteString(" up")
			}
			if l.master != "" {
				fmt.Fprintf(&b, " master %s", l.master)
			}
			if l.hairpin {
				b.WriteString(" hairpin")
			}
			if l.peer != nil {
				pn := l.peer.ns.name
				if pn == "" {
					pn = "(host)"
				}
				fmt.Fprintf(&b, " peer %s/%s", pn, l.peer.name)
			}
			if l.alias != "" {
				fmt.Fprintf(&b, " alias %q", l.alias)
			}
			b.WriteString("\n")
			addrs := slices.Clone(l.addrs)
			slices.SortFunc(addrs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
			for _, a := range addrs {
				fmt.Fprintf(&b, "    addr %s\n", a)
			}
		}
		var rs []string
		for _, r := range n.routes {
			rs = append(rs, fmt.Sprintf("  route %s proto %d\n", r, r.Proto))
		}
		sort.Strings(rs)
		b.WriteString(strings.Join(rs, ""))
		var ss []string
		for key, v := range n.sysctls {
			ss = append(ss, fmt.Sprintf("  sysctl %s=%s\n", key, v))
		}
		sort.Strings(ss)
		b.WriteString(strings.Join(ss, ""))
	}
	return b.String()
}

// fakeConn is an open fake namespace. Like an fd, it keeps working on a
// namespace deleted meanwhile (which is then unreachable for others).
type fakeConn struct {
	k *fakeKernel
	n *fakeNS
}

func (c *fakeConn) Close() error { return nil }

func (c *fakeConn) link(name string) (*fakeLink, error) {
	l, ok := c.n.links[name]
	if !ok {
		return nil, fmt.Errorf("link %q in %s: %w", name, c.n.name, fs.ErrNotExist)
	}
	return l, nil
}

func (c *fakeConn) info(l *fakeLink) linkInfo {
	return linkInfo{Name: l.name, Kind: l.kind, Up: l.up, Master: l.master, Alias: l.alias}
}

func (c *fakeConn) Link(name string) (linkInfo, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(name)
	if err != nil {
		return linkInfo{}, err
	}
	return c.info(l), nil
}

func (c *fakeConn) Links() ([]linkInfo, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	var out []linkInfo
	for _, l := range c.n.links {
		out = append(out, c.info(l))
	}
	sortLinks(out)
	return out, nil
}

func checkIfName(name string) error {
	if name == "" || len(name) > maxIfName || strings.ContainsAny(name, "/ :") {
		return errno(syscall.EINVAL, "interface name %q", name)
	}
	return nil
}

func (c *fakeConn) AddBridge(name string, mac net.HardwareAddr) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	if err := checkIfName(name); err != nil {
		return err
	}
	if _, ok := c.n.links[name]; ok {
		return errno(syscall.EEXIST, "link %s", name)
	}
	if len(mac) != 6 || mac[0]&1 != 0 {
		return errno(syscall.EADDRNOTAVAIL, "bridge MAC %s", mac)
	}
	c.n.links[name] = &fakeLink{name: name, kind: "bridge", ns: c.n}
	return nil
}

func (c *fakeConn) AddVeth(name string, peerNS nsConn, peerName string) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	p := peerNS.(*fakeConn).n
	if err := checkIfName(name); err != nil {
		return err
	}
	if err := checkIfName(peerName); err != nil {
		return err
	}
	if _, ok := c.n.links[name]; ok {
		return errno(syscall.EEXIST, "link %s", name)
	}
	if _, ok := p.links[peerName]; ok || (p == c.n && name == peerName) {
		return errno(syscall.EEXIST, "peer link %s", peerName)
	}
	a := &fakeLink{name: name, kind: "veth", ns: c.n}
	b := &fakeLink{name: peerName, kind: "veth", ns: p}
	a.peer, b.peer = b, a
	c.n.links[name], p.links[peerName] = a, b
	return nil
}

func (c *fakeConn) DelLink(name string) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	if l, ok := c.n.links[name]; ok {
		if l.kind == "device" {
			return errno(syscall.EOPNOTSUPP, "delete %s", name) // lo and physical devices
		}
		c.k.delLinkLocked(l)
	}
	return nil
}

// ready mirrors the kernel: a veth passes traffic when both ends are up, a
// bridge when one of its ports does, a port when it and its bridge are up.
func (c *fakeConn) ready(l *fakeLink) bool {
	switch {
	case !l.up:
		return false
	case l.kind == "veth" && (l.peer == nil || !l.peer.up):
		return false
	case l.kind == "bridge":
		for _, p := range c.n.links {
			if p.master == l.name && p.up && (p.peer == nil || p.peer.up) {
				return true
			}
		}
		return false
	case l.master != "":
		m := c.n.links[l.master]
		return m != nil && m.up
	}
	return true
}

func (c *fakeConn) LinkReady(name string) (bool, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(name)
	if err != nil {
		return false, err
	}
	if c.k.notReady > 0 {
		c.k.notReady--
		return false, nil
	}
	return c.ready(l), nil
}

func (c *fakeConn) SetUp(name string) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(name)
	if err != nil {
		return err
	}
	l.up = true
	return nil
}

func (c *fakeConn) SetMaster(name, bridge string) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(name)
	if err != nil {
		return err
	}
	br, err := c.link(bridge)
	if err != nil {
		return err
	}
	if br.kind != "bridge" || l == br {
		return errno(syscall.EOPNOTSUPP, "master %s of %s", bridge, name)
	}
	if l.master != bridge {
		l.master, l.hairpin = bridge, false
	}
	return nil
}

func (c *fakeConn) SetHairpin(name string, on bool) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(name)
	if err != nil {
		return err
	}
	if l.master == "" {
		return errno(syscall.EOPNOTSUPP, "hairpin on %s: not a bridge port", name)
	}
	l.hairpin = on
	return nil
}

func (c *fakeConn) SetAlias(name, alias string) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(name)
	if err != nil {
		return err
	}
	l.alias = alias
	return nil
}

func (c *fakeConn) Addrs(link string) ([]netip.Prefix, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(link)
	if err != nil {
		return nil, err
	}
	return slices.Clone(l.addrs), nil
}

func (c *fakeConn) AddAddr(link string, p netip.Prefix) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(link)
	if err != nil {
		return err
	}
	if slices.Contains(l.addrs, p) {
		return errno(syscall.EEXIST, "address %s on %s", p, link)
	}
	c.k.addAddrLocked(l, p)
	return nil
}

func (c *fakeConn) DelAddr(link string, p netip.Prefix) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	l, err := c.link(link)
	if err != nil {
		return err
	}
	i := slices.Index(l.addrs, p)
	if i < 0 {
		return errno(syscall.EADDRNOTAVAIL, "address %s on %s", p, link)
	}
	l.addrs = slices.Delete(l.addrs, i, i+1)
	c.n.routes = slices.DeleteFunc(c.n.routes, func(r route) bool {
		return r.Proto == protoKernel && r.Dev == link && r.Dst == p.Masked()
	})
	return nil
}

func (c *fakeConn) Routes() ([]route, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	out := slices.Clone(c.n.routes)
	for i := range out {
		out[i].Gws = slices.Clone(out[i].Gws)
	}
	return out, nil
}

func (c *fakeConn) ReplaceRoute(r route) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	if r.Dst != r.Dst.Masked() {
		return errno(syscall.EINVAL, "route %s: not a network", r)
	}
	if r.Type == routeUnreachable {
		if r.Dev != "" || len(r.Gws) > 0 {
			return errno(syscall.EINVAL, "route %s: unreachable routes take no nexthop", r)
		}
	} else {
		l, err := c.link(r.Dev)
		if err != nil {
			return errno(syscall.ENODEV, "route %s", r)
		}
		if !l.up {
			return errno(syscall.ENETDOWN, "route %s: nexthop device is not up", r)
		}
		for _, gw := range r.Gws {
			onLink := slices.ContainsFunc(c.n.routes, func(k route) bool {
				return k.Proto == protoKernel && k.Dev == r.Dev && k.Dst.Contains(gw)
			})
			if !onLink {
				return errno(syscall.ENETUNREACH, "route %s: gateway %s is not on-link", r, gw)
			}
		}
	}
	r.Proto = routeProto
	r.Gws = sortedAddrs(r.Gws)
	c.n.routes = slices.DeleteFunc(c.n.routes, func(h route) bool { return h.Dst == r.Dst && h.Proto != protoKernel })
	c.n.routes = append(c.n.routes, r)
	return nil
}

func (c *fakeConn) DelRoute(r route) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	for i, h := range c.n.routes {
		if h.Dst == r.Dst && h.Type == r.Type && (r.Proto == 0 || h.Proto == r.Proto) {
			c.n.routes = slices.Delete(c.n.routes, i, i+1)
			return nil
		}
	}
	return nil
}

func (c *fakeConn) WriteSysctls(kvs ...sysctl) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	for _, kv := range kvs {
		if _, ok := c.n.sysctls[kv.Key]; !ok {
			return fmt.Errorf("sysctl %s in %s: %w", kv.Key, c.n.name, fs.ErrNotExist)
		}
		c.n.sysctls[kv.Key] = kv.Value
	}
	return nil
}

func (c *fakeConn) ReadSysctl(key string) (string, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	v, ok := c.n.sysctls[key]
	if !ok {
		return "", fmt.Errorf("sysctl %s in %s: %w", key, c.n.name, fs.ErrNotExist)
	}
	return v, nil
}

// damage applies one external change to the fake (a crash half-way, a
// user poking around), for convergence tests.
func (k *fakeKernel) damage(pick func(n int) int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var names []string
	for name := range k.ns {
		if name != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "nothing to damage"
	}
	sort.Strings(names)
	n := k.ns[names[pick(len(names))]]
	switch pick(4) {
	case 0:
		for _, l := range n.links {
			k.delLinkLocked(l)
		}
		delete(k.ns, n.name)
		return "deleted netns " + n.name
	case 1:
		var ls []string
		for name, l := range n.links {
			if l.kind != "device" {
				ls = append(ls, name)
			}
		}
		if len(ls) == 0 {
			return "no link to delete in " + n.name
		}
		sort.Strings(ls)
		l := n.links[ls[pick(len(ls))]]
		k.delLinkLocked(l)
		return "deleted link " + l.name + " in " + n.name
	case 2:
		n.routes = slices.DeleteFunc(n.routes, func(r route) bool { return r.Proto == routeProto })
		return "deleted routes in " + n.name
	default:
		for _, l := range n.links {
			l.addrs = nil
		}
		n.routes = slices.DeleteFunc(n.routes, func(r route) bool { return r.Proto == protoKernel })
		return "deleted addresses in " + n.name
	}
}

var errFake = errors.New("fake failure")
