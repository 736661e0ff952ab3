package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onThread is the package's one place that switches namespaces. It runs
// fn on a fresh goroutine locked to its OS thread after enter has moved
// that thread (into another netns, or a new one). Afterwards the thread
// goes back to its original netns and returns to the runtime's pool; when
// it cannot go back, or when reusable is false (fn changed more than the
// netns, e.g. the mount namespace), the thread stays locked and the
// runtime destroys it when the goroutine exits, so no other goroutine ever
// runs in the wrong namespace.
func onThread(enter func() error, fn func() error, reusable bool) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			// Neither setns nor unshare moves the thread when they fail.
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if !reusable {
			errc <- ferr // the thread dies with this goroutine
			return
		}
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
			return // still locked: the runtime discards the thread
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// inNetnsPath runs fn on a thread inside the namespace at path.
func inNetnsPath(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns %s: %w", path, err)
		}
		return nil
	}, fn, true)
}

// DialInNetns dials address from inside the network namespace at nsPath
// (a pod's or node's, see PodNetnsPath and NodeNetnsPath): the socket is
// created there, so the connection's source address and routing are the
// namespace's. address must be an IP literal and port (no name
// resolution happens inside the namespace). The returned connection may
// be used from any goroutine.
func DialInNetns(ctx context.Context, nsPath, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNetnsPath(nsPath, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// ListenInNetns listens on address inside the network namespace at nsPath
// (e.g. a node's, see NodeNetnsPath): the socket belongs to that namespace,
// so it accepts what reaches the namespace's addresses. The listener may be
// used from any goroutine.
func ListenInNetns(nsPath, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := inNetnsPath(nsPath, func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// linuxKernel implements kernel with netlink and netns.
type linuxKernel struct {
	netnsDir string
	hostPath string

	dirOnce sync.Mutex
	dirOK   bool
}

var _ kernel = (*linuxKernel)(nil)

func newLinuxKernel(cfg Config) *linuxKernel {
	cfg = cfg.withDefaults()
	host := cfg.HostNetns
	if host == "" {
		host = "/proc/self/ns/net"
	}
	return &linuxKernel{netnsDir: cfg.NetnsDir, hostPath: host}
}

func (k *linuxKernel) path(name string) string {
	if name == "" {
		return k.hostPath
	}
	return filepath.Join(k.netnsDir, name)
}

// ensureNetnsDir makes the netns directory a shared mount point, as `ip
// netns add` does, so namespace mounts propagate to (and unmounts from)
// every mount namespace.
func (k *linuxKernel) ensureNetnsDir() error {
	k.dirOnce.Lock()
	defer k.dirOnce.Unlock()
	if k.dirOK {
		return nil
	}
	if err := os.MkdirAll(k.netnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", k.netnsDir, err)
	}
	made := false
	for {
		err := unix.Mount("", k.netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("make %s a shared mount: %w", k.netnsDir, err)
		}
		// mount --bind DIR DIR: upgrade the directory to a mount point.
		if err := unix.Mount(k.netnsDir, k.netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s onto itself: %w", k.netnsDir, err)
		}
		made = true
	}
	k.dirOK = true
	return nil
}

// AddNetns is `ip netns add NAME`: unshare a new netns on a locked thread
// and bind-mount it onto NetnsDir/NAME.
func (k *linuxKernel) AddNetns(name string) error {
	if err := k.ensureNetnsDir(); err != nil {
		return err
	}
	p := k.path(name)
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns: %w", err)
		}
		return nil
	}, func() error {
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount netns onto %s: %w", p, err)
		}
		return nil
	}, true)
	if err != nil {
		os.Remove(p)
		return err
	}
	return nil
}

// DelNetns is `ip netns del NAME`: lazily unmount, then unlink.
func (k *linuxKernel) DelNetns(name string) error {
	p := k.path(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// ListNetns is `ip netns list`; a missing directory lists nothing.
func (k *linuxKernel) ListNetns() ([]string, error) {
	ents, err := os.ReadDir(k.netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", k.netnsDir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// NetnsID returns the nsfs inode behind name.
func (k *linuxKernel) NetnsID(name string) (uint64, error) {
	p := k.path(name)
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", p, err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return 0, fmt.Errorf("%s: %w", p, errStaleNetns)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", p, err)
	}
	return st.Ino, nil
}

// Open opens the namespace and a netlink handle bound to it.
func (k *linuxKernel) Open(name string) (nsConn, error) {
	p := k.path(name)
	ns, err := netns.GetFromPath(p)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", p, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", p, err)
	}
	return &linuxConn{path: p, ns: ns, h: h}, nil
}

// Listen opens a listener inside the namespace.
func (k *linuxKernel) Listen(nsName, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := inNetnsPath(k.path(nsName), func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket inside the namespace.
func (k *linuxKernel) ListenPacket(nsName, network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := inNetnsPath(k.path(nsName), func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// linuxConn is one open namespace.
type linuxConn struct {
	path string
	ns   netns.NsHandle
	h    *netlink.Handle
	raw  *nl.SocketHandle // for AF_BRIDGE dumps netlink.Handle does not offer; lazily opened
}

var _ nsConn = (*linuxConn)(nil)

func (c *linuxConn) Close() error {
	c.h.Close()
	if c.raw != nil {
		c.raw.Socket.Close()
	}
	return c.ns.Close()
}

// retryDump repeats a netlink dump interrupted by a concurrent change.
func retryDump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < 5 {
			continue
		}
		return v, err
	}
}

// byName looks a link up, mapping "not found" to fs.ErrNotExist.
func (c *linuxConn) byName(name string) (netlink.Link, error) {
	l, err := c.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("link %q in %s: %w", name, c.path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("link %q in %s: %w", name, c.path, err)
	}
	return l, nil
}

func (c *linuxConn) info(l netlink.Link) linkInfo {
	a := l.Attrs()
	li := linkInfo{Name: a.Name, Kind: l.Type(), Up: a.Flags&net.FlagUp != 0, Alias: a.Alias}
	if a.MasterIndex != 0 {
		if m, err := c.h.LinkByIndex(a.MasterIndex); err == nil {
			li.Master = m.Attrs().Name
		} else {
			li.Master = fmt.Sprintf("if%d", a.MasterIndex)
		}
	}
	return li
}

// Link is `ip -d link show NAME`.
func (c *linuxConn) Link(name string) (linkInfo, error) {
	l, err := c.byName(name)
	if err != nil {
		return linkInfo{}, err
	}
	return c.info(l), nil
}

// Links is `ip -d link show`.
func (c *linuxConn) Links() ([]linkInfo, error) {
	ls, err := retryDump(c.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", c.path, err)
	}
	out := make([]linkInfo, 0, len(ls))
	for _, l := range ls {
		out = append(out, c.info(l))
	}
	return out, nil
}

// AddBridge is `ip link add NAME address MAC type bridge`.
func (c *linuxConn) AddBridge(name string, mac net.HardwareAddr) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}}
	if err := c.h.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %q in %s: %w", name, c.path, err)
	}
	return nil
}

// AddVeth is `ip link add NAME type veth peer name PEER netns PEERNS`.
func (c *linuxConn) AddVeth(name string, peerNS nsConn, peerName string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peerName}
	if p, ok := peerNS.(*linuxConn); ok && p != c {
		v.PeerNamespace = netlink.NsFd(int(p.ns))
	}
	if err := c.h.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %q in %s (peer %q): %w", name, c.path, peerName, err)
	}
	return nil
}

// DelLink is `ip link del NAME`.
func (c *linuxConn) DelLink(name string) error {
	l, err := c.byName(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %q in %s: %w", name, c.path, err)
	}
	return nil
}

// brStateForwarding is BR_STATE_FORWARDING.
const brStateForwarding = 3

// LinkReady is `ip -d link show NAME`: state UP (or UNKNOWN, like lo) and,
// for a bridge port, "bridge_slave state forwarding".
func (c *linuxConn) LinkReady(name string) (bool, error) {
	l, err := c.byName(name)
	if err != nil {
		return false, err
	}
	a := l.Attrs()
	if a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
		return false, nil
	}
	if a.MasterIndex == 0 {
		return true, nil
	}
	state, err := c.portState(a.Index)
	if err != nil {
		return false, err
	}
	return state == brStateForwarding, nil
}

// portState reads IFLA_BRPORT_STATE of a bridge port from an AF_BRIDGE
// link dump (bridge link show).
func (c *linuxConn) portState(index int) (uint8, error) {
	if c.raw == nil {
		s, err := nl.GetNetlinkSocketAt(c.ns, netns.None(), unix.NETLINK_ROUTE)
		if err != nil {
			return 0, fmt.Errorf("netlink socket in %s: %w", c.path, err)
		}
		c.raw = &nl.SocketHandle{Socket: s}
	}
	msgs, err := retryDump(func() ([][]byte, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: c.raw}
		return req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	})
	if err != nil {
		return 0, fmt.Errorf("bridge link show in %s: %w", c.path, err)
	}
	for _, m := range msgs {
		ifi := nl.DeserializeIfInfomsg(m)
		if int(ifi.Index) != index {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[ifi.Len():])
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_PROTINFO {
				continue
			}
			infos, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return 0, err
			}
			for _, info := range infos {
				if info.Attr.Type == nl.IFLA_BRPORT_STATE && len(info.Value) > 0 {
					return info.Value[0], nil
				}
			}
		}
	}
	return 0, fmt.Errorf("bridge port %d in %s: %w", index, c.path, fs.ErrNotExist)
}

// SetUp is `ip link set NAME up`.
func (c *linuxConn) SetUp(name string) error {
	l, err := c.byName(name)
	if err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := c.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %q up in %s: %w", name, c.path, err)
	}
	return nil
}

// SetMaster is `ip link set NAME master BRIDGE`.
func (c *linuxConn) SetMaster(name, bridge string) error {
	l, err := c.byName(name)
	if err != nil {
		return err
	}
	br, err := c.byName(bridge)
	if err != nil {
		return err
	}
	if l.Attrs().MasterIndex == br.Attrs().Index {
		return nil
	}
	if err := c.h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
		return fmt.Errorf("set %q master %q in %s: %w", name, bridge, c.path, err)
	}
	return nil
}

// SetHairpin is `bridge link set dev NAME hairpin on|off`.
func (c *linuxConn) SetHairpin(name string, on bool) error {
	l, err := c.byName(name)
	if err != nil {
		return err
	}
	if err := c.h.LinkSetHairpin(l, on); err != nil {
		return fmt.Errorf("set hairpin %v on %q in %s: %w", on, name, c.path, err)
	}
	return nil
}

// SetAlias is `ip link set NAME alias TEXT`.
func (c *linuxConn) SetAlias(name, alias string) error {
	l, err := c.byName(name)
	if err != nil {
		return err
	}
	if l.Attrs().Alias == alias {
		return nil
	}
	if err := c.h.LinkSetAlias(l, alias); err != nil {
		return fmt.Errorf("set alias of %q in %s: %w", name, c.path, err)
	}
	return nil
}

// Addrs is `ip -4 addr show dev NAME`.
func (c *linuxConn) Addrs(link string) ([]netip.Prefix, error) {
	l, err := c.byName(link)
	if err != nil {
		return nil, err
	}
	as, err := retryDump(func() ([]netlink.Addr, error) { return c.h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q in %s: %w", link, c.path, err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if p, ok := prefixFromIPNet(a.IPNet, false); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// AddAddr is `ip addr add P dev NAME`.
func (c *linuxConn) AddAddr(link string, p netip.Prefix) error {
	l, err := c.byName(link)
	if err != nil {
		return err
	}
	if err := c.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
		return fmt.Errorf("add address %s to %q in %s: %w", p, link, c.path, err)
	}
	return nil
}

// DelAddr is `ip addr del P dev NAME`.
func (c *linuxConn) DelAddr(link string, p netip.Prefix) error {
	l, err := c.byName(link)
	if err != nil {
		return err
	}
	if err := c.h.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
		return fmt.Errorf("delete address %s from %q in %s: %w", p, link, c.path, err)
	}
	return nil
}

// Routes is `ip -4 route show table main`.
func (c *linuxConn) Routes() ([]route, error) {
	rs, err := retryDump(func() ([]netlink.Route, error) {
		return c.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes in %s: %w", c.path, err)
	}
	names := map[int]string{}
	name := func(idx int) string {
		if idx == 0 {
			return ""
		}
		if n, ok := names[idx]; ok {
			return n
		}
		n := fmt.Sprintf("if%d", idx)
		if l, err := c.h.LinkByIndex(idx); err == nil {
			n = l.Attrs().Name
		}
		names[idx] = n
		return n
	}
	out := make([]route, 0, len(rs))
	for _, r := range rs {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			p, ok := prefixFromIPNet(r.Dst, true)
			if !ok {
				continue
			}
			dst = p
		}
		rt := route{Dst: dst, Proto: int(r.Protocol), Dev: name(r.LinkIndex)}
		switch r.Type {
		case unix.RTN_UNICAST:
			rt.Type = routeUnicast
		case unix.RTN_UNREACHABLE:
			rt.Type = routeUnreachable
		default:
			rt.Type = routeOther
		}
		if gw, ok := netip.AddrFromSlice(r.Gw.To4()); ok && r.Gw != nil {
			rt.Gws = []netip.Addr{gw}
		}
		for _, nh := range r.MultiPath {
			if gw, ok := netip.AddrFromSlice(nh.Gw.To4()); ok && nh.Gw != nil {
				rt.Gws = append(rt.Gws, gw)
			}
			if rt.Dev == "" {
				rt.Dev = name(nh.LinkIndex)
			}
		}
		rt.Gws = sortedAddrs(rt.Gws)
		out = append(out, rt)
	}
	return out, nil
}

// nlRoute converts r for netlink (main table, protocol routeProto).
func (c *linuxConn) nlRoute(r route) (*netlink.Route, error) {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Table: unix.RT_TABLE_MAIN, Protocol: routeProto}
	if r.Type == routeUnreachable {
		nr.Type = unix.RTN_UNREACHABLE
		return nr, nil
	}
	nr.Type = unix.RTN_UNICAST
	l, err := c.byName(r.Dev)
	if err != nil {
		return nil, err
	}
	idx := l.Attrs().Index
	switch len(r.Gws) {
	case 0:
		nr.LinkIndex, nr.Scope = idx, netlink.SCOPE_LINK
	case 1:
		nr.LinkIndex, nr.Gw = idx, r.Gws[0].AsSlice()
	default:
		for _, gw := range r.Gws {
			nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{LinkIndex: idx, Gw: gw.AsSlice()})
		}
	}
	return nr, nil
}

// ReplaceRoute is `ip route replace R proto 115`.
func (c *linuxConn) ReplaceRoute(r route) error {
	nr, err := c.nlRoute(r)
	if err != nil {
		return fmt.Errorf("route %s: %w", r, err)
	}
	if err := c.h.RouteReplace(nr); err != nil {
		return fmt.Errorf("replace route %s in %s: %w", r, c.path, err)
	}
	return nil
}

// DelRoute is `ip route del [unreachable] DST proto P`.
func (c *linuxConn) DelRoute(r route) error {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Table: unix.RT_TABLE_MAIN, Protocol: netlink.RouteProtocol(r.Proto), Scope: netlink.SCOPE_NOWHERE}
	switch r.Type {
	case routeUnreachable:
		nr.Type = unix.RTN_UNREACHABLE
	case routeUnicast:
		nr.Type = unix.RTN_UNICAST
	}
	if err := c.h.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete route %s in %s: %w", r, c.path, err)
	}
	return nil
}

// WriteSysctls writes /proc/sys/KEY from a thread inside the namespace
// (sysctl -w, as `ip netns exec NS sysctl -w` would).
func (c *linuxConn) WriteSysctls(kvs ...sysctl) error {
	return inNetnsPath(c.path, func() error {
		for _, kv := range kvs {
			if err := os.WriteFile("/proc/sys/"+kv.Key, []byte(kv.Value), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", strings.ReplaceAll(kv.Key, "/", "."), kv.Value, c.path, err)
			}
		}
		return nil
	})
}

// ReadSysctl reads /proc/sys/KEY from a thread inside the namespace.
func (c *linuxConn) ReadSysctl(key string) (string, error) {
	var v string
	err := inNetnsPath(c.path, func() error {
		b, err := os.ReadFile("/proc/sys/" + key)
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in %s: %w", key, c.path, err)
	}
	return v, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixFromIPNet converts an IPv4 net.IPNet; masked keeps only the
// network part (for routes), otherwise the host address is kept.
func prefixFromIPNet(n *net.IPNet, masked bool) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok || n.IP.To4() == nil {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(a, ones)
	if masked {
		p = p.Masked()
	}
	return p, true
}

// sortLinks orders links by name (for stable dumps).
func sortLinks(ls []linkInfo) {
	slices.SortFunc(ls, func(a, b linkInfo) int { return strings.Compare(a.Name, b.Name) })
}
