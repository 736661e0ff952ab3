// Command svclab turns a Linux machine into a Kubernetes Service networking lab: fake nodes and
// pods made of network namespaces and veth pairs, Kubernetes objects behind a Kubernetes-shaped
// REST API, kube-proxy's iptables rules inside every node, cluster DNS, and a web UI.
//
//	svclab up     [--nodes 2] [--data /var/lib/svclab] [--listen 127.0.0.1:8080] [--demo] …
//	svclab down   [--purge]
//	svclab rules  -f objects.yaml [--node N --node-ip IP --cluster-cidr CIDR]
//	svclab exec   [-n NS] POD -- CMD…
//	svclab exec   --node node-1 -- CMD…
//	svclab version
//
// main wires the packages together and holds no logic of its own.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/svclab/svclab/apiserver"
	"github.com/svclab/svclab/apiserver/admission"
	"github.com/svclab/svclab/apiserver/controllers"
	"github.com/svclab/svclab/apiserver/informer"
	"github.com/svclab/svclab/apiserver/store"
	"github.com/svclab/svclab/dataplane"
	"github.com/svclab/svclab/dns"
	"github.com/svclab/svclab/netlab"
	"github.com/svclab/svclab/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "v0.1.0-dev"

const usage = `svclab — a Kubernetes Service networking lab on one machine

Usage:
  svclab up     [flags]                 start the lab (root; --no-network needs no root)
  svclab down   [--name N] [--purge]    remove everything the lab made; --purge also the store
  svclab rules  -f FILE [flags]         print the iptables-restore payload kube-proxy would write
  svclab exec   [-n NS] POD -- CMD…     run a command inside a pod's network namespace
  svclab exec   --node NODE -- CMD…     run a command inside a node's network namespace
  svclab version

Run 'svclab COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors whose message already says what to do; run prints them as they are.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "up":
		err = cmdUp(context.Background(), rest, stdout, stderr)
	case "down":
		err = cmdDown(rest, stdout, stderr)
	case "rules":
		err = cmdRules(rest, stdout, stderr)
	case "exec":
		err = cmdExec(rest, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "svclab %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "svclab: unknown command %q; run 'svclab help' for the list\n", cmd)
		return 2
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var exitErr *exitCodeError
	if errors.As(err, &exitErr) {
		return exitErr.code
	}
	fmt.Fprintf(stderr, "svclab %s: %s\n", cmd, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// exitCodeError passes a child's exit code through without a message.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// labFlags are the flags every command that finds a lab's namespaces shares.
type labFlags struct {
	name string
}

func (l *labFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.name, "name", "svclab", "lab name: prefix of every namespace, link and file the lab makes")
}

func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: svclab %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// cmdRules prints what kube-proxy would write for the Services and EndpointSlices in a manifest,
// with no root and no running lab.
func cmdRules(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules", stderr, "rules -f FILE [--node NAME --node-ip IP --cluster-cidr CIDR]")
	file := fs.String("f", "", "multi-document YAML with Services and EndpointSlices (or Pods to derive them); - for stdin")
	node := fs.String("node", "node-1", "the node whose rules to render (endpoints on it are local)")
	nodeIP := fs.String("node-ip", "172.29.0.2", "the node's IP")
	clusterCIDR := fs.String("cluster-cidr", "10.244.0.0/16", "the pod network (kube-proxy --cluster-cidr); empty for none")
	masqAll := fs.Bool("masquerade-all", false, "SNAT all traffic to cluster IPs (kube-proxy --masquerade-all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("%w: -f FILE is required (a YAML with Services and EndpointSlices, e.g. examples/)", errUsage)
	}
	ip, err := netip.ParseAddr(*nodeIP)
	if err != nil {
		return fmt.Errorf("%w: --node-ip %q is not an IP address", errUsage, *nodeIP)
	}
	cfg := dataplane.Config{MasqueradeAll: *masqAll}
	if *clusterCIDR != "" {
		if cfg.ClusterCIDR, err = netip.ParsePrefix(*clusterCIDR); err != nil {
			return fmt.Errorf("%w: --cluster-cidr %q is not a CIDR", errUsage, *clusterCIDR)
		}
	}
	var in io.Reader = os.Stdin
	if *file != "-" {
		r, err := readManifests(*file)
		if err != nil {
			return err
		}
		in = r
	}
	payload, err := dataplane.RenderManifests(in, dataplane.Node{Name: *node, IPs: []netip.Addr{ip}}, cfg)
	if err != nil {
		return err
	}
	_, err = stdout.Write(payload)
	return err
}

// readManifests reads a file, or every *.yaml/*.yml/*.json file of a directory in name order,
// joined as one multi-document YAML stream.
func readManifests(path string) (io.Reader, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	if !st.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		return f, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	var buf bytes.Buffer
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		b, err := os.ReadFile(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		buf.WriteString("\n---\n")
		buf.Write(b)
	}
	return &buf, nil
}

// cmdExec runs a command inside a pod's (or a node's) network namespace. On success it does not
// return: the process is replaced by the command, so its exit code and output pass through.
func cmdExec(args []string, stderr io.Writer) error {
	fs := newFlagSet("exec", stderr, "exec [-n NAMESPACE] POD -- CMD… | exec --node NODE -- CMD…")
	var lf labFlags
	lf.register(fs)
	ns := fs.String("n", "default", "the pod's namespace")
	node := fs.String("node", "", "run in this node's network namespace instead of a pod's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	pod := ""
	if *node == "" {
		if len(rest) == 0 || rest[0] == "--" {
			return fmt.Errorf("%w: name a pod: svclab exec [-n NS] POD -- CMD…", errUsage)
		}
		pod, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return fmt.Errorf("%w: give a command after --, e.g. svclab exec client -- curl -s http://10.96.0.100:6379/", errUsage)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("entering a network namespace needs root: sudo svclab exec …")
	}
	cfg := netlab.Config{Name: lf.name}
	if *node != "" {
		return netlab.ExecInNode(cfg, *node, rest)
	}
	return netlab.ExecInPod(cfg, *ns, pod, rest)
}

// cmdDown removes every namespace, link, route, file and rule a lab made, also after a crash.
func cmdDown(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("down", stderr, "down [--name N] [--purge] [--data DIR]")
	var lf labFlags
	lf.register(fs)
	purge := fs.Bool("purge", false, "also delete the store (--data)")
	data := fs.String("data", defaultDataDir(), "the store's directory (with --purge)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("removing network namespaces needs root: sudo svclab down")
	}
	if err := netlab.Down(netlab.Config{Name: lf.name}); err != nil {
		return fmt.Errorf("take lab %q down: %w", lf.name, err)
	}
	if *purge {
		for _, f := range []string{storeFile(*data, lf.name), apiCertFile(*data, lf.name)} {
			if err := os.RemoveAll(f); err != nil {
				return fmt.Errorf("purge store: %w", err)
			}
		}
		fmt.Fprintf(stdout, "lab %q is down; store %s deleted\n", lf.name, storeFile(*data, lf.name))
		return nil
	}
	fmt.Fprintf(stdout, "lab %q is down (the store in %s is kept; --purge deletes it)\n", lf.name, *data)
	return nil
}

// defaultDataDir is /var/lib/svclab for root, and ~/.local/share/svclab for a user (who can only
// run --no-network labs), so that `svclab up --no-network` works without sudo.
func defaultDataDir() string {
	if os.Geteuid() != 0 {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "share", "svclab")
		}
	}
	return "/var/lib/svclab"
}

// storeFile is the bbolt file of a lab inside the data directory.
func storeFile(dataDir, name string) string {
	return filepath.Join(dataDir, name+".db")
}

// examplesFS holds the seed's manifests that `up --demo` applies.
//
//go:embed examples/*.yaml
var examplesFS embed.FS

// upOptions are the flags of `svclab up`.
type upOptions struct {
	labFlags
	nodes         int
	data          string
	listen        string
	securePort    int
	serviceCIDR   string
	podCIDR       string
	underlay      string
	lbPool        string
	nodePortRange string
	clusterDomain string
	dnsListen     string
	dnsUpstream   string
	dnsTTL        uint
	noNetwork     bool
	demo          bool
	logLevel      string
	masqAll       bool
	syncPeriod    time.Duration
	minSync       time.Duration
	iptables      string
}

func (o *upOptions) register(fs *flag.FlagSet) {
	o.labFlags.register(fs)
	fs.IntVar(&o.nodes, "nodes", 2, "number of nodes (node-1…node-N)")
	fs.StringVar(&o.data, "data", defaultDataDir(), "directory of the store (<name>.db)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address of the API and the web UI (kubectl's default server is localhost:8080)")
	fs.IntVar(&o.securePort, "secure-port", 6443, "port of the API's HTTPS listener on node-1's address (172.29.0.2, where kind's control-plane node is), the endpoint of the kubernetes Service, so pods reach the API at https://kubernetes.default as in a cluster (kube-apiserver --secure-port); it serves the lab's addresses only; 0 disables")
	fs.StringVar(&o.serviceCIDR, "service-cidr", "10.96.0.0/12", "cluster IP range (kube-apiserver --service-cluster-ip-range)")
	fs.StringVar(&o.podCIDR, "pod-cidr", "10.244.0.0/16", "pod network; node-N gets the N-th /24 (kube-proxy --cluster-cidr)")
	fs.StringVar(&o.underlay, "underlay-cidr", "172.29.0.0/16", "node network; the host is .1, node-N is .(N+1)")
	fs.StringVar(&o.lbPool, "lb-pool", "172.29.255.0/24", "LoadBalancer IP pool, routed from the host to the nodes")
	fs.StringVar(&o.nodePortRange, "node-port-range", "30000-32767", "NodePort range (kube-apiserver --service-node-port-range)")
	fs.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "DNS zone of the cluster")
	fs.StringVar(&o.dnsListen, "dns-listen", "127.0.0.1:1053", "host address where the cluster DNS also answers (UDP and TCP); empty to disable")
	fs.StringVar(&o.dnsUpstream, "dns-upstream", "", "resolver(s) for names outside the cluster, host:port[,host:port]; default: the host's /etc/resolv.conf")
	fs.UintVar(&o.dnsTTL, "dns-ttl", 5, "TTL of cluster DNS answers, seconds")
	fs.BoolVar(&o.noNetwork, "no-network", false, "no namespaces and no iptables: a simulated node side (no root needed)")
	fs.BoolVar(&o.demo, "demo", false, "apply the seed's examples (examples/) and print what to try")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.masqAll, "masquerade-all", false, "SNAT all traffic to cluster IPs (kube-proxy --masquerade-all)")
	fs.StringVar(&o.iptables, "iptables", "auto", "iptables backend of the nodes' rules: auto (what `iptables` is on this machine, so `iptables -nL` in a node shows them), nft or legacy (faster full syncs at 10,000 Services; no kernel traces)")
	fs.DurationVar(&o.syncPeriod, "iptables-sync-period", 30*time.Second, "how often each node's proxy checks its canary chains and resyncs if they are gone (kube-proxy --iptables-sync-period)")
	fs.DurationVar(&o.minSync, "iptables-min-sync-period", 0, "least time between two syncs of a node (kube-proxy --iptables-min-sync-period, 1s there); 0 syncs as soon as a change arrives, coalescing bursts")
}

// upConfig is upOptions parsed and checked.
type upConfig struct {
	serviceCIDR, podCIDR, underlay, lbPool netip.Prefix
	nodePorts                              utilnet.PortRange
	backend                                dataplane.IPTablesBackend
	upstreams                              []string
	logger                                 *slog.Logger
}

func (o *upOptions) parse(stderr io.Writer) (*upConfig, error) {
	var c upConfig
	var err error
	for _, p := range []struct {
		flag, val string
		dst       *netip.Prefix
	}{
		{"--service-cidr", o.serviceCIDR, &c.serviceCIDR},
		{"--pod-cidr", o.podCIDR, &c.podCIDR},
		{"--underlay-cidr", o.underlay, &c.underlay},
		{"--lb-pool", o.lbPool, &c.lbPool},
	} {
		if *p.dst, err = netip.ParsePrefix(p.val); err != nil {
			return nil, fmt.Errorf("%w: %s %q is not a CIDR (e.g. 10.96.0.0/12)", errUsage, p.flag, p.val)
		}
		*p.dst = p.dst.Masked()
	}
	pr, err := utilnet.ParsePortRange(o.nodePortRange)
	if err != nil {
		return nil, fmt.Errorf("%w: --node-port-range %q: want FIRST-LAST, e.g. 30000-32767", errUsage, o.nodePortRange)
	}
	c.nodePorts = *pr
	if c.backend, err = dataplane.ParseBackend(o.iptables); err != nil {
		return nil, fmt.Errorf("%w: --iptables %q: want auto, nft or legacy", errUsage, o.iptables)
	}
	if o.securePort < 0 || o.securePort > 65535 {
		return nil, fmt.Errorf("%w: --secure-port %d: want 1 to 65535, or 0 for none", errUsage, o.securePort)
	}
	if o.nodes < 1 || o.nodes > 250 {
		return nil, fmt.Errorf("%w: --nodes %d: want 1 to 250", errUsage, o.nodes)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, o.logLevel)
	}
	c.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(c.logger) // packages that log through slog.Default write to the same place
	if o.dnsUpstream != "" {
		for _, u := range strings.Split(o.dnsUpstream, ",") {
			u = strings.TrimSpace(u)
			if _, _, err := net.SplitHostPort(u); err != nil {
				u = net.JoinHostPort(u, "53")
			}
			c.upstreams = append(c.upstreams, u)
		}
	} else if ups, err := dns.UpstreamsFromResolvConf("/etc/resolv.conf"); err == nil {
		c.upstreams = ups
	}
	return &c, nil
}

// cmdUp starts a lab and runs it until SIGINT or SIGTERM; then it takes the network down and keeps
// the store, so the next `up` rebuilds the same lab with the same IPs.
func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", stderr, "up [flags]")
	var o upOptions
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	c, err := o.parse(stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runLab(ctx, &o, c, stdout)
}

// runLab wires the control plane, the node side, the dataplane and the DNS together and serves
// the API until ctx is done.
func runLab(ctx context.Context, o *upOptions, c *upConfig, stdout io.Writer) error {
	log := c.logger
	started := time.Now()
	dnsIP := admission.DNSServiceIP(c.serviceCIDR)
	labCfg := netlab.Config{
		Name: o.name, Underlay: c.underlay, PodCIDR: c.podCIDR, ServiceCIDR: c.serviceCIDR,
		LBPool: c.lbPool, DNSServer: dnsIP, ClusterDomain: o.clusterDomain, Logger: log,
	}
	if !o.noNetwork {
		if err := netlab.Preflight(labCfg); err != nil {
			return err
		}
	}

	// The kubernetes Service's endpoint is the API's HTTPS listener on
	// node-1's address, as kind's is its control-plane node's: every pod
	// reaches node-1, while the host cannot answer pods (no masquerading
	// agent). Without a network (or with --secure-port 0) it has none.
	var apiAddr netip.Addr
	if !o.noNetwork && o.securePort != 0 {
		apiAddr = controllers.NodeIP(c.underlay, 1)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := apiserver.Open(ctx, apiserver.Config{
		Path: storeFile(o.data, o.name), Nodes: o.nodes,
		ServiceCIDR: c.serviceCIDR, PodCIDR: c.podCIDR, Underlay: c.underlay, LBPool: c.lbPool,
		NodePortRange: c.nodePorts, Logger: log, Registerer: reg,
		APIServerAddress: apiAddr, APIServerPort: int32(o.securePort),
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	idx := dns.NewIndex(o.clusterDomain)
	dnsSrv := dns.NewServer(dns.Config{TTL: uint32(o.dnsTTL), Upstreams: c.upstreams, Logger: log, Registerer: reg}, idx)

	g, gctx := errgroup.WithContext(ctx)
	var (
		rt       controllers.PodRuntime
		lab      *netlab.Lab
		proxiers []*dataplane.Proxier
	)
	if !o.noNetwork {
		labCfg.Workloads = map[string]netlab.Workload{controllers.WorkloadDNS: dnsWorkload(dnsSrv, reg)}
		if lab, err = netlab.New(labCfg); err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := lab.Close(cctx); err != nil {
				log.Error("take the lab network down", "err", err)
			}
		}()
		nodes, _, err := srv.Store.List(ctx, store.Nodes, "", store.ListOptions{})
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		specs, err := nodeSpecs(nodes)
		if err != nil {
			return err
		}
		if err := lab.Up(ctx, specs); err != nil {
			return fmt.Errorf("build the lab network: %w", err)
		}
		rt = podRuntime{lab}
		metrics, err := dataplane.NewMetrics(reg)
		if err != nil {
			return fmt.Errorf("register dataplane metrics: %w", err)
		}
		for _, n := range specs {
			p, err := dataplane.NewProxier(dataplane.ProxierConfig{
				Node:          dataplane.Node{Name: n.Name, IPs: []netip.Addr{n.IP}},
				Config:        dataplane.Config{ClusterCIDR: c.podCIDR, MasqueradeAll: o.masqAll},
				NetnsPath:     lab.NodeNetnsPath(n.Name),
				Logger:        log,
				Metrics:       metrics,
				SyncPeriod:    o.syncPeriod,
				MinSyncPeriod: o.minSync,
				Backend:       c.backend,
			})
			if err != nil {
				return fmt.Errorf("start the proxy of %s: %w", n.Name, err)
			}
			proxiers = append(proxiers, p)
			g.Go(func() error { return p.Run(gctx) })
		}
	}

	g.Go(func() error { return srv.Run(gctx, rt) })
	feedInformers(gctx, g, srv.Store, idx, proxiers, log)
	if o.dnsListen != "" {
		if err := serveHostDNS(gctx, g, o.dnsListen, dnsSrv); err != nil {
			return err
		}
	}

	ready := func() error {
		for _, p := range proxiers {
			if p.Status().LastSync.IsZero() {
				return fmt.Errorf("the proxy of %s has not synced yet", p.Node().Name)
			}
		}
		return nil
	}
	backend := &labBackend{st: srv.Store, lab: lab, proxiers: map[string]*dataplane.Proxier{}, labCfg: labCfg,
		dpCfg: dataplane.Config{ClusterCIDR: c.podCIDR, MasqueradeAll: o.masqAll}}
	for _, p := range proxiers {
		backend.proxiers[p.Node().Name] = p
	}
	handler := srv.Handler(func(r *mux.Router) {
		r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		examples, _ := fs.Sub(examplesFS, "examples")
		var wb web.Backend = backend
		if lab != nil {
			wb = liveBackend{backend}
		}
		web.Register(r, wb, web.Options{Logger: log, ClusterCIDR: c.podCIDR, Examples: examples})
	}, ready)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", o.listen, err)
	}
	serveHTTP(gctx, g, &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}, ln, "the API")
	if apiAddr.IsValid() {
		if err := serveLabAPI(gctx, g, handler, lab, apiAddr, o, c); err != nil {
			return errors.Join(err, g.Wait())
		}
	}

	if err := srv.WaitSynced(gctx); err != nil {
		return errors.Join(fmt.Errorf("start the controllers: %w", err), g.Wait())
	}
	for _, p := range proxiers {
		if err := p.WaitForSync(gctx); err != nil {
			return errors.Join(fmt.Errorf("first sync of %s: %w", p.Node().Name, err), g.Wait())
		}
	}
	log.Info("lab is up", "name", o.name, "nodes", o.nodes, "network", !o.noNetwork,
		"api", "http://"+ln.Addr().String(), "took", time.Since(started).Round(time.Millisecond))
	if o.demo {
		if err := applyDemo(gctx, handler, stdout); err != nil {
			log.Error("apply the demo manifests", "err", err)
		}
		printDemoBanner(stdout, ln.Addr().String(), c, o)
	}
	err = g.Wait()
	if ctx.Err() != nil {
		log.Info("stopping: taking the lab network down; the store is kept", "store", storeFile(o.data, o.name))
	}
	return err
}

// serveLabAPI serves the API over HTTPS on addr:--secure-port inside the
// namespace of the node that has addr: the kubernetes Service's endpoint,
// for the lab's addresses only (the API has no authentication). The
// self-signed serving certificate is made at start and written to
// <data>/<name>-apiserver.crt for `curl --cacert`.
func serveLabAPI(ctx context.Context, g *errgroup.Group, handler http.Handler, lab *netlab.Lab, addr netip.Addr, o *upOptions, c *upConfig) error {
	cert, certPEM, err := apiserver.ServingCert(o.clusterDomain, []netip.Addr{admission.KubernetesServiceIP(c.serviceCIDR), addr}, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(apiCertFile(o.data, o.name), certPEM, 0o644); err != nil {
		return fmt.Errorf("write the API's certificate: %w", err)
	}
	hostPort := netip.AddrPortFrom(addr, uint16(o.securePort)).String()
	ln, err := netlab.ListenInNetns(lab.NodeNetnsPath(controllers.NodeName(1)), "tcp", hostPort)
	if err != nil {
		return fmt.Errorf("listen on %s (--secure-port, the kubernetes Service's endpoint): %w", hostPort, err)
	}
	ln = tls.NewListener(apiserver.SourceFilter(ln, []netip.Prefix{c.podCIDR, c.underlay}, c.logger), &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	})
	serveHTTP(ctx, g, &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(c.logger.Handler(), slog.LevelDebug)}, ln, "the API on "+hostPort)
	c.logger.Info("API for pods", "kubernetes", admission.KubernetesServiceIP(c.serviceCIDR).String()+":443", "endpoint", hostPort, "cert", apiCertFile(o.data, o.name))
	return nil
}

// serveHTTP serves srv on ln in g until ctx ends, then shuts it down (5 s grace); what names
// the server in errors.
func serveHTTP(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener, what string) {
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s: %w", what, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}

// apiCertFile is where up writes the serving certificate of the API's HTTPS listener.
func apiCertFile(dataDir, name string) string {
	return filepath.Join(dataDir, name+"-apiserver.crt")
}

// nodeSpecs turns the stored Nodes into netlab's node specs.
func nodeSpecs(nodes []store.Object) ([]netlab.NodeSpec, error) {
	var specs []netlab.NodeSpec
	for _, obj := range nodes {
		n := obj.(*corev1.Node)
		spec := netlab.NodeSpec{Name: n.Name}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				spec.IP, _ = netip.ParseAddr(a.Address)
			}
		}
		spec.PodCIDR, _ = netip.ParsePrefix(n.Spec.PodCIDR)
		if !spec.IP.IsValid() || !spec.PodCIDR.IsValid() {
			return nil, fmt.Errorf("node %s has no InternalIP or podCIDR", n.Name)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// podRuntime drives netlab as the kubelet's node side.
type podRuntime struct{ lab *netlab.Lab }

var _ controllers.PodRuntime = podRuntime{}

func podSpec(pod *corev1.Pod, ip netip.Addr) netlab.PodSpec {
	spec := netlab.PodSpec{
		Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName,
		IP: ip, Workload: pod.Annotations[controllers.AnnotationWorkload], Hostname: pod.Spec.Hostname,
	}
	if spec.Workload == "echo" {
		spec.Workload = ""
	}
	for _, ctr := range pod.Spec.Containers {
		for _, p := range ctr.Ports {
			spec.Ports = append(spec.Ports, netlab.PortSpec{Name: p.Name, Port: p.ContainerPort, Protocol: string(p.Protocol)})
		}
	}
	return spec
}

func (r podRuntime) StartPod(ctx context.Context, pod *corev1.Pod, ip netip.Addr) error {
	return r.lab.EnsurePod(ctx, podSpec(pod, ip))
}

func (r podRuntime) StopPod(ctx context.Context, namespace, name string) error {
	return r.lab.DeletePod(ctx, namespace, name)
}

func (r podRuntime) SyncPods(ctx context.Context, pods []*corev1.Pod) error {
	specs := make([]netlab.PodSpec, 0, len(pods))
	for _, p := range pods {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || p.Spec.NodeName == "" {
			continue
		}
		specs = append(specs, podSpec(p, ip))
	}
	return r.lab.SyncPods(ctx, specs)
}

// dnsWorkload is the workload of the kube-dns pods: the cluster DNS on 53/UDP and 53/TCP and its
// metrics on 9153, opened inside the pod's network namespace.
func dnsWorkload(srv *dns.Server, reg *prometheus.Registry) netlab.Workload {
	return netlab.WorkloadFunc(func(ctx context.Context, env netlab.WorkloadEnv) error {
		pc, err := env.ListenPacket("udp", ":53")
		if err != nil {
			return fmt.Errorf("listen 53/udp: %w", err)
		}
		l, err := env.Listen("tcp", ":53")
		if err != nil {
			pc.Close()
			return fmt.Errorf("listen 53/tcp: %w", err)
		}
		ml, err := env.Listen("tcp", ":9153")
		if err != nil {
			pc.Close()
			l.Close()
			return fmt.Errorf("listen 9153/tcp: %w", err)
		}
		ms := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		if env.Ready != nil {
			env.Ready()
		}
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return srv.ServePacketConn(gctx, pc) })
		g.Go(func() error { return srv.ServeListener(gctx, l) })
		g.Go(func() error {
			go func() { <-gctx.Done(); ms.Close() }()
			if err := ms.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		return g.Wait()
	})
}

// serveHostDNS answers cluster DNS on a host address (UDP and TCP), for `dig @127.0.0.1 -p 1053`.
func serveHostDNS(ctx context.Context, g *errgroup.Group, addr string, srv *dns.Server) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen %s/udp (--dns-listen): %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("listen %s/tcp (--dns-listen): %w", addr, err)
	}
	g.Go(func() error { return srv.ServePacketConn(ctx, pc) })
	g.Go(func() error { return srv.ServeListener(ctx, l) })
	return nil
}

// feedInformers hands the store's changes to the DNS index and every node's proxy.
func feedInformers(ctx context.Context, g *errgroup.Group, st *store.Store, idx *dns.Index, proxiers []*dataplane.Proxier, log *slog.Logger) {
	run := func(res *store.Resource, h informer.Handler, synced func()) {
		g.Go(func() error { return informer.Run(ctx, st, res, h, synced, log) })
	}
	run(store.Services, informer.Funcs{
		Add: func(obj store.Object) {
			svc := obj.(*corev1.Service)
			idx.UpsertService(svc)
			for _, p := range proxiers {
				p.OnServiceAdd(svc)
			}
		},
		Update: func(old, obj store.Object) {
			svc := obj.(*corev1.Service)
			idx.UpsertService(svc)
			for _, p := range proxiers {
				p.OnServiceUpdate(old.(*corev1.Service), svc)
			}
		},
		Delete: func(obj store.Object) {
			svc := obj.(*corev1.Service)
			idx.DeleteService(svc.Namespace, svc.Name)
			for _, p := range proxiers {
				p.OnServiceDelete(svc)
			}
		},
	}, func() {
		for _, p := range proxiers {
			p.OnServiceSynced()
		}
	})
	run(store.EndpointSlices, informer.Funcs{
		Add: func(obj store.Object) {
			es := obj.(*discoveryv1.EndpointSlice)
			idx.UpsertEndpointSlice(es)
			for _, p := range proxiers {
				p.OnEndpointSliceAdd(es)
			}
		},
		Update: func(old, obj store.Object) {
			es := obj.(*discoveryv1.EndpointSlice)
			idx.UpsertEndpointSlice(es)
			for _, p := range proxiers {
				p.OnEndpointSliceUpdate(old.(*discoveryv1.EndpointSlice), es)
			}
		},
		Delete: func(obj store.Object) {
			es := obj.(*discoveryv1.EndpointSlice)
			idx.DeleteEndpointSlice(es.Namespace, es.Name)
			for _, p := range proxiers {
				p.OnEndpointSliceDelete(es)
			}
		},
	}, func() {
		for _, p := range proxiers {
			p.OnEndpointSlicesSynced()
		}
	})
	run(store.Pods, informer.Funcs{
		Add:    func(obj store.Object) { idx.UpsertPod(obj.(*corev1.Pod)) },
		Update: func(_, obj store.Object) { idx.UpsertPod(obj.(*corev1.Pod)) },
		Delete: func(obj store.Object) { idx.DeletePod(obj.GetNamespace(), obj.GetName()) },
	}, nil)
	run(store.Namespaces, informer.Funcs{
		Add:    func(obj store.Object) { idx.UpsertNamespace(obj.(*corev1.Namespace)) },
		Update: func(_, obj store.Object) { idx.UpsertNamespace(obj.(*corev1.Namespace)) },
		Delete: func(obj store.Object) { idx.DeleteNamespace(obj.GetName()) },
	}, nil)
}

// applyDemo applies the embedded examples through the API handler, in-process, and prints the
// per-object results as kubectl apply does.
func applyDemo(ctx context.Context, h http.Handler, stdout io.Writer) error {
	var buf bytes.Buffer
	files, err := fs.Glob(examplesFS, "examples/*.yaml")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := examplesFS.ReadFile(f)
		if err != nil {
			return err
		}
		buf.WriteString("\n---\n")
		buf.Write(b)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/lab/v1/apply", &buf)
	req.Header.Set("Content-Type", "application/yaml")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp struct {
		Results []struct {
			Kind, Namespace, Name, Action string
			Status                        *metav1.Status
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		return fmt.Errorf("apply answered %d: %s", rec.Code, rec.Body.String())
	}
	for _, r := range resp.Results {
		line := fmt.Sprintf("%s/%s %s", strings.ToLower(r.Kind), r.Name, r.Action)
		if r.Status != nil && r.Action == "error" {
			line += ": " + r.Status.Message
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}

func printDemoBanner(w io.Writer, api string, c *upConfig, o *upOptions) {
	nodeIP := c.underlay.Addr().Next().Next()
	fmt.Fprintf(w, `
svclab is up: %d nodes, the seed's Services and their pods.

  UI and API   http://%s/
  kubectl      kubectl -s http://%s get svc,pods -o wide

Try:
  sudo svclab exec client -- curl -s http://10.96.0.100:6379/             # ClusterIP (seed 8.6)
  sudo svclab exec client -- dig -t A myapp-nohead.default.svc.cluster.local. @10.96.0.10   # headless (8.9)
  curl -s http://%s:30080/                                            # NodePort from the host (8.11)
  sudo ip netns exec %s-node-1 iptables -t nat -nL KUBE-SERVICES             # the chain (8.7)
  dig @127.0.0.1 -p 1053 redis.default.svc.cluster.local. +short           # cluster DNS from the host

Ctrl-C stops the lab and takes its network down; the store stays for the next 'svclab up'.
`, o.nodes, api, api, nodeIP, o.name)
}

// labBackend is the web UI's view of the running lab: live rules from each node's proxy (or, with
// --no-network, the rules kube-proxy would write, rendered from the store), the topology from the
// store, and real probes sent from inside the lab's namespaces.
type labBackend struct {
	st       *store.Store
	lab      *netlab.Lab // nil with --no-network
	proxiers map[string]*dataplane.Proxier
	labCfg   netlab.Config
	dpCfg    dataplane.Config
}

var _ web.Backend = (*labBackend)(nil)

func (b *labBackend) Nodes(ctx context.Context) ([]string, error) {
	nodes, _, err := b.st.List(ctx, store.Nodes, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.GetName())
	}
	return names, nil
}

func (b *labBackend) Rules(ctx context.Context, node string) (*dataplane.Ruleset, error) {
	if p, ok := b.proxiers[node]; ok {
		return p.Counters(ctx)
	}
	if _, err := b.st.Get(ctx, store.Nodes, "", node); err != nil {
		return nil, fmt.Errorf("node %q: %w", node, web.ErrUnknownNode)
	}
	// --no-network: no kernel to ask; show what kube-proxy would write for this node.
	svcs, _, err := b.st.List(ctx, store.Services, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	slices, _, err := b.st.List(ctx, store.EndpointSlices, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	in := dataplane.Input{Node: dataplane.Node{Name: node}, Config: b.dpCfg}
	for _, o := range svcs {
		in.Services = append(in.Services, o.(*corev1.Service))
	}
	for _, o := range slices {
		in.EndpointSlices = append(in.EndpointSlices, o.(*discoveryv1.EndpointSlice))
	}
	return dataplane.ParseSave(dataplane.Render(in).Payload)
}

func (b *labBackend) NodeNetns(node string) string {
	if b.lab == nil {
		return ""
	}
	p, ok := b.proxiers[node]
	if !ok || p.Backend() == dataplane.BackendLegacy {
		return "" // xtables-monitor --trace sees only nf_tables rules
	}
	return b.lab.NodeNetnsPath(node)
}

func (b *labBackend) Probe(ctx context.Context, req web.ProbeRequest) (*web.ProbeResult, error) {
	if b.lab == nil {
		return nil, errors.New("the lab runs with --no-network: there are no namespaces to send a probe from")
	}
	nsPath := ""
	switch src := req.Source; {
	case src == "host":
		nsPath = b.labCfg.HostNetns // "" = this process's namespace, the host
	case strings.HasPrefix(src, "node:"):
		nsPath = b.lab.NodeNetnsPath(strings.TrimPrefix(src, "node:"))
	default:
		ns, name, ok := strings.Cut(src, "/")
		if !ok {
			return nil, fmt.Errorf("probe source %q: want host, node:NAME or NAMESPACE/POD", src)
		}
		nsPath = b.lab.PodNetnsPath(ns, name)
	}
	network := strings.ToLower(req.Protocol)
	if network == "" {
		network = "tcp"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if nsPath == "" {
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, net.JoinHostPort(req.DestIP, strconv.Itoa(req.Port)))
	} else {
		conn, err = netlab.DialInNetns(ctx, nsPath, network, net.JoinHostPort(req.DestIP, strconv.Itoa(req.Port)))
	}
	if err != nil {
		return nil, fmt.Errorf("probe %s %s:%d from %s: %w", network, req.DestIP, req.Port, req.Source, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// The echo workload answers a raw line with one line, over TCP and UDP alike.
	if _, err := io.WriteString(conn, "svclab probe\n"); err != nil {
		return nil, fmt.Errorf("probe: send: %w", err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("probe: no reply: %w", err)
	}
	reply := string(buf[:n])
	res := &web.ProbeResult{Reply: reply, SourceIP: localIP(conn.LocalAddr())}
	var pod, ns string
	for _, f := range strings.Fields(reply) {
		if v, ok := strings.CutPrefix(f, "pod="); ok {
			pod = v
		}
		if v, ok := strings.CutPrefix(f, "namespace="); ok {
			ns = v
		}
	}
	if pod != "" && ns != "" {
		res.Pod = ns + "/" + pod
	}
	return res, nil
}

func localIP(a net.Addr) string {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().String()
	}
	return ""
}

func (b *labBackend) Topology(ctx context.Context) (*web.Topology, error) {
	t := &web.Topology{
		ClusterCIDR:  b.labCfg.PodCIDR.String(),
		ServiceCIDR:  b.labCfg.ServiceCIDR.String(),
		UnderlayCIDR: b.labCfg.Underlay.String(),
		Host:         web.TopoHost{Name: "host"},
	}
	if b.lab != nil {
		t.Host.IP = b.labCfg.Underlay.Addr().Next().String()
		t.Host.Link = netlab.HostLinkName(b.labCfg.Name)
		t.Links = append(t.Links, web.TopoLink{Kind: "veth", A: "host", IfA: t.Host.Link, B: "underlay", IfB: "br0"})
	}
	nodes, _, err := b.st.List(ctx, store.Nodes, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, o := range nodes {
		n := o.(*corev1.Node)
		tn := web.TopoNode{Name: n.Name, PodCIDR: n.Spec.PodCIDR, Bridge: "cni0"}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				tn.IP = a.Address
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				tn.Ready = c.Status == corev1.ConditionTrue
			}
		}
		if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
			tn.BridgeIP = p.Addr().Next().String()
		}
		if b.lab != nil {
			tn.Netns = netlab.NodeNetnsName(b.labCfg.Name, n.Name)
			t.Links = append(t.Links, web.TopoLink{Kind: "underlay", A: "underlay", IfA: "br0", B: n.Name, IfB: "eth0"})
		}
		t.Nodes = append(t.Nodes, tn)
	}
	pods, _, err := b.st.List(ctx, store.Pods, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, o := range pods {
		p := o.(*corev1.Pod)
		tp := web.TopoPod{Namespace: p.Namespace, Name: p.Name, IP: p.Status.PodIP, Node: p.Spec.NodeName,
			Labels: p.Labels, Annotations: p.Annotations}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				tp.Ready = c.Status == corev1.ConditionTrue
			}
		}
		for _, ctr := range p.Spec.Containers {
			for _, cp := range ctr.Ports {
				tp.Ports = append(tp.Ports, web.TopoPort{Name: cp.Name, Port: cp.ContainerPort, Protocol: string(cp.Protocol)})
			}
		}
		if b.lab != nil && p.Spec.NodeName != "" && p.Status.PodIP != "" {
			t.Links = append(t.Links, web.TopoLink{Kind: "bridge", A: p.Spec.NodeName, IfA: "cni0", B: p.Namespace + "/" + p.Name, IfB: "eth0"})
		}
		t.Pods = append(t.Pods, tp)
	}
	svcs, _, err := b.st.List(ctx, store.Services, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	eps, _, err := b.st.List(ctx, store.EndpointSlices, "", store.ListOptions{})
	if err != nil {
		return nil, err
	}
	bySvc := map[string][]web.TopoEndpoint{}
	for _, o := range eps {
		es := o.(*discoveryv1.EndpointSlice)
		key := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
		var port int32
		if len(es.Ports) > 0 && es.Ports[0].Port != nil {
			port = *es.Ports[0].Port
		}
		for _, e := range es.Endpoints {
			te := web.TopoEndpoint{Port: port, Ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
			if e.NodeName != nil {
				te.Node = *e.NodeName
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				te.Pod = e.TargetRef.Namespace + "/" + e.TargetRef.Name
			}
			for _, a := range e.Addresses {
				te.IP = a
				bySvc[key] = append(bySvc[key], te)
			}
		}
	}
	for _, o := range svcs {
		s := o.(*corev1.Service)
		ts := web.TopoService{Namespace: s.Namespace, Name: s.Name, Type: string(s.Spec.Type), ClusterIP: s.Spec.ClusterIP,
			ExternalIPs: s.Spec.ExternalIPs, ExternalName: s.Spec.ExternalName,
			ExternalTrafficPolicy: string(s.Spec.ExternalTrafficPolicy), SessionAffinity: string(s.Spec.SessionAffinity),
			Labels: s.Labels, Annotations: s.Annotations, Endpoints: bySvc[s.Namespace+"/"+s.Name]}
		if s.Spec.InternalTrafficPolicy != nil {
			ts.InternalTrafficPolicy = string(*s.Spec.InternalTrafficPolicy)
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ts.LBIPs = append(ts.LBIPs, in.IP)
			}
		}
		for _, p := range s.Spec.Ports {
			ts.Ports = append(ts.Ports, web.TopoServicePort{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol),
				TargetPort: p.TargetPort.String(), NodePort: p.NodePort})
		}
		t.Services = append(t.Services, ts)
	}
	return t, nil
}

// liveBackend is labBackend for a lab with a network: it also implements web.ChainReader, so the
// UI re-reads a node's whole ruleset only when its proxy synced, and reads only the displayed
// chains' counters each second (a whole iptables-save takes about a second per table at 10,000
// Services).
type liveBackend struct{ *labBackend }

var _ web.ChainReader = liveBackend{}

// RulesGeneration counts the node's successful syncs: it changes whenever its rules are rewritten.
func (b liveBackend) RulesGeneration(_ context.Context, node string) (uint64, error) {
	p, ok := b.proxiers[node]
	if !ok {
		return 0, fmt.Errorf("node %q: %w", node, web.ErrUnknownNode)
	}
	st := p.Status()
	return uint64(st.FullSyncs + st.PartialSyncs), nil
}

// ChainRules reads the named chains' live rules and counters inside the node's namespace.
func (b liveBackend) ChainRules(ctx context.Context, node string, table dataplane.Table, chains []string) (*dataplane.Ruleset, error) {
	p, ok := b.proxiers[node]
	if !ok {
		return nil, fmt.Errorf("node %q: %w", node, web.ErrUnknownNode)
	}
	bin := "iptables-nft"
	if p.Backend() == dataplane.BackendLegacy {
		bin = "iptables-legacy"
	}
	return dataplane.ReadChains(ctx, b.lab.NodeNetnsPath(node), bin, table, chains)
}
