package controllers

import (
	"context"
	"maps"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// PodRuntime is the node side the kubelet controller drives: it turns a pod
// into a sandbox (for svclab's netlab: a network namespace with a veth on the
// node's bridge and the pod's built-in workloads). Calls for different pods
// may run concurrently; calls for the same pod never do.
type PodRuntime interface {
	// StartPod makes the pod's sandbox exist with the given IP (idempotent:
	// a sandbox that already exists with that IP is success; one that exists
	// with another IP is re-addressed) and starts its workloads. The pod
	// carries spec.nodeName; its annotations select the workload
	// (AnnotationWorkload).
	StartPod(ctx context.Context, pod *corev1.Pod, ip netip.Addr) error
	// StopPod removes the pod's sandbox (idempotent; missing is success).
	StopPod(ctx context.Context, namespace, name string) error
	// SyncPods converges the runtime to exactly this set of pods, each with
	// its status.podIP, removing every other sandbox. The kubelet calls it
	// once at start, before any StartPod, so sandboxes left by a previous run
	// whose pods were deleted meanwhile disappear. It may be a no-op for a
	// runtime that keeps no state across restarts.
	SyncPods(ctx context.Context, pods []*corev1.Pod) error
}

// SimulatedRuntime is the PodRuntime for --no-network, in the spirit of kwok:
// no kernel state at all. Pods still get IPs and become Running and Ready,
// so Services, EndpointSlices, DNS answers and rendered rules all work; only
// packets cannot flow. It keeps the table of the sandboxes it pretends to
// run (for introspection). The zero value is ready to use.
type SimulatedRuntime struct {
	mu   sync.Mutex
	pods map[string]netip.Addr // "namespace/name" → IP
}

var _ PodRuntime = (*SimulatedRuntime)(nil)

// StartPod records the pod's sandbox with ip.
func (r *SimulatedRuntime) StartPod(_ context.Context, pod *corev1.Pod, ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods == nil {
		r.pods = make(map[string]netip.Addr)
	}
	r.pods[pod.Namespace+"/"+pod.Name] = ip
	return nil
}

// StopPod forgets the pod's sandbox; a missing one is success.
func (r *SimulatedRuntime) StopPod(_ context.Context, namespace, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pods, namespace+"/"+name)
	return nil
}

// SyncPods replaces the table with pods (their status.podIP; pods without a
// valid one are skipped).
func (r *SimulatedRuntime) SyncPods(_ context.Context, pods []*corev1.Pod) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods = make(map[string]netip.Addr, len(pods))
	for _, p := range pods {
		if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			r.pods[p.Namespace+"/"+p.Name] = ip
		}
	}
	return nil
}

// Sandboxes returns a copy of the table of running sandboxes, by
// "namespace/name".
func (r *SimulatedRuntime) Sandboxes() map[string]netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.pods)
}
