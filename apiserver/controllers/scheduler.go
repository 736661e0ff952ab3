package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/svclab/svclab/apiserver/store"
)

// errAlreadyBound aborts a binding when the pod got a node meanwhile (or was
// replaced).
var errAlreadyBound = errors.New("pod already bound or replaced")

// scheduler binds each pod without spec.nodeName (and with the default
// scheduler, or none, as spec.schedulerName) to the feasible node with the
// fewest non-terminal pods, ties going to the lowest node name (kube-scheduler
// picks randomly among equal scores; a lab prefers determinism). A node is
// feasible unless it is cordoned (spec.unschedulable), has a NoSchedule or
// NoExecute taint the pod does not tolerate (a node whose Ready condition is
// not True counts as tainted node.kubernetes.io/not-ready, or unreachable for
// Unknown, as the node lifecycle controller would taint it), or does not
// match the pod's nodeSelector. Node affinity, resources and topology spread
// are not modelled.
//
// Binding sets spec.nodeName (the pods/binding subresource's effect); the
// PodScheduled=True condition is then written by the node's kubelet (or here,
// when it replaces an Unschedulable condition). When no node is feasible the pod stays
// Pending with PodScheduled=False, reason Unschedulable and kube's message
// ("0/2 nodes are available: 2 node(s) were unschedulable. preemption: …"),
// and is retried whenever a node changes. Pods created with spec.nodeName
// bypass the scheduler, as in kube, even when that node does not exist.
type scheduler struct {
	st    *store.Store
	cache *cache
	q     *queue
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	nodeOf map[string]string // pod key → node, for bound (or just bound) non-terminal pods
	count  map[string]int    // node → pods
	seenRV uint64            // last event handled
}

func newScheduler(st *store.Store, c *cache, log *slog.Logger) *scheduler {
	return &scheduler{
		st: st, cache: c, q: newQueue(), now: time.Now,
		log:    log.With("controller", "scheduler"),
		nodeOf: make(map[string]string),
		count:  make(map[string]int),
	}
}

func (s *scheduler) assignLocked(key, node string) {
	if old, ok := s.nodeOf[key]; ok {
		if old == node {
			return
		}
		s.count[old]--
	}
	s.nodeOf[key] = node
	s.count[node]++
}

func (s *scheduler) unassignLocked(key string) {
	if old, ok := s.nodeOf[key]; ok {
		s.count[old]--
		delete(s.nodeOf, key)
	}
}

func (s *scheduler) handle(ev store.Event) {
	s.mu.Lock()
	s.seenRV = ev.ResourceVersion
	var pending *corev1.Pod
	if ev.Resource == store.Pods {
		pod := ev.Object.(*corev1.Pod)
		key := objKey(pod)
		switch {
		case ev.Type == watch.Deleted || isPodTerminal(pod):
			s.unassignLocked(key)
		case pod.Spec.NodeName != "":
			s.assignLocked(key, pod.Spec.NodeName)
		default:
			pending = pod
		}
	}
	s.mu.Unlock()
	switch {
	case pending != nil:
		s.q.Add(objKey(pending))
	case ev.Resource == store.Nodes:
		s.queuePending()
	}
}

func (s *scheduler) resync() {
	s.mu.Lock()
	s.nodeOf = make(map[string]string)
	s.count = make(map[string]int)
	for _, p := range s.cache.podList() {
		if p.Spec.NodeName != "" && !isPodTerminal(p) {
			s.assignLocked(objKey(p), p.Spec.NodeName)
		}
	}
	s.seenRV = s.cache.resourceVersion()
	s.mu.Unlock()
	s.queuePending()
}

func (s *scheduler) queuePending() {
	for _, p := range s.cache.podList() {
		if p.Spec.NodeName == "" {
			s.q.Add(objKey(p))
		}
	}
}

func (s *scheduler) run(ctx context.Context) {
	runWorkers(ctx, s.q, 1, s.sync, s.log) // one at a time, as kube-scheduler's scheduling cycle
}

func (s *scheduler) sync(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	pod := s.cache.pod(ns, name)
	if pod == nil || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || isPodTerminal(pod) {
		return nil
	}
	if pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName {
		return nil // another scheduler's pod
	}
	s.mu.Lock()
	_, assumed := s.nodeOf[key]
	s.mu.Unlock()
	if assumed {
		return nil // bound; the event has not reached the cache yet
	}
	nodes := s.cache.nodeList()
	s.mu.Lock()
	node, reason, msg := s.pick(pod, nodes)
	s.mu.Unlock()
	if node == "" {
		s.log.Info("pod unschedulable", "pod", key, "reason", reason, "message", msg)
		return s.setScheduled(ctx, pod, corev1.ConditionFalse, reason, msg)
	}
	bound, err := s.st.GuaranteedUpdate(ctx, store.Pods, ns, name, store.UpdateOptions{}, func(cur store.Object) (store.Object, error) {
		p := cur.(*corev1.Pod)
		if p.UID != pod.UID || p.Spec.NodeName != "" {
			return nil, errAlreadyBound
		}
		p.Spec.NodeName = node
		return p, nil
	})
	switch {
	case errors.Is(err, errAlreadyBound), errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("bind pod %s to %s: %w", key, node, err)
	}
	if rv, err := store.ParseResourceVersion(bound.GetResourceVersion()); err == nil {
		s.mu.Lock()
		if s.seenRV < rv { // else the bind's event already counted it (and maybe its deletion)
			s.assignLocked(key, node)
		}
		s.mu.Unlock()
	}
	s.log.Debug("pod bound", "pod", key, "node", node)
	// kube's binding also sets PodScheduled=True. The node's kubelet writes
	// that condition in its first status anyway (milliseconds later), so only
	// an Unschedulable condition is cleared here, saving a write per pod.
	if c := podCondition(&bound.(*corev1.Pod).Status, corev1.PodScheduled); c != nil && c.Status != corev1.ConditionTrue {
		return s.setScheduled(ctx, bound.(*corev1.Pod), corev1.ConditionTrue, "", "")
	}
	return nil
}

// pick returns the chosen node, or "" with the reason and message of the
// PodScheduled=False condition. Callers hold s.mu.
func (s *scheduler) pick(pod *corev1.Pod, nodes []*corev1.Node) (node, reason, msg string) {
	if len(nodes) == 0 {
		return "", corev1.PodReasonSchedulerError, "no nodes available to schedule pods"
	}
	reasons := map[string]int{}
	best, bestCount := "", 0
	for _, n := range nodes { // sorted by name: the first of equal counts wins
		if why := unfit(pod, n); why != "" {
			reasons[why]++
			continue
		}
		if c := s.count[n.Name]; best == "" || c < bestCount {
			best, bestCount = n.Name, c
		}
	}
	if best != "" {
		return best, "", ""
	}
	var hist []string
	for why, n := range reasons {
		hist = append(hist, fmt.Sprintf("%d %s", n, why))
	}
	sort.Strings(hist)
	return "", corev1.PodReasonUnschedulable, fmt.Sprintf(
		"0/%d nodes are available: %s. preemption: 0/%d nodes are available: %d Preemption is not helpful for scheduling.",
		len(nodes), strings.Join(hist, ", "), len(nodes), len(nodes))
}

// unfit returns why pod cannot go to node (kube-scheduler's filter message,
// first failing filter in kube's plugin order), or "".
func unfit(pod *corev1.Pod, node *corev1.Node) string {
	taints := append([]corev1.Taint(nil), node.Spec.Taints...)
	if node.Spec.Unschedulable {
		t := corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
		if !tolerated(pod, &t) {
			return "node(s) were unschedulable"
		}
	}
	ready := corev1.ConditionUnknown
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status
		}
	}
	switch ready {
	case corev1.ConditionFalse:
		taints = append(taints, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule})
	case corev1.ConditionUnknown:
		taints = append(taints, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule})
	}
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(pod, t) {
			return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
		}
	}
	if len(pod.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return "node(s) didn't match Pod's node affinity/selector"
	}
	return ""
}

func tolerated(pod *corev1.Pod, t *corev1.Taint) bool {
	for i := range pod.Spec.Tolerations {
		if pod.Spec.Tolerations[i].ToleratesTaint(logr.Discard(), t, false) {
			return true
		}
	}
	return false
}

// setScheduled writes the PodScheduled condition (kept as is when it
// already has that status, reason and message).
func (s *scheduler) setScheduled(ctx context.Context, pod *corev1.Pod, status corev1.ConditionStatus, reason, msg string) error {
	want := corev1.PodCondition{Type: corev1.PodScheduled, Status: status, Reason: reason, Message: msg}
	if c := podCondition(&pod.Status, corev1.PodScheduled); c != nil && c.Status == status && c.Reason == reason && c.Message == msg {
		return nil
	}
	now := metav1.NewTime(s.now().Truncate(time.Second))
	_, err := s.st.GuaranteedUpdate(ctx, store.Pods, pod.Namespace, pod.Name, store.UpdateOptions{Subresource: "status"},
		func(cur store.Object) (store.Object, error) {
			p := cur.(*corev1.Pod)
			if p.UID != pod.UID {
				return nil, errAlreadyBound
			}
			c := want
			c.LastTransitionTime = now
			if prev := podCondition(&p.Status, corev1.PodScheduled); prev != nil {
				if prev.Status == c.Status {
					c.LastTransitionTime = prev.LastTransitionTime
				}
				if equality.Semantic.DeepEqual(*prev, c) {
					return p, nil
				}
				*prev = c
			} else {
				p.Status.Conditions = append(p.Status.Conditions, c)
			}
			return p, nil
		})
	if err != nil && !errors.Is(err, errAlreadyBound) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("set PodScheduled=%s on pod %s/%s: %w", status, pod.Namespace, pod.Name, err)
	}
	return nil
}
