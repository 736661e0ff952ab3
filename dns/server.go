package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	defaultZone            = "cluster.local."
	defaultTTL             = 5
	defaultUpstreamTimeout = 2 * time.Second
	// dnsSchemaVersion is the Kubernetes DNS schema version served at dns-version.<zone> TXT.
	dnsSchemaVersion = "1.1.0"
	versionTTL       = 28800
	zoneIPv4Reverse  = "in-addr.arpa."
	zoneIPv6Reverse  = "ip6.arpa."
	// maxCNAMEChain is CoreDNS's limit on in-zone CNAME chasing.
	maxCNAMEChain = 7
	// udpReadSize is the largest query the server reads over UDP.
	udpReadSize = 4096
)

// Config configures a Server. The zero value is usable: it answers
// cluster.local. with TTL 5, in "pods insecure" mode, and fails (SERVFAIL)
// every name it would forward.
type Config struct {
	// Zone is the cluster domain; default: the Index's zone.
	Zone string
	// TTL of every answer except dns-version (28800); default 5. The SOA's
	// TTL is min(TTL, 300) and its minimum TTL is TTL, as CoreDNS does.
	TTL uint32
	// Upstreams are host:port resolvers for names outside the zone, tried in
	// order; none means SERVFAIL for such names.
	Upstreams []string
	// UpstreamTimeout bounds one exchange with one upstream; default 2s.
	UpstreamTimeout time.Duration
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives coredns_dns_requests_total and
	// coredns_dns_responses_total counters.
	Registerer prometheus.Registerer
	// LocalIPs are the DNS pod's own addresses. As in CoreDNS, the zone's NS
	// answer names the Services whose endpoints hold these IPs
	// (kube-dns.kube-system.svc.<zone>). Empty: the kube-system/kube-dns
	// Service is used if it exists.
	LocalIPs []netip.Addr
	// Pods is the pod-record mode: PodsInsecure (default, kubeadm's
	// Corefile), PodsVerified or PodsDisabled.
	Pods string
	// NoLoadBalance turns off the shuffling of A, AAAA and MX records that
	// kubeadm's Corefile enables with the loadbalance plugin.
	NoLoadBalance bool
}

// Server answers DNS queries as CoreDNS does with kubeadm's default Corefile
// (kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure;
// fallthrough in-addr.arpa ip6.arpa }, forward . <upstreams>, loadbalance),
// from an Index. It does not cache. It is safe for concurrent use.
type Server struct {
	idx       *Index
	zone      string // lower case, fully qualified
	ttl       uint32
	podMode   string
	localIP   []netip.Addr
	shuffle   bool
	upstreams []string
	timeout   time.Duration
	log       *slog.Logger
	metrics   *metrics
}

// NewServer returns a Server answering from idx (a new empty Index when nil).
func NewServer(cfg Config, idx *Index) *Server {
	if idx == nil {
		idx = NewIndex(cfg.Zone)
	}
	s := &Server{
		idx:       idx,
		zone:      idx.Zone(),
		ttl:       cfg.TTL,
		podMode:   cfg.Pods,
		localIP:   append([]netip.Addr(nil), cfg.LocalIPs...),
		shuffle:   !cfg.NoLoadBalance,
		upstreams: append([]string(nil), cfg.Upstreams...),
		timeout:   cfg.UpstreamTimeout,
		log:       cfg.Logger,
	}
	if cfg.Zone != "" {
		s.zone = strings.ToLower(mdns.Fqdn(cfg.Zone))
	}
	if s.ttl == 0 {
		s.ttl = defaultTTL
	}
	if s.podMode == "" {
		s.podMode = PodsInsecure
	}
	if s.timeout <= 0 {
		s.timeout = defaultUpstreamTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "dns")
	if s.zone != idx.Zone() {
		s.log.Warn("server zone differs from index zone; PTR answers use the index zone", "zone", s.zone, "indexZone", idx.Zone())
	}
	if cfg.Registerer != nil {
		s.metrics = newMetrics(cfg.Registerer)
	}
	return s
}

func (s *Server) localIPs() []netip.Addr { return s.localIP }

// ServeDNS answers one query; it implements mdns.Handler. Responses to
// queries over UDP are truncated (TC set) to 512 bytes, or to the EDNS0
// buffer size the query advertises; TCP answers are never truncated.
// Malformed requests get FORMERR, other opcodes NOTIMP, EDNS versions other
// than 0 BADVERS; a request that is itself a response is ignored.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	tcp := isTCP(w)
	m := s.serve(context.Background(), r, tcp)
	if m == nil {
		return
	}
	s.finish(r, m, tcp)
	if s.metrics != nil {
		s.metrics.observe(s, r, m, tcp, family(w.RemoteAddr()))
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("write response", "remote", w.RemoteAddr(), "err", err)
	}
}

// family is CoreDNS's address family label: "1" for IPv4 clients, "2" for IPv6.
func family(a net.Addr) string {
	var ip net.IP
	switch v := a.(type) {
	case *net.UDPAddr:
		ip = v.IP
	case *net.TCPAddr:
		ip = v.IP
	}
	if ip != nil && ip.To4() == nil {
		return "2"
	}
	return "1"
}

func isTCP(w mdns.ResponseWriter) bool {
	if _, ok := w.(*udpWriter); ok {
		return false
	}
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// serve builds the reply to r, before EDNS0 and truncation are applied.
func (s *Server) serve(ctx context.Context, r *mdns.Msg, tcp bool) *mdns.Msg {
	if r == nil || r.Response {
		return nil
	}
	if r.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeNotImplemented)
		return m
	}
	if len(r.Question) != 1 {
		m := new(mdns.Msg)
		m.SetRcodeFormatError(r)
		return m
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Rcode = mdns.RcodeBadVers
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetVersion(0)
		m.Extra = []mdns.RR{o}
		return m
	}
	return s.resolve(ctx, r, tcp)
}

// resolve answers r's single question: the kubernetes zones first, then the
// upstreams (names outside the zone, and name errors in the reverse zones).
func (s *Server) resolve(ctx context.Context, r *mdns.Msg, tcp bool) *mdns.Msg {
	q := r.Question[0]
	qname := q.Name
	if !mdns.IsFqdn(qname) {
		qname = mdns.Fqdn(qname)
	}
	name := strings.ToLower(qname)
	zone, reverse := s.matchZone(name)
	if zone == "" {
		return s.forward(ctx, r, tcp)
	}
	zoneQ := qname[len(qname)-len(zone):] // the zone as the question spells it
	m, nameErr := s.kubernetes(ctx, r, tcp, qname, name, zoneQ, q.Qtype)
	if nameErr && reverse {
		return s.forward(ctx, r, tcp) // fallthrough in-addr.arpa ip6.arpa
	}
	return m
}

// matchZone returns the longest served zone containing name (lower case),
// and whether it is a reverse zone.
func (s *Server) matchZone(name string) (string, bool) {
	switch {
	case inZone(name, s.zone):
		return s.zone, false
	case inZone(name, zoneIPv4Reverse):
		return zoneIPv4Reverse, true
	case inZone(name, zoneIPv6Reverse):
		return zoneIPv6Reverse, true
	}
	return "", false
}

func inZone(name, zone string) bool {
	if len(name) == len(zone) {
		return name == zone
	}
	return len(name) > len(zone) && name[len(name)-len(zone)-1] == '.' && name[len(name)-len(zone):] == zone
}

// kubernetes is CoreDNS's kubernetes plugin ServeDNS. nameErr reports a name
// error, for which m is the NXDOMAIN reply.
func (s *Server) kubernetes(ctx context.Context, r *mdns.Msg, tcp bool, qname, name, zoneQ string, qtype uint16) (m *mdns.Msg, nameErr bool) {
	var (
		records, extra []mdns.RR
		truncated      bool
		err            error
	)
	apex := name == strings.ToLower(zoneQ)
	switch qtype {
	case mdns.TypeA, mdns.TypeAAAA:
		records, truncated, err = s.addressRecords(ctx, r, tcp, qname, name, zoneQ, qtype, nil)
	case mdns.TypeTXT:
		records, err = s.txtRecords(qname, name, zoneQ)
	case mdns.TypeCNAME:
		records, err = s.cnameRecords(qname, name, zoneQ)
	case mdns.TypePTR:
		records, err = s.ptrRecords(qname, name, zoneQ)
	case mdns.TypeSRV:
		records, extra, err = s.srvRecords(qname, name, zoneQ)
	case mdns.TypeMX:
		_, err = s.services(name, zoneQ, qtype) // no Service is a mail exchanger
	case mdns.TypeSOA:
		if apex {
			records = []mdns.RR{s.soa(zoneQ)}
		}
	case mdns.TypeAXFR, mdns.TypeIXFR:
		m = new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeRefused)
		return m, false
	case mdns.TypeNS:
		if apex {
			records, extra = s.nsRecords(qname, zoneQ)
			break
		}
		fallthrough
	default:
		// A fake A lookup tells NODATA from NXDOMAIN.
		_, err = s.services(name, zoneQ, mdns.TypeA)
	}

	if isNameError(err) {
		return s.negative(r, zoneQ, mdns.RcodeNameError), true
	}
	if err != nil {
		s.log.Error("lookup", "name", qname, "err", err)
		m = new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeServerFailure)
		return m, false
	}
	if len(records) == 0 {
		return s.negative(r, zoneQ, mdns.RcodeSuccess), false
	}
	m = new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.Truncated = truncated
	m.Answer = records
	m.Extra = extra
	return m, false
}

// negative is CoreDNS's BackendError: rcode with the zone's SOA in Authority.
func (s *Server) negative(r *mdns.Msg, zoneQ string, rcode int) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(r, rcode)
	m.Authoritative = true
	m.Ns = []mdns.RR{s.soa(zoneQ)}
	return m
}

// soa is the zone's SOA record, named as the question spells the zone.
func (s *Server) soa(zoneQ string) *mdns.SOA {
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: zoneQ, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: min(s.ttl, 300)},
		Ns:      "ns.dns." + zoneQ,
		Mbox:    "hostmaster." + zoneQ,
		Serial:  s.idx.Serial(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

// services is CoreDNS's kubernetes Services: the entries for name, by type.
func (s *Server) services(name, zoneQ string, qtype uint16) ([]entry, error) {
	if qtype == mdns.TypeTXT {
		// Only dns-version.<zone> has a TXT record; any other name is NODATA.
		if trimZone(name, zoneQ) == "dns-version" {
			return []entry{{text: dnsSchemaVersion, ttl: versionTTL}}, nil
		}
		return nil, nil
	}
	if strings.HasPrefix(name, "ns.dns.") && len(name) == len("ns.dns.")+len(zoneQ) {
		var out []entry
		for _, a := range s.nsAddrs(zoneQ) {
			if (qtype == mdns.TypeA && a.ip.Is4()) || (qtype == mdns.TypeAAAA && a.ip.Is6()) {
				out = append(out, entry{ip: a.ip, ttl: s.ttl})
			}
		}
		return out, nil
	}
	out, err := s.records(name, zoneQ)
	if qtype != mdns.TypeSRV || len(out) == 0 {
		return out, err
	}
	// SRV for ExternalName Services is not implemented in CoreDNS.
	internal := out[:0:0]
	for _, e := range out {
		if e.target == "" {
			internal = append(internal, e)
		}
	}
	return internal, err
}

// addressRecords is CoreDNS's plugin.A/AAAA: address records for qname,
// following ExternalName CNAMEs inside the zone and through the upstreams
// outside it. previous holds the CNAMEs already followed.
func (s *Server) addressRecords(ctx context.Context, r *mdns.Msg, tcp bool, qname, name, zoneQ string, qtype uint16, previous []mdns.RR) (records []mdns.RR, truncated bool, err error) {
	entries, err := s.services(name, zoneQ, qtype)
	if err != nil {
		return nil, false, err
	}
	for i := range entries {
		e := &entries[i]
		if e.target != "" {
			target := mdns.Fqdn(e.target)
			if strings.EqualFold(name, target) {
				continue // x CNAME x is a direct loop
			}
			cname := &mdns.CNAME{Hdr: mdns.RR_Header{Name: qname, Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET, Ttl: e.ttl}, Target: target}
			if len(previous) > maxCNAMEChain || duplicateCNAME(cname, previous) {
				continue
			}
			if mdns.IsSubDomain(zoneQ, target) {
				chain := append(previous[:len(previous):len(previous)], cname)
				next, tc, nerr := s.addressRecords(ctx, r, tcp, target, strings.ToLower(target), zoneQ, qtype, chain)
				if nerr == nil && len(next) > 0 {
					records = append(records, cname)
					records = append(records, next...)
				}
				truncated = truncated || tc
				continue
			}
			up := s.lookup(ctx, r, tcp, target, qtype)
			truncated = truncated || up.Truncated
			records = append(records, cname)
			records = append(records, up.Answer...)
			continue
		}
		hdr := mdns.RR_Header{Name: qname, Class: mdns.ClassINET, Ttl: e.ttl}
		switch {
		case qtype == mdns.TypeA && e.ip.Is4():
			if hasAddress(records, e.ip) {
				continue
			}
			hdr.Rrtype = mdns.TypeA
			ip4 := e.ip.As4()
			records = append(records, &mdns.A{Hdr: hdr, A: net.IP(ip4[:])})
		case qtype == mdns.TypeAAAA && e.ip.Is6():
			if hasAddress(records, e.ip) {
				continue
			}
			hdr.Rrtype = mdns.TypeAAAA
			ip16 := e.ip.As16()
			records = append(records, &mdns.AAAA{Hdr: hdr, AAAA: net.IP(ip16[:])})
		}
	}
	return records, truncated, nil
}

// hasAddress reports whether records already hold an address record for ip.
func hasAddress(records []mdns.RR, ip netip.Addr) bool {
	for _, rr := range records {
		var got net.IP
		switch v := rr.(type) {
		case *mdns.A:
			got = v.A
		case *mdns.AAAA:
			got = v.AAAA
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(got); ok && a.Unmap() == ip {
			return true
		}
	}
	return false
}

func duplicateCNAME(c *mdns.CNAME, previous []mdns.RR) bool {
	for _, rr := range previous {
		if p, ok := rr.(*mdns.CNAME); ok && p.Hdr.Name == c.Hdr.Name && p.Target == c.Target {
			return true
		}
	}
	return false
}

// lookup resolves name through the whole server, as CoreDNS's upstream
// lookups do. A failed upstream yields its SERVFAIL reply (no answers).
func (s *Server) lookup(ctx context.Context, r *mdns.Msg, tcp bool, name string, qtype uint16) *mdns.Msg {
	req := r.Copy()
	req.SetQuestion(name, qtype)
	return s.resolve(ctx, req, tcp)
}

func (s *Server) txtRecords(qname, name, zoneQ string) ([]mdns.RR, error) {
	entries, err := s.services(name, zoneQ, mdns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []mdns.RR
	for _, e := range entries {
		out = append(out, &mdns.TXT{Hdr: mdns.RR_Header{Name: qname, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: e.ttl}, Txt: []string{e.text}})
	}
	return out, nil
}

// cnameRecords answers a CNAME query: only an ExternalName Service has one,
// and it is not followed.
func (s *Server) cnameRecords(qname, name, zoneQ string) ([]mdns.RR, error) {
	entries, err := s.services(name, zoneQ, mdns.TypeCNAME)
	if err != nil || len(entries) == 0 || entries[0].target == "" {
		return nil, err
	}
	e := entries[0]
	return []mdns.RR{&mdns.CNAME{Hdr: mdns.RR_Header{Name: qname, Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET, Ttl: e.ttl}, Target: mdns.Fqdn(e.target)}}, nil
}

func (s *Server) ptrRecords(qname, name, zoneQ string) ([]mdns.RR, error) {
	entries, err := s.reverse(name, zoneQ)
	if err != nil {
		return nil, err
	}
	var out []mdns.RR
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.target] {
			continue
		}
		seen[e.target] = true
		out = append(out, &mdns.PTR{Hdr: mdns.RR_Header{Name: qname, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: e.ttl}, Ptr: mdns.Fqdn(e.target)})
	}
	return out, nil
}

// srvRecords is CoreDNS's plugin.SRV: one record per distinct (target, port),
// priority 0, weight floor(100/n) for n matching entries (at least 1), and
// the targets' addresses in Additional. Entries without a port (-1) count
// toward n but yield no record.
func (s *Server) srvRecords(qname, name, zoneQ string) (records, extra []mdns.RR, err error) {
	entries, err := s.services(name, zoneQ, mdns.TypeSRV)
	if err != nil || len(entries) == 0 {
		return nil, nil, err
	}
	w := 100.0 / float64(100*len(entries)) * 100
	weight := uint16(math.Floor(w))
	if weight == 0 {
		weight = 1
	}
	type srvKey struct {
		target string
		port   int32
	}
	type addrKey struct {
		target string
		ip     netip.Addr
	}
	seenSRV := map[srvKey]bool{}
	seenAddr := map[addrKey]bool{}
	for i := range entries {
		e := &entries[i]
		if e.port == -1 || !e.ip.IsValid() {
			continue
		}
		target := e.domain(zoneQ)
		if k := (srvKey{target, e.port}); !seenSRV[k] {
			seenSRV[k] = true
			records = append(records, &mdns.SRV{
				Hdr:      mdns.RR_Header{Name: qname, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: e.ttl},
				Priority: 0, Weight: weight, Port: uint16(e.port), Target: target,
			})
		}
		if k := (addrKey{target, e.ip}); !seenAddr[k] {
			seenAddr[k] = true
			extra = append(extra, addressRR(target, e.ttl, e.ip))
		}
	}
	return records, extra, nil
}

// nsRecords answers NS at the apex: the name servers and their addresses.
func (s *Server) nsRecords(qname, zoneQ string) (records, extra []mdns.RR) {
	seen := map[string]bool{}
	for _, a := range s.nsAddrs(zoneQ) {
		extra = append(extra, addressRR(a.name, s.ttl, a.ip))
		if seen[a.name] {
			continue
		}
		seen[a.name] = true
		records = append(records, &mdns.NS{Hdr: mdns.RR_Header{Name: qname, Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: s.ttl}, Ns: a.name})
	}
	return records, extra
}

func addressRR(name string, ttl uint32, ip netip.Addr) mdns.RR {
	if ip.Is4() {
		b := ip.As4()
		return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}, A: net.IP(b[:])}
	}
	b := ip.As16()
	return &mdns.AAAA{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: ttl}, AAAA: net.IP(b[:])}
}

// finish applies what CoreDNS's server and plugins do to every reply: the
// loadbalance shuffle, the EDNS0 OPT echo, and truncation for UDP.
func (s *Server) finish(r, m *mdns.Msg, tcp bool) {
	if s.shuffle && m.Rcode == mdns.RcodeSuccess && len(m.Question) > 0 &&
		m.Question[0].Qtype != mdns.TypeAXFR && m.Question[0].Qtype != mdns.TypeIXFR {
		m.Answer = roundRobin(m.Answer)
		m.Ns = roundRobin(m.Ns)
		m.Extra = roundRobin(m.Extra)
	}
	size := mdns.MinMsgSize
	reqOPT := r.IsEdns0()
	respOPT := popOPT(m)
	if reqOPT != nil {
		o := respOPT
		if o == nil {
			// Reuse the request's OPT: echo what CoreDNS supports.
			o = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
			for _, opt := range reqOPT.Option {
				switch opt.Option() {
				case mdns.EDNS0NSID, mdns.EDNS0EXPIRE, mdns.EDNS0COOKIE, mdns.EDNS0TCPKEEPALIVE, mdns.EDNS0PADDING:
					o.Option = append(o.Option, opt)
				}
			}
		}
		o.Hdr.Name = "."
		o.Hdr.Ttl = 0 // version 0, no flags; the extended rcode is set when packing
		o.SetUDPSize(reqOPT.UDPSize())
		if reqOPT.Do() {
			o.SetDo()
		}
		m.Extra = append(m.Extra, o)
		size = max(int(reqOPT.UDPSize()), mdns.MinMsgSize)
	} else if m.Rcode > 0xF {
		m.Rcode = mdns.RcodeServerFailure // an extended rcode cannot be sent without OPT
	}
	if tcp {
		size = mdns.MaxMsgSize
	}
	m.Truncate(size)
}

// popOPT removes and returns m's OPT record, if any.
func popOPT(m *mdns.Msg) *mdns.OPT {
	for i := len(m.Extra) - 1; i >= 0; i-- {
		if o, ok := m.Extra[i].(*mdns.OPT); ok {
			m.Extra = append(m.Extra[:i:i], m.Extra[i+1:]...)
			return o
		}
	}
	return nil
}

// roundRobin is CoreDNS's loadbalance round_robin: CNAMEs first, then other
// records, then shuffled addresses, then shuffled MX records.
func roundRobin(in []mdns.RR) []mdns.RR {
	if len(in) <= 1 {
		return in
	}
	first := in[0].Header().Rrtype
	allSame := true
	for _, rr := range in[1:] {
		if rr.Header().Rrtype != first {
			allSame = false
			break
		}
	}
	if allSame && (first == mdns.TypeA || first == mdns.TypeAAAA) {
		shuffleRRs(in)
		return in
	}
	var cname, address, mx, rest []mdns.RR
	for _, rr := range in {
		switch rr.Header().Rrtype {
		case mdns.TypeCNAME:
			cname = append(cname, rr)
		case mdns.TypeA, mdns.TypeAAAA:
			address = append(address, rr)
		case mdns.TypeMX:
			mx = append(mx, rr)
		default:
			rest = append(rest, rr)
		}
	}
	shuffleRRs(address)
	shuffleRRs(mx)
	out := make([]mdns.RR, 0, len(in))
	out = append(out, cname...)
	out = append(out, rest...)
	out = append(out, address...)
	return append(out, mx...)
}

func shuffleRRs(rrs []mdns.RR) {
	rand.Shuffle(len(rrs), func(i, j int) { rrs[i], rrs[j] = rrs[j], rrs[i] })
}

// ServeListener serves DNS over TCP on l until ctx is done, then returns nil.
// It takes ownership of l and closes it. l may have been opened in another
// network namespace: a socket stays bound to the namespace it was created in.
func (s *Server) ServeListener(ctx context.Context, l net.Listener) error {
	srv := &mdns.Server{Listener: l, Handler: s}
	return s.run(ctx, srv, "tcp", l.Addr())
}

func (s *Server) run(ctx context.Context, srv *mdns.Server, proto string, addr net.Addr) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve dns over %s on %s: %w", proto, addr, err)
	case <-started:
	}
	s.log.Info("serving", "proto", proto, "addr", addr.String())
	select {
	case err := <-errc:
		if err == nil {
			err = errors.New("server stopped")
		}
		return fmt.Errorf("serve dns over %s on %s: %w", proto, addr, err)
	case <-ctx.Done():
	}
	if err := srv.Shutdown(); err != nil {
		s.log.Debug("shutdown", "proto", proto, "addr", addr.String(), "err", err)
	}
	<-errc
	s.log.Info("stopped", "proto", proto, "addr", addr.String())
	return nil
}
