package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// Pod garbage collection timings, kube-controller-manager's
// (pkg/controller/podgc: gcCheckPeriod, quarantineTime).
const (
	DefaultPodGCPeriod     = 20 * time.Second
	DefaultPodGCQuarantine = 40 * time.Second
)

// podGC is kube-controller-manager's pod garbage collector for the case a
// lab meets: pods bound to a node that no longer exists (`kubectl delete
// node`; a smaller --nodes removes its nodes' pods itself). Every period it
// scans the cache; a pod is collected once its node has been missing for
// the quarantine time (in case the node is only being re-created). As kube
// does since 1.26, a pod that has not finished first gets phase Failed and
// the condition DisruptionTarget=True (reason DeletionByPodGC, "PodGC: node
// no longer exists"), then it is deleted with grace 0 and its uid as
// precondition, so that a pod re-created under the same name stays.
// (Terminating pods that were never scheduled, kube's other case, do not
// occur here: the API deletes unscheduled pods at once.)
type podGC struct {
	st         *store.Store
	cache      *cache
	log        *slog.Logger
	now        func() time.Time
	period     time.Duration
	quarantine time.Duration

	missingSince map[string]time.Time // node → when a pod was first seen bound to it while it was missing
}

func newPodGC(st *store.Store, c *cache, cfg Config, log *slog.Logger) *podGC {
	return &podGC{
		st: st, cache: c, now: time.Now, log: log.With("controller", "podgc"),
		period: cfg.PodGCPeriod, quarantine: cfg.PodGCQuarantine,
		missingSince: map[string]time.Time{},
	}
}

func (g *podGC) run(ctx context.Context) {
	t := time.NewTicker(g.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.collect(ctx)
		}
	}
}

// collect deletes the orphaned pods whose node has been missing for the
// quarantine time; errors are logged and the pod is retried next period.
func (g *podGC) collect(ctx context.Context) {
	now := g.now()
	missing := map[string]bool{}
	for _, pod := range g.cache.podList() {
		node := pod.Spec.NodeName
		if node == "" || g.cache.node(node) != nil {
			continue
		}
		missing[node] = true
		since, seen := g.missingSince[node]
		if !seen {
			g.missingSince[node] = now
			continue
		}
		if now.Sub(since) < g.quarantine {
			continue
		}
		if err := g.deleteOrphan(ctx, pod); err != nil {
			g.log.Error("delete orphaned pod", "pod", pod.Namespace+"/"+pod.Name, "node", node, "err", err)
		}
	}
	for node := range g.missingSince {
		if !missing[node] {
			delete(g.missingSince, node)
		}
	}
}

// deleteOrphan marks pod failed with the DisruptionTarget condition (unless
// it already finished) and deletes it.
func (g *podGC) deleteOrphan(ctx context.Context, pod *corev1.Pod) error {
	g.log.Info("found orphaned pod assigned to the node, deleting", "pod", pod.Namespace+"/"+pod.Name, "node", pod.Spec.NodeName)
	if !isPodTerminal(pod) {
		now := metav1.NewTime(g.now().Truncate(time.Second))
		_, err := g.st.GuaranteedUpdate(ctx, store.Pods, pod.Namespace, pod.Name, store.UpdateOptions{Subresource: "status"},
			func(cur store.Object) (store.Object, error) {
				p := cur.(*corev1.Pod)
				if p.UID != pod.UID {
					return nil, errPodReplaced
				}
				p.Status.Phase = corev1.PodFailed
				setPodCondition(&p.Status, corev1.PodCondition{
					Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, LastTransitionTime: now,
					Reason: "DeletionByPodGC", Message: "PodGC: node no longer exists",
				})
				return p, nil
			})
		switch {
		case errors.Is(err, errPodReplaced), errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("mark pod failed: %w", err)
		}
	}
	_, err := g.st.DeleteWithOptions(ctx, store.Pods, pod.Namespace, pod.Name, store.DeleteOptions{
		Preconditions:      store.Preconditions{UID: pod.UID},
		GracePeriodSeconds: ptr.To[int64](0),
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}
