package controllers

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/svclab/svclab/apiserver/store"
)

// eventHandler is what a controller registers with the cache. Both methods
// are called from the cache's single goroutine, after the cache has applied
// the change, and must not block (they enqueue keys).
type eventHandler interface {
	// handle is called for every applied event (all resources).
	handle(ev store.Event)
	// resync is called after every (re-)list, when the cache was replaced
	// wholesale and individual events may have been missed.
	resync()
}

// serviceEntry is a cached Service with its parsed selector.
type serviceEntry struct {
	svc *corev1.Service
	// selector is nil when the Service has no selector (nil or empty map: an
	// empty selector does not survive kube-apiserver's storage either, so
	// kube's controllers never see one and treat the Service as selectorless).
	selector labels.Selector
}

// cache is the controllers' shared, read-only view of the store, fed by ONE
// watch over every resource so that all controllers see changes in commit
// order, like a set of client-go informers sharing one stream. Objects in the
// cache are never modified (copy before changing). It also tracks the
// resourceVersion it has caught up with, so a controller can wait until its
// own writes are visible before acting on the cache again (read-your-writes).
type cache struct {
	st  *store.Store
	log *slog.Logger

	mu          sync.RWMutex
	rv          uint64 // every change up to rv is reflected
	nodes       map[string]*corev1.Node
	services    map[string]map[string]*serviceEntry // namespace → name
	pods        map[string]map[string]*corev1.Pod
	endpoints   map[string]map[string]*corev1.Endpoints
	slices      map[string]map[string]*discoveryv1.EndpointSlice
	slicesBySvc map[string]map[string]*discoveryv1.EndpointSlice // "ns/service-name label" → name
	listRV      map[*store.Resource]uint64                       // events at or below are already in the list

	wmu     sync.Mutex
	waiters rvHeap
	// dispatched is the resourceVersion whose event has been applied AND
	// handed to every handler (rv is set before the handlers run). Waiters
	// fire on it, so that "caught up" also means "keys enqueued".
	dispatched uint64

	handlers []eventHandler // fixed before run
	synced   chan struct{}  // closed after the first list
}

// cachedResources are the resources the controllers read.
var cachedResources = []*store.Resource{store.Nodes, store.Services, store.Pods, store.Endpoints, store.EndpointSlices}

func newCache(st *store.Store, log *slog.Logger) *cache {
	return &cache{st: st, log: log, synced: make(chan struct{})}
}

// run lists every cached resource, then follows one watch over all resources;
// when the watch ends early (the cache fell behind the store's history) it
// lists again and calls every handler's resync. It returns nil when ctx is
// done and an error when the store is closed under it.
func (c *cache) run(ctx context.Context) error {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		fromRV, err := c.relist(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, store.ErrClosed) {
				return fmt.Errorf("controllers cache: %w", err)
			}
			c.log.Error("list failed; retrying", "err", err, "backoff", backoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		ch, err := c.st.Watch(ctx, nil, "", fromRV)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, store.ErrClosed) {
				return fmt.Errorf("controllers cache: %w", err)
			}
			c.log.Warn("watch failed; re-listing", "err", err, "resourceVersion", fromRV)
			continue
		}
		for ev := range ch {
			c.apply(ev)
		}
		if ctx.Err() == nil {
			c.log.Info("watch closed; re-listing", "resourceVersion", c.resourceVersion())
		}
	}
	return nil
}

// relist replaces the cache with fresh lists and returns the resourceVersion
// to watch from: the lowest of the lists' versions. Events between that and a
// resource's own list version are skipped for that resource in apply, so each
// resource sees exactly the changes after its list.
func (c *cache) relist(ctx context.Context) (uint64, error) {
	nodes := make(map[string]*corev1.Node)
	services := make(map[string]map[string]*serviceEntry)
	pods := make(map[string]map[string]*corev1.Pod)
	eps := make(map[string]map[string]*corev1.Endpoints)
	sl := make(map[string]map[string]*discoveryv1.EndpointSlice)
	bySvc := make(map[string]map[string]*discoveryv1.EndpointSlice)
	listRV := make(map[*store.Resource]uint64)
	var fromRV uint64
	for i, res := range cachedResources {
		objs, rv, err := c.st.List(ctx, res, "", store.ListOptions{})
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", res.Name, err)
		}
		listRV[res] = rv
		if i == 0 || rv < fromRV {
			fromRV = rv
		}
		for _, o := range objs {
			switch obj := o.(type) {
			case *corev1.Node:
				nodes[obj.Name] = obj
			case *corev1.Service:
				putNS(services, obj.Namespace, obj.Name, newServiceEntry(obj))
			case *corev1.Pod:
				putNS(pods, obj.Namespace, obj.Name, obj)
			case *corev1.Endpoints:
				putNS(eps, obj.Namespace, obj.Name, obj)
			case *discoveryv1.EndpointSlice:
				putNS(sl, obj.Namespace, obj.Name, obj)
				if k := sliceServiceKey(obj); k != "" {
					putNS(bySvc, k, obj.Name, obj)
				}
			}
		}
	}
	c.mu.Lock()
	c.nodes, c.services, c.pods, c.endpoints, c.slices, c.slicesBySvc = nodes, services, pods, eps, sl, bySvc
	c.listRV = listRV
	c.rv = fromRV
	c.mu.Unlock()
	for _, h := range c.handlers {
		h.resync()
	}
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
	c.fireWaiters(fromRV)
	return fromRV, nil
}

// apply applies one event and dispatches it.
func (c *cache) apply(ev store.Event) {
	c.mu.Lock()
	skip := ev.ResourceVersion <= c.listRV[ev.Resource]
	if !skip {
		switch ev.Resource {
		case store.Nodes:
			n := ev.Object.(*corev1.Node)
			if ev.Type == watch.Deleted {
				delete(c.nodes, n.Name)
			} else {
				c.nodes[n.Name] = n
			}
		case store.Services:
			s := ev.Object.(*corev1.Service)
			if ev.Type == watch.Deleted {
				delNS(c.services, s.Namespace, s.Name)
			} else {
				putNS(c.services, s.Namespace, s.Name, newServiceEntry(s))
			}
		case store.Pods:
			p := ev.Object.(*corev1.Pod)
			if ev.Type == watch.Deleted {
				delNS(c.pods, p.Namespace, p.Name)
			} else {
				putNS(c.pods, p.Namespace, p.Name, p)
			}
		case store.Endpoints:
			e := ev.Object.(*corev1.Endpoints)
			if ev.Type == watch.Deleted {
				delNS(c.endpoints, e.Namespace, e.Name)
			} else {
				putNS(c.endpoints, e.Namespace, e.Name, e)
			}
		case store.EndpointSlices:
			s := ev.Object.(*discoveryv1.EndpointSlice)
			if old, ok := c.slices[s.Namespace][s.Name]; ok {
				if k := sliceServiceKey(old); k != "" {
					delNS(c.slicesBySvc, k, old.Name)
				}
			}
			if ev.Type == watch.Deleted {
				delNS(c.slices, s.Namespace, s.Name)
			} else {
				putNS(c.slices, s.Namespace, s.Name, s)
				if k := sliceServiceKey(s); k != "" {
					putNS(c.slicesBySvc, k, s.Name, s)
				}
			}
		default:
			skip = true // namespaces: not cached
		}
	}
	if ev.ResourceVersion > c.rv {
		c.rv = ev.ResourceVersion
	}
	c.mu.Unlock()
	if !skip {
		for _, h := range c.handlers {
			h.handle(ev)
		}
	}
	c.fireWaiters(ev.ResourceVersion)
}

func newServiceEntry(svc *corev1.Service) *serviceEntry {
	e := &serviceEntry{svc: svc}
	if len(svc.Spec.Selector) > 0 {
		e.selector = labels.SelectorFromSet(svc.Spec.Selector)
	}
	return e
}

// sliceServiceKey returns "namespace/<kubernetes.io/service-name>" of a
// slice, or "" when it has no such label.
func sliceServiceKey(s *discoveryv1.EndpointSlice) string {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return ""
	}
	return s.Namespace + "/" + name
}

func putNS[T any](m map[string]map[string]T, ns, name string, v T) {
	inner := m[ns]
	if inner == nil {
		inner = make(map[string]T)
		m[ns] = inner
	}
	inner[name] = v
}

func delNS[T any](m map[string]map[string]T, ns, name string) {
	inner := m[ns]
	delete(inner, name)
	if len(inner) == 0 {
		delete(m, ns)
	}
}

// sortedValues returns the values of m sorted by key.
func sortedValues[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// resourceVersion returns the resourceVersion the cache has caught up with.
func (c *cache) resourceVersion() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rv
}

func (c *cache) node(name string) *corev1.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nodes[name]
}

// nodeList returns every node sorted by name.
func (c *cache) nodeList() []*corev1.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedValues(c.nodes)
}

func (c *cache) service(namespace, name string) *serviceEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.services[namespace][name]
}

// serviceKeys returns "namespace/name" of every Service, sorted.
func (c *cache) serviceKeys() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return namespacedKeys(c.services)
}

// servicesSelecting returns the keys of the Services in namespace whose
// selector matches set (Services without a selector match nothing).
func (c *cache) servicesSelecting(namespace string, set labels.Set) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for name, e := range c.services[namespace] {
		if e.selector != nil && e.selector.Matches(set) {
			out = append(out, namespace+"/"+name)
		}
	}
	return out
}

func (c *cache) pod(namespace, name string) *corev1.Pod {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pods[namespace][name]
}

// podList returns every pod, sorted by namespace and name.
func (c *cache) podList() []*corev1.Pod {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*corev1.Pod
	for _, ns := range sortedKeys(c.pods) {
		out = append(out, sortedValues(c.pods[ns])...)
	}
	return out
}

// podsSelected returns the pods in namespace matching sel, sorted by name.
func (c *cache) podsSelected(namespace string, sel labels.Selector) []*corev1.Pod {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*corev1.Pod
	for _, p := range c.pods[namespace] {
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (c *cache) endpointsObj(namespace, name string) *corev1.Endpoints {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.endpoints[namespace][name]
}

// endpointsKeys returns "namespace/name" of every Endpoints object, sorted.
func (c *cache) endpointsKeys() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return namespacedKeys(c.endpoints)
}

// slicesForService returns the EndpointSlices labelled with the service
// name, whoever manages them, sorted by name.
func (c *cache) slicesForService(namespace, name string) []*discoveryv1.EndpointSlice {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedValues(c.slicesBySvc[namespace+"/"+name])
}

// sliceServiceKeys returns the distinct "namespace/service" keys of every
// labelled EndpointSlice, sorted.
func (c *cache) sliceServiceKeys() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.slicesBySvc)
}

// namespacedKeys returns "namespace/name" of every entry of a
// namespace → name → object map, sorted.
func namespacedKeys[T any](m map[string]map[string]T) []string {
	var out []string
	for ns, byName := range m {
		for name := range byName {
			out = append(out, ns+"/"+name)
		}
	}
	slices.Sort(out)
	return out
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// notifyAt calls fn (from the cache goroutine, or at once from the caller's)
// as soon as the cache has caught up with resourceVersion rv and every
// handler has seen the changes up to it. fn must not block.
func (c *cache) notifyAt(rv uint64, fn func()) {
	c.wmu.Lock()
	if rv <= c.dispatched {
		c.wmu.Unlock()
		fn()
		return
	}
	heap.Push(&c.waiters, rvWaiter{rv: rv, fn: fn})
	c.wmu.Unlock()
}

// waitFor blocks until the cache has caught up with rv or ctx is done.
func (c *cache) waitFor(ctx context.Context, rv uint64) error {
	ch := make(chan struct{})
	c.notifyAt(rv, func() { close(ch) })
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fireWaiters records that everything up to rv was dispatched and calls the
// waiters that were waiting for it.
func (c *cache) fireWaiters(rv uint64) {
	var due []func()
	c.wmu.Lock()
	if rv > c.dispatched {
		c.dispatched = rv
	}
	cur := c.dispatched
	for c.waiters.Len() > 0 && c.waiters[0].rv <= cur {
		due = append(due, heap.Pop(&c.waiters).(rvWaiter).fn)
	}
	c.wmu.Unlock()
	for _, fn := range due {
		fn()
	}
}

type rvWaiter struct {
	rv uint64
	fn func()
}

// rvHeap is a min-heap of waiters by resourceVersion.
type rvHeap []rvWaiter

func (h rvHeap) Len() int           { return len(h) }
func (h rvHeap) Less(i, j int) bool { return h[i].rv < h[j].rv }
func (h rvHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *rvHeap) Push(x any)        { *h = append(*h, x.(rvWaiter)) }
func (h *rvHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = rvWaiter{}
	*h = old[:len(old)-1]
	return w
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// writeTracker remembers, per key, the resourceVersion of a controller's last
// write, so a sync can wait until the cache shows that write before reading
// the cache again (kube's EndpointSliceTracker / staleEndpointsTracker do
// this job; without it a sync racing its own Create would create twice).
type writeTracker struct {
	mu sync.Mutex
	rv map[string]uint64
}

func newWriteTracker() *writeTracker { return &writeTracker{rv: make(map[string]uint64)} }

// wrote records a write of key at resourceVersion rv.
func (t *writeTracker) wrote(key string, rv uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rv > t.rv[key] {
		t.rv[key] = rv
	}
}

// wroteObj records a write of key that returned obj.
func (t *writeTracker) wroteObj(key string, obj store.Object) {
	if obj == nil {
		return
	}
	if rv, err := store.ParseResourceVersion(obj.GetResourceVersion()); err == nil {
		t.wrote(key, rv)
	}
}

// stale reports whether the cache (at cacheRV) has not yet seen the last write
// of key; it returns the version to wait for. A key whose writes are all
// visible is forgotten.
func (t *writeTracker) stale(key string, cacheRV uint64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rv, ok := t.rv[key]
	if !ok {
		return 0, false
	}
	if rv <= cacheRV {
		delete(t.rv, key)
		return 0, false
	}
	return rv, true
}
