package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	mdns "github.com/miekg/dns"
)

// ErrNoUpstreams is returned by UpstreamsFromResolvConf when the file names
// no usable name server.
var ErrNoUpstreams = errors.New("no upstream name servers")

// forward sends r to the upstreams in order, over the client's transport,
// retrying over TCP when a UDP answer comes back truncated. It returns the
// first answer (with r's ID), FORMERR when that answer is for another
// question (as CoreDNS's forward plugin does), or SERVFAIL when every
// upstream fails or times out.
func (s *Server) forward(ctx context.Context, r *mdns.Msg, tcp bool) *mdns.Msg {
	q := r.Copy()
	for _, up := range s.upstreams {
		resp, err := s.exchange(ctx, q, up, tcp)
		if err != nil {
			s.log.Debug("upstream failed", "upstream", up, "name", r.Question[0].Name, "err", err)
			continue
		}
		resp.Id = r.Id
		if !sameQuestion(r, resp) {
			m := new(mdns.Msg)
			m.SetRcodeFormatError(r)
			return m
		}
		return resp
	}
	m := new(mdns.Msg)
	m.SetRcode(r, mdns.RcodeServerFailure)
	return m
}

func (s *Server) exchange(ctx context.Context, q *mdns.Msg, upstream string, tcp bool) (*mdns.Msg, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	for {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		c := &mdns.Client{Net: network, Timeout: s.timeout, UDPSize: mdns.MaxMsgSize}
		q.Id = mdns.Id()
		resp, _, err := c.ExchangeContext(ctx, q, upstream)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("exchange with %s over %s: %w", upstream, network, err)
		}
		if resp.Truncated && network == "udp" {
			network = "tcp"
			continue
		}
		return resp, nil
	}
}

func sameQuestion(r, resp *mdns.Msg) bool {
	if len(resp.Question) != 1 {
		return false
	}
	a, b := r.Question[0], resp.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

// UpstreamsFromResolvConf returns the name servers of a resolv.conf file as
// host:port, in file order, for Config.Upstreams. Loopback addresses (such as
// systemd-resolved's 127.0.0.53 stub) are kept: the server forwards from the
// svclab process's own network namespace, where the host's stub is
// reachable, even when it listens inside a pod's namespace. It returns
// ErrNoUpstreams when the file lists none.
func UpstreamsFromResolvConf(path string) ([]string, error) {
	cfg, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resolv.conf %s: %w", path, err)
	}
	var out []string
	for _, srv := range cfg.Servers {
		if net.ParseIP(strings.SplitN(srv, "%", 2)[0]) == nil {
			continue
		}
		out = append(out, net.JoinHostPort(srv, cfg.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolv.conf %s: %w", path, ErrNoUpstreams)
	}
	return out, nil
}
