package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/svclab/svclab/apiserver/store"
)

// endpointSliceController is kube-controller-manager's EndpointSlice
// controller: for every Service with a selector (not ExternalName) it keeps
// the EndpointSlices labelled kubernetes.io/service-name=<svc> and
// endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io in
// line with the pods the selector matches (see sliceReconciler). Slices it
// does not manage are never touched. Because svclab has no garbage
// collector, the controller also deletes the managed slices whose owner
// Service is gone (what kube's GC does through ownerReferences). Like kube,
// it leaves the slices of a Service that lost its selector or became
// ExternalName alone.
type endpointSliceController struct {
	st       *store.Store
	cache    *cache
	q        *queue
	log      *slog.Logger
	rec      *sliceReconciler
	triggers *triggerTimeTracker
	writes   *writeTracker
	workers  int
}

func newEndpointSliceController(st *store.Store, c *cache, cfg Config, log *slog.Logger) *endpointSliceController {
	return &endpointSliceController{
		st: st, cache: c, q: newQueue(),
		log:      log.With("controller", "endpointslice"),
		rec:      &sliceReconciler{maxEndpointsPerSlice: cfg.MaxEndpointsPerSlice},
		triggers: newTriggerTimeTracker(),
		writes:   newWriteTracker(),
		workers:  cfg.EndpointWorkers,
	}
}

func (c *endpointSliceController) handle(ev store.Event) {
	switch ev.Resource {
	case store.Services:
		c.q.Add(objKey(ev.Object))
	case store.Nodes:
		// A node that comes or goes adds or drops its pods' endpoints (see
		// sync); node updates change nothing here.
		if ev.Type != watch.Modified {
			for _, k := range c.cache.serviceKeys() {
				c.q.Add(k)
			}
		}
	case store.Pods:
		for _, k := range servicesForPodEvent(c.cache, ev) {
			c.q.Add(k)
		}
	case store.EndpointSlices:
		for _, o := range []store.Object{ev.Object, ev.Old} {
			if s, ok := o.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelManagedBy] == EndpointSliceControllerName {
				if k := sliceServiceKey(s); k != "" {
					c.q.Add(k)
				}
			}
		}
	}
}

func (c *endpointSliceController) resync() {
	for _, k := range c.cache.serviceKeys() {
		c.q.Add(k)
	}
	for _, k := range c.cache.sliceServiceKeys() {
		c.q.Add(k)
	}
}

// servicesForPodEvent returns the Services whose endpoints a pod event may
// change, as kube's GetPodUpdateProjectionKey/GetServicesToUpdate do: the
// Services selecting the pod; on an update that only moved the pod between
// Services by its labels, only the Services it left or joined.
func servicesForPodEvent(c *cache, ev store.Event) []string {
	pod := ev.Object.(*corev1.Pod)
	if ev.Type != watch.Modified || ev.Old == nil {
		return c.servicesSelecting(pod.Namespace, labels.Set(pod.Labels))
	}
	old := ev.Old.(*corev1.Pod)
	podChanged, labelsChanged := podEndpointsChanged(old, pod)
	if !podChanged && !labelsChanged {
		return nil
	}
	cur := c.servicesSelecting(pod.Namespace, labels.Set(pod.Labels))
	if !labelsChanged {
		return cur
	}
	prev := c.servicesSelecting(pod.Namespace, labels.Set(old.Labels))
	onlyLabels := !podChanged && old.Spec.Hostname == pod.Spec.Hostname && old.Spec.Subdomain == pod.Spec.Subdomain
	in := func(list []string, k string) bool {
		for _, x := range list {
			if x == k {
				return true
			}
		}
		return false
	}
	var out []string
	for _, k := range cur {
		if !onlyLabels || !in(prev, k) {
			out = append(out, k)
		}
	}
	for _, k := range prev {
		if !in(cur, k) {
			out = append(out, k)
		}
	}
	return out
}

func (c *endpointSliceController) run(ctx context.Context) {
	runWorkers(ctx, c.q, c.workers, c.sync, c.log)
}

// sync reconciles the EndpointSlices of the Service key.
func (c *endpointSliceController) sync(ctx context.Context, key string) error {
	if rv, stale := c.writes.stale(key, c.cache.resourceVersion()); stale {
		// Our last write for this Service is not in the cache yet: acting now
		// could create a slice twice. Come back when it is.
		c.cache.notifyAt(rv, func() { c.q.Add(key) })
		return nil
	}
	ns, name := splitKey(key)
	var managed []*discoveryv1.EndpointSlice
	for _, s := range c.cache.slicesForService(ns, name) {
		if s.Labels[discoveryv1.LabelManagedBy] == EndpointSliceControllerName {
			managed = append(managed, s)
		}
	}
	entry := c.cache.service(ns, name)
	if entry == nil {
		c.triggers.forget(key)
		return c.deleteSlices(ctx, key, managed, "service deleted")
	}
	svc := entry.svc
	if svc.Spec.Type == corev1.ServiceTypeExternalName || entry.selector == nil {
		// kube's controller leaves these alone; its garbage collector still
		// removes slices owned by a previous Service of the same name.
		var orphans []*discoveryv1.EndpointSlice
		for _, s := range managed {
			if !ownedBy(s, svc) {
				orphans = append(orphans, s)
			}
		}
		return c.deleteSlices(ctx, key, orphans, "owner service replaced")
	}
	pods := c.withNodes(key, svc, c.cache.podsSelected(ns, entry.selector))
	trigger := c.triggers.compute(key, svc, pods)
	plan := c.rec.reconcile(svc, pods, managed, trigger)
	if plan.empty() {
		return nil
	}
	var errs []error
	for _, s := range plan.create {
		created, err := c.st.Create(ctx, store.EndpointSlices, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("create EndpointSlice for service %s: %w", key, err))
			continue
		}
		c.writes.wroteObj(key, created)
		c.log.Debug("created slice", "service", key, "slice", created.GetName(), "endpoints", len(s.Endpoints))
	}
	for _, s := range plan.update {
		updated, err := c.st.Update(ctx, store.EndpointSlices, s, store.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("update EndpointSlice %s/%s: %w", ns, s.Name, err))
			continue
		}
		c.writes.wroteObj(key, updated)
		c.log.Debug("updated slice", "service", key, "slice", s.Name, "endpoints", len(s.Endpoints))
	}
	if err := c.deleteSlices(ctx, key, plan.delete, "no longer needed"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// withNodes drops the pods bound to a node that does not exist, as kube's
// reconciler does ("skipping Pod for Service, Node not found"): the pod
// garbage collector will delete them, and until then their endpoints must
// not linger. With publishNotReadyAddresses they stay, as in kube.
func (c *endpointSliceController) withNodes(key string, svc *corev1.Service, pods []*corev1.Pod) []*corev1.Pod {
	if svc.Spec.PublishNotReadyAddresses {
		return pods
	}
	kept := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		if p.Spec.NodeName != "" && shouldPodBeInEndpoints(p, true) && c.cache.node(p.Spec.NodeName) == nil {
			c.log.Info("skipping Pod for Service, Node not found", "pod", p.Namespace+"/"+p.Name, "service", key, "node", p.Spec.NodeName)
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

func (c *endpointSliceController) deleteSlices(ctx context.Context, key string, del []*discoveryv1.EndpointSlice, why string) error {
	var errs []error
	for _, s := range del {
		deleted, err := c.st.Delete(ctx, store.EndpointSlices, s.Namespace, s.Name, "")
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, fmt.Errorf("delete EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			}
			continue
		}
		c.writes.wroteObj(key, deleted)
		c.log.Debug("deleted slice", "service", key, "slice", s.Name, "reason", why)
	}
	return errors.Join(errs...)
}
