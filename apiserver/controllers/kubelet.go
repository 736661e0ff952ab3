package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// errPodReplaced aborts a status write when the stored pod is another pod
// (same name, new uid) than the one synced.
var errPodReplaced = errors.New("pod was replaced")

// kubelet plays the kubelet of every node at once. For each pod bound to a
// node that exists it allocates an IP from the node's pod CIDR, asks the
// PodRuntime to start the pod and writes the pod's status (Running, Ready,
// podIP, hostIP, container statuses) through the status subresource. When a
// pod is deleted (or its node disappears) it stops the pod and releases the
// IP. A pod bound to a node that does not exist stays Pending untouched, as
// in kube, where no kubelet would ever pick it up.
//
// Deletion: a pod deleted through the API (store.DeleteWithOptions) is
// marked with a deletionTimestamp and stays stored. The kubelet keeps it
// running (Ready, so its endpoints are serving+terminating) for the longest
// preStop sleep action of its containers (capped by the grace period), then
// stops it, reports it Succeeded and deletes the object with grace 0 and a uid
// precondition, like kubelet's termination path and status manager. A
// terminating pod that is already finished, or cannot run on its node, is
// deleted the same way as long as its node exists (a pod bound to a missing
// node has no kubelet: the pod garbage collector deletes it, see podGC). A
// pod removed at once (Store.Delete, a namespace delete, a grace-0 delete) is
// simply cleaned up after.
type kubelet struct {
	st      *store.Store
	cache   *cache
	q       *queue
	log     *slog.Logger
	rt      PodRuntime
	workers int
	now     func() time.Time

	mu      sync.Mutex
	ipam    map[string]*nodeIPAM       // by node name
	running map[string]*podRecord      // pods this process started, by "namespace/name"
	lastIP  map[string]netip.Addr      // IPs restored at start, by key (preferred on first start)
	waiting map[string]map[string]bool // node → pods waiting for a free IP
}

type podRecord struct {
	uid         string
	node        string
	ip          netip.Addr
	terminating time.Time // when a deletionTimestamp was first seen
}

func newKubelet(st *store.Store, c *cache, rt PodRuntime, cfg Config, log *slog.Logger) *kubelet {
	return &kubelet{
		st: st, cache: c, q: newQueue(), rt: rt, workers: cfg.KubeletWorkers,
		log:     log.With("controller", "kubelet"),
		now:     time.Now,
		ipam:    make(map[string]*nodeIPAM),
		running: make(map[string]*podRecord),
		lastIP:  make(map[string]netip.Addr),
		waiting: make(map[string]map[string]bool),
	}
}

func (k *kubelet) handle(ev store.Event) {
	switch ev.Resource {
	case store.Pods:
		k.q.Add(objKey(ev.Object))
	case store.Nodes:
		// Pods waiting for this node, or to be stopped because it is gone.
		name := ev.Object.GetName()
		for _, p := range k.cache.podList() {
			if p.Spec.NodeName == name {
				k.q.Add(objKey(p))
			}
		}
	}
}

func (k *kubelet) resync() {
	for _, p := range k.cache.podList() {
		k.q.Add(objKey(p))
	}
	k.mu.Lock()
	keys := slices.Collect(maps.Keys(k.running))
	k.mu.Unlock()
	for _, key := range keys {
		k.q.Add(key)
	}
}

// restore rebuilds the IP allocations from the pods' stored status.podIP
// (oldest pod first, so the older of two claimants keeps a doubled IP) and
// converges the runtime to the pods that keep their IP. It runs once, after
// the cache is synced and before any worker.
func (k *kubelet) restore(ctx context.Context) error {
	pods := k.cache.podList()
	slices.SortStableFunc(pods, func(a, b *corev1.Pod) int {
		return a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time)
	})
	var keep []*corev1.Pod
	k.mu.Lock()
	for _, p := range pods {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || isPodTerminal(p) {
			continue
		}
		a := k.ipamFor(k.cache.node(p.Spec.NodeName))
		if a == nil {
			continue
		}
		key := objKey(p)
		if a.reserve(key, p.UID, ip) {
			k.lastIP[key] = ip
			keep = append(keep, p)
		} else {
			k.log.Warn("stored pod IP not reusable; the pod gets a new one", "pod", key, "ip", ip, "node", p.Spec.NodeName)
		}
	}
	k.mu.Unlock()
	if err := k.rt.SyncPods(ctx, keep); err != nil {
		return fmt.Errorf("sync runtime to %d pods: %w", len(keep), err)
	}
	k.log.Info("restored pod IPs", "pods", len(keep))
	return nil
}

// ipamFor returns node's allocator, creating it (or replacing it when the
// node's pod CIDR changed); nil when node is nil or has no usable CIDR.
// Callers hold k.mu.
func (k *kubelet) ipamFor(node *corev1.Node) *nodeIPAM {
	if node == nil {
		return nil
	}
	prefix, err := netip.ParsePrefix(node.Spec.PodCIDR)
	if err != nil {
		return nil
	}
	if a := k.ipam[node.Name]; a != nil && a.prefix == prefix.Masked() {
		return a
	}
	a, err := newNodeIPAM(prefix)
	if err != nil {
		k.log.Warn("node pod CIDR unusable", "node", node.Name, "podCIDR", node.Spec.PodCIDR, "err", err)
		return nil
	}
	k.ipam[node.Name] = a
	return a
}

// releaseIP frees whatever IP the pod key holds on any node, and wakes the
// pods waiting for an address on that node.
func (k *kubelet) releaseIP(key string) {
	k.mu.Lock()
	var wake []string
	for node, a := range k.ipam {
		if _, ok := a.byKey[key]; !ok {
			continue
		}
		a.release(key)
		for w := range k.waiting[node] {
			wake = append(wake, w)
		}
		delete(k.waiting, node)
	}
	delete(k.lastIP, key)
	k.mu.Unlock()
	for _, w := range wake {
		k.q.Add(w)
	}
}

func (k *kubelet) run(ctx context.Context) {
	runWorkers(ctx, k.q, k.workers, k.sync, k.log)
}

// sync converges one pod.
func (k *kubelet) sync(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	pod := k.cache.pod(ns, name)
	var node *corev1.Node
	if pod != nil && pod.Spec.NodeName != "" {
		node = k.cache.node(pod.Spec.NodeName)
	}
	k.mu.Lock()
	rec := k.running[key]
	a := k.ipamFor(node)
	k.mu.Unlock()
	shouldRun := pod != nil && a != nil && !isPodTerminal(pod)

	if rec != nil && (!shouldRun || rec.uid != string(pod.UID) || rec.node != node.Name || !a.usable(rec.ip)) {
		if err := k.stop(ctx, key, rec); err != nil {
			return err
		}
		rec = nil
	}
	if !shouldRun {
		k.releaseIP(key)
		if pod != nil && pod.DeletionTimestamp != nil && node != nil {
			return k.deletePod(ctx, key, pod) // finished, or cannot run here: nothing to wait for
		}
		return nil
	}
	hostIP := nodeInternalIP(node)
	if pod.DeletionTimestamp != nil {
		return k.terminate(ctx, key, pod, rec, hostIP)
	}
	if rec == nil {
		k.mu.Lock()
		ip, err := a.allocate(key, pod.UID, k.lastIP[key])
		if errors.Is(err, ErrPodCIDRFull) {
			if k.waiting[node.Name] == nil {
				k.waiting[node.Name] = make(map[string]bool)
			}
			k.waiting[node.Name][key] = true // retried as soon as an address is released
		}
		k.mu.Unlock()
		if err != nil {
			k.log.Warn("no pod IP available; waiting for one to be released", "pod", key, "node", node.Name, "err", err)
			if werr := k.writeStatus(ctx, pod, phaseCreating, hostIP, netip.Addr{}); werr != nil {
				return werr
			}
			if errors.Is(err, ErrPodCIDRFull) {
				return nil // woken by releaseIP, no blind retries
			}
			return err
		}
		if err := k.rt.StartPod(ctx, pod, ip); err != nil {
			k.releaseIP(key)
			k.log.Error("failed to start pod sandbox", "pod", key, "node", node.Name, "ip", ip, "err", err)
			err = fmt.Errorf("start pod %s on %s: %w", key, node.Name, err)
			if werr := k.writeStatus(ctx, pod, phaseCreating, hostIP, netip.Addr{}); werr != nil {
				err = errors.Join(err, werr)
			}
			return err
		}
		rec = &podRecord{uid: string(pod.UID), node: node.Name, ip: ip}
		k.mu.Lock()
		k.running[key] = rec
		delete(k.lastIP, key)
		k.mu.Unlock()
		k.log.Debug("pod started", "pod", key, "node", node.Name, "ip", ip)
	}
	return k.writeStatus(ctx, pod, phaseRunning, hostIP, rec.ip)
}

// stop stops a pod this process started and releases its IP.
func (k *kubelet) stop(ctx context.Context, key string, rec *podRecord) error {
	ns, name := splitKey(key)
	if err := k.rt.StopPod(ctx, ns, name); err != nil {
		return fmt.Errorf("stop pod %s on %s: %w", key, rec.node, err)
	}
	k.mu.Lock()
	if k.running[key] == rec {
		delete(k.running, key)
	}
	k.mu.Unlock()
	k.releaseIP(key)
	k.log.Debug("pod stopped", "pod", key, "node", rec.node, "ip", rec.ip)
	return nil
}

// terminate carries out a graceful deletion: preStop sleep, stop, terminal
// status, delete the object.
func (k *kubelet) terminate(ctx context.Context, key string, pod *corev1.Pod, rec *podRecord, hostIP string) error {
	if rec != nil {
		k.mu.Lock()
		if rec.terminating.IsZero() {
			rec.terminating = k.now()
		}
		wait := rec.terminating.Add(preStopSleep(pod)).Sub(k.now())
		k.mu.Unlock()
		if wait > 0 {
			k.q.AddAfter(key, wait)
			return nil
		}
		if err := k.stop(ctx, key, rec); err != nil {
			return err
		}
	} else if pod.Status.PodIP != "" {
		// Not started by this process, but possibly restored by SyncPods
		// after a restart: make sure no sandbox is left (idempotent).
		if err := k.rt.StopPod(ctx, pod.Namespace, pod.Name); err != nil {
			return fmt.Errorf("stop pod %s: %w", key, err)
		}
	}
	k.releaseIP(key)
	if err := k.writeStatus(ctx, pod, phaseTerminated, hostIP, netip.Addr{}); err != nil {
		return err
	}
	return k.deletePod(ctx, key, pod)
}

// deletePod finishes a graceful deletion as kubelet's status manager does: a
// delete with grace 0 and the pod's uid as precondition, so that a pod
// re-created under the same name is left alone.
func (k *kubelet) deletePod(ctx context.Context, key string, pod *corev1.Pod) error {
	_, err := k.st.DeleteWithOptions(ctx, store.Pods, pod.Namespace, pod.Name, store.DeleteOptions{
		Preconditions:      store.Preconditions{UID: pod.UID},
		GracePeriodSeconds: ptr.To[int64](0),
	})
	switch {
	case err == nil:
		k.log.Debug("terminated pod deleted", "pod", key)
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
		return nil // already gone, or replaced by a new pod (which gets its own sync)
	}
	return fmt.Errorf("delete terminated pod %s: %w", key, err)
}

// writeStatus writes the kubelet's status for pod in phase ph, computed on
// the stored object (so other writers' conditions are kept); nothing is
// written when the cached status is already that.
func (k *kubelet) writeStatus(ctx context.Context, pod *corev1.Pod, ph podPhase, hostIP string, ip netip.Addr) error {
	now := k.now().Truncate(time.Second)
	if want := kubeletStatus(pod, ph, hostIP, ip, now); equality.Semantic.DeepEqual(want, pod.Status) {
		return nil
	}
	_, err := k.st.GuaranteedUpdate(ctx, store.Pods, pod.Namespace, pod.Name, store.UpdateOptions{Subresource: "status"},
		func(cur store.Object) (store.Object, error) {
			p := cur.(*corev1.Pod)
			if p.UID != pod.UID {
				return nil, errPodReplaced
			}
			want := kubeletStatus(p, ph, hostIP, ip, now)
			if !equality.Semantic.DeepEqual(want, p.Status) {
				p.Status = want
			}
			return p, nil
		})
	switch {
	case err == nil, errors.Is(err, errPodReplaced), errors.Is(err, store.ErrNotFound):
		return nil // a replaced or deleted pod gets its own sync
	}
	return fmt.Errorf("write status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
}

// nodeInternalIP returns the node's first InternalIP ("" when none).
func nodeInternalIP(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// podIPs returns "namespace/name" → IP of the pods this kubelet runs (for
// tests and introspection).
func (k *kubelet) podIPs() map[string]netip.Addr {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]netip.Addr, len(k.running))
	for key, r := range k.running {
		out[key] = r.ip
	}
	return out
}
