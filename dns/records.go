package dns

import (
	"errors"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// Name errors, as CoreDNS's kubernetes plugin names them. Any of them makes
// the answer NXDOMAIN (or, in the reverse zones, falls through to the
// upstream).
var (
	errNoItems        = errors.New("no items found")
	errNsNotExposed   = errors.New("namespace is not exposed")
	errInvalidRequest = errors.New("invalid query name")
)

func isNameError(err error) bool {
	return errors.Is(err, errNoItems) || errors.Is(err, errNsNotExposed) || errors.Is(err, errInvalidRequest)
}

const (
	labelSvc = "svc"
	labelPod = "pod"
)

// recordRequest is a query name taken apart as CoreDNS's parseRequest does:
// [_port._protocol. | endpoint.] service.namespace.(svc|pod).zone
type recordRequest struct {
	port, protocol string
	endpoint       string
	service        string
	namespace      string
	podOrSvc       string
}

// parseRequest parses name (lower case) below zone. It returns the empty
// request for the apex, "svc" and "pod" (NODATA), errInvalidRequest for a
// name whose second-level label is neither svc nor pod or that has too many
// labels (NXDOMAIN).
func parseRequest(name, zone string) (recordRequest, error) {
	var r recordRequest
	base := trimZone(name, zone)
	if base == "" || base == labelSvc || base == labelPod {
		return r, nil
	}
	var segs [6]string
	n := 0
	if strings.IndexByte(base, '\\') >= 0 {
		// Escaped dots inside labels: let miekg/dns split properly.
		all := mdns.SplitDomainName(base)
		if len(all) > len(segs) {
			return r, errInvalidRequest
		}
		n = copy(segs[:], all)
	} else {
		for rest := base; ; {
			if n == len(segs) {
				return r, errInvalidRequest
			}
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				segs[n] = rest
				n++
				break
			}
			segs[n] = rest[:i]
			n++
			rest = rest[i+1:]
		}
	}
	last := n - 1
	r.podOrSvc = segs[last]
	if r.podOrSvc != labelPod && r.podOrSvc != labelSvc {
		return r, errInvalidRequest
	}
	if last--; last < 0 {
		return r, nil
	}
	r.namespace = segs[last]
	if last--; last < 0 {
		return r, nil
	}
	r.service = segs[last]
	if last--; last < 0 {
		return r, nil
	}
	switch last {
	case 0:
		r.endpoint = segs[0]
	case 1:
		r.protocol = strings.TrimPrefix(segs[1], "_")
		r.port = strings.TrimPrefix(segs[0], "_")
	default:
		return r, errInvalidRequest
	}
	return r, nil
}

// trimZone returns name without the trailing zone and its separating dot
// ("" for the apex). name must be a subdomain of zone.
func trimZone(name, zone string) string {
	if len(name) <= len(zone) {
		return ""
	}
	return name[:len(name)-len(zone)-1]
}

// entry is one result of a lookup, CoreDNS's msg.Service: either an address
// (ip valid) or a name to alias (target, from an ExternalName Service).
type entry struct {
	ip     netip.Addr
	target string // CNAME target, not fully qualified as given by the Service
	port   int32
	text   string // TXT data (dns-version)
	ttl    uint32

	// The name this entry lives at, CoreDNS's msg.Domain(key), built on
	// demand by domain: [label.]name.namespace.kind.<zone>.
	label, name, namespace, kind string
	fqdn                         string // used instead when set
}

// domain returns the entry's owner name inside zone (case as given).
func (e *entry) domain(zone string) string {
	if e.fqdn != "" {
		return e.fqdn
	}
	var b strings.Builder
	b.Grow(len(e.label) + len(e.name) + len(e.namespace) + len(e.kind) + len(zone) + 4)
	if e.label != "" {
		b.WriteString(e.label)
		b.WriteByte('.')
	}
	b.WriteString(e.name)
	b.WriteByte('.')
	b.WriteString(e.namespace)
	b.WriteByte('.')
	b.WriteString(e.kind)
	b.WriteByte('.')
	b.WriteString(zone)
	return b.String()
}

// podMode values, as in CoreDNS's `pods` option.
const (
	PodsInsecure = "insecure"
	PodsVerified = "verified"
	PodsDisabled = "disabled"
)

// records looks up name (lower case) in zone (case as queried), CoreDNS's
// Records: it returns the matching entries, nil for an existing name without
// records, or a name error.
func (s *Server) records(name, zone string) ([]entry, error) {
	r, err := parseRequest(name, strings.ToLower(zone))
	if err != nil {
		return nil, err
	}
	if r.podOrSvc == "" {
		return nil, nil
	}
	if isReverseName(name) {
		return nil, errNoItems
	}
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.namespaceExistsLocked(r.namespace) {
		return nil, errNsNotExposed
	}
	if r.podOrSvc == labelPod {
		return s.findPodsLocked(r)
	}
	return s.findServicesLocked(r)
}

// findPodsLocked answers <dashed-ip>.<ns>.pod.<zone>; x.mu must be read-locked.
func (s *Server) findPodsLocked(r recordRequest) ([]entry, error) {
	if s.podMode == PodsDisabled {
		return nil, errNoItems
	}
	podname := r.service
	if podname == "" {
		return nil, nil // NODATA: the namespace exists
	}
	var ipText string
	if strings.Count(podname, "-") == 3 && !strings.Contains(podname, "--") {
		ipText = strings.ReplaceAll(podname, "-", ".")
	} else {
		ipText = strings.ReplaceAll(podname, "-", ":")
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil || ip.Zone() != "" {
		return nil, errNoItems
	}
	ip = ip.Unmap()
	e := entry{ip: ip, ttl: s.ttl, label: "", name: podname, namespace: r.namespace, kind: labelPod}
	if s.podMode == PodsInsecure {
		return []entry{e}, nil
	}
	for _, k := range s.idx.podByIP[ip] {
		if k.namespace == r.namespace {
			return []entry{e}, nil
		}
	}
	return nil, errNoItems
}

// findServicesLocked is CoreDNS's findServices; x.mu must be read-locked.
func (s *Server) findServicesLocked(r recordRequest) ([]entry, error) {
	if r.service == "" {
		return nil, nil // NODATA: the namespace exists
	}
	x := s.idx
	svc := x.services[nsName{r.namespace, r.service}]
	if svc == nil {
		return nil, errNoItems
	}
	err := errNoItems
	var out []entry

	if svc.externalName {
		// External services cannot have endpoints.
		if r.endpoint != "" {
			return nil, errNoItems
		}
		// An externalName that is an IP address is not a name to alias:
		// CoreDNS skips it, so the name does not exist.
		if _, perr := netip.ParseAddr(svc.target); perr == nil || svc.target == "" {
			return nil, errNoItems
		}
		return []entry{{target: svc.target, ttl: s.ttl, name: svc.name, namespace: svc.namespace, kind: labelSvc}}, nil
	}

	if svc.headless || r.endpoint != "" {
		for _, sl := range sortedSlices(x.slices[nsName{svc.namespace, svc.name}]) {
			for _, a := range sl.addrs {
				if !a.published(svc.publishNotReady) {
					continue
				}
				if r.endpoint != "" && !strings.EqualFold(r.endpoint, a.hostname) {
					continue
				}
				for _, p := range sl.ports {
					if !matchPortAndProtocol(r.port, p.name, r.protocol, p.protocol) {
						continue
					}
					err = nil
					out = append(out, entry{ip: a.ip, port: p.port, ttl: s.ttl,
						label: a.hostname, name: svc.name, namespace: svc.namespace, kind: labelSvc})
				}
			}
		}
		return out, err
	}

	for _, p := range svc.ports {
		if !matchPortAndProtocol(r.port, p.name, r.protocol, p.protocol) {
			continue
		}
		err = nil
		for _, ip := range svc.clusterIPs {
			out = append(out, entry{ip: ip, port: p.port, ttl: s.ttl,
				name: svc.name, namespace: svc.namespace, kind: labelSvc})
		}
	}
	return out, err
}

// sortedSlices returns a service's slices in name order, so answers do not
// depend on map iteration (CoreDNS's order is its informer's).
func sortedSlices(m map[string]*sliceView) []*sliceView {
	switch len(m) {
	case 0:
		return nil
	case 1:
		for _, v := range m {
			return []*sliceView{v}
		}
	}
	out := make([]*sliceView, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	for i := 1; i < len(out); i++ { // insertion sort: a service has few slices
		for j := i; j > 0 && out[j].name < out[j-1].name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// matchPortAndProtocol matches a queried port and protocol, where empty
// query values match anything, case-insensitively.
func matchPortAndProtocol(qPort, port, qProto, proto string) bool {
	return (qPort == "" || strings.EqualFold(qPort, port)) && (qProto == "" || strings.EqualFold(qProto, proto))
}

// reverse answers a PTR query name in a reverse zone, CoreDNS's Reverse: the
// Service owning the IP (cluster, external or load-balancer IP), else every
// endpoint with that IP.
func (s *Server) reverse(name, zone string) ([]entry, error) {
	ip, ok := addressFromReverse(name)
	if !ok {
		_, err := s.records(name, zone)
		return nil, err
	}
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	if keys := x.svcByIP[ip]; len(keys) > 0 {
		k := keys[0]
		return []entry{{ttl: s.ttl, target: k.name + "." + k.namespace + "." + labelSvc + "." + x.zone}}, nil
	}
	var out []entry
	for _, sk := range x.epByIP[ip] {
		owner := x.sliceOwner[sk]
		sl := x.slices[owner][sk.name]
		if sl == nil {
			continue
		}
		pnr := false
		if svc := x.services[owner]; svc != nil {
			pnr = svc.publishNotReady
		}
		for _, a := range sl.addrs {
			if a.ip != ip || !a.published(pnr) {
				continue
			}
			out = append(out, entry{ttl: s.ttl,
				target: a.hostname + "." + owner.name + "." + owner.namespace + "." + labelSvc + "." + x.zone})
		}
	}
	if len(out) == 0 {
		return nil, errNoItems
	}
	return out, nil
}

// nsAddr is one name server address for the zone's NS answer.
type nsAddr struct {
	name string
	ip   netip.Addr
}

// nsAddrs is CoreDNS's nsAddrs: the Services whose endpoints hold this
// server's own IPs (normally kube-dns.kube-system.svc.<zone> with its cluster
// IP; every endpoint of a headless one), else ns.dns.<zone> with the server's
// own IPs. When the server knows no IP of its own (Config.LocalIPs empty and
// no listener bound to a specific address), the kube-system/kube-dns Service
// stands in, as it would in a cluster.
func (s *Server) nsAddrs(zone string) []nsAddr {
	x := s.idx
	local := s.localIPs()
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []nsAddr
	addSvc := func(svc *svcView, sl *sliceView) {
		svcName := svc.name + "." + svc.namespace + "." + labelSvc + "." + zone
		if svc.headless {
			if sl == nil {
				return
			}
			for _, a := range sl.addrs {
				if a.published(svc.publishNotReady) {
					out = append(out, nsAddr{name: a.hostname + "." + svcName, ip: a.ip})
				}
			}
			return
		}
		if len(svc.clusterIPs) > 0 {
			out = append(out, nsAddr{name: svcName, ip: svc.clusterIPs[0]})
		}
	}
	for _, ip := range local {
		for _, sk := range x.epByIP[ip] {
			owner := x.sliceOwner[sk]
			if svc := x.services[owner]; svc != nil {
				addSvc(svc, x.slices[owner][sk.name])
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	if len(local) == 0 {
		if svc := x.services[nsName{"kube-system", "kube-dns"}]; svc != nil && !svc.headless {
			addSvc(svc, nil)
			return out
		}
	}
	for _, ip := range local {
		out = append(out, nsAddr{name: "ns.dns." + zone, ip: ip})
	}
	return out
}

// isReverseName reports whether name (lower case) is under in-addr.arpa. or ip6.arpa.
func isReverseName(name string) bool {
	return strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.") ||
		name == zoneIPv4Reverse || name == zoneIPv6Reverse
}

// addressFromReverse turns a complete reverse name (lower case) into its
// address; partial names are not addresses.
func addressFromReverse(name string) (netip.Addr, bool) {
	var s string
	switch {
	case strings.HasSuffix(name, "."+zoneIPv4Reverse):
		labels := strings.Split(strings.TrimSuffix(name, "."+zoneIPv4Reverse), ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		s = labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0]
	case strings.HasSuffix(name, "."+zoneIPv6Reverse):
		labels := strings.Split(strings.TrimSuffix(name, "."+zoneIPv6Reverse), ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			if len(labels[i]) != 1 {
				return netip.Addr{}, false
			}
			b.WriteString(labels[i])
			if i%4 == 0 && i != 0 {
				b.WriteByte(':')
			}
		}
		s = b.String()
	default:
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
