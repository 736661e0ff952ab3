package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// wantJumpRules is what a kube-proxy node shows in its built-in chains
// (iptables-save order): each JumpRule inserted at the top, in order.
const wantJumpRules = `filter:
-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
nat:
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
`

// builtinRulesText returns the rules of the built-in chains of filter and nat
// in save (as iptables-save prints them, counters stripped).
func builtinRulesText(t *testing.T, save []byte) string {
	t.Helper()
	rs, err := ParseSave(save)
	if err != nil {
		t.Fatalf("ParseSave: %v", err)
	}
	var b strings.Builder
	for _, tbl := range []Table{TableFilter, TableNAT} {
		fmt.Fprintf(&b, "%s:\n", tbl)
		for _, c := range rs.Table(tbl).Chains {
			if !c.Builtin {
				continue
			}
			for _, r := range c.Rules {
				b.WriteString(r.Text + "\n")
			}
		}
	}
	return b.String()
}

// twoServices is the fixture most tests start from: a TCP web Service with
// two endpoints and a UDP dns Service with one.
func twoServices() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	return []*corev1.Service{
			pxService("ns1", "web", "10.96.0.10", pxPort("http", corev1.ProtocolTCP, 80)),
			pxService("ns1", "dns", "10.96.0.53", pxPort("dns", corev1.ProtocolUDP, 53)),
		}, []*discoveryv1.EndpointSlice{
			pxSlice("ns1", "web", "http", corev1.ProtocolTCP, 8080, "10.244.1.2", "10.244.1.3"),
			pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.4"),
		}
}

func (h *pxHarness) load(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) {
	for _, s := range svcs {
		h.p.OnServiceAdd(s)
	}
	for _, s := range slices {
		h.p.OnEndpointSliceAdd(s)
	}
	h.p.OnSynced()
}

func (h *pxHarness) waitSync(t *testing.T) {
	t.Helper()
	if err := h.p.WaitForSync(pxCtx(t)); err != nil {
		t.Fatalf("WaitForSync: %v\nlogs:\n%s", err, h.logs.String())
	}
}

func (h *pxHarness) lastPayload(t *testing.T) *Ruleset {
	t.Helper()
	ps := h.fake.Payloads()
	if len(ps) == 0 {
		t.Fatal("no restore happened")
	}
	rs, err := ParseSave(ps[len(ps)-1])
	if err != nil {
		t.Fatalf("ParseSave(last payload): %v", err)
	}
	return rs
}

// declaredChains returns the chains a payload declares (creates or flushes)
// in table, sorted.
func declaredChains(rs *Ruleset, table Table) []string {
	var out []string
	for _, c := range rs.Table(table).Chains {
		if c.Declared {
			out = append(out, c.Name)
		}
	}
	out = append(out, rs.Table(table).Deleted...)
	slices.Sort(out)
	return slices.Compact(out)
}

func webChains() (svc string, seps []string) {
	spn := ServicePortName("ns1", "web", "http")
	return ServicePortChainName(PrefixSVC, spn, "tcp"),
		[]string{EndpointChainName(spn, "tcp", "10.244.1.2:8080"), EndpointChainName(spn, "tcp", "10.244.1.3:8080")}
}

func dnsChains(ips ...string) (svc string, seps []string) {
	spn := ServicePortName("ns1", "dns", "dns")
	for _, ip := range ips {
		seps = append(seps, EndpointChainName(spn, "udp", ip+":5353"))
	}
	return ServicePortChainName(PrefixSVC, spn, "udp"), seps
}

func TestProxierWaitsForInitialListsThenSyncsFully(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	for _, s := range svcs {
		h.p.OnServiceAdd(s)
	}
	for _, s := range sls {
		h.p.OnEndpointSliceAdd(s)
	}
	h.p.OnServiceSynced()
	// Not yet: EndpointSlices are not synced. A restore now would program
	// Services without endpoints (REJECT), which kube-proxy avoids too.
	if total, _ := h.fake.Restores(); total != 0 {
		t.Fatalf("restores before the initial lists were complete: %d", total)
	}
	h.p.OnEndpointSlicesSynced()
	h.waitSync(t)

	st := h.p.Status()
	if st.FullSyncs != 1 || st.PartialSyncs != 0 || st.Failures != 0 || !st.LastSyncFull {
		t.Errorf("status = %+v, want exactly one full sync", st)
	}
	for _, tbl := range CanaryTables {
		if ok, _ := h.fake.ChainExists(context.Background(), tbl, CanaryChain); !ok {
			t.Errorf("%s %s missing", tbl, CanaryChain)
		}
	}
	var save []byte
	for _, tbl := range []Table{TableFilter, TableNAT} {
		out, err := h.fake.SaveCounters(context.Background(), tbl)
		if err != nil {
			t.Fatal(err)
		}
		save = append(save, out...)
	}
	if diff := cmp.Diff(wantJumpRules, builtinRulesText(t, save)); diff != "" {
		t.Errorf("jump rules (-want +got):\n%s", diff)
	}
	webSvc, webSeps := webChains()
	dnsSvc, dnsSeps := dnsChains("10.244.1.4")
	want := slices.Sorted(slices.Values(append(append([]string{
		CanaryChain, ChainMarkMasq, ChainNodePorts, ChainPostrouting, ChainServices, webSvc, dnsSvc,
	}, webSeps...), dnsSeps...)))
	if diff := cmp.Diff(want, h.fake.Chains(TableNAT)); diff != "" {
		t.Errorf("nat chains (-want +got):\n%s", diff)
	}
	// Two transactions: the canary chains and jump rules, then LastResult's
	// payload with the nat chains declared in another order (see planFull).
	ps := h.fake.Payloads()
	if len(ps) != 2 {
		t.Fatalf("first sync took %d transactions, want 2", len(ps))
	}
	if diff := cmp.Diff(sortedPayload(t, h.p.LastResult().Payload), sortedPayload(t, ps[1])); diff != "" {
		t.Errorf("LastResult is not the applied payload (-LastResult +applied):\n%s", diff)
	}
}

func TestProxierPartialSyncRewritesOnlyChangedServices(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)

	webSvc, webSeps := webChains()
	// Traffic through web's chains (what the kernel would count).
	if err := h.fake.AddCounts(TableNAT, webSvc, 1, 7, 420); err != nil {
		t.Fatal(err)
	}
	if err := h.fake.AddCounts(TableNAT, ChainServices, 1, 7, 420); err != nil {
		t.Fatal(err)
	}

	// dns gets a second endpoint.
	h.p.OnEndpointSliceUpdate(sls[1], pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.4", "10.244.1.5"))
	h.waitSync(t)

	if st := h.p.Status(); st.FullSyncs != 1 || st.PartialSyncs != 1 || st.LastSyncFull {
		t.Errorf("status = %+v, want one full then one partial sync", st)
	}
	dnsSvc, dnsSeps := dnsChains("10.244.1.4", "10.244.1.5")
	// Only dns's own chains are rewritten; KUBE-SERVICES & co. did not
	// change, so (unlike kube-proxy, which rewrites them on every sync) the
	// incremental sync leaves them alone, and the filter table too.
	want := "*nat\n:" + dnsSvc + " - [0:0]\n:" + dnsSeps[0] + " - [0:0]\n:" + dnsSeps[1] + " - [0:0]\n" +
		"-A " + dnsSvc + ` -m comment --comment "ns1/dns:dns -> 10.244.1.4:5353" -m statistic --mode random --probability 0.5000000000 -j ` + dnsSeps[0] + "\n" +
		"-A " + dnsSvc + ` -m comment --comment "ns1/dns:dns -> 10.244.1.5:5353" -j ` + dnsSeps[1] + "\n" +
		"-A " + dnsSeps[0] + ` -m comment --comment ns1/dns:dns -s 10.244.1.4 -j KUBE-MARK-MASQ` + "\n" +
		"-A " + dnsSeps[0] + ` -m comment --comment ns1/dns:dns -m udp -p udp -j DNAT --to-destination 10.244.1.4:5353` + "\n" +
		"-A " + dnsSeps[1] + ` -m comment --comment ns1/dns:dns -s 10.244.1.5 -j KUBE-MARK-MASQ` + "\n" +
		"-A " + dnsSeps[1] + ` -m comment --comment ns1/dns:dns -m udp -p udp -j DNAT --to-destination 10.244.1.5:5353` + "\n" +
		"COMMIT\n"
	ps := h.fake.Payloads()
	if diff := cmp.Diff(want, string(ps[len(ps)-1])); diff != "" {
		t.Errorf("partial sync payload (-want +got):\n%s", diff)
	}
	for _, c := range append([]string{webSvc}, webSeps...) {
		if ok, _ := h.fake.ChainExists(context.Background(), TableNAT, c); !ok {
			t.Errorf("unchanged chain %s is gone", c)
		}
	}

	live, err := h.p.Counters(pxCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := live.Chain(TableNAT, webSvc).Rules[0].Counters; got == nil || got.Packets != 7 || got.Bytes != 420 {
		t.Errorf("counters of unchanged %s = %+v, want [7:420]", webSvc, got)
	}
	if got := live.Chain(TableNAT, ChainServices).Rules[0].Counters; got == nil || got.Packets != 7 {
		t.Errorf("counters of unchanged %s = %+v, want [7:420]", ChainServices, got)
	}
}

// payloadDeletes returns the chains a restore payload deletes (-X lines).
func payloadDeletes(payload []byte) []string {
	var out []string
	for _, l := range strings.Split(string(payload), "\n") {
		if c, ok := strings.CutPrefix(l, "-X "); ok {
			out = append(out, c)
		}
	}
	return out
}

func TestProxierDeletesStaleChains(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)

	h.p.OnServiceDelete(svcs[1])
	h.p.OnEndpointSliceDelete(sls[1])
	h.waitSync(t)

	// The two deletions may land in one sync or two; the chains are deleted
	// once either way.
	dnsSvc, dnsSeps := dnsChains("10.244.1.4")
	var deleted []string
	for _, p := range h.fake.Payloads()[1:] {
		deleted = append(deleted, payloadDeletes(p)...)
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(append([]string{dnsSvc}, dnsSeps...))), slices.Sorted(slices.Values(deleted))); diff != "" {
		t.Errorf("chains deleted (-want +got):\n%s", diff)
	}
	webSvc, webSeps := webChains()
	want := slices.Sorted(slices.Values(append([]string{CanaryChain, ChainMarkMasq, ChainNodePorts, ChainPostrouting, ChainServices, webSvc}, webSeps...)))
	if diff := cmp.Diff(want, h.fake.Chains(TableNAT)); diff != "" {
		t.Errorf("nat chains after delete (-want +got):\n%s", diff)
	}
}

func TestProxierFailedPartialSyncFallsBackToFull(t *testing.T) {
	injected := &RestoreError{Line: 1, Output: "injected", Err: errors.New("exit status 1")}
	for _, c := range []struct {
		name                                                   string
		failures                                               int // restores that fail after the first sync
		wantFailures, wantRestoreFailures, wantPartialFailures int
	}{
		// The incremental transaction fails: the same sync goes full at once.
		{"partial fails", 1, 0, 1, 1},
		// The full sync it falls back to fails too: the sync fails and the
		// retry is full.
		{"partial and full fail", 2, 1, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := pxStart(t, nil)
			svcs, sls := twoServices()
			h.load(svcs, sls)
			h.waitSync(t)

			left := c.failures
			var mu sync.Mutex
			h.fake.RestoreHook = func([]byte) error {
				mu.Lock()
				defer mu.Unlock()
				if left > 0 {
					left--
					return injected
				}
				return nil
			}
			h.p.OnEndpointSliceUpdate(sls[1], pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.9"))
			h.waitSync(t)

			st := h.p.Status()
			if st.Failures != c.wantFailures || st.FullSyncs != 2 || st.PartialSyncs != 0 || !st.LastSyncFull || st.LastError != nil {
				t.Errorf("status = %+v, want %d failures and a second full sync", st, c.wantFailures)
			}
			// The full sync rewrote the unchanged web Service too.
			webSvc, _ := webChains()
			if !slices.Contains(declaredChains(h.lastPayload(t), TableNAT), webSvc) {
				t.Errorf("sync after the failure did not rewrite %s: not a full sync", webSvc)
			}
			m := h.p.metrics
			if got := pxValue(t, m.RestoreFailures.WithLabelValues("node-1")); got != float64(c.wantRestoreFailures) {
				t.Errorf("restore failures = %v, want %d", got, c.wantRestoreFailures)
			}
			if got := pxValue(t, m.PartialRestoreFailure.WithLabelValues("node-1")); got != float64(c.wantPartialFailures) {
				t.Errorf("partial restore failures = %v, want %d", got, c.wantPartialFailures)
			}
		})
	}
}

func TestProxierCoalescesBursts(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)

	// Hold the next restore until the burst is in: everything after the
	// first change must end up in exactly one more sync.
	entered := make(chan struct{})
	release := make(chan struct{})
	var gate bool
	h.fake.RestoreHook = func([]byte) error {
		if !gate {
			gate = true
			close(entered)
			<-release
		}
		return nil
	}
	h.p.OnServiceAdd(pxService("ns2", "svc-0", "10.96.1.0", pxPort("p", corev1.ProtocolTCP, 80)))
	<-entered
	for i := 1; i < 500; i++ {
		h.p.OnServiceAdd(pxService("ns2", fmt.Sprintf("svc-%d", i), fmt.Sprintf("10.96.%d.%d", 1+i/250, i%250), pxPort("p", corev1.ProtocolTCP, 80)))
	}
	close(release)
	h.waitSync(t)

	if total, _ := h.fake.Restores(); total != 4 {
		t.Errorf("restores = %d, want 4 (jump rules and initial sync, the first change, the other 499 coalesced)", total)
	}
	if st := h.p.Status(); st.Generation != st.SyncedGeneration {
		t.Errorf("status = %+v: not every change synced", st)
	}
}

func TestProxierMinSyncPeriodCoalesces(t *testing.T) {
	h := pxStart(t, func(c *ProxierConfig) { c.MinSyncPeriod = time.Hour })
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)
	h.p.OnServiceDelete(svcs[0])
	// The next sync may not start for an hour: nothing more is restored.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.p.WaitForSync(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForSync within MinSyncPeriod = %v, want deadline exceeded", err)
	}
	if total, _ := h.fake.Restores(); total != 2 {
		t.Errorf("restores = %d, want 2 (jump rules, initial sync)", total)
	}
}

func TestProxierCanaryGoneMeansFullSync(t *testing.T) {
	t.Run("noticed by the next sync", func(t *testing.T) {
		h := pxStart(t, nil)
		svcs, sls := twoServices()
		h.load(svcs, sls)
		h.waitSync(t)

		h.fake.FlushTable(TableNAT) // iptables -t nat -F; iptables -t nat -X
		h.p.OnServiceAdd(pxService("ns2", "other", "10.96.3.3", pxPort("p", corev1.ProtocolTCP, 80)))
		h.waitSync(t)
		if st := h.p.Status(); st.FullSyncs != 2 || st.Failures != 0 {
			t.Errorf("status = %+v, want a second full sync and no failure", st)
		}
		webSvc, _ := webChains()
		if ok, _ := h.fake.ChainExists(context.Background(), TableNAT, webSvc); !ok {
			t.Errorf("%s not restored", webSvc)
		}
	})
	t.Run("noticed by the incremental transaction's guard (legacy)", func(t *testing.T) {
		h := pxStart(t, func(c *ProxierConfig) { c.Runner.(*FakeRunner).SetBackend(BackendLegacy) })
		svcs, sls := twoServices()
		h.load(svcs, sls)
		h.waitSync(t)

		// A change in nat: its section starts with the guard. (A change in
		// filter only would check the filter canary only; the monitor
		// checks all three every SyncPeriod, as in kube-proxy.)
		h.fake.FlushTable(TableNAT)
		h.p.OnEndpointSliceUpdate(sls[1], pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.8"))
		h.waitSync(t)
		if st := h.p.Status(); st.FullSyncs != 2 || st.Failures != 0 {
			t.Errorf("status = %+v, want a second full sync and no failure", st)
		}
		if n := pxValue(t, h.p.metrics.PartialRestoreFailure); n != 0 {
			t.Errorf("partial restore failures = %v: a missing canary is not a failure", n)
		}
		ps := h.fake.Payloads()
		guarded := string(ps[len(ps)-3]) // the guarded transaction, the jump rules, the full sync
		if !strings.Contains(guarded, "-Z "+CanaryChain) {
			t.Errorf("legacy incremental transaction without a canary guard:\n%s", guarded)
		}
		webSvc, _ := webChains()
		if ok, _ := h.fake.ChainExists(context.Background(), TableNAT, webSvc); !ok {
			t.Errorf("%s not restored", webSvc)
		}
	})
	t.Run("noticed by the monitor without changes", func(t *testing.T) {
		h := pxStart(t, func(c *ProxierConfig) { c.SyncPeriod = 10 * time.Millisecond })
		svcs, sls := twoServices()
		h.load(svcs, sls)
		h.waitSync(t)

		h.fake.FlushTable(TableNAT)
		if err := h.p.WaitFor(pxCtx(t), func(s SyncStatus) bool { return s.FullSyncs >= 2 && s.LastError == nil }); err != nil {
			t.Fatal(err)
		}
		var save []byte
		for _, tbl := range []Table{TableFilter, TableNAT} {
			out, _ := h.fake.SaveCounters(context.Background(), tbl)
			save = append(save, out...)
		}
		if diff := cmp.Diff(wantJumpRules, builtinRulesText(t, save)); diff != "" {
			t.Errorf("jump rules after recovery (-want +got):\n%s", diff)
		}
	})
}

func TestProxierLogsFailingPayloadLines(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)

	// Someone flushed nat and something recreated only the canary: the
	// canary check passes, but KUBE-MARK-MASQ is gone, so the incremental
	// sync's SEP rules jumping to it are rejected; the full sync that
	// follows at once repairs everything.
	h.fake.FlushTable(TableNAT)
	if err := h.fake.EnsureChain(context.Background(), TableNAT, CanaryChain); err != nil {
		t.Fatal(err)
	}
	h.p.OnEndpointSliceUpdate(sls[1], pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.7"))
	h.waitSync(t)

	st := h.p.Status()
	if st.Failures != 0 || st.FullSyncs != 2 || !st.LastSyncFull {
		t.Fatalf("status = %+v, want a failed incremental sync turned full", st)
	}
	logs := h.logs.String()
	var failLine string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "iptables-restore failed") {
			failLine = l
		}
	}
	if failLine == "" {
		t.Fatalf("no restore failure logged:\n%s", logs)
	}
	if !strings.Contains(failLine, `=> `) || !strings.Contains(failLine, "-j "+ChainMarkMasq) {
		t.Errorf("failure log does not point at the jump to %s:\n%s", ChainMarkMasq, failLine)
	}
	if strings.Count(failLine, `\n`) > 7 {
		t.Errorf("failure log carries more than the lines around the failure:\n%s", failLine)
	}
}

func TestProxierIgnoresResyncsAndCountsChanges(t *testing.T) {
	h := pxStart(t, nil)
	svc := pxService("ns1", "web", "10.96.0.10", pxPort("http", corev1.ProtocolTCP, 80))
	svc.ResourceVersion = "5"
	h.p.OnServiceAdd(svc)
	g := h.p.Generation()
	same := svc.DeepCopy()
	h.p.OnServiceUpdate(svc, same)
	if got := h.p.Generation(); got != g {
		t.Errorf("generation after a same-resourceVersion update = %d, want %d", got, g)
	}
	newer := svc.DeepCopy()
	newer.ResourceVersion = "6"
	h.p.OnServiceUpdate(svc, newer)
	if got := h.p.Generation(); got != g+1 {
		t.Errorf("generation after a real update = %d, want %d", got, g+1)
	}
}

func TestProxierMetrics(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)
	h.p.OnEndpointSliceUpdate(sls[0], pxSlice("ns1", "web", "http", corev1.ProtocolTCP, 8080, "10.244.1.2"))
	h.waitSync(t)

	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var node string
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					node = l.GetValue()
				}
			}
			if node != "node-1" {
				t.Errorf("%s has node label %q, want node-1", mf.GetName(), node)
			}
		}
		names = append(names, mf.GetName())
	}
	want := []string{
		"kubeproxy_conntrack_reconciler_deleted_entries_total",
		"kubeproxy_network_programming_duration_seconds",
		"kubeproxy_sync_full_proxy_rules_duration_seconds",
		"kubeproxy_sync_partial_proxy_rules_duration_seconds",
		"kubeproxy_sync_proxy_rules_duration_seconds",
		"kubeproxy_sync_proxy_rules_endpoint_changes_pending",
		"kubeproxy_sync_proxy_rules_endpoint_changes_total",
		"kubeproxy_sync_proxy_rules_iptables_last",
		"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
		"kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
		"kubeproxy_sync_proxy_rules_iptables_total",
		"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_service_changes_pending",
		"kubeproxy_sync_proxy_rules_service_changes_total",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("exported metric families (-want +got):\n%s", diff)
	}
	m := h.p.metrics
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"service changes", pxValue(t, m.ServiceChangesTotal), 2},
		{"endpoint changes", pxValue(t, m.EndpointChangesTotal), 3},
		{"nat rules total", pxValue(t, m.RulesTotal.WithLabelValues("node-1", "nat")), float64(h.p.LastResult().RuleCounts[TableNAT])},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := pxCount(m.SyncFullDuration); n != 1 {
		t.Errorf("full sync series = %d, want 1", n)
	}
	h.p.Close()
	if n := pxCount(m.SyncDuration); n != 0 {
		t.Errorf("series left after Close = %d, want 0", n)
	}
}

func TestNetworkProgrammingLatencyTriggerTimes(t *testing.T) {
	h := pxStart(t, nil)
	h.p.OnSynced()
	h.waitSync(t)
	sampleCount := func() uint64 {
		mfs, err := h.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "kubeproxy_network_programming_duration_seconds" {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}
	before := sampleCount()

	// A trigger time from before the Proxier started (a replayed old
	// object) is not measured, as in kube-proxy.
	old := pxSlice("ns1", "a", "p", corev1.ProtocolTCP, 80, "10.244.1.2")
	old.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: h.p.startTime.Add(-time.Hour).Format(time.RFC3339Nano)}
	h.p.OnEndpointSliceAdd(old)
	h.waitSync(t)
	if got := sampleCount(); got != before {
		t.Errorf("samples after an old trigger time = %d, want %d", got, before)
	}

	// A slice without the annotation is measured from the handler call.
	h.p.OnEndpointSliceAdd(pxSlice("ns1", "b", "p", corev1.ProtocolTCP, 80, "10.244.1.3"))
	h.waitSync(t)
	if got := sampleCount(); got != before+1 {
		t.Errorf("samples after a change = %d, want %d", got, before+1)
	}
}

func TestProxierDeletesStaleUDPConntrack(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)

	flow := func(dst string, dport uint16, replySrc string, rport uint16, proto uint8) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{
			Forward: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP("10.244.1.9"), SrcPort: 40000, DstIP: net.ParseIP(dst), DstPort: dport},
			Reverse: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(replySrc), SrcPort: rport, DstIP: net.ParseIP("10.244.1.9"), DstPort: 40000},
		}
	}
	toOld := flow("10.96.0.53", 53, "10.244.1.4", 5353, unix.IPPROTO_UDP)
	toNew := flow("10.96.0.53", 53, "10.244.1.5", 5353, unix.IPPROTO_UDP)
	tcpToWeb := flow("10.96.0.10", 80, "10.244.1.2", 8080, unix.IPPROTO_TCP)
	elsewhere := flow("192.0.2.1", 53, "192.0.2.1", 53, unix.IPPROTO_UDP)
	for _, f := range []*netlink.ConntrackFlow{toOld, toNew, tcpToWeb, elsewhere} {
		h.fake.AddConntrackFlow(f)
	}

	// dns's endpoint 10.244.1.4 is replaced by 10.244.1.5.
	h.p.OnEndpointSliceUpdate(sls[1], pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.5"))
	h.waitSync(t)
	got := h.fake.ConntrackFlows()
	if diff := cmp.Diff([]*netlink.ConntrackFlow{toNew, tcpToWeb, elsewhere}, got); diff != "" {
		t.Errorf("conntrack after endpoint removal (-want +got):\n%s", diff)
	}
	if v := pxValue(t, h.p.metrics.ConntrackDeleted); v != 1 {
		t.Errorf("conntrack deleted metric = %v, want 1", v)
	}

	// The dns Service goes away: entries to its cluster IP go too.
	h.p.OnServiceDelete(svcs[1])
	h.waitSync(t)
	if diff := cmp.Diff([]*netlink.ConntrackFlow{tcpToWeb, elsewhere}, h.fake.ConntrackFlows()); diff != "" {
		t.Errorf("conntrack after Service deletion (-want +got):\n%s", diff)
	}

	// A UDP Service whose port becomes TCP has no UDP frontend any more:
	// entries to it go, though the Service no longer has a UDP port (the
	// cleanup must remember that it had one).
	syslog := pxService("ns1", "syslog", "10.96.0.54", pxPort("log", corev1.ProtocolUDP, 514))
	h.p.OnServiceAdd(syslog)
	h.p.OnEndpointSliceAdd(pxSlice("ns1", "syslog", "log", corev1.ProtocolUDP, 514, "10.244.1.6"))
	h.waitSync(t)
	toSyslog := flow("10.96.0.54", 514, "10.244.1.6", 514, unix.IPPROTO_UDP)
	h.fake.AddConntrackFlow(toSyslog)
	// A change to a TCP-only Service leaves UDP entries alone.
	web := svcs[0].DeepCopy()
	web.Spec.ExternalIPs = []string{"192.0.2.80"}
	h.p.OnServiceUpdate(svcs[0], web)
	h.waitSync(t)
	if diff := cmp.Diff([]*netlink.ConntrackFlow{tcpToWeb, elsewhere, toSyslog}, h.fake.ConntrackFlows()); diff != "" {
		t.Errorf("conntrack after a TCP Service change (-want +got):\n%s", diff)
	}
	syslogTCP := pxService("ns1", "syslog", "10.96.0.54", pxPort("log", corev1.ProtocolTCP, 514))
	h.p.OnServiceUpdate(syslog, syslogTCP)
	h.waitSync(t)
	if diff := cmp.Diff([]*netlink.ConntrackFlow{tcpToWeb, elsewhere}, h.fake.ConntrackFlows()); diff != "" {
		t.Errorf("conntrack after the UDP port became TCP (-want +got):\n%s", diff)
	}
}

func TestNewProxierNeedsNamespace(t *testing.T) {
	if _, err := NewProxier(ProxierConfig{Node: Node{Name: "n"}}); !errors.Is(err, ErrNoNetns) {
		t.Errorf("NewProxier without netns or runner = %v, want ErrNoNetns", err)
	}
	if _, err := NewRunner(""); !errors.Is(err, ErrNoNetns) {
		t.Errorf("NewRunner(\"\") = %v, want ErrNoNetns", err)
	}
	if err := inNetns("", func() error { return nil }); !errors.Is(err, ErrNoNetns) {
		t.Errorf("inNetns(\"\") = %v, want ErrNoNetns", err)
	}
	h := pxStart(t, nil)
	h.p.OnSynced()
	h.waitSync(t) // the first Run is running
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.p.Run(ctx); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestProxierChangeWithoutRulesNeedsNoRestore(t *testing.T) {
	h := pxStart(t, nil)
	svcs, sls := twoServices()
	h.load(svcs, sls)
	h.waitSync(t)

	orphan := pxSlice("ns1", "orphan", "p", corev1.ProtocolTCP, 80, "10.244.1.9")
	delete(orphan.Labels, discoveryv1.LabelServiceName) // names no Service
	h.p.OnEndpointSliceAdd(orphan)
	h.waitSync(t) // must not hang: nothing to program is "in sync"
	if total, _ := h.fake.Restores(); total != 2 {
		t.Errorf("restores = %d, want 2 (jump rules, initial sync): a change that touches no Service needs no restore", total)
	}
}
