package dns

import (
	"strings"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the CoreDNS-named counters (family "1" is IPv4, "2" IPv6) users graph: requests by zone,
// transport, address family and type, and responses by zone and rcode.
type metrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "coredns", Subsystem: "dns", Name: "requests_total",
			Help: "Counter of DNS requests made per zone, protocol, family and type.",
		}, []string{"zone", "proto", "family", "type"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "coredns", Subsystem: "dns", Name: "responses_total",
			Help: "Counter of response status codes.",
		}, []string{"zone", "rcode"}),
	}
	reg.MustRegister(m.requests, m.responses)
	return m
}

// observe counts one request and its response. The zone label is the served
// zone the name falls in, or "." for forwarded names, as CoreDNS's server
// blocks label them.
func (m *metrics) observe(s *Server, r, resp *mdns.Msg, tcp bool, family string) {
	zone := "."
	qtype := "other"
	if len(r.Question) == 1 {
		if z, _ := s.matchZone(strings.ToLower(mdns.Fqdn(r.Question[0].Name))); z != "" {
			zone = z
		}
		if t, ok := mdns.TypeToString[r.Question[0].Qtype]; ok {
			qtype = t
		}
	}
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	m.requests.WithLabelValues(zone, proto, family, qtype).Inc()
	rcode, ok := mdns.RcodeToString[resp.Rcode]
	if !ok {
		rcode = "other"
	}
	m.responses.WithLabelValues(zone, rcode).Inc()
}
