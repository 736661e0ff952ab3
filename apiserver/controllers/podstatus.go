package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// kubeletConditions are the pod condition types the kubelet owns, in the
// order it writes them.
var kubeletConditions = []corev1.PodConditionType{
	corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled,
}

func isKubeletCondition(t corev1.PodConditionType) bool {
	for _, k := range kubeletConditions {
		if k == t {
			return true
		}
	}
	return false
}

// podPhase is what the kubelet reports for a pod.
type podPhase int

const (
	phaseCreating   podPhase = iota // sandbox not (yet) created: Pending
	phaseRunning                    // Running
	phaseTerminated                 // containers exited 0 on deletion: Succeeded
)

// kubeletStatus returns the status the kubelet writes for pod (as stored
// now, including other writers' conditions) in phase ph, on a node with
// hostIP, with pod IP ip (invalid = none). Condition transition times,
// startTime and container start times are kept from the stored status when
// unchanged, so writing it again changes nothing.
func kubeletStatus(pod *corev1.Pod, ph podPhase, hostIP string, ip netip.Addr, now time.Time) corev1.PodStatus {
	old := pod.Status
	st := corev1.PodStatus{
		HostIP:                      hostIP,
		QOSClass:                    qosClass(pod),
		StartTime:                   old.StartTime,
		NominatedNodeName:           old.NominatedNodeName,
		Resize:                      old.Resize,
		ResourceClaimStatuses:       old.ResourceClaimStatuses,
		ExtendedResourceClaimStatus: old.ExtendedResourceClaimStatus,
	}
	if hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
	if ip.IsValid() {
		st.PodIP = ip.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	} else if ph == phaseTerminated {
		st.PodIP, st.PodIPs = old.PodIP, old.PodIPs // kept after termination, as kube does
	}
	t := metav1.NewTime(now)
	if st.StartTime == nil {
		st.StartTime = &t
	}
	ready := pod.Annotations[AnnotationReady] != "false"
	switch ph {
	case phaseCreating:
		st.Phase = corev1.PodPending
		ready = false
	case phaseRunning:
		st.Phase = corev1.PodRunning
	case phaseTerminated:
		st.Phase = corev1.PodSucceeded
		ready = false
	}

	// Container statuses.
	var unready []string
	for _, c := range pod.Spec.Containers {
		prev := findContainerStatus(old.ContainerStatuses, c.Name)
		cs := containerStatus(pod, c, prev, ph, ready, st.StartTime, t)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	for _, c := range pod.Spec.InitContainers {
		prev := findContainerStatus(old.InitContainerStatuses, c.Name)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if sidecar {
			cs := containerStatus(pod, c, prev, ph, ready, st.StartTime, t)
			if !cs.Ready {
				unready = append(unready, c.Name)
			}
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
			continue
		}
		// Plain init containers "ran to completion" when the sandbox came up.
		cs := containerStatus(pod, c, prev, phaseTerminated, false, st.StartTime, *st.StartTime)
		if ph == phaseCreating {
			cs = containerStatus(pod, c, prev, phaseCreating, false, st.StartTime, t)
			cs.State.Waiting.Reason = "PodInitializing"
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}

	// Kubelet-owned conditions, then everybody else's (readiness gates).
	cond := func(typ corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: typ, Status: corev1.ConditionTrue}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		return c
	}
	containersReady := cond(corev1.ContainersReady, len(unready) == 0, "ContainersNotReady",
		fmt.Sprintf("containers with unready status: %s", unready))
	if ph == phaseTerminated {
		containersReady = cond(corev1.ContainersReady, false, "PodCompleted", "")
	}
	podReady := containersReady
	podReady.Type = corev1.PodReady
	if podReady.Status == corev1.ConditionTrue {
		var msgs []string
		for _, g := range pod.Spec.ReadinessGates {
			c := podCondition(&old, g.ConditionType)
			switch {
			case c == nil:
				msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(g.ConditionType)))
			case c.Status != corev1.ConditionTrue:
				msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(g.ConditionType), c.Status))
			}
		}
		if len(msgs) > 0 {
			podReady = cond(corev1.PodReady, false, "ReadinessGatesNotReady", strings.Join(msgs, ", "))
		}
	}
	conds := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, ph == phaseRunning, "", ""),
		cond(corev1.PodInitialized, true, "", ""),
		podReady,
		containersReady,
		cond(corev1.PodScheduled, true, "", ""),
	}
	for i := range conds {
		conds[i].LastTransitionTime = t
		if prev := podCondition(&old, conds[i].Type); prev != nil && prev.Status == conds[i].Status {
			conds[i].LastTransitionTime = prev.LastTransitionTime
			conds[i].LastProbeTime = prev.LastProbeTime
		}
	}
	for _, c := range old.Conditions {
		if !isKubeletCondition(c.Type) {
			conds = append(conds, c)
		}
	}
	st.Conditions = conds
	return st
}

func findContainerStatus(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// containerStatus returns a container's status in phase ph.
func containerStatus(pod *corev1.Pod, c corev1.Container, prev *corev1.ContainerStatus, ph podPhase, ready bool,
	startTime *metav1.Time, now metav1.Time) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: normalizeImage(c.Image), ImageID: ""}
	if prev != nil {
		cs.RestartCount = prev.RestartCount
	}
	startedAt := now
	if prev != nil && prev.State.Running != nil {
		startedAt = prev.State.Running.StartedAt
	} else if prev != nil && prev.State.Terminated != nil {
		startedAt = prev.State.Terminated.StartedAt
	}
	switch ph {
	case phaseCreating:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		cs.Started = ptr.To(false)
	case phaseRunning:
		cs.ContainerID = containerID(pod, c.Name)
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: startedAt}
		cs.Started = ptr.To(true)
		cs.Ready = ready
	case phaseTerminated:
		cs.ContainerID = containerID(pod, c.Name)
		finished := now
		if prev != nil && prev.State.Terminated != nil {
			finished = prev.State.Terminated.FinishedAt
		}
		if startTime != nil && startedAt.After(finished.Time) {
			startedAt = *startTime
		}
		cs.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: startedAt, FinishedAt: finished, ContainerID: cs.ContainerID,
		}
		cs.Started = ptr.To(false)
	}
	return cs
}

// containerID is a stable, runtime-shaped id ("svclab://" + 64 hex digits)
// derived from the pod uid and container name.
func containerID(pod *corev1.Pod, container string) string {
	sum := sha256.Sum256([]byte(string(pod.UID) + "/" + container))
	return "svclab://" + hex.EncodeToString(sum[:])
}

// normalizeImage returns the fully qualified reference a container runtime
// reports for image: docker.io/library/ for bare names, :latest when there
// is neither tag nor digest.
func normalizeImage(image string) string {
	if image == "" {
		return ""
	}
	name := image
	if i := strings.IndexByte(name, '/'); i < 0 {
		name = "docker.io/library/" + name
	} else if d := name[:i]; !strings.ContainsAny(d, ".:") && d != "localhost" {
		name = "docker.io/" + name
	}
	last := name[strings.LastIndexByte(name, '/')+1:]
	if !strings.Contains(last, ":") && !strings.Contains(name, "@") {
		name += ":latest"
	}
	return name
}

// qosClass is the pod's QoS class as kube computes it from the containers'
// cpu and memory requests and limits.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	zero, guaranteed := true, true
	check := func(c corev1.Container) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				zero = false
			}
			if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		check(c)
	}
	for _, c := range pod.Spec.Containers {
		check(c)
	}
	switch {
	case zero:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// preStopSleep returns the longest preStop sleep action of the pod's
// containers, capped by its grace period.
func preStopSleep(pod *corev1.Pod) time.Duration {
	var d time.Duration
	for _, c := range pod.Spec.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			d = max(d, time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second)
		}
	}
	grace := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return min(d, grace)
}
