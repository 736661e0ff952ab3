package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkWebGraphScale measures, in a real lab holding 10,000 Services (each with an
// endpoint), the latency of what the UI's Chains view requests for one selected Service: the
// graph once and then the counters every second. Requests are sequential, like the page's;
// after one warming graph request, each sub-benchmark sends b.N requests (use -benchtime=200x)
// and reports p50 and p99 in ms. The product target is p99 under 50 ms.
func BenchmarkWebGraphScale(b *testing.B) {
	requireLabs(b)
	bl := getBenchLab(b)
	bl.ensureServices(b, 10000)
	svc := "default/" + benchServiceName(5000)
	q := url.Values{"node": {"node-1"}, "service": {svc}}
	graphPath := "/lab/v1/graph?" + q.Encode() + "&format=json"
	countersPath := "/lab/v1/counters?" + q.Encode()

	// For the record: what the iptables calls behind these endpoints cost on node-1 now.
	for _, argv := range [][]string{
		{"iptables", "-t", "nat", "-S", "KUBE-SERVICES", "-v"},
		{"iptables", "-t", "nat", "-S", "KUBE-POSTROUTING", "-v"},
	} {
		start := time.Now()
		if r := bl.execNode(b, "node-1", argv...); r.code != 0 {
			b.Fatalf("%s: %s", strings.Join(argv, " "), r)
		}
		b.Logf("svclab exec --node node-1 -- %s: %v", strings.Join(argv, " "), time.Since(start).Round(time.Millisecond))
	}

	start := time.Now()
	body := webGet(b, bl.lab, graphPath)
	b.Logf("warming GET %s: %v, %d bytes", graphPath, time.Since(start).Round(time.Millisecond), len(body))
	var g struct {
		Summaries []string `json:"summaries"`
		Nodes     []struct {
			Name  string `json:"name"`
			Rules []struct {
				ID string `json:"id"`
			} `json:"rules"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		b.Fatalf("graph of %s: %v", svc, err)
	}
	wantChain := false
	for _, n := range g.Nodes {
		if strings.HasPrefix(n.Name, "KUBE-SVC-") && len(n.Rules) > 0 {
			wantChain = true
		}
	}
	if !wantChain {
		b.Fatalf("graph of %s has no KUBE-SVC chain with rules: %s", svc, body)
	}
	b.Logf("graph summaries: %q", g.Summaries)
	b.Logf("counters: %s", webGet(b, bl.lab, countersPath))

	for _, c := range []struct{ name, path string }{{"graph", graphPath}, {"counters", countersPath}} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				webGet(b, bl.lab, c.path)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(percentileMillis(lat, 0.50), "p50-ms")
			b.ReportMetric(percentileMillis(lat, 0.99), "p99-ms")
			b.ReportMetric(percentileMillis(lat, 1), "max-ms")
			b.Logf("%s: n=%d p50 %.1f ms p99 %.1f ms max %.1f ms (load average %s)", c.name, len(lat),
				percentileMillis(lat, 0.50), percentileMillis(lat, 0.99), percentileMillis(lat, 1), loadAverage())
		})
	}
}

// webGet GETs a /lab/v1 path of the lab and returns the body of a 200 answer.
func webGet(b *testing.B, l *lab, path string) []byte {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, body, err := l.do(ctx, http.MethodGet, path, "", nil)
	if err != nil || code != http.StatusOK {
		b.Fatalf("GET %s: %d %v: %s", path, code, err, body)
	}
	return body
}

// loadAverage returns the machine's 1, 5 and 15 minute load averages as text.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return fmt.Sprintf("unknown: %v", err)
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return strings.TrimSpace(string(data))
	}
	return strings.Join(f[:3], " ")
}
