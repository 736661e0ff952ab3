package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fixedSerial is the SOA serial every fixture answer carries: the fixture's
// clock is frozen at this unix time.
const fixedSerial = 1700000000

func fixedClock() time.Time { return time.Unix(fixedSerial, 0) }

func svcPort(name string, port int32, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: proto}
}

func service(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports},
	}
	if clusterIP != "" {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func externalService(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

func slicePort(name string, port int32, proto corev1.Protocol) discoveryv1.EndpointPort {
	p := discoveryv1.EndpointPort{Port: &port, Protocol: &proto}
	p.Name = &name
	return p
}

func endpoint(ip string, ready bool, hostname string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
	if hostname != "" {
		e.Hostname = &hostname
	}
	return e
}

func endpointSlice(ns, name, svcName string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// bigEndpoints is the number of ready endpoints of the "big" headless Service.
const bigEndpoints = 100

// newFixtureIndex returns the index every table test answers from:
//
//	default/redis        ClusterIP 10.96.0.20, ports redis 6379/TCP + metrics 9121/TCP, 2 ready + 1 not-ready endpoints
//	default/plain        ClusterIP 10.96.0.21, one unnamed port 80/TCP
//	default/empty        ClusterIP 10.96.0.22, port http 80, no endpoints
//	default/myapp-nohead headless (the seed's example), 10.244.1.75 and 10.244.2.74, no hostnames
//	default/db           headless, hostnames db-0, db-1 (ready), db-2 (not ready), port mysql 3306
//	default/nothing      headless, only a not-ready endpoint
//	default/pnr          headless, publishNotReadyAddresses, one ready and one not-ready endpoint
//	default/big          headless, 100 ready endpoints 10.244.3.1-100
//	default/dual         dual-stack ClusterIP 10.96.0.30 and fd00:10:96::30, port http 80
//	default/v6           headless, one IPv6 endpoint fd00:10:244:1::7
//	default/ext          ExternalName example.org (out of zone)
//	default/ext-in       ExternalName redis.default.svc.cluster.local (in zone)
//	default/ext-missing  ExternalName missing.default.svc.cluster.local (in zone, no such Service)
//	default/ext-ip       ExternalName 192.0.2.99 (an IP)
//	kube-system/kube-dns ClusterIP 10.96.0.10, dns 53/UDP, dns-tcp 53/TCP, endpoint 10.244.0.5 (the DNS pod)
//	namespace quiet      announced, empty
//	default/web-0        Pod 10.244.1.5
func newFixtureIndex() *Index {
	x := NewIndex("cluster.local.")
	x.now = fixedClock
	x.touch()
	for _, op := range fixtureOps() {
		op(x)
	}
	return x
}

// fixtureOps returns the fixture as independent index operations, one per
// object, so tests can replay them in any order.
func fixtureOps() []func(x *Index) {
	var ops []func(x *Index)
	svc := func(s *corev1.Service) { ops = append(ops, func(x *Index) { x.UpsertService(s) }) }
	es := func(e *discoveryv1.EndpointSlice) { ops = append(ops, func(x *Index) { x.UpsertEndpointSlice(e) }) }

	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	svc(service("default", "redis", "10.96.0.20", svcPort("redis", 6379, tcp), svcPort("metrics", 9121, tcp)))
	es(endpointSlice("default", "redis-abcde", "redis",
		[]discoveryv1.EndpointPort{slicePort("redis", 6379, tcp), slicePort("metrics", 9121, tcp)},
		endpoint("10.244.1.20", true, ""), endpoint("10.244.2.20", true, ""), endpoint("10.244.2.21", false, "")))

	svc(service("default", "plain", "10.96.0.21", svcPort("", 80, tcp)))
	es(endpointSlice("default", "plain-abcde", "plain",
		[]discoveryv1.EndpointPort{slicePort("", 80, tcp)}, endpoint("10.244.1.21", true, "")))

	svc(service("default", "empty", "10.96.0.22", svcPort("http", 80, tcp)))

	svc(service("default", "myapp-nohead", corev1.ClusterIPNone, svcPort("", 80, tcp)))
	es(endpointSlice("default", "myapp-nohead-abcde", "myapp-nohead",
		[]discoveryv1.EndpointPort{slicePort("", 80, tcp)},
		endpoint("10.244.1.75", true, ""), endpoint("10.244.2.74", true, "")))

	svc(service("default", "db", corev1.ClusterIPNone, svcPort("mysql", 3306, tcp)))
	es(endpointSlice("default", "db-abcde", "db",
		[]discoveryv1.EndpointPort{slicePort("mysql", 3306, tcp)},
		endpoint("10.244.1.10", true, "db-0"), endpoint("10.244.2.10", true, "db-1"), endpoint("10.244.1.11", false, "db-2")))

	svc(service("default", "nothing", corev1.ClusterIPNone, svcPort("http", 80, tcp)))
	es(endpointSlice("default", "nothing-abcde", "nothing",
		[]discoveryv1.EndpointPort{slicePort("http", 80, tcp)}, endpoint("10.244.1.40", false, "")))

	pnr := service("default", "pnr", corev1.ClusterIPNone, svcPort("http", 80, tcp))
	pnr.Spec.PublishNotReadyAddresses = true
	svc(pnr)
	es(endpointSlice("default", "pnr-abcde", "pnr",
		[]discoveryv1.EndpointPort{slicePort("http", 80, tcp)},
		endpoint("10.244.1.30", false, ""), endpoint("10.244.2.30", true, "")))

	svc(service("default", "big", corev1.ClusterIPNone, svcPort("http", 80, tcp)))
	var big []discoveryv1.Endpoint
	for i := 1; i <= bigEndpoints; i++ {
		big = append(big, endpoint(fmt.Sprintf("10.244.3.%d", i), true, ""))
	}
	es(endpointSlice("default", "big-abcde", "big", []discoveryv1.EndpointPort{slicePort("http", 80, tcp)}, big...))

	dual := service("default", "dual", "10.96.0.30", svcPort("http", 80, tcp))
	dual.Spec.ClusterIPs = []string{"10.96.0.30", "fd00:10:96::30"}
	svc(dual)
	v6 := endpointSlice("default", "v6-abcde", "v6", []discoveryv1.EndpointPort{slicePort("http", 80, tcp)}, endpoint("fd00:10:244:1::7", true, ""))
	v6.AddressType = discoveryv1.AddressTypeIPv6
	svc(service("default", "v6", corev1.ClusterIPNone, svcPort("http", 80, tcp)))
	es(v6)

	svc(externalService("default", "ext", "example.org"))
	svc(externalService("default", "ext-in", "redis.default.svc.cluster.local"))
	svc(externalService("default", "ext-missing", "missing.default.svc.cluster.local"))
	svc(externalService("default", "ext-ip", "192.0.2.99"))

	svc(service("kube-system", "kube-dns", "10.96.0.10",
		svcPort("dns", 53, udp), svcPort("dns-tcp", 53, tcp), svcPort("metrics", 9153, tcp)))
	es(endpointSlice("kube-system", "kube-dns-abcde", "kube-dns",
		[]discoveryv1.EndpointPort{slicePort("dns", 53, udp), slicePort("dns-tcp", 53, tcp), slicePort("metrics", 9153, tcp)},
		endpoint("10.244.0.5", true, "")))

	ops = append(ops,
		func(x *Index) { x.UpsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "quiet"}}) },
		func(x *Index) {
			x.UpsertPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.5"}})
		})
	return ops
}

// fakeWriter is an mdns.ResponseWriter that keeps the reply. Like the real
// writer it packs the message, so a reply that cannot be sent fails the test.
type fakeWriter struct {
	tcp    bool
	msg    *mdns.Msg
	packed []byte
	err    error
}

var _ mdns.ResponseWriter = (*fakeWriter)(nil)

func (w *fakeWriter) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *fakeWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(10, 244, 1, 99), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(10, 244, 1, 99), Port: 40000}
}

func (w *fakeWriter) WriteMsg(m *mdns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.err = fmt.Errorf("pack reply: %w", err)
		return w.err
	}
	w.msg, w.packed = m, b
	return nil
}

func (w *fakeWriter) Write(b []byte) (int, error) {
	m := new(mdns.Msg)
	if err := m.Unpack(b); err != nil {
		w.err = err
		return 0, err
	}
	w.msg, w.packed = m, b
	return len(b), nil
}

func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}

// fakeUpstream is a resolver on loopback (UDP and TCP on one port) that
// stands in for the host's: it knows a few names and says NXDOMAIN to the rest.
type fakeUpstream struct {
	addr    string
	queries chan string
}

// upstreamZone is what the fake upstream answers.
var upstreamZone = map[string][]string{
	"example.org. A":               {"example.org. 300 IN A 192.0.2.10"},
	"example.org. AAAA":            {},
	"www.example.org. A":           {"www.example.org. 300 IN CNAME example.org.", "example.org. 300 IN A 192.0.2.10"},
	"9.9.244.10.in-addr.arpa. PTR": {"9.9.244.10.in-addr.arpa. 300 IN PTR from-upstream.example."},
}

func startFakeUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	up := &fakeUpstream{queries: make(chan string, 1000)}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		key := strings.ToLower(q.Name) + " " + mdns.TypeToString[q.Qtype]
		select {
		case up.queries <- key:
		default:
		}
		switch {
		case strings.ToLower(q.Name) == "big.example.":
			for i := 1; i <= 100; i++ {
				m.Answer = append(m.Answer, mustRR(t, fmt.Sprintf("big.example. 300 IN A 198.51.100.%d", i)))
			}
		default:
			rrs, ok := upstreamZone[key]
			if !ok {
				m.Rcode = mdns.RcodeNameError
			}
			for _, s := range rrs {
				m.Answer = append(m.Answer, mustRR(t, s))
			}
		}
		if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
			size := mdns.MinMsgSize
			if o := r.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			m.Truncate(size)
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt > 20 {
			t.Fatalf("listen tcp beside udp: %v", err)
		}
	}
	up.addr = pc.LocalAddr().String()
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	}
	return up
}

// startBlackhole returns a loopback UDP address that swallows queries.
func startBlackhole(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil || rr == nil {
		t.Fatalf("parse RR %q: %v", s, err)
	}
	return rr
}

// startServer runs srv on fresh loopback UDP and TCP sockets until the test
// ends and returns their address (same port for both).
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var pc net.PacketConn
	var l net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt > 20 {
			t.Fatalf("listen tcp beside udp: %v", err)
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.ServePacketConn(ctx, pc) }()
	go func() { errc <- srv.ServeListener(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errc; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	addr := pc.LocalAddr().String()
	waitForServer(t, addr, "udp", "tcp")
	return addr
}

// waitForServer polls until the server answers over the given networks.
func waitForServer(t testing.TB, addr string, networks ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, network := range networks {
		c := &mdns.Client{Net: network, Timeout: 200 * time.Millisecond}
		m := new(mdns.Msg)
		m.SetQuestion("dns-version.cluster.local.", mdns.TypeTXT)
		for {
			_, _, err := c.Exchange(m, addr)
			if err == nil {
				break
			}
			var ne net.Error
			if time.Now().After(deadline) || (!errors.As(err, &ne) && !strings.Contains(err.Error(), "refused")) {
				t.Fatalf("server on %s/%s never answered: %v", addr, network, err)
			}
		}
	}
}

var localDNSPod = []netip.Addr{netip.MustParseAddr("10.244.0.5")}
