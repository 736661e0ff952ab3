package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Lab is a running lab network: its nodes and pods, and the pods'
// workloads. Its methods are safe for concurrent use; they serialize on
// one lock, so each call sees the effects of the previous one.
type Lab struct {
	cfg       Config
	log       *slog.Logger
	k         kernel
	workloads map[string]Workload
	// modprobe loads a kernel module (modprobe NAME).
	modprobe func(ctx context.Context, module string) error

	mu     sync.Mutex
	nodes  map[string]NodeSpec // from the last Up
	pods   map[podKey]*podState
	closed bool
}

type podKey struct{ namespace, name string }

// podState is what the Lab remembers of a pod it ensured.
type podState struct {
	spec    PodSpec // normalized
	netnsID uint64  // the namespace its workload runs in
	run     *workloadRun
}

// New returns a Lab for cfg (zero fields take their defaults) without
// touching the kernel; Up builds the network. It fails only on an invalid
// config.
func New(cfg Config) (*Lab, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newLab(cfg, newLinuxKernel(cfg)), nil
}

// newLab builds a Lab on any kernel (the tests pass a fake).
func newLab(cfg Config, k kernel) *Lab {
	wl := map[string]Workload{"echo": Echo{}}
	for name, w := range cfg.Workloads {
		wl[name] = w
	}
	return &Lab{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "netlab", "lab", cfg.Name),
		k:         k,
		workloads: wl,
		modprobe:  runModprobe,
		nodes:     map[string]NodeSpec{},
		pods:      map[podKey]*podState{},
	}
}

// runModprobe is `modprobe MODULE`.
func runModprobe(ctx context.Context, module string) error {
	out, err := exec.CommandContext(ctx, "modprobe", module).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe %s: %w: %s", module, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Config returns the lab's config with defaults filled in.
func (l *Lab) Config() Config { return l.cfg }

// NodeNetnsPath is the path of node's namespace (for `ip netns exec`,
// iptables inside the node, DialInNetns). The namespace exists only after
// Up.
func (l *Lab) NodeNetnsPath(node string) string {
	return filepath.Join(l.cfg.NetnsDir, NodeNetnsName(l.cfg.Name, node))
}

// PodNetnsPath is the path of a pod's namespace; it exists only after
// EnsurePod.
func (l *Lab) PodNetnsPath(namespace, name string) string {
	return filepath.Join(l.cfg.NetnsDir, PodNetnsName(l.cfg.Name, namespace, name))
}

// Up builds (or, after a crash, adopts and repairs) the host link, the
// underlay and one namespace per node, and removes the namespaces of nodes
// no longer given (their pods lose their link until SyncPods moves or
// removes them). It is idempotent: a second call with the same nodes
// changes nothing.
func (l *Lab) Up(ctx context.Context, nodes []NodeSpec) error {
	if err := l.cfg.validateNodes(nodes); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b NodeSpec) int { return strings.Compare(a.Name, b.Name) })

	host, err := l.k.Open("")
	if err != nil {
		return fmt.Errorf("open host netns: %w", err)
	}
	defer host.Close()
	netName := NetNetnsName(l.cfg.Name)
	if _, err := ensureNetns(l.k, netName); err != nil {
		return err
	}
	under, err := l.k.Open(netName)
	if err != nil {
		return err
	}
	defer under.Close()

	// The underlay: a bridge in <Name>-net that is a pure switch (no
	// iptables on bridged frames), and the host's veth to it.
	if err := under.WriteSysctls(sysctl{bridgeNFKey, "0"}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := under.SetUp(loopback); err != nil {
		return err
	}
	if err := ensureBridge(under, netName, underlayBridge); err != nil {
		return err
	}
	if err := under.SetUp(underlayBridge); err != nil {
		return err
	}
	hostLink := HostLinkName(l.cfg.Name)
	// Routes of ranges a previous run recorded on the host link (before
	// this run overwrites the record) are the lab's too: replaced below.
	ranges := []netip.Prefix{l.cfg.PodCIDR, l.cfg.ServiceCIDR, l.cfg.LBPool}
	if li, ok, err := lookupLink(host, hostLink); err != nil {
		return err
	} else if ok && li.Kind == "veth" {
		for _, p := range aliasRanges(li.Alias) {
			if !slices.Contains(ranges, p) {
				ranges = append(ranges, p)
			}
		}
	}
	if _, err := ensureVethPair(host, "host netns", hostLink, under, netName, underlayHost); err != nil {
		return err
	}
	if err := host.SetAlias(hostLink, hostLinkAlias(l.cfg)); err != nil {
		return err
	}
	if err := ensureAddrs(host, hostLink, netip.PrefixFrom(hostIP(l.cfg), l.cfg.Underlay.Bits())); err != nil {
		return err
	}
	if err := host.SetUp(hostLink); err != nil {
		return err
	}
	if err := under.SetMaster(underlayHost, underlayBridge); err != nil {
		return err
	}
	if err := under.SetUp(underlayHost); err != nil {
		return err
	}
	if err := ensureRoutes(host, hostRoutes(l.cfg, nodes), ownsHostRoute(l.cfg.Name, ranges)); err != nil {
		return fmt.Errorf("host routes: %w", err)
	}

	want := map[string]bool{}
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.ensureNode(ctx, under, n, nodes); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		want[NodeNetnsName(l.cfg.Name, n.Name)] = true
	}
	ports := []string{underlayHost}
	for _, n := range nodes {
		ports = append(ports, underlayPortName(n.Name))
	}
	if err := waitLinksReady(ctx, host, "host netns", hostLink); err != nil {
		return err
	}
	if err := waitLinksReady(ctx, under, netName, ports...); err != nil {
		return err
	}
	names, err := l.k.ListNetns()
	if err != nil {
		return err
	}
	for _, name := range names {
		if isNodeNetns(l.cfg.Name, name) && !want[name] {
			l.log.Info("removing node that is no longer wanted", "netns", name)
			if err := deleteNetns(l.k, name, nodeUplink); err != nil {
				return err
			}
		}
	}
	l.nodes = map[string]NodeSpec{}
	for _, n := range nodes {
		l.nodes[n.Name] = n
	}
	l.log.Info("lab network up", "nodes", len(nodes))
	return nil
}

// ensureNode builds or repairs one node namespace.
func (l *Lab) ensureNode(ctx context.Context, under nsConn, n NodeSpec, all []NodeSpec) error {
	name := NodeNetnsName(l.cfg.Name, n.Name)
	created, err := ensureNetns(l.k, name)
	if err != nil {
		return err
	}
	c, err := l.k.Open(name)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.WriteSysctls(nodeSysctls()...); err != nil {
		return err
	}
	if err := l.enableBridgeNF(ctx, c, name); err != nil {
		return err
	}
	if err := c.SetUp(loopback); err != nil {
		return err
	}
	port := underlayPortName(n.Name)
	if _, err := ensureVethPair(c, name, nodeUplink, under, NetNetnsName(l.cfg.Name), port); err != nil {
		return err
	}
	if err := ensureAddrs(c, nodeUplink, netip.PrefixFrom(n.IP, l.cfg.Underlay.Bits())); err != nil {
		return err
	}
	if err := c.SetUp(nodeUplink); err != nil {
		return err
	}
	if err := under.SetMaster(port, underlayBridge); err != nil {
		return err
	}
	if err := under.SetUp(port); err != nil {
		return err
	}
	if err := ensureBridge(c, name, podBridge); err != nil {
		return err
	}
	if err := ensureAddrs(c, podBridge, netip.PrefixFrom(gatewayIP(n.PodCIDR), n.PodCIDR.Bits())); err != nil {
		return err
	}
	if err := c.SetUp(podBridge); err != nil {
		return err
	}
	if err := ensureRoutes(c, nodeRoutes(l.cfg, all, n.Name), ownsEveryRoute); err != nil {
		return err
	}
	if err := waitLinksReady(ctx, c, name, nodeUplink); err != nil {
		return err
	}
	l.log.Debug("node ready", "node", n.Name, "netns", name, "created", created)
	return nil
}

// enableBridgeNF sets net.bridge.bridge-nf-call-iptables=1 in a node, so
// that kube-proxy's rules see bridged pod-to-pod traffic (needed for the
// reply of a Service connection between two pods of one node). The sysctl
// exists per namespace (Linux ≥ 5.3) once br_netfilter is loaded; when it
// is missing, netlab runs `modprobe br_netfilter` once and retries.
func (l *Lab) enableBridgeNF(ctx context.Context, c nsConn, name string) error {
	err := c.WriteSysctls(sysctl{bridgeNFKey, "1"})
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	l.log.Info("loading br_netfilter", "reason", "net.bridge.bridge-nf-call-iptables missing in "+name)
	perr := l.modprobe(ctx, "br_netfilter")
	if err := c.WriteSysctls(sysctl{bridgeNFKey, "1"}); err == nil {
		return nil
	}
	return fmt.Errorf("%w: net.bridge.bridge-nf-call-iptables does not exist in %s (needs the br_netfilter module, per-netns since Linux 5.3): %v", ErrBridgeNetfilter, name, perr)
}

// deleteNetns removes a namespace of the lab, first deleting links whose
// peers live elsewhere (so the peers vanish now, not when the kernel
// eventually frees the namespace), then the namespace and its /etc/netns
// directory.
func deleteNetns(k kernel, name string, links ...string) error {
	if len(links) > 0 {
		c, err := k.Open(name)
		if err == nil {
			for _, l := range links {
				if err := c.DelLink(l); err != nil {
					c.Close()
					return err
				}
			}
			c.Close()
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return k.DelNetns(name)
}

// Close stops every workload and takes the lab's network down (Down): what
// Ctrl-C does. The Lab cannot be used afterwards; calling Close again
// returns nil.
func (l *Lab) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for key, st := range l.pods {
		if st.run != nil {
			if err := st.run.stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("pod %s/%s: %w", key.namespace, key.name, err))
			}
		}
	}
	l.pods = map[podKey]*podState{}
	if err := down(l.cfg, l.k, l.log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
