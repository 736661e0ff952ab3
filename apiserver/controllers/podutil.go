package controllers

import (
	"fmt"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// protocolOf returns p, or TCP when empty (kube-apiserver defaults every
// port's protocol to TCP; objects written without admission may lack it).
func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// podCondition returns the pod's condition of type t, or nil.
func podCondition(status *corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			return &status.Conditions[i]
		}
	}
	return nil
}

// setPodCondition sets the condition of c's type in status, keeping the
// previous transition time when the condition's status does not change.
func setPodCondition(status *corev1.PodStatus, c corev1.PodCondition) {
	if prev := podCondition(status, c.Type); prev != nil {
		if prev.Status == c.Status {
			c.LastTransitionTime = prev.LastTransitionTime
		}
		*prev = c
		return
	}
	status.Conditions = append(status.Conditions, c)
}

// isPodReady reports whether the pod's Ready condition is True.
func isPodReady(pod *corev1.Pod) bool {
	c := podCondition(&pod.Status, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// isPodTerminal reports whether the pod has Succeeded or Failed.
func isPodTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// shouldPodBeInEndpoints is kube's endpointslice util.ShouldPodBeInEndpoints:
// terminal pods and pods without an IP are never endpoints; terminating pods
// (deletionTimestamp set) only when includeTerminating.
func shouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if isPodTerminal(pod) {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	if !includeTerminating && pod.DeletionTimestamp != nil {
		return false
	}
	return true
}

// shouldSetHostname reports whether an endpoint for pod in svc carries the
// pod's hostname: spec.hostname is set and spec.subdomain names the Service
// (in the same namespace).
func shouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && svc.Namespace == pod.Namespace
}

// findPort is kube's FindPort: a numeric targetPort is used as is (0, never
// stored by kube-apiserver, falls back to the service port); a named one is
// looked up by name AND protocol in the containers' ports, then in the
// ports of sidecar init containers (restartPolicy Always). Not found is an
// error: the pod offers no such port.
func findPort(pod *corev1.Pod, svcPort *corev1.ServicePort) (int32, error) {
	tp := svcPort.TargetPort
	proto := protocolOf(svcPort.Protocol)
	switch tp.Type {
	case intstr.String:
		name := tp.StrVal
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name && protocolOf(p.Protocol) == proto {
					return p.ContainerPort, nil
				}
			}
		}
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, p := range c.Ports {
				if p.Name == name && protocolOf(p.Protocol) == proto {
					return p.ContainerPort, nil
				}
			}
		}
	case intstr.Int:
		if tp.IntVal == 0 {
			return svcPort.Port, nil
		}
		return tp.IntVal, nil
	}
	return 0, fmt.Errorf("no suitable port for manifest: %s", pod.UID)
}

// podEndpointsChanged is kube's podEndpointsChanged: the first result is
// true when the pod changed in a way that changes its endpoints (deletion
// timestamp, readiness, IPs), the second when the Services it belongs to may
// have changed (labels, hostname, subdomain).
func podEndpointsChanged(oldPod, newPod *corev1.Pod) (podChanged, labelsChanged bool) {
	labelsChanged = !reflect.DeepEqual(newPod.Labels, oldPod.Labels) ||
		newPod.Spec.Hostname != oldPod.Spec.Hostname || newPod.Spec.Subdomain != oldPod.Spec.Subdomain
	if !reflect.DeepEqual(newPod.DeletionTimestamp, oldPod.DeletionTimestamp) {
		return true, labelsChanged
	}
	if isPodReady(oldPod) != isPodReady(newPod) {
		return true, labelsChanged
	}
	if isPodTerminal(oldPod) != isPodTerminal(newPod) {
		return true, labelsChanged
	}
	if oldPod.Status.PodIP != newPod.Status.PodIP || len(oldPod.Status.PodIPs) != len(newPod.Status.PodIPs) {
		return true, labelsChanged
	}
	for i := range oldPod.Status.PodIPs {
		if oldPod.Status.PodIPs[i].IP != newPod.Status.PodIPs[i].IP {
			return true, labelsChanged
		}
	}
	if oldPod.Spec.NodeName != newPod.Spec.NodeName {
		return true, labelsChanged
	}
	return false, labelsChanged
}

// triggerTimeTracker computes the endpoints.kubernetes.io/last-change-trigger-time
// annotation as kube's TriggerTimeTracker does: for a Service seen for the
// first time, its creationTimestamp; afterwards, the earliest trigger time
// (a pod's Ready condition lastTransitionTime, the Service's creation) that
// changed since the previous sync; the zero time when none did (a pod
// deletion has no trigger time), which removes the annotation.
type triggerTimeTracker struct {
	mu    sync.Mutex
	state map[string]triggerState // by "namespace/name"
}

type triggerState struct {
	pods    map[string]time.Time
	service time.Time
}

func newTriggerTimeTracker() *triggerTimeTracker {
	return &triggerTimeTracker{state: make(map[string]triggerState)}
}

// compute returns the trigger time for a sync of svc over pods (the pods its
// selector matches) and records them as seen.
func (t *triggerTimeTracker) compute(key string, svc *corev1.Service, pods []*corev1.Pod) time.Time {
	t.mu.Lock()
	prev, known := t.state[key]
	t.mu.Unlock()
	var minChanged time.Time
	setMin := func(tt time.Time) {
		if minChanged.IsZero() || tt.Before(minChanged) {
			minChanged = tt
		}
	}
	cur := triggerState{pods: make(map[string]time.Time, len(pods)), service: svc.CreationTimestamp.Time}
	for _, p := range pods {
		c := podCondition(&p.Status, corev1.PodReady)
		if c == nil || c.LastTransitionTime.IsZero() {
			continue
		}
		tt := c.LastTransitionTime.Time
		cur.pods[p.Name] = tt
		if tt.After(prev.pods[p.Name]) {
			setMin(tt)
		}
	}
	if cur.service.After(prev.service) {
		setMin(cur.service)
	}
	t.mu.Lock()
	t.state[key] = cur
	t.mu.Unlock()
	if !known {
		return svc.CreationTimestamp.Time
	}
	return minChanged
}

// forget drops the state of a deleted Service.
func (t *triggerTimeTracker) forget(key string) {
	t.mu.Lock()
	delete(t.state, key)
	t.mu.Unlock()
}
