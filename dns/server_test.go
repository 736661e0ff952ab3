package dns

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

// soaLine is the SOA every fixture negative answer carries.
const soaLine = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5"

const (
	flagsAuth      = "qr aa rd" // answered by the kubernetes zone: authoritative, no recursion available
	flagsForwarded = "qr rd ra" // the fake upstream's flags
	flagsRefused   = "qr rd"    // an error reply from the server itself
)

// dnsCase is one query and the whole reply expected, as text.
type dnsCase struct {
	qname  string
	qtype  uint16
	rcode  int
	flags  string // flagsAuth when empty
	answer []string
	ns     []string
	extra  []string
}

// reply is the comparable text form of a response.
type reply struct {
	Rcode  string
	Flags  string
	Answer []string
	Ns     []string
	Extra  []string
}

func replyText(m *mdns.Msg) reply {
	r := reply{Rcode: mdns.RcodeToString[m.Rcode], Flags: flagText(m)}
	r.Answer = rrText(m.Answer)
	r.Ns = rrText(m.Ns)
	r.Extra = rrText(m.Extra)
	return r
}

func flagText(m *mdns.Msg) string {
	var f []string
	for _, b := range []struct {
		on   bool
		name string
	}{{m.Response, "qr"}, {m.Authoritative, "aa"}, {m.Truncated, "tc"}, {m.RecursionDesired, "rd"}, {m.RecursionAvailable, "ra"}} {
		if b.on {
			f = append(f, b.name)
		}
	}
	return strings.Join(f, " ")
}

func rrText(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	return out
}

func (c dnsCase) want(t *testing.T) reply {
	t.Helper()
	norm := func(in []string) []string {
		var out []string
		for _, s := range in {
			out = append(out, mustRR(t, s).String())
		}
		return out
	}
	flags := c.flags
	if flags == "" {
		flags = flagsAuth
	}
	return reply{Rcode: mdns.RcodeToString[c.rcode], Flags: flags, Answer: norm(c.answer), Ns: norm(c.ns), Extra: norm(c.extra)}
}

// dnsCases covers every row of cluster-dns.md, each negative answer, and the
// CoreDNS behaviours users trip over. Forwarded names go to a fake upstream.
var dnsCases = []dnsCase{
	// dns-version
	{qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT,
		answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}},
	{qname: "dns-version.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},

	// ClusterIP Services: the cluster IP, also without endpoints.
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"redis.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
	{qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"empty.default.svc.cluster.local. 5 IN A 10.96.0.22"}},
	{qname: "kube-dns.kube-system.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"}},
	// An endpoint of a ClusterIP Service has a name too.
	{qname: "10-244-1-20.redis.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"10-244-1-20.redis.default.svc.cluster.local. 5 IN A 10.244.1.20"}},
	{qname: "10-244-2-21.redis.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},

	// Headless: one A per ready endpoint (the seed's example), NXDOMAIN when none.
	{qname: "myapp-nohead.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"myapp-nohead.default.svc.cluster.local. 5 IN A 10.244.1.75", "myapp-nohead.default.svc.cluster.local. 5 IN A 10.244.2.74"}},
	{qname: "db.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"db.default.svc.cluster.local. 5 IN A 10.244.1.10", "db.default.svc.cluster.local. 5 IN A 10.244.2.10"}},
	{qname: "nothing.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "pnr.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"pnr.default.svc.cluster.local. 5 IN A 10.244.1.30", "pnr.default.svc.cluster.local. 5 IN A 10.244.2.30"}},

	// Endpoint names: hostname, else the dashed IP; not-ready endpoints have none.
	{qname: "db-0.db.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.10"}},
	{qname: "db-2.db.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "10-244-1-75.myapp-nohead.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"10-244-1-75.myapp-nohead.default.svc.cluster.local. 5 IN A 10.244.1.75"}},
	{qname: "10-244-1-30.pnr.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"10-244-1-30.pnr.default.svc.cluster.local. 5 IN A 10.244.1.30"}},
	{qname: "db-0.db.default.svc.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soaLine}},

	// SRV: named ports, weight 100/n, A glue in Additional.
	{qname: "_redis._tcp.redis.default.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{"_redis._tcp.redis.default.svc.cluster.local. 5 IN SRV 0 100 6379 redis.default.svc.cluster.local."},
		extra:  []string{"redis.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
	{qname: "_mysql._tcp.db.default.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{
			"_mysql._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 3306 db-0.db.default.svc.cluster.local.",
			"_mysql._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 3306 db-1.db.default.svc.cluster.local.",
		},
		extra: []string{"db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.10", "db-1.db.default.svc.cluster.local. 5 IN A 10.244.2.10"}},
	{qname: "_dns._udp.kube-dns.kube-system.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."},
		extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"}},
	// <svc> SRV lists every port (CoreDNS: unnamed ones too).
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{
			"redis.default.svc.cluster.local. 5 IN SRV 0 50 6379 redis.default.svc.cluster.local.",
			"redis.default.svc.cluster.local. 5 IN SRV 0 50 9121 redis.default.svc.cluster.local.",
		},
		extra: []string{"redis.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
	{qname: "plain.default.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{"plain.default.svc.cluster.local. 5 IN SRV 0 100 80 plain.default.svc.cluster.local."},
		extra:  []string{"plain.default.svc.cluster.local. 5 IN A 10.96.0.21"}},
	{qname: "myapp-nohead.default.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{
			"myapp-nohead.default.svc.cluster.local. 5 IN SRV 0 50 80 10-244-1-75.myapp-nohead.default.svc.cluster.local.",
			"myapp-nohead.default.svc.cluster.local. 5 IN SRV 0 50 80 10-244-2-74.myapp-nohead.default.svc.cluster.local.",
		},
		extra: []string{
			"10-244-1-75.myapp-nohead.default.svc.cluster.local. 5 IN A 10.244.1.75",
			"10-244-2-74.myapp-nohead.default.svc.cluster.local. 5 IN A 10.244.2.74",
		}},
	{qname: "_http._tcp.plain.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "_redis._udp.redis.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "_http._tcp.nothing.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soaLine}},

	// Dual stack and IPv6.
	{qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"dual.default.svc.cluster.local. 5 IN A 10.96.0.30"}},
	{qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
		answer: []string{"dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::30"}},
	{qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{"dual.default.svc.cluster.local. 5 IN SRV 0 50 80 dual.default.svc.cluster.local."},
		extra:  []string{"dual.default.svc.cluster.local. 5 IN A 10.96.0.30", "dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::30"}},
	{qname: "v6.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
		answer: []string{"v6.default.svc.cluster.local. 5 IN AAAA fd00:10:244:1::7"}},
	{qname: "v6.default.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "fd00-10-244-1--7.v6.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
		answer: []string{"fd00-10-244-1--7.v6.default.svc.cluster.local. 5 IN AAAA fd00:10:244:1::7"}},
	{qname: "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: mdns.TypePTR,
		answer: []string{"0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.default.svc.cluster.local."}},
	{qname: "fd00--1.default.pod.cluster.local.", qtype: mdns.TypeAAAA,
		answer: []string{"fd00--1.default.pod.cluster.local. 5 IN AAAA fd00::1"}},

	// ExternalName.
	{qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeCNAME,
		answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.org."}},
	{qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.org.", "example.org. 300 IN A 192.0.2.10"}},
	{qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
		answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.org."}},
	{qname: "ext-in.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"ext-in.default.svc.cluster.local. 5 IN CNAME redis.default.svc.cluster.local.", "redis.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
	{qname: "ext-missing.default.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "ext-ip.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeSRV, ns: []string{soaLine}},
	{qname: "db-0.ext.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},

	// PTR: cluster IPs and endpoint IPs; anything else in the reverse zones is forwarded.
	{qname: "20.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR,
		answer: []string{"20.0.96.10.in-addr.arpa. 5 IN PTR redis.default.svc.cluster.local."}},
	{qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR,
		answer: []string{"10.0.96.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.cluster.local."}},
	{qname: "10.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR,
		answer: []string{"10.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."}},
	{qname: "75.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR,
		answer: []string{"75.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-75.myapp-nohead.default.svc.cluster.local."}},
	{qname: "9.9.244.10.in-addr.arpa.", qtype: mdns.TypePTR, flags: flagsForwarded,
		answer: []string{"9.9.244.10.in-addr.arpa. 300 IN PTR from-upstream.example."}},
	{qname: "11.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR, flags: flagsForwarded, rcode: mdns.RcodeNameError},
	{qname: "20.0.96.10.in-addr.arpa.", qtype: mdns.TypeA, flags: flagsForwarded, rcode: mdns.RcodeNameError},
	{qname: "in-addr.arpa.", qtype: mdns.TypeSOA,
		answer: []string{"in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 1700000000 7200 1800 86400 5"}},

	// Pods, insecure mode: any well-formed dashed IP in an existing namespace.
	{qname: "10-244-1-5.default.pod.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5"}},
	{qname: "10-244-9-9.default.pod.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"10-244-9-9.default.pod.cluster.local. 5 IN A 10.244.9.9"}},
	{qname: "10-244-1-5.default.pod.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soaLine}},
	{qname: "10-244-1.default.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "10-244-1-5.nons.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},

	// NODATA: the name exists, not the type.
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soaLine}},
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeTXT, ns: []string{soaLine}},
	{qname: "unknown.default.svc.cluster.local.", qtype: mdns.TypeTXT, ns: []string{soaLine}}, // CoreDNS never says NXDOMAIN to TXT
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeCNAME, ns: []string{soaLine}},
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeMX, ns: []string{soaLine}},
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeSOA, ns: []string{soaLine}},
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeNS, ns: []string{soaLine}},
	{qname: "redis.default.svc.cluster.local.", qtype: mdns.TypeHINFO, ns: []string{soaLine}},
	// NODATA: empty non-terminals.
	{qname: "svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "default.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "pod.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "default.pod.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "quiet.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "svc.cluster.local.", qtype: mdns.TypeNS, ns: []string{soaLine}},
	{qname: "cluster.local.", qtype: mdns.TypeA, ns: []string{soaLine}},
	{qname: "cluster.local.", qtype: mdns.TypeTXT, ns: []string{soaLine}},

	// NXDOMAIN.
	{qname: "unknown.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "unknown.default.svc.cluster.local.", qtype: mdns.TypeMX, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "redis.nons.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "nons.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "x.quiet.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "nobody.db.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "foo.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "foo.cluster.local.", qtype: mdns.TypeNS, rcode: mdns.RcodeNameError, ns: []string{soaLine}},
	{qname: "a.b.c.redis.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaLine}},

	// Case: matched case-insensitively, answered in the question's case.
	{qname: "ReDiS.Default.SVC.cluster.LOCAL.", qtype: mdns.TypeA,
		answer: []string{"ReDiS.Default.SVC.cluster.LOCAL. 5 IN A 10.96.0.20"}},
	{qname: "NoSuch.Default.SVC.Cluster.Local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError,
		ns: []string{"Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. 1700000000 7200 1800 86400 5"}},
	{qname: "_REDIS._TCP.Redis.default.svc.Cluster.Local.", qtype: mdns.TypeSRV,
		answer: []string{"_REDIS._TCP.Redis.default.svc.Cluster.Local. 5 IN SRV 0 100 6379 redis.default.svc.Cluster.Local."},
		extra:  []string{"redis.default.svc.Cluster.Local. 5 IN A 10.96.0.20"}},
	{qname: "DB-0.db.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"DB-0.db.default.svc.cluster.local. 5 IN A 10.244.1.10"}},

	// The apex.
	{qname: "cluster.local.", qtype: mdns.TypeSOA, answer: []string{soaLine}},
	{qname: "CLUSTER.local.", qtype: mdns.TypeSOA,
		answer: []string{"CLUSTER.local. 5 IN SOA ns.dns.CLUSTER.local. hostmaster.CLUSTER.local. 1700000000 7200 1800 86400 5"}},
	{qname: "cluster.local.", qtype: mdns.TypeNS,
		answer: []string{"cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."},
		extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"}},
	{qname: "ns.dns.cluster.local.", qtype: mdns.TypeA, answer: []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
	{qname: "cluster.local.", qtype: mdns.TypeAXFR, rcode: mdns.RcodeRefused, flags: flagsRefused},

	// Outside the zone: the upstream's answer, verbatim.
	{qname: "example.org.", qtype: mdns.TypeA, flags: flagsForwarded, answer: []string{"example.org. 300 IN A 192.0.2.10"}},
	{qname: "www.example.org.", qtype: mdns.TypeA, flags: flagsForwarded,
		answer: []string{"www.example.org. 300 IN CNAME example.org.", "example.org. 300 IN A 192.0.2.10"}},
	{qname: "nowhere.example.", qtype: mdns.TypeA, flags: flagsForwarded, rcode: mdns.RcodeNameError},
}

// quietLogger drops the server's logs in tests.
var quietLogger = slog.New(slog.DiscardHandler)

func newFixtureServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{startFakeUpstream(t).addr}
	}
	cfg.NoLoadBalance = true
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	if cfg.LocalIPs == nil {
		cfg.LocalIPs = localDNSPod
	}
	return NewServer(cfg, newFixtureIndex())
}

func exchangeDirect(t testing.TB, s *Server, m *mdns.Msg, tcp bool) *mdns.Msg {
	t.Helper()
	w := &fakeWriter{tcp: tcp}
	s.ServeDNS(w, m)
	if w.err != nil {
		t.Fatalf("%s: %v", m.Question[0].String(), w.err)
	}
	if w.msg == nil {
		t.Fatalf("%s: no reply written", m.Question[0].String())
	}
	if w.msg.Id != m.Id {
		t.Errorf("%s: reply id %d, query id %d", m.Question[0].String(), w.msg.Id, m.Id)
	}
	return w.msg
}

func TestServeDNS(t *testing.T) {
	s := newFixtureServer(t, Config{})
	for _, c := range dnsCases {
		t.Run(c.qname+"/"+mdns.TypeToString[c.qtype], func(t *testing.T) {
			m := new(mdns.Msg)
			m.SetQuestion(c.qname, c.qtype)
			got := replyText(exchangeDirect(t, s, m, false))
			if diff := cmp.Diff(c.want(t), got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", c.qname, mdns.TypeToString[c.qtype], diff)
			}
		})
	}
}

// TestNSWithoutLocalIPs: without the pod's own IPs, the kube-dns Service
// stands in for the zone's name server.
func TestNSWithoutLocalIPs(t *testing.T) {
	s := newFixtureServer(t, Config{LocalIPs: []netip.Addr{}})
	m := new(mdns.Msg)
	m.SetQuestion("cluster.local.", mdns.TypeNS)
	got := replyText(exchangeDirect(t, s, m, false))
	want := dnsCase{
		answer: []string{"cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."},
		extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"},
	}.want(t)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NS (-want +got):\n%s", diff)
	}
}

// TestPodModes checks CoreDNS's verified and disabled pod modes.
func TestPodModes(t *testing.T) {
	cases := []struct {
		mode, qname string
		want        dnsCase
	}{
		{PodsVerified, "10-244-1-5.default.pod.cluster.local.", dnsCase{answer: []string{"10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5"}}},
		{PodsVerified, "10-244-9-9.default.pod.cluster.local.", dnsCase{rcode: mdns.RcodeNameError, ns: []string{soaLine}}},
		{PodsVerified, "10-244-1-5.kube-system.pod.cluster.local.", dnsCase{rcode: mdns.RcodeNameError, ns: []string{soaLine}}},
		{PodsDisabled, "10-244-1-5.default.pod.cluster.local.", dnsCase{rcode: mdns.RcodeNameError, ns: []string{soaLine}}},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.qname, func(t *testing.T) {
			s := newFixtureServer(t, Config{Pods: c.mode})
			m := new(mdns.Msg)
			m.SetQuestion(c.qname, mdns.TypeA)
			if diff := cmp.Diff(c.want.want(t), replyText(exchangeDirect(t, s, m, false))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestMalformedRequests: the replies miekg/dns's server would send for
// requests its accept function lets through or ServeDNS gets directly.
func TestMalformedRequests(t *testing.T) {
	s := newFixtureServer(t, Config{})
	cases := []struct {
		name  string
		msg   func() *mdns.Msg
		rcode int
	}{
		{"no question", func() *mdns.Msg { m := new(mdns.Msg); m.Id = 7; return m }, mdns.RcodeFormatError},
		{"two questions", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetQuestion("redis.default.svc.cluster.local.", mdns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, mdns.RcodeFormatError},
		{"notify", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetNotify("cluster.local.")
			return m
		}, mdns.RcodeNotImplemented},
		{"edns version 1", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetQuestion("redis.default.svc.cluster.local.", mdns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}, mdns.RcodeBadVers},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := c.msg()
			w := &fakeWriter{}
			s.ServeDNS(w, req)
			if w.err != nil {
				t.Fatal(w.err)
			}
			if w.msg == nil {
				t.Fatal("no reply")
			}
			// Unpack what went on the wire to see the extended rcode.
			got := new(mdns.Msg)
			if err := got.Unpack(w.packed); err != nil {
				t.Fatalf("unpack reply: %v", err)
			}
			if got.Rcode != c.rcode {
				t.Errorf("rcode %s, want %s", mdns.RcodeToString[got.Rcode], mdns.RcodeToString[c.rcode])
			}
		})
	}
	// A response is not answered at all.
	m := new(mdns.Msg)
	m.SetQuestion("redis.default.svc.cluster.local.", mdns.TypeA)
	m.Response = true
	w := &fakeWriter{}
	s.ServeDNS(w, m)
	if w.msg != nil {
		t.Errorf("answered a response: %v", w.msg)
	}
}
