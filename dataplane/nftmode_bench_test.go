package dataplane

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkNFTablesModeFloor asks whether kube-proxy's nftables mode would
// lift the floor BenchmarkNATTransactionFloor measures. In a throwaway
// namespace it loads, with `nft -f`, a ruleset of the shape nftables mode
// writes for n ClusterIP Services × 2 endpoints (kube-proxy-rules.md, "for
// later": one table, the service-ips verdict map, a service chain per
// Service choosing an endpoint chain with `numgen random mod 2 vmap`, a
// dnat endpoint chain per endpoint), then times one `nft -f` transaction
// that adds one more Service: its chains, rules and map elements, as
// nftables mode's partial sync would. The hash part of chain names is a
// number here; hooks, maps and rule shapes are those of kube-proxy v1.33.
// Root and nft only.
func BenchmarkNFTablesModeFloor(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchNFTablesMode(b, n) })
	}
}

func benchNFTablesMode(b *testing.B, n int) {
	pxRequireRoot(b)
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("nft not installed")
	}
	path := pxNewNetns(b)
	ctx := pxBenchCtx(b)
	nft := func(script []byte) error {
		return inNetns(path, func() error {
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, "nft", "-f", "-")
			cmd.Stdin, cmd.Stderr = bytes.NewReader(script), &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("nft -f: %w: %s", err, stderr.Bytes())
			}
			return nil
		})
	}
	var base bytes.Buffer
	nftModeSkeleton(&base)
	if err := nft(base.Bytes()); err != nil {
		b.Fatal(err)
	}
	// Services in batches of 1,000 per transaction: one transaction of
	// 10,000 takes minutes of kernel time.
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		var batch bytes.Buffer
		for j := i; j < min(n, i+1000); j++ {
			nftModeService(&batch, j)
		}
		if err := nft(batch.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
	load := time.Since(start)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		var one bytes.Buffer
		nftModeService(&one, n+i)
		start := time.Now()
		if err := nft(one.Bytes()); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	pxReportLatencies(b, lat)
	b.ReportMetric(float64(load.Milliseconds()), "load-ms")
}

// nftModeSkeleton writes the table, base chains, helper chains and maps of
// kube-proxy's nftables mode (IPv4, cluster CIDR 10.244.0.0/16).
func nftModeSkeleton(w *bytes.Buffer) {
	const t = "ip kube-proxy"
	fmt.Fprintf(w, "add table %s { comment \"rules for kube-proxy\" ; }\n", t)
	for _, c := range []string{"mark-for-masquerade", "masquerading", "services", "service-endpoints-check", "reject-chain"} {
		fmt.Fprintf(w, "add chain %s %s\n", t, c)
	}
	fmt.Fprintf(w, "add rule %s mark-for-masquerade mark set mark or 0x4000\n", t)
	fmt.Fprintf(w, "add rule %s masquerading mark and 0x4000 == 0 return\n", t)
	fmt.Fprintf(w, "add rule %s masquerading mark set mark xor 0x4000\n", t)
	fmt.Fprintf(w, "add rule %s masquerading masquerade fully-random\n", t)
	fmt.Fprintf(w, "add rule %s reject-chain reject\n", t)
	for _, c := range []struct{ name, typ, hook, prio string }{
		{"filter-forward", "filter", "forward", "-110"},
		{"filter-output", "filter", "output", "-110"},
		{"nat-output", "nat", "output", "-100"},
		{"nat-prerouting", "nat", "prerouting", "-100"},
		{"nat-postrouting", "nat", "postrouting", "100"},
	} {
		fmt.Fprintf(w, "add chain %s %s { type %s hook %s priority %s ; }\n", t, c.name, c.typ, c.hook, c.prio)
	}
	fmt.Fprintf(w, "add rule %s filter-forward ct state new jump service-endpoints-check\n", t)
	fmt.Fprintf(w, "add rule %s filter-output ct state new jump service-endpoints-check\n", t)
	fmt.Fprintf(w, "add rule %s nat-output jump services\n", t)
	fmt.Fprintf(w, "add rule %s nat-prerouting jump services\n", t)
	fmt.Fprintf(w, "add rule %s nat-postrouting jump masquerading\n", t)
	fmt.Fprintf(w, "add set %s cluster-ips { type ipv4_addr ; comment \"Active ClusterIPs\" ; }\n", t)
	fmt.Fprintf(w, "add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }\n", t)
	fmt.Fprintf(w, "add map %s no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }\n", t)
	fmt.Fprintf(w, "add rule %s service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services\n", t)
	fmt.Fprintf(w, "add rule %s services ip daddr . meta l4proto . th dport vmap @service-ips\n", t)
}

// nftModeService writes Service i (cluster IP from 10.96.0.0/12, endpoints
// from 10.244.0.0/16) as nftables mode's sync adds it.
func nftModeService(w *bytes.Buffer, i int) {
	const t = "ip kube-proxy"
	ip := fmt.Sprintf("10.%d.%d.%d", 96+i/65536, (i/256)%256, i%256)
	svc := fmt.Sprintf("service-%08d-bench/svc%d/tcp/http", i, i)
	var eps [2]string
	for e := range eps {
		k := 2*i + e
		epIP := fmt.Sprintf("10.244.%d.%d", k/250, 1+k%250)
		eps[e] = fmt.Sprintf("endpoint-%08d-bench/svc%d/tcp/http__%s/8080", k, i, epIP)
		fmt.Fprintf(w, "add chain %s %s\n", t, eps[e])
		fmt.Fprintf(w, "add rule %s %s ip saddr %s jump mark-for-masquerade\n", t, eps[e], epIP)
		fmt.Fprintf(w, "add rule %s %s meta l4proto tcp dnat to %s:8080\n", t, eps[e], epIP)
	}
	fmt.Fprintf(w, "add chain %s %s\n", t, svc)
	fmt.Fprintf(w, "add rule %s %s ip daddr %s tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n", t, svc, ip)
	fmt.Fprintf(w, "add rule %s %s numgen random mod 2 vmap { 0 : goto %s , 1 : goto %s }\n", t, svc, eps[0], eps[1])
	fmt.Fprintf(w, "add element %s cluster-ips { %s }\n", t, ip)
	fmt.Fprintf(w, "add element %s service-ips { %s . tcp . 80 : goto %s }\n", t, ip, svc)
}
