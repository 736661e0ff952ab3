package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// nsName identifies a namespaced object. Used as a map key it costs no
// allocation, unlike a joined "name.namespace" string.
type nsName struct{ namespace, name string }

// portView is a Service or EndpointSlice port as CoreDNS keeps it. Port -1 is
// CoreDNS's sentinel for "no ports declared": such an entry still yields
// address records but never an SRV record.
type portView struct {
	name     string
	protocol string
	port     int32
}

// svcView is the immutable, DNS-relevant part of a Service. Views are replaced,
// never modified, so readers may keep a pointer after releasing the lock.
type svcView struct {
	namespace, name string
	externalName    bool
	target          string // spec.externalName
	headless        bool
	clusterIPs      []netip.Addr
	reverseIPs      []netip.Addr // cluster IPs, spec.externalIPs and LoadBalancer ingress IPs
	ports           []portView
	publishNotReady bool
	resourceVersion string
}

// addrView is one address of an EndpointSlice endpoint.
type addrView struct {
	ip       netip.Addr
	hostname string // endpoint.hostname, else the dashed IP (CoreDNS endpointHostname)
	ready    bool   // conditions.ready, nil counting as ready
}

// sliceView is the immutable, DNS-relevant part of an EndpointSlice.
type sliceView struct {
	name    string
	service nsName // from the kubernetes.io/service-name label
	ports   []portView
	addrs   []addrView
}

// published reports whether a is served in DNS for a Service whose
// publishNotReadyAddresses is pnr: CoreDNS publishes ready endpoints (nil
// counts as ready); the EndpointSlice controller marks every endpoint ready
// when publishNotReadyAddresses is set, which the index applies itself too.
func (a addrView) published(pnr bool) bool { return a.ready || pnr }

// Index is an in-memory, concurrency-safe index of the Services,
// EndpointSlices and Pods the DNS server answers from. It is fed by the
// Upsert/Delete methods (typically from watch events) and read by queries.
//
// Writers hold the lock only to swap a few map entries (the new view is built
// before the lock is taken), so queries never wait long; an update is visible
// to the very next query. Stored views are immutable. The zero value is not
// usable; call NewIndex.
type Index struct {
	zone string

	mu         sync.RWMutex
	services   map[nsName]*svcView
	slices     map[nsName]map[string]*sliceView // service → slice name → view
	sliceOwner map[nsName]nsName                // (namespace, slice name) → service
	pods       map[nsName][]netip.Addr          // (namespace, pod name) → pod IPs
	svcByIP    map[netip.Addr][]nsName          // reverse index of reverseIPs
	epByIP     map[netip.Addr][]nsName          // IP → (namespace, slice name), all addresses
	podByIP    map[netip.Addr][]nsName          // IP → pods
	nsRefs     map[string]int                   // objects per namespace
	namespaces map[string]struct{}              // namespaces announced with UpsertNamespace

	externalNames atomic.Int64 // ExternalName Services indexed

	modified atomic.Int64 // unix seconds of the last change: the SOA serial
	now      func() time.Time
}

// NewIndex returns an empty index for the given cluster zone ("cluster.local."
// when empty). The zone is the one PTR answers name (CoreDNS's primary zone).
func NewIndex(zone string) *Index {
	if zone == "" {
		zone = defaultZone
	}
	idx := &Index{
		zone:       strings.ToLower(mdns.Fqdn(zone)),
		services:   map[nsName]*svcView{},
		slices:     map[nsName]map[string]*sliceView{},
		sliceOwner: map[nsName]nsName{},
		pods:       map[nsName][]netip.Addr{},
		svcByIP:    map[netip.Addr][]nsName{},
		epByIP:     map[netip.Addr][]nsName{},
		podByIP:    map[netip.Addr][]nsName{},
		nsRefs:     map[string]int{},
		namespaces: map[string]struct{}{},
		now:        time.Now,
	}
	idx.touch()
	return idx
}

// Zone returns the index's zone, lower case and fully qualified.
func (x *Index) Zone() string { return x.zone }

// Serial returns the SOA serial: like CoreDNS, the unix time (seconds) of the
// most recent change that affects answers.
func (x *Index) Serial() uint32 { return uint32(x.modified.Load()) }

func (x *Index) touch() { x.modified.Store(x.now().Unix()) }

// UpsertService adds or replaces a Service. A nil Service is ignored.
func (x *Index) UpsertService(svc *corev1.Service) {
	if svc == nil {
		return
	}
	v := newSvcView(svc)
	key := nsName{v.namespace, v.name}
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.services[key]
	if old != nil && old.resourceVersion != "" && old.resourceVersion == v.resourceVersion {
		return // same object again (a resync): nothing changed, keep the serial
	}
	if old != nil {
		for _, ip := range old.reverseIPs {
			unindex(x.svcByIP, ip, key)
		}
		if old.externalName {
			x.externalNames.Add(-1)
		}
	} else {
		x.nsRefs[key.namespace]++
	}
	if v.externalName {
		x.externalNames.Add(1)
	}
	x.services[key] = v
	for _, ip := range v.reverseIPs {
		x.svcByIP[ip] = insertKey(x.svcByIP[ip], key)
	}
	x.touch()
}

// DeleteService removes a Service; deleting an unknown Service is a no-op.
// Its EndpointSlices stay indexed until they are deleted themselves.
func (x *Index) DeleteService(namespace, name string) {
	key := nsName{namespace, name}
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.services[key]
	if old == nil {
		return
	}
	for _, ip := range old.reverseIPs {
		unindex(x.svcByIP, ip, key)
	}
	if old.externalName {
		x.externalNames.Add(-1)
	}
	delete(x.services, key)
	x.unref(namespace)
	x.touch()
}

// UpsertEndpointSlice adds or replaces an EndpointSlice. The slice belongs to
// the Service named by its kubernetes.io/service-name label; a slice without
// that label is stored under the empty service name and never answers.
func (x *Index) UpsertEndpointSlice(es *discoveryv1.EndpointSlice) {
	if es == nil {
		return
	}
	v := newSliceView(es)
	skey := nsName{es.Namespace, es.Name}
	x.mu.Lock()
	defer x.mu.Unlock()
	if owner, ok := x.sliceOwner[skey]; ok {
		old := x.slices[owner][es.Name]
		if old != nil && owner == v.service && sliceEquivalent(old, v) {
			return // CoreDNS ignores endpoint updates that change nothing it serves
		}
		x.removeSliceLocked(skey, owner)
	}
	x.sliceOwner[skey] = v.service
	m := x.slices[v.service]
	if m == nil {
		m = map[string]*sliceView{}
		x.slices[v.service] = m
	}
	m[es.Name] = v
	for _, a := range v.addrs {
		x.epByIP[a.ip] = insertKey(x.epByIP[a.ip], skey)
	}
	x.nsRefs[es.Namespace]++
	x.touch()
}

// DeleteEndpointSlice removes an EndpointSlice by its own name; unknown slices
// are a no-op.
func (x *Index) DeleteEndpointSlice(namespace, name string) {
	skey := nsName{namespace, name}
	x.mu.Lock()
	defer x.mu.Unlock()
	owner, ok := x.sliceOwner[skey]
	if !ok {
		return
	}
	x.removeSliceLocked(skey, owner)
	x.touch()
}

func (x *Index) removeSliceLocked(skey, owner nsName) {
	if old := x.slices[owner][skey.name]; old != nil {
		for _, a := range old.addrs {
			unindex(x.epByIP, a.ip, skey)
		}
	}
	delete(x.slices[owner], skey.name)
	if len(x.slices[owner]) == 0 {
		delete(x.slices, owner)
	}
	delete(x.sliceOwner, skey)
	x.unref(skey.namespace)
}

// UpsertPod adds or replaces a Pod. Pods make their namespace exist and, in
// "verified" pod mode, are the only pod records answered. Pods without an IP
// are kept for the namespace but answer nothing.
func (x *Index) UpsertPod(pod *corev1.Pod) {
	if pod == nil {
		return
	}
	var ips []netip.Addr
	for _, p := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(p.IP); err == nil {
			ips = appendUniqueAddr(ips, a.Unmap())
		}
	}
	if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
		ips = appendUniqueAddr(ips, a.Unmap())
	}
	// Succeeded/Failed pods are not served, as CoreDNS's pod informer filters them.
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		ips = nil
	}
	key := nsName{pod.Namespace, pod.Name}
	x.mu.Lock()
	defer x.mu.Unlock()
	old, existed := x.pods[key]
	if existed && slices.Equal(old, ips) {
		return
	}
	for _, ip := range old {
		unindex(x.podByIP, ip, key)
	}
	if !existed {
		x.nsRefs[pod.Namespace]++
	}
	x.pods[key] = ips
	for _, ip := range ips {
		x.podByIP[ip] = insertKey(x.podByIP[ip], key)
	}
	x.touch()
}

// DeletePod removes a Pod; unknown pods are a no-op.
func (x *Index) DeletePod(namespace, name string) {
	key := nsName{namespace, name}
	x.mu.Lock()
	defer x.mu.Unlock()
	old, ok := x.pods[key]
	if !ok {
		return
	}
	for _, ip := range old {
		unindex(x.podByIP, ip, key)
	}
	delete(x.pods, key)
	x.unref(namespace)
	x.touch()
}

// UpsertNamespace records that a namespace exists. CoreDNS answers NODATA
// (not NXDOMAIN) for names in an existing namespace; without namespace events
// the index treats a namespace as existing while it holds any Service,
// EndpointSlice or Pod.
func (x *Index) UpsertNamespace(ns *corev1.Namespace) {
	if ns == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.namespaces[ns.Name]; ok {
		return
	}
	x.namespaces[ns.Name] = struct{}{}
	x.touch()
}

// DeleteNamespace forgets a namespace announced with UpsertNamespace. The
// namespace still exists for DNS while objects in it remain indexed.
func (x *Index) DeleteNamespace(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.namespaces[name]; !ok {
		return
	}
	delete(x.namespaces, name)
	x.touch()
}

func (x *Index) unref(namespace string) {
	if x.nsRefs[namespace] <= 1 {
		delete(x.nsRefs, namespace)
		return
	}
	x.nsRefs[namespace]--
}

// namespaceExistsLocked reports whether namespace exists; x.mu must be held.
func (x *Index) namespaceExistsLocked(namespace string) bool {
	if x.nsRefs[namespace] > 0 {
		return true
	}
	_, ok := x.namespaces[namespace]
	return ok
}

func newSvcView(svc *corev1.Service) *svcView {
	v := &svcView{
		namespace:       svc.Namespace,
		name:            svc.Name,
		externalName:    svc.Spec.Type == corev1.ServiceTypeExternalName,
		target:          svc.Spec.ExternalName,
		publishNotReady: svc.Spec.PublishNotReadyAddresses,
		resourceVersion: svc.ResourceVersion,
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	// CoreDNS: headless when the first cluster IP is "None".
	v.headless = len(ips) > 0 && ips[0] == corev1.ClusterIPNone
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			v.clusterIPs = appendUniqueAddr(v.clusterIPs, a.Unmap())
		}
	}
	v.reverseIPs = append(v.reverseIPs, v.clusterIPs...)
	for _, s := range svc.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			v.reverseIPs = appendUniqueAddr(v.reverseIPs, a.Unmap())
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			v.reverseIPs = appendUniqueAddr(v.reverseIPs, a.Unmap())
		}
	}
	for _, p := range svc.Spec.Ports {
		v.ports = append(v.ports, portView{name: p.Name, protocol: string(p.Protocol), port: p.Port})
	}
	if len(v.ports) == 0 {
		v.ports = []portView{{port: -1}}
	}
	return v
}

func newSliceView(es *discoveryv1.EndpointSlice) *sliceView {
	v := &sliceView{
		name:    es.Name,
		service: nsName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]},
	}
	for _, p := range es.Ports {
		pv := portView{port: -1}
		if p.Port != nil {
			pv.port = *p.Port
		}
		if p.Name != nil {
			pv.name = *p.Name
		}
		if p.Protocol != nil {
			pv.protocol = string(*p.Protocol)
		}
		v.ports = append(v.ports, pv)
	}
	if len(v.ports) == 0 {
		v.ports = []portView{{port: -1}}
	}
	for _, ep := range es.Endpoints {
		ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
		for _, s := range ep.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			a = a.Unmap()
			av := addrView{ip: a, ready: ready}
			if ep.Hostname != nil && *ep.Hostname != "" {
				av.hostname = *ep.Hostname
			} else {
				av.hostname = dashedIP(a)
			}
			v.addrs = append(v.addrs, av)
		}
	}
	return v
}

// dashedIP is CoreDNS's hostname for an endpoint without one: the address
// with dots (IPv4) or colons (IPv6) replaced by dashes.
func dashedIP(a netip.Addr) string {
	s := a.String()
	if a.Is4() {
		return strings.ReplaceAll(s, ".", "-")
	}
	return strings.ReplaceAll(s, ":", "-")
}

func sliceEquivalent(a, b *sliceView) bool {
	return a.service == b.service && slices.Equal(a.ports, b.ports) && slices.Equal(a.addrs, b.addrs)
}

func appendUniqueAddr(s []netip.Addr, a netip.Addr) []netip.Addr {
	if slices.Contains(s, a) {
		return s
	}
	return append(s, a)
}

func cmpKey(a, b nsName) int {
	if c := strings.Compare(a.namespace, b.namespace); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// insertKey returns s (sorted) with k added, copying so that readers holding
// the old slice never see it change.
func insertKey(s []nsName, k nsName) []nsName {
	i, found := slices.BinarySearchFunc(s, k, cmpKey)
	if found {
		return s
	}
	out := make([]nsName, 0, len(s)+1)
	out = append(out, s[:i]...)
	out = append(out, k)
	return append(out, s[i:]...)
}

// removeKey returns s without k, copying (see insertKey).
// unindex removes k from m[ip], and the entry when it becomes empty.
func unindex(m map[netip.Addr][]nsName, ip netip.Addr, k nsName) {
	if rest := removeKey(m[ip], k); len(rest) > 0 {
		m[ip] = rest
	} else {
		delete(m, ip)
	}
}

func removeKey(s []nsName, k nsName) []nsName {
	i, found := slices.BinarySearchFunc(s, k, cmpKey)
	if !found {
		return s
	}
	out := make([]nsName, 0, len(s)-1)
	out = append(out, s[:i]...)
	return append(out, s[i+1:]...)
}
