package controllers

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/dump"

	"github.com/svclab/svclab/apiserver/store"
)

// maxEndpointsCapacity is the Endpoints controller's cap on addresses per
// object; beyond it the object is truncated and annotated
// endpoints.kubernetes.io/over-capacity=truncated.
const maxEndpointsCapacity = 1000

// endpointsController is kube-controller-manager's Endpoints controller: for
// every Service with a selector (not ExternalName) it writes the v1
// Endpoints object of the same name — ready pods in addresses, not-ready ones
// in notReadyAddresses (terminating pods only with publishNotReadyAddresses),
// subsets packed by port set in kube's canonical order — with the Service's
// labels (plus service.kubernetes.io/headless for headless Services) and the
// last-change-trigger-time annotation. Endpoints of selectorless Services are
// the user's and are left alone, except that, like kube, the Endpoints named
// after a Service are deleted when the Service is, and Endpoints without a
// Service are deleted at startup.
type endpointsController struct {
	st       *store.Store
	cache    *cache
	q        *queue
	log      *slog.Logger
	triggers *triggerTimeTracker
	writes   *writeTracker
	workers  int
	started  bool // the first resync also queues every Endpoints object (leftovers)
}

func newEndpointsController(st *store.Store, c *cache, cfg Config, log *slog.Logger) *endpointsController {
	return &endpointsController{
		st: st, cache: c, q: newQueue(),
		log:      log.With("controller", "endpoints"),
		triggers: newTriggerTimeTracker(),
		writes:   newWriteTracker(),
		workers:  cfg.EndpointWorkers,
	}
}

func (c *endpointsController) handle(ev store.Event) {
	switch ev.Resource {
	case store.Services:
		c.q.Add(objKey(ev.Object))
	case store.Pods:
		for _, k := range servicesForPodEvent(c.cache, ev) {
			c.q.Add(k)
		}
	case store.Endpoints:
		if ev.Type == watch.Deleted {
			c.q.Add(objKey(ev.Object))
		}
	}
}

func (c *endpointsController) resync() {
	for _, k := range c.cache.serviceKeys() {
		c.q.Add(k)
	}
	if !c.started { // kube's checkLeftoverEndpoints
		c.started = true
		for _, k := range c.cache.endpointsKeys() {
			c.q.Add(k)
		}
	}
}

func (c *endpointsController) run(ctx context.Context) {
	runWorkers(ctx, c.q, c.workers, c.sync, c.log)
}

func (c *endpointsController) sync(ctx context.Context, key string) error {
	if rv, stale := c.writes.stale(key, c.cache.resourceVersion()); stale {
		c.cache.notifyAt(rv, func() { c.q.Add(key) })
		return nil
	}
	ns, name := splitKey(key)
	entry := c.cache.service(ns, name)
	if entry == nil {
		c.triggers.forget(key)
		if c.cache.endpointsObj(ns, name) == nil {
			return nil
		}
		deleted, err := c.st.Delete(ctx, store.Endpoints, ns, name, "")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete Endpoints %s: %w", key, err)
		}
		c.writes.wroteObj(key, deleted)
		return nil
	}
	svc := entry.svc
	if svc.Spec.Type == corev1.ServiceTypeExternalName || entry.selector == nil {
		return nil
	}
	pods := c.cache.podsSelected(ns, entry.selector)
	trigger := c.triggers.compute(key, svc, pods)
	subsets := desiredSubsets(svc, pods)

	cur := c.cache.endpointsObj(ns, name)
	create := cur == nil
	if create {
		cur = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: svc.Labels}}
	}
	compareLabels := cur.Labels
	if _, ok := cur.Labels[corev1.IsHeadlessService]; ok {
		compareLabels = withoutLabel(cur.Labels, corev1.IsHeadlessService)
	}
	if !create && subsetsEqualIgnoreResourceVersion(cur.Subsets, subsets) &&
		equality.Semantic.DeepEqual(compareLabels, svc.Labels) && capacityAnnotationSetCorrectly(cur.Annotations, cur.Subsets) {
		return nil
	}
	next := cur.DeepCopy()
	next.Subsets = subsets
	next.Labels = map[string]string{}
	for k, v := range svc.Labels {
		next.Labels[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		next.Labels[corev1.IsHeadlessService] = ""
	} else {
		delete(next.Labels, corev1.IsHeadlessService)
	}
	setTriggerTime(&next.ObjectMeta, trigger)
	if truncateEndpoints(next) {
		next.Annotations[corev1.EndpointsOverCapacity] = "truncated"
	} else {
		delete(next.Annotations, corev1.EndpointsOverCapacity)
	}
	var out store.Object
	var err error
	if create {
		out, err = c.st.Create(ctx, store.Endpoints, next)
	} else {
		out, err = c.st.Update(ctx, store.Endpoints, next, store.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write Endpoints %s: %w", key, err)
	}
	c.writes.wroteObj(key, out)
	return nil
}

func withoutLabel(m map[string]string, key string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// desiredSubsets computes the Endpoints subsets of svc over pods as kube's
// Endpoints controller does, packed and sorted by RepackSubsets.
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	subsets := []corev1.EndpointSubset{}
	for _, pod := range pods {
		if !shouldPodBeInEndpoints(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		epa, ok := podEndpointAddress(svc, pod)
		if !ok {
			continue
		}
		if shouldSetHostname(pod, svc) {
			epa.Hostname = pod.Spec.Hostname
		}
		ready := svc.Spec.PublishNotReadyAddresses || isPodReady(pod)
		add := func(ports []corev1.EndpointPort) {
			if ready {
				subsets = append(subsets, corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{epa}, Ports: ports})
			} else {
				subsets = append(subsets, corev1.EndpointSubset{NotReadyAddresses: []corev1.EndpointAddress{epa}, Ports: ports})
			}
		}
		if len(svc.Spec.Ports) == 0 {
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				add([]corev1.EndpointPort{})
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			num, err := findPort(pod, sp)
			if err != nil {
				continue
			}
			add([]corev1.EndpointPort{{Name: sp.Name, Port: num, Protocol: protocolOf(sp.Protocol), AppProtocol: sp.AppProtocol}})
		}
	}
	return repackSubsets(subsets)
}

// podEndpointAddress is kube's podToEndpointAddressForService: the pod's IP
// of the Service's (first) family.
func podEndpointAddress(svc *corev1.Service, pod *corev1.Pod) (corev1.EndpointAddress, bool) {
	want6 := false
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		want6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
		a, err := netip.ParseAddr(svc.Spec.ClusterIP)
		want6 = err == nil && a.Is6() && !a.Is4In6()
	default:
		a, err := netip.ParseAddr(pod.Status.PodIP)
		want6 = err == nil && a.Is6() && !a.Is4In6()
	}
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, pip := range ips {
		a, err := netip.ParseAddr(pip.IP)
		if err != nil || (a.Is6() && !a.Is4In6()) != want6 {
			continue
		}
		node := pod.Spec.NodeName
		return corev1.EndpointAddress{
			IP:        pip.IP,
			NodeName:  &node,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}, true
	}
	return corev1.EndpointAddress{}, false
}

// subsetsEqualIgnoreResourceVersion compares subsets semantically, ignoring
// the target references' resourceVersions.
func subsetsEqualIgnoreResourceVersion(a, b []corev1.EndpointSubset) bool {
	strip := func(in []corev1.EndpointSubset) []corev1.EndpointSubset {
		out := make([]corev1.EndpointSubset, len(in))
		for i := range in {
			out[i] = *in[i].DeepCopy()
			for _, list := range [][]corev1.EndpointAddress{out[i].Addresses, out[i].NotReadyAddresses} {
				for j := range list {
					if list[j].TargetRef != nil {
						list[j].TargetRef.ResourceVersion = ""
					}
				}
			}
		}
		return out
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// capacityAnnotationSetCorrectly is false when the subsets exceed the
// capacity (they must be truncated) or when the over-capacity annotation is
// set although they do not.
func capacityAnnotationSetCorrectly(annotations map[string]string, subsets []corev1.EndpointSubset) bool {
	n := 0
	for _, s := range subsets {
		n += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if n > maxEndpointsCapacity {
		return false
	}
	_, ok := annotations[corev1.EndpointsOverCapacity]
	return !ok
}

// truncateEndpoints is kube's truncateEndpoints: over capacity, keep ready
// addresses first, sharing the room among subsets in proportion to their
// size. It reports whether it truncated.
func truncateEndpoints(ep *corev1.Endpoints) bool {
	totalReady, totalNotReady := 0, 0
	for _, s := range ep.Subsets {
		totalReady += len(s.Addresses)
		totalNotReady += len(s.NotReadyAddresses)
	}
	if totalReady+totalNotReady <= maxEndpointsCapacity {
		return false
	}
	truncateReady := false
	room := maxEndpointsCapacity - totalReady
	numTotal := totalNotReady
	if totalReady > maxEndpointsCapacity {
		truncateReady = true
		room = maxEndpointsCapacity
		numTotal = totalReady
	}
	canBeAdded := room
	for i := range ep.Subsets {
		s := ep.Subsets[i]
		inSubset := len(s.Addresses)
		if !truncateReady {
			inSubset = len(s.NotReadyAddresses)
		}
		toBeAdded := int(math.Ceil(float64(inSubset) / float64(numTotal) * float64(room)))
		toBeAdded = min(toBeAdded, canBeAdded)
		if truncateReady {
			s.Addresses = s.Addresses[:min(len(s.Addresses), toBeAdded)]
			s.NotReadyAddresses = []corev1.EndpointAddress{}
			canBeAdded -= len(s.Addresses)
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:min(len(s.NotReadyAddresses), toBeAdded)]
			canBeAdded -= len(s.NotReadyAddresses)
		}
		ep.Subsets[i] = s
	}
	return true
}

// repackSubsets is kube's endpoints.RepackSubsets: it expands subsets to
// (address, port) pairs and packs them again so that each subset holds the
// addresses that offer exactly the same ports (an address not ready for one
// port is not ready for all), then sorts as SortSubsets does (addresses by
// IP and uid, ports and subsets by md5 of their spew dump), so the output is
// byte-for-byte what kube-controller-manager writes.
func repackSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	type addressKey struct {
		ip  string
		uid types.UID
	}
	allAddrs := map[addressKey]*corev1.EndpointAddress{}
	portToAddrReady := map[corev1.EndpointPort]map[*corev1.EndpointAddress]bool{}
	var portOrder []corev1.EndpointPort
	mapAddr := func(addr *corev1.EndpointAddress, port corev1.EndpointPort, ready bool) {
		k := addressKey{ip: addr.IP}
		if addr.TargetRef != nil {
			k.uid = addr.TargetRef.UID
		}
		existing := allAddrs[k]
		if existing == nil {
			cp := *addr
			existing = &cp
			allAddrs[k] = existing
		}
		set, ok := portToAddrReady[port]
		if !ok {
			set = map[*corev1.EndpointAddress]bool{}
			portToAddrReady[port] = set
			portOrder = append(portOrder, port)
		}
		if wasReady, found := set[existing]; !found || wasReady {
			set[existing] = ready // not ready trumps ready
		}
	}
	for i := range subsets {
		ports := subsets[i].Ports
		if len(ports) == 0 {
			ports = []corev1.EndpointPort{{Port: -1}} // sentinel: keep addresses without ports
		}
		for _, port := range ports {
			for k := range subsets[i].Addresses {
				mapAddr(&subsets[i].Addresses[k], port, true)
			}
			for k := range subsets[i].NotReadyAddresses {
				mapAddr(&subsets[i].NotReadyAddresses[k], port, false)
			}
		}
	}
	keyToAddrs := map[string]map[*corev1.EndpointAddress]bool{}
	keyToPorts := map[string][]corev1.EndpointPort{}
	var keyOrder []string
	for _, port := range portOrder {
		addrs := portToAddrReady[port]
		key := addressSetKey(addrs)
		if _, ok := keyToAddrs[key]; !ok {
			keyOrder = append(keyOrder, key)
		}
		keyToAddrs[key] = addrs
		if port.Port > 0 {
			keyToPorts[key] = append(keyToPorts[key], port)
		} else if _, ok := keyToPorts[key]; !ok {
			keyToPorts[key] = nil
		}
	}
	final := []corev1.EndpointSubset{}
	for _, key := range keyOrder {
		var ready, notReady []corev1.EndpointAddress
		for addr, r := range keyToAddrs[key] {
			if r {
				ready = append(ready, *addr)
			} else {
				notReady = append(notReady, *addr)
			}
		}
		final = append(final, corev1.EndpointSubset{Addresses: ready, NotReadyAddresses: notReady, Ports: keyToPorts[key]})
	}
	return sortSubsets(final)
}

// lessEndpointAddress orders addresses by IP (as strings, like kube), then
// target uid.
func lessEndpointAddress(a, b *corev1.EndpointAddress) bool {
	if c := bytes.Compare([]byte(a.IP), []byte(b.IP)); c != 0 {
		return c < 0
	}
	if b.TargetRef == nil {
		return false
	}
	if a.TargetRef == nil {
		return true
	}
	return a.TargetRef.UID < b.TargetRef.UID
}

// addressSetKey is a canonical key of an address set with its readiness
// (kube hashes the same content with md5; only equality matters here).
func addressSetKey(addrs map[*corev1.EndpointAddress]bool) string {
	type addrReady struct {
		addr  *corev1.EndpointAddress
		ready bool
	}
	list := make([]addrReady, 0, len(addrs))
	for a, r := range addrs {
		list = append(list, addrReady{a, r})
	}
	sort.Slice(list, func(i, j int) bool { return lessEndpointAddress(list[i].addr, list[j].addr) })
	var b strings.Builder
	for _, e := range list {
		b.WriteString(e.addr.IP)
		b.WriteByte('/')
		if e.addr.TargetRef != nil {
			b.WriteString(string(e.addr.TargetRef.UID))
		}
		if e.ready {
			b.WriteString("/r,")
		} else {
			b.WriteString("/n,")
		}
	}
	return b.String()
}

// sortSubsets is kube's SortSubsets.
func sortSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	for i := range subsets {
		s := &subsets[i]
		sort.Slice(s.Addresses, func(a, b int) bool { return lessEndpointAddress(&s.Addresses[a], &s.Addresses[b]) })
		sort.Slice(s.NotReadyAddresses, func(a, b int) bool {
			return lessEndpointAddress(&s.NotReadyAddresses[a], &s.NotReadyAddresses[b])
		})
		sortByHash(s.Ports)
	}
	sortByHash(subsets)
	return subsets
}

// sortByHash sorts list by the md5 of each element's spew dump, computing
// each hash once.
func sortByHash[T any](list []T) {
	if len(list) < 2 {
		return
	}
	type keyed struct {
		h []byte
		v T
	}
	tmp := make([]keyed, len(list))
	for i, v := range list {
		tmp[i] = keyed{md5Dump(v), v}
	}
	sort.SliceStable(tmp, func(a, b int) bool { return bytes.Compare(tmp[a].h, tmp[b].h) < 0 })
	for i := range tmp {
		list[i] = tmp[i].v
	}
}

// md5Dump is kube's hashutil.DeepHashObject with md5.
func md5Dump(v any) []byte {
	h := md5.New()
	fmt.Fprint(h, dump.ForHash(v))
	return h.Sum(nil)
}
