package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// dig runs dig inside the demo's client pod and returns its output; a failing dig fails tb.
func (l *lab) dig(tb testing.TB, args ...string) string {
	tb.Helper()
	r := l.exec(tb, "default", "client", append([]string{"dig", "+time=2", "+tries=2"}, args...)...)
	if r.code != 0 {
		tb.Fatalf("dig %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// TestDNSFromPodUDPAndTCP: a pod asks the cluster DNS through its Service IP over UDP and TCP.
func TestDNSFromPodUDPAndTCP(t *testing.T) {
	l := demoLab(t)
	want := []string{"redis.default.svc.cluster.local. 5 IN A 10.96.0.100"}
	for _, tc := range []struct{ proto, flag string }{{"UDP", "+notcp"}, {"TCP", "+tcp"}} {
		out := l.dig(t, tc.flag, "-t", "A", "redis.default.svc.cluster.local.", "@"+dnsServiceIP)
		if diff := cmp.Diff(want, digAnswers(out)); diff != "" {
			t.Errorf("%s answer (-want +got):\n%s\n%s", tc.proto, diff, out)
		}
		if !strings.Contains(out, "SERVER: "+dnsServiceIP+"#53("+dnsServiceIP+") ("+tc.proto+")") {
			t.Errorf("dig %s did not report the query going to %s over %s:\n%s", tc.flag, dnsServiceIP, tc.proto, out)
		}
	}
}

// TestDNSSeedHeadlessDig runs the seed's own command (8.9) in a pod: one A record per pod of the
// headless Service.
func TestDNSSeedHeadlessDig(t *testing.T) {
	l := demoLab(t)
	out := l.dig(t, "-t", "A", "myapp-nohead.default.svc.cluster.local.", "@10.96.0.10")
	var want []string
	for _, p := range l.listPods(t, "default", "app=myapp-nohead,release=canary") {
		want = append(want, "myapp-nohead.default.svc.cluster.local. 5 IN A "+p.Status.PodIP)
	}
	if len(want) != 2 {
		t.Fatalf("myapp-nohead has %d pods, want 2", len(want))
	}
	if ips := l.sliceEndpointIPs(t, "default", "myapp-nohead"); len(ips) != 2 {
		t.Errorf("myapp-nohead's EndpointSlices hold %v, want the 2 pod IPs", ips)
	}
	got := digAnswers(out)
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s\n%s", diff, out)
	}
}

// TestDNSSearchPath: a short name resolves through the pod's search path.
func TestDNSSearchPath(t *testing.T) {
	l := demoLab(t)
	out := l.dig(t, "+search", "redis")
	if diff := cmp.Diff([]string{"redis.default.svc.cluster.local. 5 IN A 10.96.0.100"}, digAnswers(out)); diff != "" {
		t.Errorf("dig +search redis (-want +got):\n%s\n%s", diff, out)
	}
}

// TestDNSCurlByName: curl by Service name from a pod reaches a backend (resolver, search path and
// ClusterIP rules together).
func TestDNSCurlByName(t *testing.T) {
	l := demoLab(t)
	r := l.exec(t, "default", "client", "curl", "-sS", "-m", "5", "http://myapp.default.svc.cluster.local/")
	if r.code != 0 {
		t.Fatalf("curl: %s", r)
	}
	rep, err := parseEchoText(r.stdout)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pod != "myapp-0" && rep.Pod != "myapp-1" {
		t.Errorf("answered by %s, want myapp-0 or myapp-1", rep.Pod)
	}
}

// TestDNSExternalName: an ExternalName Service answers with a CNAME, and the out-of-cluster
// target is resolved through the upstream (the tests' fake one) and appended.
func TestDNSExternalName(t *testing.T) {
	l := demoLab(t)
	out := l.dig(t, "-t", "A", "search.default.svc.cluster.local.", "@"+dnsServiceIP)
	var got []string
	for _, a := range digAnswers(out) {
		f := strings.Fields(a)
		if len(f) == 5 {
			f[1] = "TTL" // the upstream's TTL is its own business
		}
		got = append(got, strings.Join(f, " "))
	}
	want := []string{
		"search.default.svc.cluster.local. TTL IN CNAME " + upstreamName,
		upstreamName + " TTL IN A " + upstreamAnswer,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s\n%s", diff, out)
	}
	if !slices.Contains(l.upstream.seen(), upstreamName+" A") {
		t.Errorf("the fake upstream was never asked for %s A; it saw %v", upstreamName, l.upstream.seen())
	}
}

// TestDNSNewServiceResolvable: a new Service resolves; the time from the API write to the first
// answer (host listener, in-process client) is logged.
func TestDNSNewServiceResolvable(t *testing.T) {
	l := demoLab(t)
	name := uniq("fresh")
	fqdn := name + ".default.svc.cluster.local."
	if m, err := l.queryDNS("udp", fqdn, dns.TypeA); err != nil || m.Rcode != dns.RcodeNameError {
		t.Fatalf("before the Service exists: %v %v, want NXDOMAIN", m, err)
	}
	start := time.Now()
	svc := l.createService(t, clusterIPService(name, labelsFor(name), 80, echoPort))
	written := time.Since(start)
	var last string
	for {
		m, err := l.queryDNS("udp", fqdn, dns.TypeA)
		if err == nil && slices.Equal(aRecords(m), []string{svc.Spec.ClusterIP}) {
			break
		}
		last = fmt.Sprint(m, err)
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s does not resolve to %s 30s after its creation; last answer: %s", fqdn, svc.Spec.ClusterIP, last)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("Service create → first DNS answer: %v (the API write itself took %v)", time.Since(start).Round(100*time.Microsecond), written.Round(100*time.Microsecond))
	m, err := l.queryDNS("tcp", fqdn, dns.TypeA)
	if err != nil || !slices.Equal(aRecords(m), []string{svc.Spec.ClusterIP}) {
		t.Errorf("over TCP: %v %v, want %s", m, err, svc.Spec.ClusterIP)
	}
}

// TestDNSHeadlessFollowsScale: a headless Service's A records follow its pods 1→3→1.
func TestDNSHeadlessFollowsScale(t *testing.T) {
	l := demoLab(t)
	name := uniq("nohead")
	fqdn := name + ".default.svc.cluster.local."
	svc := clusterIPService(name, labelsFor(name), 80, echoPort)
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	l.createService(t, svc)
	expect := func(what string, pods []*corev1.Pod) {
		t.Helper()
		want := podIPs(pods)
		eventually(t, 30*time.Second, fmt.Sprintf("%s: %s A %v", what, fqdn, want), func() (bool, string) {
			m, err := l.queryDNS("udp", fqdn, dns.TypeA)
			if err != nil {
				return false, err.Error()
			}
			return slices.Equal(aRecords(m), want), m.String()
		})
	}
	pods := l.createPods(t, backendsOn(name, "node-1", "node-2", "node-3")[:1]...)
	expect("one pod", pods)
	more := backendsOn(name, "node-1", "node-2", "node-3")[1:]
	pods = append(pods, l.createPods(t, more...)...)
	expect("three pods", pods)
	for _, p := range pods[1:] {
		l.call(t, http.MethodDelete, podPath("default", p.Name), "", nil, nil, http.StatusOK, http.StatusAccepted)
	}
	expect("one pod again", pods[:1])
	out := l.dig(t, "-t", "A", fqdn, "@"+dnsServiceIP)
	if diff := cmp.Diff([]string{fqdn + " 5 IN A " + pods[0].Status.PodIP}, digAnswers(out)); diff != "" {
		t.Errorf("from a pod (-want +got):\n%s", diff)
	}
}
