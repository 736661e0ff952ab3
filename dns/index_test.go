package dns

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func answerA(t testing.TB, s *Server, qname string) reply {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(qname, mdns.TypeA)
	return replyText(exchangeDirect(t, s, m, false))
}

// TestUpdateVisibleToNextQuery: every index change shows in the very next
// answer, with a new SOA serial.
func TestUpdateVisibleToNextQuery(t *testing.T) {
	x := NewIndex("")
	clock := time.Unix(1000, 0)
	x.now = func() time.Time { return clock }
	x.touch()
	s := NewServer(Config{Upstreams: []string{}, NoLoadBalance: true, Logger: quietLogger}, x)
	const name = "web.shop.svc.cluster.local."
	tcp := corev1.ProtocolTCP
	soa := func(serial int) string {
		return fmt.Sprintf("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. %d 7200 1800 86400 5", serial)
	}
	steps := []struct {
		name   string
		change func()
		want   dnsCase
	}{
		{"nothing yet", func() {}, dnsCase{rcode: mdns.RcodeNameError, ns: []string{soa(1000)}}},
		{"service created", func() { x.UpsertService(service("shop", "web", "10.96.1.1", svcPort("http", 80, tcp))) },
			dnsCase{answer: []string{name + " 5 IN A 10.96.1.1"}}},
		{"cluster IP changed", func() { x.UpsertService(service("shop", "web", "10.96.1.2", svcPort("http", 80, tcp))) },
			dnsCase{answer: []string{name + " 5 IN A 10.96.1.2"}}},
		{"made headless, no endpoints", func() { x.UpsertService(service("shop", "web", corev1.ClusterIPNone, svcPort("http", 80, tcp))) },
			dnsCase{rcode: mdns.RcodeNameError, ns: []string{soa(1004)}}},
		{"endpoint becomes ready", func() {
			x.UpsertEndpointSlice(endpointSlice("shop", "web-1", "web", []discoveryv1.EndpointPort{slicePort("http", 80, tcp)}, endpoint("10.244.1.9", true, "")))
		}, dnsCase{answer: []string{name + " 5 IN A 10.244.1.9"}}},
		{"endpoint not ready", func() {
			x.UpsertEndpointSlice(endpointSlice("shop", "web-1", "web", []discoveryv1.EndpointPort{slicePort("http", 80, tcp)}, endpoint("10.244.1.9", false, "")))
		}, dnsCase{rcode: mdns.RcodeNameError, ns: []string{soa(1006)}}},
		{"service deleted", func() { x.DeleteService("shop", "web") }, dnsCase{rcode: mdns.RcodeNameError, ns: []string{soa(1007)}}},
		{"slice deleted: namespace gone", func() { x.DeleteEndpointSlice("shop", "web-1") }, dnsCase{rcode: mdns.RcodeNameError, ns: []string{soa(1008)}}},
	}
	for _, st := range steps {
		clock = clock.Add(time.Second)
		st.change()
		if diff := cmp.Diff(st.want.want(t), answerA(t, s, name)); diff != "" {
			t.Fatalf("after %q (-want +got):\n%s", st.name, diff)
		}
	}
	// The namespace itself: NODATA while it exists, NXDOMAIN once empty.
	if got := answerA(t, s, "shop.svc.cluster.local."); got.Rcode != "NXDOMAIN" {
		t.Errorf("empty namespace: %s, want NXDOMAIN", got.Rcode)
	}
}

// TestSerialOnlyOnChange: re-applying an object unchanged (a resync) keeps
// the serial, as CoreDNS does.
func TestSerialOnlyOnChange(t *testing.T) {
	x := NewIndex("")
	clock := time.Unix(1000, 0)
	x.now = func() time.Time { return clock }
	x.touch()
	svc := service("shop", "web", "10.96.1.1")
	svc.ResourceVersion = "7"
	x.UpsertService(svc)
	es := endpointSlice("shop", "web-1", "web", nil, endpoint("10.244.1.9", true, ""))
	x.UpsertEndpointSlice(es)
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.Status.PodIP = "shop", "web-0", "10.244.1.9"
	x.UpsertPod(pod)
	clock = clock.Add(time.Hour)
	x.UpsertService(svc.DeepCopy())
	x.UpsertEndpointSlice(es.DeepCopy())
	x.UpsertPod(pod.DeepCopy())
	if got := x.Serial(); got != 1000 {
		t.Errorf("serial %d after unchanged re-upserts, want 1000", got)
	}
	svc.ResourceVersion = "8"
	x.UpsertService(svc)
	if got := x.Serial(); got != 4600 {
		t.Errorf("serial %d after a change, want 4600", got)
	}
}

// TestIndexConvergesInAnyOrder replays the fixture's objects in random
// orders, with unrelated creates and deletes interleaved, and checks that
// every in-zone answer of the table equals the fixture's.
func TestIndexConvergesInAnyOrder(t *testing.T) {
	want := NewServer(Config{Upstreams: []string{}, NoLoadBalance: true, Logger: quietLogger}, newFixtureIndex())
	tcp := corev1.ProtocolTCP
	for seed := uint64(0); seed < 5; seed++ {
		x := NewIndex("cluster.local.")
		x.now = fixedClock
		noise := []func(){
			func() { x.UpsertService(service("default", "tmp", "10.96.9.9", svcPort("http", 80, tcp))) },
			func() {
				x.UpsertEndpointSlice(endpointSlice("default", "db-extra", "db", []discoveryv1.EndpointPort{slicePort("mysql", 3306, tcp)}, endpoint("10.244.9.9", true, "db-9")))
			},
			func() { x.DeleteService("default", "tmp") },
			func() { x.DeleteEndpointSlice("default", "db-extra") },
			func() { x.DeleteService("default", "never-existed") },
		}
		ops := fixtureOps()
		rng := rand.New(rand.NewPCG(seed, 42))
		rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
		for _, op := range ops {
			op(x)
			op(x) // applying twice changes nothing
			noise[rng.IntN(len(noise))]()
		}
		x.DeleteService("default", "tmp")
		x.DeleteEndpointSlice("default", "db-extra")
		got := NewServer(Config{Upstreams: []string{}, NoLoadBalance: true, Logger: quietLogger}, x)
		for _, c := range dnsCases {
			m := new(mdns.Msg)
			m.SetQuestion(c.qname, c.qtype)
			if zone, _ := want.matchZone(strings.ToLower(c.qname)); zone == "" || c.flags == flagsForwarded {
				continue // answered by the upstream
			}
			if strings.HasPrefix(c.qname, "ext.") {
				continue // follows the upstream
			}
			w1 := replyText(exchangeDirect(t, want, m.Copy(), false))
			w2 := replyText(exchangeDirect(t, got, m.Copy(), false))
			if diff := cmp.Diff(w1, w2); diff != "" {
				t.Fatalf("seed %d: %s %s differs (-fixture +replayed):\n%s", seed, c.qname, mdns.TypeToString[c.qtype], diff)
			}
		}
	}
}

// TestConcurrentUpdatesAndQueries hammers the index from writers while
// readers query (run with -race).
func TestConcurrentUpdatesAndQueries(t *testing.T) {
	x := newFixtureIndex()
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, x)
	tcp := corev1.ProtocolTCP
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ip := fmt.Sprintf("10.96.%d.%d", 100+w, i%250)
				x.UpsertService(service("churn", fmt.Sprintf("s%d", i%50), ip, svcPort("http", 80, tcp)))
				x.UpsertEndpointSlice(endpointSlice("churn", fmt.Sprintf("s%d-x", i%50), fmt.Sprintf("s%d", i%50),
					[]discoveryv1.EndpointPort{slicePort("http", 80, tcp)}, endpoint(fmt.Sprintf("10.244.%d.%d", 100+w, i%250), i%2 == 0, "")))
				if i%7 == 0 {
					x.DeleteService("churn", fmt.Sprintf("s%d", (i+3)%50))
					x.DeleteEndpointSlice("churn", fmt.Sprintf("s%d-x", (i+5)%50))
				}
			}
		}()
	}
	names := []string{"redis.default.svc.cluster.local.", "s3.churn.svc.cluster.local.", "_http._tcp.s4.churn.svc.cluster.local.", "big.default.svc.cluster.local."}
	for i := 0; i < 2000; i++ {
		m := new(mdns.Msg)
		qtype := mdns.TypeA
		if i%3 == 0 {
			qtype = mdns.TypeSRV
		}
		m.SetQuestion(names[i%len(names)], qtype)
		resp := exchangeDirect(t, s, m, i%2 == 0)
		if resp.Rcode != mdns.RcodeSuccess && resp.Rcode != mdns.RcodeNameError {
			t.Fatalf("%s: rcode %s", names[i%len(names)], mdns.RcodeToString[resp.Rcode])
		}
	}
	close(stop)
	wg.Wait()
	if got := answerA(t, s, "redis.default.svc.cluster.local."); len(got.Answer) != 1 {
		t.Errorf("fixture damaged by churn: %v", got)
	}
}
