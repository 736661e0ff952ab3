package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/netlab"
)

// benchLab is the benchmarks' shared lab: two nodes, a backend pod and a client pod on node-1,
// and Services loaded on demand.
type benchLab struct {
	*lab
	client, backend *corev1.Pod
	loaded          int // bench Services created so far
}

var (
	benchMu    sync.Mutex
	benchState *benchLab
)

func getBenchLab(b *testing.B) *benchLab {
	b.Helper()
	l := sharedLab(b, "bench", labOptions{nodes: 2})
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchState == nil {
		pods := l.createPods(b, clientPod("bench-client", "node-1"), echoPod("bench-backend", "node-2", labelsFor("bench"), tcpPort(echoPort)))
		benchState = &benchLab{lab: l, client: pods[0], backend: pods[1]}
	}
	return benchState
}

// benchServiceName is the name of the i-th loaded Service.
func benchServiceName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// ensureServices loads bench Services until there are n. Each is a selector-less ClusterIP
// Service with a hand-made EndpointSlice pointing at the one backend pod, so that every one of
// them has its KUBE-SERVICES, KUBE-SVC and KUBE-SEP rules without needing n pods.
func (bl *benchLab) ensureServices(b *testing.B, n int) {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if bl.loaded >= n {
		return
	}
	start, from := time.Now(), bl.loaded
	idx := make(chan int)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range idx {
				if err := bl.createBenchService(i); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := bl.loaded; i < n; i++ {
		select {
		case idx <- i:
		case err = <-errc:
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	bl.loaded = n
	b.Logf("created Services %d…%d through the API in %v", from, n-1, time.Since(start).Round(time.Millisecond))
	want := benchServiceName(n-1) + " cluster IP"
	took := eventually(b, 10*time.Minute, "the last bench Service programmed on node-1", func() (bool, string) {
		return strings.Contains(bl.iptablesSave(b, "node-1"), want), ""
	})
	b.Logf("… and programmed on node-1 %v later", took.Round(time.Millisecond))
}

func (bl *benchLab) createBenchService(i int) error {
	name := benchServiceName(i)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(echoPort),
		}}},
	}
	if err := bl.callErr(http.MethodPost, servicePath("default", ""), "application/json", svc, nil, http.StatusCreated); err != nil {
		return err
	}
	ready := true
	port, proto := int32(echoPort), corev1.ProtocolTCP
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-manual", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: name,
			discoveryv1.LabelManagedBy:   "e2e.svclab.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{bl.backend.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		}},
		Ports: []discoveryv1.EndpointPort{{Port: &port, Protocol: &proto, Name: new(string)}},
	}
	return bl.callErr(http.MethodPost, slicePath("default", ""), "application/json", es, nil, http.StatusCreated)
}

// firstAndLast returns the cluster IPs of the bench Services KUBE-SERVICES on node-1 lists first
// and last (the order kube-proxy wrote them in, which is the order the kernel scans them in).
func (bl *benchLab) firstAndLast(b *testing.B) (first, last string) {
	b.Helper()
	var cips []string
	for _, r := range chainRules(tableOf(bl.iptablesSave(b, "node-1"), "nat"), "KUBE-SERVICES") {
		if !strings.Contains(r, `--comment "default/bench-`) || !strings.Contains(r, " cluster IP\"") {
			continue
		}
		f := strings.Fields(r)
		if i := slices.Index(f, "-d"); i >= 0 && i+1 < len(f) {
			cips = append(cips, strings.TrimSuffix(f[i+1], "/32"))
		}
	}
	if len(cips) == 0 {
		b.Fatal("no bench Service in node-1's KUBE-SERVICES")
	}
	b.Logf("node-1's KUBE-SERVICES lists %d bench Services: first %s, last %s", len(cips), cips[0], cips[len(cips)-1])
	return cips[0], cips[len(cips)-1]
}

// median of durations in microseconds.
func medianMicros(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2].Nanoseconds()) / 1e3
}

func percentileMillis(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return float64(s[i].Microseconds()) / 1e3
}

// BenchmarkFirstPacketLatency measures the TCP connect time (SYN → established) from a pod to the
// Service KUBE-SERVICES lists first and to the one it lists last, with N Services loaded: the
// first packet of a connection walks KUBE-SERVICES rule by rule (the seed's "O(n)" point), later
// packets follow conntrack. Reported as medians in µs.
func BenchmarkFirstPacketLatency(b *testing.B) {
	requireLabs(b)
	for _, n := range []int{1, 1000, 5000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			bl := getBenchLab(b)
			bl.ensureServices(b, n)
			first, last := bl.firstAndLast(b)
			var firstD, lastD []time.Duration
			b.ResetTimer()
			err := inNetns(enterPath(bl.podNetnsPath("default", bl.client.Name)), func() error {
				for range b.N {
					for _, t := range []struct {
						addr string
						d    *[]time.Duration
					}{{hostPort(first, 80), &firstD}, {hostPort(last, 80), &lastD}} {
						start := time.Now()
						c, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
						if err != nil {
							return fmt.Errorf("connect to %s: %w", t.addr, err)
						}
						*t.d = append(*t.d, time.Since(start))
						c.(*net.TCPConn).SetLinger(0) // RST: no TIME_WAIT pile-up over many samples
						c.Close()
					}
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(medianMicros(firstD), "first-µs")
			b.ReportMetric(medianMicros(lastD), "last-µs")
		})
	}
}

// proxyMetrics reads /metrics and sums every kubeproxy_* sample over its labels (the nodes):
// "kubeproxy_sync_proxy_rules_duration_seconds_sum" → seconds summed over all nodes.
func (l *lab) proxyMetrics(b *testing.B) map[string]float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, body, err := l.do(ctx, http.MethodGet, "/metrics", "", nil)
	if err != nil || code != http.StatusOK {
		b.Fatalf("GET /metrics: %d %v", code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "kubeproxy_") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// meanDelta is the mean of a histogram's observations between two metric reads, in ms.
func meanDelta(before, after map[string]float64, hist string) (float64, bool) {
	n := after[hist+"_count"] - before[hist+"_count"]
	if n <= 0 {
		return 0, false
	}
	return (after[hist+"_sum"] - before[hist+"_sum"]) / n * 1e3, true
}

// BenchmarkNetworkProgramming measures, with 10,000 Services present, the time from the API write
// of one more Service (its pod already running) until a connection to its cluster IP succeeds
// from inside every node — the rules are in all of them. Reported as p50 and p99 in ms, next to
// the mean of the proxies' own network-programming metric over the same writes.
func BenchmarkNetworkProgramming(b *testing.B) {
	requireLabs(b)
	bl := getBenchLab(b)
	bl.ensureServices(b, 10000)
	nodes := bl.nodes(b)
	// For the record: what one iptables call costs in a node holding 10,000 Services (the
	// iptables-nft backend reads the whole table first).
	for _, argv := range [][]string{{"true"}, {"iptables", "-t", "nat", "-S", "KUBE-PROXY-CANARY"}, {"iptables-save", "-t", "nat"}} {
		start := time.Now()
		if r := bl.execNode(b, "node-1", argv...); r.code != 0 {
			b.Fatalf("%s: %s", strings.Join(argv, " "), r)
		}
		b.Logf("svclab exec --node node-1 -- %s: %v", strings.Join(argv, " "), time.Since(start).Round(time.Millisecond))
	}
	m0 := bl.proxyMetrics(b)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		name := uniq("netprog")
		svc := clusterIPService(name, labelsFor("bench"), 80, echoPort)
		start := time.Now()
		svc = bl.createService(b, svc)
		addr := hostPort(svc.Spec.ClusterIP, 80)
		var wg sync.WaitGroup
		done := make([]time.Duration, len(nodes))
		for i, n := range nodes {
			wg.Go(func() {
				path := bl.nodeNetnsPath(n.name)
				for time.Since(start) < 2*time.Minute {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					c, err := netlab.DialInNetns(ctx, path, "tcp", addr)
					cancel()
					if err == nil {
						done[i] = time.Since(start)
						c.Close()
						return
					}
				}
			})
		}
		wg.Wait()
		worst := slices.Max(done)
		if slices.Contains(done, 0) {
			b.Fatalf("%s (%s) not reachable from every node within 2 minutes: %v", name, addr, done)
		}
		lat = append(lat, worst)
	}
	b.StopTimer()
	m1 := bl.proxyMetrics(b)
	b.ReportMetric(percentileMillis(lat, 0.50), "p50-ms")
	b.ReportMetric(percentileMillis(lat, 0.99), "p99-ms")
	if v, ok := meanDelta(m0, m1, "kubeproxy_network_programming_duration_seconds"); ok {
		b.ReportMetric(v, "metric-mean-ms")
	}
	for _, h := range []string{"kubeproxy_sync_proxy_rules_duration_seconds", "kubeproxy_sync_full_proxy_rules_duration_seconds", "kubeproxy_sync_partial_proxy_rules_duration_seconds"} {
		if v, ok := meanDelta(m0, m1, h); ok {
			b.Logf("%s: %.0f syncs over all nodes, mean %.1f ms", h, m1[h+"_count"]-m0[h+"_count"], v)
		}
	}
}
