package dataplane

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// pxBenchServices returns n TCP Services (cluster IPs from 10.96.0.0) with
// two endpoints each (from 10.244.0.0/16).
func pxBenchServices(n int) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	svcs := make([]*corev1.Service, 0, n)
	sls := make([]*discoveryv1.EndpointSlice, 0, n)
	ep := func(k int) string { return fmt.Sprintf("10.244.%d.%d", k/250, 1+k%250) }
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		ip := fmt.Sprintf("10.%d.%d.%d", 96+i/65536, (i/256)%256, i%256)
		svcs = append(svcs, pxService("bench", name, ip, pxPort("http", corev1.ProtocolTCP, 80)))
		sls = append(sls, pxSlice("bench", name, "http", corev1.ProtocolTCP, 8080, ep(2*i), ep(2*i+1)))
	}
	return svcs, sls
}

// pxBenchCtx bounds a benchmark: iptables-nft needs minutes for 10,000
// Services on a loaded 2-core machine (run with -timeout 60m).
func pxBenchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

// pxBackends are the iptables backends the root benchmarks and tests run
// against, as sub-benchmark/subtest names.
var pxBackends = []IPTablesBackend{BackendNFT, BackendLegacy}

// pxRequireBackend skips unless backend's tools are installed.
func pxRequireBackend(t testing.TB, backend IPTablesBackend) {
	t.Helper()
	tools := backend.tools()
	for _, bin := range []string{tools.iptables, tools.restore, tools.save} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
}

// pxBenchProxier starts a Proxier with backend on a throwaway namespace
// loaded with n Services × 2 endpoints and waits for its first (full) sync,
// which it returns with its duration (report it after b.ResetTimer, which
// drops reported metrics).
func pxBenchProxier(b *testing.B, n int, backend IPTablesBackend) (*Proxier, time.Duration) {
	p, _, first := pxBenchProxierRunner(b, n, backend)
	return p, first
}

// pxBenchProxierRunner is pxBenchProxier that also returns the Runner of
// the proxier's namespace.
func pxBenchProxierRunner(b *testing.B, n int, backend IPTablesBackend) (*Proxier, Runner, time.Duration) {
	pxRequireRoot(b)
	pxRequireBackend(b, backend)
	path := pxNewNetns(b)
	p, r, logs := pxStartReal(b, path, func(c *ProxierConfig) { c.Backend = backend })
	svcs, sls := pxBenchServices(n)
	for _, s := range svcs {
		p.OnServiceAdd(s)
	}
	for _, s := range sls {
		p.OnEndpointSliceAdd(s)
	}
	start := time.Now()
	p.OnSynced()
	if err := p.WaitForSync(pxBenchCtx(b)); err != nil {
		b.Fatalf("first sync: %v\n%s", err, logs.String())
	}
	return p, r, time.Since(start)
}

// pxPerBackend runs bench as one sub-benchmark per backend ("nft",
// "legacy").
func pxPerBackend(b *testing.B, bench func(*testing.B, IPTablesBackend)) {
	for _, backend := range pxBackends {
		b.Run(string(backend), func(b *testing.B) { bench(b, backend) })
	}
}

// BenchmarkFullSync10kServices measures a full resync (ensure the canary and
// jump rules, save the existing chains, render, iptables-restore of every
// chain) of 10,000 Services with 2 endpoints each in a real network
// namespace, per backend; first-sync-ms is the first full sync into the
// empty namespace (what `svclab up` pays). Root only.
func BenchmarkFullSync10kServices(b *testing.B) {
	pxPerBackend(b, func(b *testing.B, backend IPTablesBackend) { benchFullSync(b, 10000, backend) })
}

// BenchmarkFullSync1kServices is BenchmarkFullSync10kServices at lab scale.
func BenchmarkFullSync1kServices(b *testing.B) {
	pxPerBackend(b, func(b *testing.B, backend IPTablesBackend) { benchFullSync(b, 1000, backend) })
}

func benchFullSync(b *testing.B, n int, backend IPTablesBackend) {
	p, first := pxBenchProxier(b, n, backend)
	ctx := pxBenchCtx(b)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		gen := p.RequestFullSync()
		if err := p.WaitForGeneration(ctx, gen); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/sync")
	b.ReportMetric(float64(first.Milliseconds()), "first-sync-ms")
	if st := p.Status(); st.Failures != 0 {
		b.Fatalf("failed syncs: %+v", st)
	}
}

// BenchmarkNetworkProgrammingLatency10k measures, with 10,000 Services
// present, the time from the handler calls that add one Service and its
// EndpointSlice to the end of the iptables-restore that programs it (a
// partial sync), per backend. Root only.
func BenchmarkNetworkProgrammingLatency10k(b *testing.B) {
	pxPerBackend(b, func(b *testing.B, backend IPTablesBackend) { benchNetworkProgramming(b, 10000, backend) })
}

// BenchmarkNetworkProgrammingLatency1k is BenchmarkNetworkProgrammingLatency10k
// at lab scale.
func BenchmarkNetworkProgrammingLatency1k(b *testing.B) {
	pxPerBackend(b, func(b *testing.B, backend IPTablesBackend) { benchNetworkProgramming(b, 1000, backend) })
}

func benchNetworkProgramming(b *testing.B, n int, backend IPTablesBackend) {
	p, first := pxBenchProxier(b, n, backend)
	ctx := pxBenchCtx(b)
	lat := make([]time.Duration, 0, b.N)
	syncsBefore := p.Status().PartialSyncs
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("new-%d", i)
		ip := fmt.Sprintf("10.100.%d.%d", i/250, 1+i%250)
		start := time.Now()
		p.OnServiceAdd(pxService("bench", name, ip, pxPort("http", corev1.ProtocolTCP, 80)))
		p.OnEndpointSliceAdd(pxSlice("bench", name, "http", corev1.ProtocolTCP, 8080, "10.245.0.1"))
		if err := p.WaitForSync(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	pxReportLatencies(b, lat)
	b.ReportMetric(float64(first.Milliseconds()), "first-sync-ms")
	b.ReportMetric(float64(p.Status().PartialSyncs-syncsBefore)/float64(b.N), "syncs/op")
	if st := p.Status(); st.Failures != 0 || st.FullSyncs != 1 {
		b.Fatalf("want one full sync and only partial syncs after it, no failures: %+v", st)
	}
}

// BenchmarkNATTransactionFloor measures the least any change to the nat
// table costs once it holds n Services × 2 endpoints: one iptables-restore
// transaction that adds a single rule (a jump to KUBE-MARK-MASQ from a new
// chain), timed per backend and size; the chain is removed again untimed.
// Whatever a proxy renders, a change that adds a rule to nat pays at least
// this. With nf_tables the kernel re-validates every rule reachable from
// the table's base chains when such a transaction commits
// (nft_chain_validate in a profile); with legacy the whole table is copied
// out and replaced. It is the floor under BenchmarkNetworkProgrammingLatency10k.
// Root only.
func BenchmarkNATTransactionFloor(b *testing.B) {
	pxPerBackend(b, func(b *testing.B, backend IPTablesBackend) {
		for _, n := range []int{1000, 5000, 10000} {
			b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchNATFloor(b, n, backend) })
		}
	})
}

func benchNATFloor(b *testing.B, n int, backend IPTablesBackend) {
	p, r, _ := pxBenchProxierRunner(b, n, backend)
	ctx := pxBenchCtx(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		chain := fmt.Sprintf("SVCLAB-FLOOR-%d", i)
		add := []byte("*nat\n:" + chain + " - [0:0]\n-A " + chain + " -j " + ChainMarkMasq + "\nCOMMIT\n")
		start := time.Now()
		if err := r.Restore(ctx, add); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if err := r.Restore(ctx, []byte("*nat\n-F "+chain+"\n-X "+chain+"\nCOMMIT\n")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	pxReportLatencies(b, lat)
	if st := p.Status(); st.Failures != 0 {
		b.Fatalf("failed syncs: %+v", st)
	}
}

// pxReportLatencies sorts lat and reports its median and 99th percentile
// as p50-ms and p99-ms.
func pxReportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
