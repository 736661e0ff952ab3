package dns

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

func query(t *testing.T, addr, network, qname string, qtype uint16, edns uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(qname, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", qname, mdns.TypeToString[qtype], network, err)
	}
	return resp
}

// TestServeDNSOverNetwork runs the whole table against the real server on
// loopback, over UDP and over TCP.
func TestServeDNSOverNetwork(t *testing.T) {
	addr := startServer(t, newFixtureServer(t, Config{}))
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range dnsCases {
			t.Run(network+"/"+c.qname+"/"+mdns.TypeToString[c.qtype], func(t *testing.T) {
				got := replyText(query(t, addr, network, c.qname, c.qtype, 0))
				if diff := cmp.Diff(c.want(t), got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestTruncation: a headless Service with 100 endpoints is cut to 512 bytes
// over UDP (TC set), to the EDNS0 buffer size when the query has OPT, and
// never over TCP.
func TestTruncation(t *testing.T) {
	addr := startServer(t, newFixtureServer(t, Config{}))
	const qname = "big.default.svc.cluster.local."
	cases := []struct {
		network   string
		edns      uint16
		truncated bool
		maxWire   int
	}{
		{"udp", 0, true, mdns.MinMsgSize},
		{"udp", 1232, true, 1232},
		{"udp", 4096, false, 4096},
		{"tcp", 0, false, mdns.MaxMsgSize},
	}
	var counts []int
	for _, c := range cases {
		resp := query(t, addr, c.network, qname, mdns.TypeA, c.edns)
		resp.Compress = true // as the server sent it
		wire, err := resp.Pack()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s edns=%d: %d answers, %d bytes, tc=%v", c.network, c.edns, len(resp.Answer), len(wire), resp.Truncated)
		if resp.Truncated != c.truncated {
			t.Errorf("%s edns=%d: TC=%v, want %v", c.network, c.edns, resp.Truncated, c.truncated)
		}
		if len(wire) > c.maxWire {
			t.Errorf("%s edns=%d: %d bytes on the wire, limit %d", c.network, c.edns, len(wire), c.maxWire)
		}
		if !c.truncated && len(resp.Answer) != bigEndpoints {
			t.Errorf("%s edns=%d: %d answers, want all %d", c.network, c.edns, len(resp.Answer), bigEndpoints)
		}
		if c.truncated && (len(resp.Answer) == 0 || len(resp.Answer) >= bigEndpoints) {
			t.Errorf("%s edns=%d: %d answers in a truncated reply", c.network, c.edns, len(resp.Answer))
		}
		o := resp.IsEdns0()
		if (o != nil) != (c.edns > 0) {
			t.Errorf("%s edns=%d: OPT in reply = %v", c.network, c.edns, o != nil)
		}
		if o != nil && o.UDPSize() != c.edns {
			t.Errorf("%s edns=%d: reply OPT buffer size %d", c.network, c.edns, o.UDPSize())
		}
		counts = append(counts, len(resp.Answer))
	}
	if !(counts[0] < counts[1] && counts[1] < counts[2]) {
		t.Errorf("answers by buffer size 512/1232/4096 = %v, want increasing", counts[:3])
	}
}

// TestForwardRetriesTCP: a truncated UDP answer from the upstream is fetched
// again over TCP; the client then gets what fits, or everything over TCP.
func TestForwardRetriesTCP(t *testing.T) {
	up := startFakeUpstream(t)
	addr := startServer(t, newFixtureServer(t, Config{Upstreams: []string{up.addr}}))
	udp := query(t, addr, "udp", "big.example.", mdns.TypeA, 4096)
	if udp.Truncated || len(udp.Answer) != 100 {
		t.Errorf("udp edns 4096: tc=%v answers=%d, want the full 100 fetched over TCP", udp.Truncated, len(udp.Answer))
	}
	small := query(t, addr, "udp", "big.example.", mdns.TypeA, 0)
	if !small.Truncated {
		t.Errorf("udp 512: want TC")
	}
	tcp := query(t, addr, "tcp", "big.example.", mdns.TypeA, 0)
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("tcp: tc=%v answers=%d", tcp.Truncated, len(tcp.Answer))
	}
}

// TestUpstreamFailure: a silent upstream costs one timeout and yields
// SERVFAIL; ExternalName targets then come back as the CNAME alone; the next
// upstream in the list is tried.
func TestUpstreamFailure(t *testing.T) {
	hole := startBlackhole(t)
	dead := newFixtureServer(t, Config{Upstreams: []string{hole}, UpstreamTimeout: 200 * time.Millisecond})
	none := newFixtureServer(t, Config{Upstreams: []string{}})
	failover := newFixtureServer(t, Config{Upstreams: []string{hole, startFakeUpstream(t).addr}, UpstreamTimeout: 200 * time.Millisecond})
	cases := []struct {
		name  string
		srv   *Server
		qname string
		want  dnsCase
	}{
		{"timeout", dead, "example.org.", dnsCase{rcode: mdns.RcodeServerFailure, flags: flagsRefused}},
		{"timeout/reverse", dead, "9.9.244.10.in-addr.arpa.", dnsCase{qtype: mdns.TypePTR, rcode: mdns.RcodeServerFailure, flags: flagsRefused}},
		{"timeout/externalname", dead, "ext.default.svc.cluster.local.",
			dnsCase{answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.org."}}},
		{"no upstreams", none, "example.org.", dnsCase{rcode: mdns.RcodeServerFailure, flags: flagsRefused}},
		{"failover", failover, "example.org.", dnsCase{flags: flagsForwarded, answer: []string{"example.org. 300 IN A 192.0.2.10"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			qtype := c.want.qtype
			if qtype == 0 {
				qtype = mdns.TypeA
			}
			m := new(mdns.Msg)
			m.SetQuestion(c.qname, qtype)
			got := replyText(exchangeDirect(t, c.srv, m, false))
			if diff := cmp.Diff(c.want.want(t), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadBalance: with kubeadm's loadbalance plugin on (the default), the
// address records of a headless Service come back in changing order, always
// the same set.
func TestLoadBalance(t *testing.T) {
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, newFixtureIndex())
	var first []string
	reordered := false
	for i := 0; i < 20; i++ {
		m := new(mdns.Msg)
		m.SetQuestion("big.default.svc.cluster.local.", mdns.TypeA)
		got := rrText(exchangeDirect(t, s, m, true).Answer)
		if len(got) != bigEndpoints {
			t.Fatalf("%d answers, want %d", len(got), bigEndpoints)
		}
		if first == nil {
			first = got
			continue
		}
		if !slices.Equal(first, got) {
			reordered = true
		}
		a, b := slices.Clone(first), slices.Clone(got)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("answer set changed between queries")
		}
	}
	if !reordered {
		t.Errorf("20 answers of %d records all in the same order: not shuffled", bigEndpoints)
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := UpstreamsFromResolvConf(write("stub", "# systemd\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\noptions edns0 trust-ad\nsearch example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"127.0.0.53:53", "192.0.2.1:53", "[::1]:53"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := UpstreamsFromResolvConf(write("empty", "search example.com\n")); !errors.Is(err, ErrNoUpstreams) {
		t.Errorf("no nameserver: err = %v, want ErrNoUpstreams", err)
	}
	if _, err := UpstreamsFromResolvConf(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrNoUpstreams) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newFixtureServer(t, Config{Registerer: reg})
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"redis.default.svc.cluster.local.", mdns.TypeA}, {"unknown.default.svc.cluster.local.", mdns.TypeA}, {"example.org.", mdns.TypeAAAA}} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		exchangeDirect(t, s, m, false)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			line := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					line += ","
				}
				line += l.GetName() + "=" + l.GetValue()
			}
			got = append(got, line+"} "+strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64))
		}
	}
	want := []string{
		"coredns_dns_requests_total{family=1,proto=udp,type=A,zone=cluster.local.} 2",
		"coredns_dns_requests_total{family=1,proto=udp,type=AAAA,zone=.} 1",
		"coredns_dns_responses_total{rcode=NOERROR,zone=.} 1",
		"coredns_dns_responses_total{rcode=NOERROR,zone=cluster.local.} 1",
		"coredns_dns_responses_total{rcode=NXDOMAIN,zone=cluster.local.} 1",
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// plainPacketConn hides the *net.UDPConn, so the server takes its portable
// one-datagram-per-read path instead of recvmmsg/sendmmsg.
type plainPacketConn struct{ net.PacketConn }

// TestServePacketConnPortable runs part of the table through the portable
// UDP path, then checks that cancelling stops the server and closes the socket.
func TestServePacketConnPortable(t *testing.T) {
	s := newFixtureServer(t, Config{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.ServePacketConn(ctx, plainPacketConn{pc}) }()
	addr := pc.LocalAddr().String()
	waitForServer(t, addr, "udp")
	for _, c := range dnsCases[:20] {
		got := replyText(query(t, addr, "udp", c.qname, c.qtype, 0))
		if diff := cmp.Diff(c.want(t), got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", c.qname, mdns.TypeToString[c.qtype], diff)
		}
	}
	if resp := query(t, addr, "udp", "big.default.svc.cluster.local.", mdns.TypeA, 0); !resp.Truncated {
		t.Errorf("big over udp: not truncated")
	}
	if resp := query(t, addr, "udp", "example.org.", mdns.TypeA, 0); len(resp.Answer) != 1 {
		t.Errorf("forwarded: %v", resp)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("ServePacketConn after cancel: %v", err)
	}
	if _, err := pc.WriteTo([]byte{0}, pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("socket not closed after stop: %v", err)
	}
}

// TestServeListenerStops: cancelling stops the TCP server and closes the listener.
func TestServeListenerStops(t *testing.T) {
	s := newFixtureServer(t, Config{Upstreams: []string{}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.ServeListener(ctx, l) }()
	waitForServer(t, l.Addr().String(), "tcp")
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("ServeListener after cancel: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener not closed after stop: %v", err)
	}
}
