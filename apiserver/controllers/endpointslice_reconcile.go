package controllers

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/dump"
	"k8s.io/utils/ptr"
)

// EndpointSliceControllerName is the managed-by label value of the slices the
// EndpointSlice controller writes (kube-controller-manager's).
const EndpointSliceControllerName = "endpointslice-controller.k8s.io"

// slicePlan is what one reconcile of a Service's EndpointSlices writes.
// Slices to create carry GenerateName, not Name (except when a create reuses
// the name of a slice that would otherwise be deleted: then it is an update).
type slicePlan struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

// empty reports whether the plan writes nothing.
func (p slicePlan) empty() bool { return len(p.create)+len(p.update)+len(p.delete) == 0 }

// sliceReconciler is a port of kube's endpointslice Reconciler (package
// k8s.io/endpointslice), without topology hints: it groups a Service's
// desired endpoints by their resolved port set, keeps every endpoint in the
// slice that already holds it (updating it in place when its conditions
// changed), fills slices that are being updated anyway before touching
// unchanged ones, creates new slices only for what is left, reuses a slice
// that would be deleted rather than delete+create, and keeps one empty
// placeholder slice when the Service has no endpoints. Where kube iterates
// maps in random order, this iterates in sorted order, so the result is
// deterministic.
type sliceReconciler struct {
	maxEndpointsPerSlice int
}

// endpointMeta is what slices are grouped on.
type endpointMeta struct {
	ports       []discoveryv1.EndpointPort
	addressType discoveryv1.AddressType
}

// reconcile returns the writes that make existing (the slices labelled with
// the Service's name and managed by this controller) match pods (the pods
// the Service's selector matches).
func (r *sliceReconciler) reconcile(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, triggerTime time.Time) slicePlan {
	var plan slicePlan
	supported := addressTypesForService(svc)
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	var unsupported []*discoveryv1.EndpointSlice
	for _, s := range existing {
		if !slices.Contains(supported, s.AddressType) {
			unsupported = append(unsupported, s)
			continue
		}
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	for _, at := range supported {
		p := r.reconcileByAddressType(svc, pods, byType[at], triggerTime, at)
		plan.create = append(plan.create, p.create...)
		plan.update = append(plan.update, p.update...)
		plan.delete = append(plan.delete, p.delete...)
	}
	plan.delete = append(plan.delete, unsupported...)
	return plan
}

// addressTypesForService is kube's getAddressTypesForService, in a fixed
// order (IPv4 first).
func addressTypesForService(svc *corev1.Service) []discoveryv1.AddressType {
	var v4, v6 bool
	for _, f := range svc.Spec.IPFamilies {
		v4 = v4 || f == corev1.IPv4Protocol
		v6 = v6 || f == corev1.IPv6Protocol
	}
	if !v4 && !v6 {
		if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
			a, err := netip.ParseAddr(svc.Spec.ClusterIP)
			v6 = err == nil && a.Is6() && !a.Is4In6()
			v4 = !v6
		} else {
			v4, v6 = true, true // headless without families: both, as kube assumes
		}
	}
	var out []discoveryv1.AddressType
	if v4 {
		out = append(out, discoveryv1.AddressTypeIPv4)
	}
	if v6 {
		out = append(out, discoveryv1.AddressTypeIPv6)
	}
	return out
}

func (r *sliceReconciler) reconcileByAddressType(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice,
	triggerTime time.Time, addressType discoveryv1.AddressType) slicePlan {
	var toCreate, toUpdate, toDelete []*discoveryv1.EndpointSlice

	existingByPortMap := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if ownedBy(s, svc) {
			k := portMapKey(slices.Clone(s.Ports))
			existingByPortMap[k] = append(existingByPortMap[k], s)
		} else {
			toDelete = append(toDelete, s)
		}
	}

	desiredMeta := map[string]*endpointMeta{}
	desired := map[string]*endpointSet{}
	keys := newPortKeyMemo()
	for _, pod := range pods {
		if !shouldPodBeInEndpoints(pod, true) {
			continue
		}
		ports, k := keys.key(endpointPortsFor(svc, pod))
		if desired[k] == nil {
			desired[k] = newEndpointSet()
			desiredMeta[k] = &endpointMeta{ports: ports, addressType: addressType}
		}
		ep := podToEndpoint(pod, svc, addressType)
		if len(ep.Addresses) > 0 {
			desired[k].insert(ep)
		}
	}

	for _, k := range sortedKeys(desired) {
		c, u, d := r.reconcileByPortMapping(svc, existingByPortMap[k], desired[k], desiredMeta[k])
		toCreate = append(toCreate, c...)
		toUpdate = append(toUpdate, u...)
		toDelete = append(toDelete, d...)
	}
	for _, k := range sortedKeys(existingByPortMap) {
		if _, ok := desired[k]; !ok {
			toDelete = append(toDelete, existingByPortMap[k]...)
		}
	}

	// When no slice would exist, keep (or create) one empty placeholder.
	if len(existing) == len(toDelete) && len(toCreate) == 0 {
		placeholder := newEndpointSlice(svc, &endpointMeta{addressType: addressType})
		if len(toDelete) == 1 && isPlaceholderOf(toDelete[0], placeholder) {
			toDelete = toDelete[:0]
		} else {
			toCreate = append(toCreate, placeholder)
		}
	}
	return finalizePlan(svc, toCreate, toUpdate, toDelete, triggerTime)
}

// reconcileByPortMapping is kube's reconcileByPortMapping for one port set.
func (r *sliceReconciler) reconcileByPortMapping(svc *corev1.Service, existing []*discoveryv1.EndpointSlice,
	desired *endpointSet, meta *endpointMeta) (toCreate, toUpdate, toDelete []*discoveryv1.EndpointSlice) {
	byName := map[string]*discoveryv1.EndpointSlice{}
	unchanged := map[string]bool{}
	updating := map[string]bool{}
	deleting := map[string]bool{}

	// 1. Drop endpoints no longer desired, update changed ones in place.
	for _, s := range existing {
		byName[s.Name] = s
		var kept []discoveryv1.Endpoint
		changed := false
		for i := range s.Endpoints {
			got := desired.get(&s.Endpoints[i])
			if got == nil {
				continue
			}
			kept = append(kept, *got)
			if !endpointsEqualBeyondHash(got, &s.Endpoints[i]) {
				changed = true
			}
			desired.remove(&s.Endpoints[i])
		}
		lbls, labelsChanged := sliceLabels(s, svc)
		switch {
		case changed || len(kept) != len(s.Endpoints):
			if len(kept) == 0 {
				deleting[s.Name] = true
			} else {
				u := s.DeepCopy()
				u.Endpoints = kept
				u.Labels = lbls
				byName[s.Name] = u
				updating[s.Name] = true
			}
		case labelsChanged:
			u := s.DeepCopy()
			u.Labels = lbls
			byName[s.Name] = u
			updating[s.Name] = true
		default:
			unchanged[s.Name] = true
		}
	}

	// 2. Fill the slices being updated anyway, fullest first.
	if desired.len() > 0 && len(updating) > 0 {
		var upd []*discoveryv1.EndpointSlice
		for _, name := range sortedKeys(updating) {
			upd = append(upd, byName[name])
		}
		sort.SliceStable(upd, func(i, j int) bool { return len(upd[i].Endpoints) > len(upd[j].Endpoints) })
		for _, s := range upd {
			for desired.len() > 0 && len(s.Endpoints) < r.maxEndpointsPerSlice {
				s.Endpoints = append(s.Endpoints, *desired.pop())
			}
		}
	}

	// 3. Fit the rest into one unchanged slice with room, else new slices.
	for desired.len() > 0 {
		var fill *discoveryv1.EndpointSlice
		if desired.len() < r.maxEndpointsPerSlice && len(unchanged) > 0 {
			var cand []*discoveryv1.EndpointSlice
			for _, name := range sortedKeys(unchanged) {
				cand = append(cand, byName[name])
			}
			fill = sliceToFill(cand, desired.len(), r.maxEndpointsPerSlice)
		}
		if fill == nil {
			fill = newEndpointSlice(svc, meta)
		} else {
			fill = fill.DeepCopy()
			byName[fill.Name] = fill
		}
		for desired.len() > 0 && len(fill.Endpoints) < r.maxEndpointsPerSlice {
			fill.Endpoints = append(fill.Endpoints, *desired.pop())
		}
		if fill.Name != "" {
			updating[fill.Name] = true
			delete(unchanged, fill.Name)
		} else {
			toCreate = append(toCreate, fill)
		}
	}
	for _, name := range sortedKeys(updating) {
		toUpdate = append(toUpdate, byName[name])
	}
	for _, name := range sortedKeys(deleting) {
		toDelete = append(toDelete, byName[name])
	}
	return toCreate, toUpdate, toDelete
}

// finalizePlan turns creates into updates of slices that would be deleted
// (same address type, owned by the Service), skips creates for a Service
// being deleted, and stamps the trigger time on every written slice.
func finalizePlan(svc *corev1.Service, toCreate, toUpdate, toDelete []*discoveryv1.EndpointSlice, triggerTime time.Time) slicePlan {
	for i := 0; i < len(toDelete); {
		if len(toCreate) == 0 {
			break
		}
		d := toDelete[i]
		c := toCreate[len(toCreate)-1]
		if d.AddressType == c.AddressType && ownedBy(d, svc) {
			c.Name = d.Name
			c.ResourceVersion = d.ResourceVersion
			toCreate = toCreate[:len(toCreate)-1]
			toUpdate = append(toUpdate, c)
			toDelete = append(toDelete[:i], toDelete[i+1:]...)
		} else {
			i++
		}
	}
	if svc.DeletionTimestamp != nil {
		toCreate = nil
	}
	for _, s := range toCreate {
		setTriggerTime(&s.ObjectMeta, triggerTime)
	}
	for _, s := range toUpdate {
		setTriggerTime(&s.ObjectMeta, triggerTime)
	}
	return slicePlan{create: toCreate, update: toUpdate, delete: toDelete}
}

// setTriggerTime sets (or, for the zero time, removes) the
// endpoints.kubernetes.io/last-change-trigger-time annotation.
func setTriggerTime(m *metav1.ObjectMeta, t time.Time) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	if t.IsZero() {
		delete(m.Annotations, corev1.EndpointsLastChangeTriggerTime)
	} else {
		m.Annotations[corev1.EndpointsLastChangeTriggerTime] = t.UTC().Format(time.RFC3339Nano)
	}
}

// newEndpointSlice returns an unnamed slice for svc (GenerateName "<svc>-",
// controller ownerReference to the Service, the Service's labels plus the
// reserved ones).
func newEndpointSlice(svc *corev1.Service, meta *endpointMeta) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    slicePrefix(svc.Name),
			Namespace:       svc.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: meta.addressType,
		Ports:       meta.ports,
	}
	if len(s.Ports) == 0 {
		s.Ports = nil // as stored by kube-apiserver: "ports": null
	}
	s.Labels, _ = sliceLabels(s, svc)
	return s
}

// slicePrefix is kube's getEndpointSlicePrefix: "<svc>-" unless that is not a
// valid name prefix.
func slicePrefix(name string) string {
	p := name + "-"
	if len(apivalidation.NameIsDNSSubdomain(p, true)) != 0 {
		return name
	}
	return p
}

// ownedBy reports whether the slice has an ownerReference to svc (by uid).
func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

// isPlaceholderOf is kube's placeholderSliceCompare: same namespace, labels,
// owner references, address type, and no endpoints or ports.
func isPlaceholderOf(s, placeholder *discoveryv1.EndpointSlice) bool {
	if s.Namespace != placeholder.Namespace || s.AddressType != placeholder.AddressType ||
		len(s.Endpoints) != 0 || len(s.Ports) != 0 || len(s.OwnerReferences) != len(placeholder.OwnerReferences) {
		return false
	}
	if !equality.Semantic.DeepEqual(s.Labels, placeholder.Labels) {
		return false
	}
	for i := range s.OwnerReferences {
		if s.OwnerReferences[i].String() != placeholder.OwnerReferences[i].String() {
			return false
		}
	}
	return true
}

// sliceToFill returns the slice that is closest to full once n endpoints
// are added, or nil when none has room.
func sliceToFill(cands []*discoveryv1.EndpointSlice, n, max int) *discoveryv1.EndpointSlice {
	closestDiff := max
	var closest *discoveryv1.EndpointSlice
	for _, s := range cands {
		diff := max - (n + len(s.Endpoints))
		if diff >= 0 && diff < closestDiff {
			closestDiff, closest = diff, s
			if diff == 0 {
				return closest
			}
		}
	}
	return closest
}

// sliceLabels returns the labels a managed slice of svc must have (the
// Service's labels minus the reserved ones, plus service-name, managed-by
// and, for a headless Service, service.kubernetes.io/headless) and whether
// the non-reserved labels differ from the slice's.
func sliceLabels(s *discoveryv1.EndpointSlice, svc *corev1.Service) (map[string]string, bool) {
	reserved := func(k string) bool {
		return k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy || k == corev1.IsHeadlessService
	}
	cur := map[string]string{}
	for k, v := range s.Labels {
		if !reserved(k) {
			cur[k] = v
		}
	}
	want := map[string]string{}
	for k, v := range svc.Labels {
		if !reserved(k) {
			want[k] = v
		}
	}
	changed := !equality.Semantic.DeepEqual(cur, want)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		want[corev1.IsHeadlessService] = ""
	}
	want[discoveryv1.LabelServiceName] = svc.Name
	want[discoveryv1.LabelManagedBy] = EndpointSliceControllerName
	return want, changed
}

// endpointPortsFor is kube's getEndpointPorts: one port per Service port that
// the pod resolves (a named targetPort the pod does not have is left out).
func endpointPortsFor(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	if len(svc.Spec.Ports) == 0 && svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return out
	}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		num, err := findPort(pod, sp)
		if err != nil {
			continue
		}
		name, proto := sp.Name, protocolOf(sp.Protocol)
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &num, Protocol: &proto, AppProtocol: sp.AppProtocol})
	}
	return out
}

// podToEndpoint is kube's podToEndpoint (without zones: svclab's nodes have
// no topology labels).
func podToEndpoint(pod *corev1.Pod, svc *corev1.Service, addressType discoveryv1.AddressType) discoveryv1.Endpoint {
	serving := isPodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	// "ready" is never true for a terminating pod, unless publishNotReadyAddresses.
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses:  endpointAddresses(pod.Status, addressType),
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		n := pod.Spec.NodeName
		ep.NodeName = &n
	}
	if shouldSetHostname(pod, svc) {
		h := pod.Spec.Hostname
		ep.Hostname = &h
	}
	return ep
}

// endpointAddresses returns the pod's IPs of the address type, normalized.
func endpointAddresses(st corev1.PodStatus, addressType discoveryv1.AddressType) []string {
	ips := st.PodIPs
	if len(ips) == 0 && st.PodIP != "" {
		ips = []corev1.PodIP{{IP: st.PodIP}}
	}
	var out []string
	for _, pip := range ips {
		a, err := netip.ParseAddr(pip.IP)
		if err != nil {
			continue
		}
		a = a.Unmap()
		if (a.Is6() && addressType == discoveryv1.AddressTypeIPv6) || (a.Is4() && addressType == discoveryv1.AddressTypeIPv4) {
			out = append(out, a.String())
		}
	}
	return out
}

// endpointsEqualBeyondHash is kube's EndpointsEqualBeyondHash: equality of
// what the endpoint key does not cover (node, zone, conditions, target
// reference without its resourceVersion).
func endpointsEqualBeyondHash(a, b *discoveryv1.Endpoint) bool {
	if !eqPtr(a.NodeName, b.NodeName) || !eqPtr(a.Zone, b.Zone) || !eqPtr(a.Conditions.Ready, b.Conditions.Ready) ||
		!eqPtr(a.Conditions.Serving, b.Conditions.Serving) || !eqPtr(a.Conditions.Terminating, b.Conditions.Terminating) {
		return false
	}
	if (a.TargetRef == nil) != (b.TargetRef == nil) {
		return false
	}
	if a.TargetRef != nil {
		ra, rb := *a.TargetRef, *b.TargetRef
		ra.ResourceVersion, rb.ResourceVersion = "", ""
		return ra == rb
	}
	return true
}

// eqPtr reports whether two optional values are both unset or equal.
func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// endpointKey identifies an endpoint within a slice as kube's hashEndpoint
// does: its addresses, hostname and target pod.
func endpointKey(ep *discoveryv1.Endpoint) string {
	addrs := ep.Addresses
	if len(addrs) > 1 {
		addrs = slices.Clone(addrs)
		slices.Sort(addrs)
	}
	var b strings.Builder
	for i, a := range addrs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a)
	}
	b.WriteByte('|')
	if ep.Hostname != nil {
		b.WriteString(*ep.Hostname)
	}
	b.WriteByte('|')
	if ep.TargetRef != nil {
		b.WriteString(ep.TargetRef.Namespace + "/" + ep.TargetRef.Name)
	}
	return b.String()
}

// endpointSet is kube's EndpointSet with a deterministic pop order (the
// insertion order: pods sorted by name).
type endpointSet struct {
	order []string
	m     map[string]*discoveryv1.Endpoint
}

func newEndpointSet() *endpointSet { return &endpointSet{m: map[string]*discoveryv1.Endpoint{}} }

func (s *endpointSet) insert(ep discoveryv1.Endpoint) {
	k := endpointKey(&ep)
	if _, ok := s.m[k]; !ok {
		s.order = append(s.order, k)
	}
	s.m[k] = &ep
}

func (s *endpointSet) get(ep *discoveryv1.Endpoint) *discoveryv1.Endpoint {
	return s.m[endpointKey(ep)]
}
func (s *endpointSet) remove(ep *discoveryv1.Endpoint) { delete(s.m, endpointKey(ep)) }
func (s *endpointSet) len() int                        { return len(s.m) }

// pop removes and returns the first remaining endpoint in insertion order.
func (s *endpointSet) pop() *discoveryv1.Endpoint {
	for len(s.order) > 0 {
		k := s.order[0]
		s.order = s.order[1:]
		if ep, ok := s.m[k]; ok {
			delete(s.m, k)
			return ep
		}
	}
	return nil
}

// portKeyMemo remembers the kube port map key (and kube's port order) of
// each distinct port list within one reconcile: most pods of a Service
// resolve the same ports, and the spew-based hash is costly.
type portKeyMemo map[string]portKeyed

type portKeyed struct {
	ports []discoveryv1.EndpointPort
	key   string
}

func newPortKeyMemo() portKeyMemo { return portKeyMemo{} }

// key returns ports in kube's order and their port map key.
func (m portKeyMemo) key(ports []discoveryv1.EndpointPort) ([]discoveryv1.EndpointPort, string) {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(ptr.Deref(p.Name, "\x00"))
		b.WriteByte('/')
		b.WriteString(string(ptr.Deref(p.Protocol, "\x00")))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(ptr.Deref(p.Port, -1))))
		b.WriteByte('/')
		b.WriteString(ptr.Deref(p.AppProtocol, "\x00"))
		b.WriteByte(';')
	}
	fast := b.String()
	if k, ok := m[fast]; ok {
		return k.ports, k.key
	}
	key := portMapKey(ports) // sorts ports in place, as kube does
	m[fast] = portKeyed{ports, key}
	return ports, key
}

// portMapKey is kube's NewPortMapKey: it sorts ports IN PLACE by the hash of
// each port (which is why kube's slices list ports in hash order, not in the
// Service's order) and returns the hash of the sorted list.
func portMapKey(ports []discoveryv1.EndpointPort) string {
	if ports == nil {
		ports = []discoveryv1.EndpointPort{}
	}
	sort.SliceStable(ports, func(i, j int) bool { return deepHashFNV(ports[i]) < deepHashFNV(ports[j]) })
	return deepHashFNV(ports)
}

// deepHashFNV is kube's endpointslice deepHashObjectToString: fnv128a over
// the spew dump of v, hex encoded.
func deepHashFNV(v any) string {
	h := fnv.New128a()
	fmt.Fprint(h, dump.ForHash(v))
	return hex.EncodeToString(h.Sum(nil))
}
