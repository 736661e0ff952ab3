package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// Root tests: they build throwaway network namespaces named
// svclabtest-dp-<random> and never touch the root namespace's tables, which
// pxRootUntouched checks.

// pxRequireRoot skips unless the test runs as root with the iptables tools.
func pxRequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, iptables)")
	}
	for _, bin := range []string{"iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	pxRootUntouched(t)
}

// pxNewNetns creates a named network namespace svclabtest-dp-<random> with
// lo up, deletes it when the test ends, and returns its path.
func pxNewNetns(t testing.TB) string {
	t.Helper()
	return pxNamedNetns(t, fmt.Sprintf("svclabtest-dp-%08x", rand.Uint32()))
}

// pxNamedNetns creates the network namespace name with lo up (`ip netns add
// NAME; ip -n NAME link set lo up`), deletes it when the test ends, and
// returns its path (/run/netns/NAME). Every root test of the package builds
// its namespaces with it.
func pxNamedNetns(t testing.TB, name string) string {
	t.Helper()
	err := onFreshThread(func() error {
		ns, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		return ns.Close()
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	path := filepath.Join("/run/netns", name)
	h := pxHandle(t, path)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return path
}

// pxHandle returns a netlink handle bound to the namespace at path.
func pxHandle(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

var pxSaveNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

// pxRootTables returns the root namespace's iptables-save without comments
// and counters.
func pxRootTables(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save in the root namespace: %v", err)
	}
	return pxSaveNoise.ReplaceAllString(string(out), "")
}

// pxRootUntouched records the root namespace's tables now and checks, when
// the test ends, that they are unchanged.
func pxRootUntouched(t testing.TB) {
	t.Helper()
	before := pxRootTables(t)
	t.Cleanup(func() {
		if diff := cmp.Diff(before, pxRootTables(t)); diff != "" {
			t.Errorf("the root namespace's iptables changed (-before +after):\n%s", diff)
		}
	})
}

// pxInNetns runs a command inside the namespace and returns its output.
func pxInNetns(t testing.TB, path string, name string, args ...string) string {
	t.Helper()
	var out []byte
	err := inNetns(path, func() error {
		var err error
		out, err = exec.Command(name, args...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), path, err, out)
	}
	return string(out)
}

func TestRootFakeRunnerMatchesKernel(t *testing.T) {
	pxRequireRoot(t)
	for _, backend := range pxBackends {
		t.Run(string(backend), func(t *testing.T) {
			pxRequireBackend(t, backend)
			for _, c := range restoreCases {
				t.Run(c.name, func(t *testing.T) {
					r, err := NewBackendRunner(pxNewNetns(t), backend)
					if err != nil {
						t.Fatal(err)
					}
					checkRestoreCase(t, r, c)
				})
			}
		})
	}
}

// pxCountingRunner counts the go-iptables calls a Proxier makes.
type pxCountingRunner struct {
	Runner
	mu                        sync.Mutex
	ensureChains, ensureRules int
}

func (r *pxCountingRunner) EnsureChain(ctx context.Context, table Table, chain string) error {
	r.mu.Lock()
	r.ensureChains++
	r.mu.Unlock()
	return r.Runner.EnsureChain(ctx, table, chain)
}

func (r *pxCountingRunner) EnsureRule(ctx context.Context, table Table, chain string, args ...string) error {
	r.mu.Lock()
	r.ensureRules++
	r.mu.Unlock()
	return r.Runner.EnsureRule(ctx, table, chain, args...)
}

func (r *pxCountingRunner) counts() (chains, rules int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ensureChains, r.ensureRules
}

// pxStartReal runs a Proxier for node-1 against the namespace at path, with
// the backend tweak sets (BackendAuto by default).
func pxStartReal(t testing.TB, path string, tweak func(*ProxierConfig)) (*Proxier, *pxCountingRunner, *pxLogBuffer) {
	t.Helper()
	logs := &pxLogBuffer{}
	cfg := ProxierConfig{
		Node:        Node{Name: "node-1"},
		Config:      Config{ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")},
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),
		RetryPeriod: 50 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	real, err := NewBackendRunner(path, cfg.Backend)
	if err != nil {
		t.Fatal(err)
	}
	r := &pxCountingRunner{Runner: real}
	cfg.Runner = r
	p, err := NewProxier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p, r, logs
}

// pxLabAddresses puts the node's pod gateway 10.244.1.1 and the endpoint
// addresses on lo (so endpoints are local sockets; this kernel may lack the
// dummy link type) and routes the service range there, so that a connect to
// a cluster IP gets as far as the nat OUTPUT chain:
// ip addr add 10.244.1.1/32 dev lo; …; ip route add 10.96.0.0/12 dev lo src 10.244.1.1.
func pxLabAddresses(t testing.TB, path string, endpoints ...string) {
	t.Helper()
	h := pxHandle(t, path)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range append([]string{"10.244.1.1/32"}, endpoints...) {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddrAdd(lo, addr); err != nil {
			t.Fatalf("add %s: %v", a, err)
		}
	}
	_, svcNet, _ := net.ParseCIDR("10.96.0.0/12")
	if err := h.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: svcNet, Src: net.ParseIP("10.244.1.1")}); err != nil {
		t.Fatalf("route 10.96.0.0/12: %v", err)
	}
}

// pxUDPEcho serves UDP on addr inside the namespace, answering every
// datagram with "addr:payload", until the test ends.
func pxUDPEcho(t testing.TB, path, addr string) {
	t.Helper()
	var conn *net.UDPConn
	err := inNetns(path, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			conn.WriteToUDP(append([]byte(addr+":"), buf[:n]...), from) //nolint:errcheck // best effort echo
		}
	}()
}

// pxUDPAsk sends one datagram from a new socket (a new conntrack flow) to
// addr inside the namespace and returns the answer.
func pxUDPAsk(t testing.TB, path, addr, msg string) string {
	t.Helper()
	var conn *net.UDPConn
	err := inNetns(path, func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("answer from %s: %v", addr, err)
	}
	return string(buf[:n])
}

// pxConntrackUDP lists the namespace's UDP conntrack entries to dst as
// "orig-dst -> reply-src" strings, sorted.
func pxConntrackUDP(t testing.TB, path, dst string) []string {
	t.Helper()
	flows, err := pxHandle(t, path).ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatalf("conntrack -L: %v", err)
	}
	var out []string
	for _, f := range flows {
		if f.Forward.Protocol != unix.IPPROTO_UDP || f.Forward.DstIP.String() != dst {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d -> %s:%d", f.Forward.DstIP, f.Forward.DstPort, f.Reverse.SrcIP, f.Reverse.SrcPort))
	}
	slices.Sort(out)
	return out
}

// pxRuleCounts returns the packet counters of chain's rules in the live
// nat table.
func pxRuleCounts(t testing.TB, p *Proxier, chain string) []uint64 {
	t.Helper()
	rs, err := p.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Chain(TableNAT, chain)
	if c == nil {
		t.Fatalf("no chain %s in the live nat table", chain)
	}
	var out []uint64
	for _, r := range c.Rules {
		out = append(out, r.Counters.Packets)
	}
	return out
}

// pxRuleCountsByText returns the packet counters of chain's rules in the
// live nat table by rule text.
func pxRuleCountsByText(t testing.TB, p *Proxier, chain string) map[string]uint64 {
	t.Helper()
	rs, err := p.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Chain(TableNAT, chain)
	if c == nil {
		t.Fatalf("no chain %s in the live nat table", chain)
	}
	out := map[string]uint64{}
	for _, r := range c.Rules {
		out[r.Text] = r.Counters.Packets
	}
	return out
}

func TestRootProxier(t *testing.T) {
	pxRequireRoot(t)
	for _, backend := range pxBackends {
		t.Run(string(backend), func(t *testing.T) {
			pxRequireBackend(t, backend)
			testRootProxier(t, backend)
		})
	}
}

// testRootProxier runs a Proxier with backend in a namespace with two UDP
// endpoints and checks the rules and the traffic through them.
func testRootProxier(t *testing.T, backend IPTablesBackend) {
	tools := backend.tools()
	path := pxNewNetns(t)
	pxLabAddresses(t, path, "10.244.1.4/32", "10.244.1.5/32")
	pxUDPEcho(t, path, "10.244.1.4:5353")
	pxUDPEcho(t, path, "10.244.1.5:5353")
	p, runner, logs := pxStartReal(t, path, func(c *ProxierConfig) {
		c.SyncPeriod = 50 * time.Millisecond
		c.Backend = backend
	})
	ctx := pxCtx(t)

	svcs, sls := twoServices()
	for _, s := range svcs {
		p.OnServiceAdd(s)
	}
	for _, s := range sls {
		p.OnEndpointSliceAdd(s)
	}
	p.OnSynced()
	if err := p.WaitForSync(ctx); err != nil {
		t.Fatalf("first sync: %v\n%s", err, logs.String())
	}
	dnsSvc, dnsSeps := dnsChains("10.244.1.4")

	t.Run("programs the namespace like kube-proxy", func(t *testing.T) {
		save := []byte(pxInNetns(t, path, tools.save, "-t", "filter") + pxInNetns(t, path, tools.save, "-t", "nat"))
		if diff := cmp.Diff(wantJumpRules, builtinRulesText(t, save)); diff != "" {
			t.Errorf("jump rules in the kernel (-want +got):\n%s", diff)
		}
		// What the kernel holds is what Render wrote.
		applied, err := ParseSave(p.LastResult().Payload)
		if err != nil {
			t.Fatal(err)
		}
		live, err := p.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range []Table{TableFilter, TableNAT} {
			for _, c := range applied.Table(tbl).Chains {
				var want, got []string
				for _, r := range c.Rules {
					want = append(want, r.SaveText())
				}
				lc := live.Chain(tbl, c.Name)
				if lc == nil {
					t.Errorf("%s/%s missing in the kernel", tbl, c.Name)
					continue
				}
				for _, r := range lc.Rules {
					got = append(got, r.Text)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s/%s in the kernel (-rendered +live):\n%s", tbl, c.Name, diff)
				}
			}
		}
		for _, tbl := range CanaryTables {
			pxInNetns(t, path, tools.iptables, "-t", string(tbl), "-S", CanaryChain)
		}
		if got := pxUDPAsk(t, path, "10.96.0.53:53", "hello"); got != "10.244.1.4:5353:hello" {
			t.Errorf("UDP through the cluster IP answered %q", got)
		}
	})

	t.Run("steady full sync needs no iptables -C", func(t *testing.T) {
		_, rulesBefore := runner.counts()
		gen := p.RequestFullSync()
		if err := p.WaitForGeneration(ctx, gen); err != nil {
			t.Fatal(err)
		}
		if _, rules := runner.counts(); rules != rulesBefore {
			t.Errorf("a full sync with every jump rule in place ran %d EnsureRule calls, want 0", rules-rulesBefore)
		}
	})

	t.Run("counters of unchanged chains survive a partial sync", func(t *testing.T) {
		before := pxRuleCounts(t, p, dnsSvc)
		for i := range 3 {
			pxUDPAsk(t, path, "10.96.0.53:53", fmt.Sprint("count-", i))
		}
		counted := pxRuleCounts(t, p, dnsSvc)
		sum := func(v []uint64) (s uint64) {
			for _, x := range v {
				s += x
			}
			return s
		}
		if sum(counted)-sum(before) != 3 {
			t.Fatalf("%s counters went %v → %v, want 3 more packets", dnsSvc, before, counted)
		}
		sepCounted := pxRuleCounts(t, p, dnsSeps[0])
		servicesCounted := pxRuleCountsByText(t, p, ChainServices)
		counting := false
		for text, n := range servicesCounted {
			counting = counting || strings.Contains(text, `"ns1/dns:dns cluster IP"`) && n >= 3
		}
		if !counting {
			t.Fatalf("%s counters %v: the dns cluster IP rule did not count", ChainServices, servicesCounted)
		}

		st := p.Status()
		p.OnServiceAdd(pxService("ns2", "unrelated", "10.96.7.7", pxPort("p", corev1.ProtocolTCP, 80)))
		if err := p.WaitForSync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := p.Status(); got.PartialSyncs != st.PartialSyncs+1 {
			t.Fatalf("status %+v: the change did not make a partial sync", got)
		}
		if diff := cmp.Diff(counted, pxRuleCounts(t, p, dnsSvc)); diff != "" {
			t.Errorf("%s counters after an unrelated partial sync (-before +after):\n%s", dnsSvc, diff)
		}
		if diff := cmp.Diff(sepCounted, pxRuleCounts(t, p, dnsSeps[0])); diff != "" {
			t.Errorf("%s counters after an unrelated partial sync (-before +after):\n%s", dnsSeps[0], diff)
		}
		// nat KUBE-SERVICES is not rewritten either (kube-proxy would): its
		// rules kept counting. (The unrelated Service has no endpoints, so
		// its rule is a REJECT in filter KUBE-SERVICES.)
		after := pxRuleCountsByText(t, p, ChainServices)
		for text, n := range servicesCounted {
			if after[text] != n {
				t.Errorf("%s rule %q went from %d to %d packets", ChainServices, text, n, after[text])
			}
		}
		if len(after) != len(servicesCounted) {
			t.Errorf("nat %s has %d rules after adding a Service without endpoints, want %d", ChainServices, len(after), len(servicesCounted))
		}
	})

	t.Run("removing a UDP endpoint deletes its conntrack entries", func(t *testing.T) {
		// A flow to 10.244.1.4 exists from the subtests above; make sure.
		pxUDPAsk(t, path, "10.96.0.53:53", "before")
		if got := pxConntrackUDP(t, path, "10.96.0.53"); !slices.Contains(got, "10.96.0.53:53 -> 10.244.1.4:5353") {
			t.Fatalf("no conntrack entry to 10.244.1.4 before the change: %v", got)
		}
		p.OnEndpointSliceUpdate(sls[1], pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.5"))
		if err := p.WaitForSync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := pxConntrackUDP(t, path, "10.96.0.53"); len(got) != 0 {
			t.Errorf("conntrack entries to 10.96.0.53 after the endpoint went away: %v", got)
		}
		if got := pxUDPAsk(t, path, "10.96.0.53:53", "after"); got != "10.244.1.5:5353:after" {
			t.Errorf("UDP after the change answered %q, want the new endpoint", got)
		}
	})

	t.Run("a flushed nat table comes back", func(t *testing.T) {
		st := p.Status()
		pxInNetns(t, path, tools.iptables, "-t", "nat", "-F")
		pxInNetns(t, path, tools.iptables, "-t", "nat", "-X")
		if err := p.WaitFor(ctx, func(s SyncStatus) bool { return s.FullSyncs > st.FullSyncs && s.LastError == nil }); err != nil {
			t.Fatalf("no full resync after the flush: %v\n%s", err, logs.String())
		}
		nat := pxInNetns(t, path, tools.save, "-t", "nat")
		for _, want := range []string{
			`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
			":" + CanaryChain + " ",
			"-j " + dnsSvc,
		} {
			if !strings.Contains(nat, want) {
				t.Errorf("nat after recovery lacks %q:\n%s", want, nat)
			}
		}
		if got := pxUDPAsk(t, path, "10.96.0.53:53", "recovered"); !strings.HasSuffix(got, ":recovered") {
			t.Errorf("UDP after recovery answered %q", got)
		}
	})
}
