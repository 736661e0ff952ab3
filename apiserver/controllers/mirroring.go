package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/store"
)

// MirroringControllerName is the managed-by label value of the slices the
// EndpointSliceMirroring controller writes.
const MirroringControllerName = "endpointslicemirroring-controller.k8s.io"

// maxEndpointsPerSubset is kube's --mirroring-max-endpoints-per-subset.
const maxEndpointsPerSubset = 1000

// mirroringController is kube-controller-manager's EndpointSliceMirroring
// controller: the Endpoints a user writes for a Service WITHOUT a selector
// are mirrored into EndpointSlices (one per subset and address family,
// named <endpoints>-<random>, labelled with the Endpoints' labels plus
// service-name and managed-by, annotated with its annotations except the
// trigger time and last-applied configuration, owned by the Endpoints), so
// that consumers that read only EndpointSlices — kube-proxy, svclab's
// dataplane and DNS — see them. Endpoints labelled
// endpointslice.kubernetes.io/skip-mirror=true (the kubernetes Service's)
// and Endpoints of Services with a selector are not mirrored; mirrored
// slices whose Endpoints or Service went away are deleted.
type mirroringController struct {
	st      *store.Store
	cache   *cache
	q       *queue
	log     *slog.Logger
	writes  *writeTracker
	workers int
}

func newMirroringController(st *store.Store, c *cache, cfg Config, log *slog.Logger) *mirroringController {
	return &mirroringController{
		st: st, cache: c, q: newQueue(), log: log.With("controller", "endpointslicemirroring"),
		writes: newWriteTracker(), workers: cfg.EndpointWorkers,
	}
}

func (c *mirroringController) handle(ev store.Event) {
	switch ev.Resource {
	case store.Services, store.Endpoints:
		c.q.Add(objKey(ev.Object))
	case store.EndpointSlices:
		for _, o := range []store.Object{ev.Object, ev.Old} {
			if s, ok := o.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelManagedBy] == MirroringControllerName {
				if k := sliceServiceKey(s); k != "" {
					c.q.Add(k)
				}
			}
		}
	}
}

func (c *mirroringController) resync() {
	for _, k := range c.cache.endpointsKeys() {
		c.q.Add(k)
	}
	for _, k := range c.cache.sliceServiceKeys() {
		c.q.Add(k)
	}
}

func (c *mirroringController) run(ctx context.Context) {
	runWorkers(ctx, c.q, c.workers, c.sync, c.log)
}

func (c *mirroringController) sync(ctx context.Context, key string) error {
	if rv, stale := c.writes.stale(key, c.cache.resourceVersion()); stale {
		c.cache.notifyAt(rv, func() { c.q.Add(key) })
		return nil
	}
	ns, name := splitKey(key)
	var mirrored []*discoveryv1.EndpointSlice
	for _, s := range c.cache.slicesForService(ns, name) {
		if s.Labels[discoveryv1.LabelManagedBy] == MirroringControllerName {
			mirrored = append(mirrored, s)
		}
	}
	entry := c.cache.service(ns, name)
	ep := c.cache.endpointsObj(ns, name)
	if entry == nil || entry.selector != nil || ep == nil || ep.Labels[discoveryv1.LabelSkipMirror] == "true" ||
		ep.Annotations["control-plane.alpha.kubernetes.io/leader"] != "" {
		return c.apply(ctx, key, slicePlan{delete: mirrored})
	}
	return c.apply(ctx, key, mirrorPlan(ep, mirrored))
}

func (c *mirroringController) apply(ctx context.Context, key string, plan slicePlan) error {
	var errs []error
	for _, s := range plan.create {
		out, err := c.st.Create(ctx, store.EndpointSlices, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("create mirrored EndpointSlice for %s: %w", key, err))
			continue
		}
		c.writes.wroteObj(key, out)
	}
	for _, s := range plan.update {
		out, err := c.st.Update(ctx, store.EndpointSlices, s, store.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("update mirrored EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		c.writes.wroteObj(key, out)
	}
	for _, s := range plan.delete {
		out, err := c.st.Delete(ctx, store.EndpointSlices, s.Namespace, s.Name, "")
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, fmt.Errorf("delete mirrored EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			}
			continue
		}
		c.writes.wroteObj(key, out)
	}
	return errors.Join(errs...)
}

// mirrorPlan is kube's mirroring reconciler: the repacked subsets of ep, one
// slice per (port set, address family), at most maxEndpointsPerSubset
// addresses each; an existing slice of a port set is rewritten only when its
// endpoints, labels or annotations differ, extra ones are deleted (or
// recycled for new port sets).
func mirrorPlan(ep *corev1.Endpoints, existing []*discoveryv1.EndpointSlice) slicePlan {
	type group struct {
		ports []discoveryv1.EndpointPort
		at    discoveryv1.AddressType
		set   *endpointSet
	}
	groups := map[string]*group{}
	var order []string
	for _, ss := range repackSubsets(ep.DeepCopy().Subsets) {
		ports := []discoveryv1.EndpointPort{}
		for _, p := range ss.Ports {
			name, port, proto := p.Name, p.Port, protocolOf(p.Protocol)
			ports = append(ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto, AppProtocol: p.AppProtocol})
		}
		pk := portMapKey(ports)
		keys := map[discoveryv1.AddressType]string{}
		for _, at := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
			k := string(at) + "/" + pk
			keys[at] = k
			if groups[k] == nil {
				groups[k] = &group{ports: ports, at: at, set: newEndpointSet()}
				order = append(order, k)
			}
		}
		added := 0
		add := func(a corev1.EndpointAddress, ready bool) {
			if added >= maxEndpointsPerSubset {
				return
			}
			ip, err := netip.ParseAddr(a.IP)
			if err != nil {
				return // kube skips invalid IPs (with an event)
			}
			at := discoveryv1.AddressTypeIPv4
			if ip.Is6() && !ip.Is4In6() {
				at = discoveryv1.AddressTypeIPv6
			}
			e := discoveryv1.Endpoint{Addresses: []string{a.IP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, TargetRef: a.TargetRef, NodeName: a.NodeName}
			if a.Hostname != "" {
				h := a.Hostname
				e.Hostname = &h
			}
			groups[keys[at]].set.insert(e)
			added++
		}
		for _, a := range ss.Addresses {
			add(a, true)
		}
		for _, a := range ss.NotReadyAddresses {
			add(a, false)
		}
	}

	existingByKey := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := string(s.AddressType) + "/" + portMapKey(append([]discoveryv1.EndpointPort(nil), s.Ports...))
		existingByKey[k] = append(existingByKey[k], s)
	}
	var plan slicePlan
	for _, k := range order {
		g := groups[k]
		cur := existingByKey[k]
		if g.set.len() == 0 {
			plan.delete = append(plan.delete, cur...)
			continue
		}
		name := ""
		if len(cur) > 0 {
			plan.delete = append(plan.delete, cur[1:]...)
			name = cur[0].Name
		}
		s := newMirroredSlice(ep, g.ports, g.at, name)
		for g.set.len() > 0 && len(s.Endpoints) < maxEndpointsPerSubset {
			s.Endpoints = append(s.Endpoints, *g.set.pop())
		}
		if len(cur) > 0 && mirroredSliceEqual(cur[0], s, ep) {
			continue
		}
		if len(cur) > 0 {
			s.ResourceVersion = cur[0].ResourceVersion
			plan.update = append(plan.update, s)
		} else {
			plan.create = append(plan.create, s)
		}
	}
	for _, k := range sortedKeys(existingByKey) {
		if groups[k] == nil {
			plan.delete = append(plan.delete, existingByKey[k]...)
		}
	}
	// Recycle: turn creates into updates of slices about to be deleted.
	for i := 0; i < len(plan.create); {
		j := -1
		for d := range plan.delete {
			if plan.delete[d].AddressType == plan.create[i].AddressType {
				j = d
				break
			}
		}
		if j < 0 {
			i++
			continue
		}
		s := plan.create[i]
		s.Name, s.GenerateName, s.ResourceVersion = plan.delete[j].Name, "", plan.delete[j].ResourceVersion
		plan.update = append(plan.update, s)
		plan.create = append(plan.create[:i], plan.create[i+1:]...)
		plan.delete = append(plan.delete[:j], plan.delete[j+1:]...)
	}
	return plan
}

// newMirroredSlice is kube's mirroring newEndpointSlice.
func newMirroredSlice(ep *corev1.Endpoints, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType, name string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ep, corev1.SchemeGroupVersion.WithKind("Endpoints"))},
			Namespace:       ep.Namespace,
		},
		Ports:       ports,
		AddressType: at,
	}
	for k, v := range ep.Labels {
		s.Labels[k] = v
	}
	s.Labels[discoveryv1.LabelServiceName] = ep.Name
	s.Labels[discoveryv1.LabelManagedBy] = MirroringControllerName
	for k, v := range ep.Annotations {
		if k != corev1.EndpointsLastChangeTriggerTime && k != corev1.LastAppliedConfigAnnotation {
			s.Annotations[k] = v
		}
	}
	if name == "" {
		s.GenerateName = slicePrefix(ep.Name)
	} else {
		s.Name = name
	}
	return s
}

// mirroredSliceEqual reports whether the existing slice already carries
// want's endpoints, labels, annotations and an owner reference to ep.
func mirroredSliceEqual(cur, want *discoveryv1.EndpointSlice, ep *corev1.Endpoints) bool {
	for _, o := range cur.OwnerReferences {
		if o.Kind == "Endpoints" && o.Name == ep.Name && o.UID != ep.UID {
			return false
		}
	}
	return equality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints) &&
		equality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
		equality.Semantic.DeepEqual(cur.Annotations, want.Annotations)
}
