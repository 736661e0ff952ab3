package store

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// DefaultTerminationGracePeriodSeconds is the grace period of a Pod whose
// spec.terminationGracePeriodSeconds is not set (kube-apiserver's defaulting
// sets 30, so in practice the field is always set).
const DefaultTerminationGracePeriodSeconds int64 = 30

// Preconditions must hold for a delete to be carried out; a failed one gives
// an error wrapping ErrConflict and changes nothing.
type Preconditions struct {
	UID             types.UID // "" = any uid
	ResourceVersion string    // "" = any resourceVersion
}

// DeleteOptions are the options of DeleteWithOptions, the part of
// metav1.DeleteOptions the store implements.
type DeleteOptions struct {
	Preconditions Preconditions
	// GracePeriodSeconds requests a grace period for kinds with graceful
	// deletion (Pods). nil = the object's own (a Pod's
	// spec.terminationGracePeriodSeconds); 0 = delete at once (kubectl
	// --grace-period=0 --force); a negative value counts as 1, as in
	// kube-apiserver. Ignored for other kinds, which are always deleted at once.
	GracePeriodSeconds *int64
}

// DeleteWithOptions deletes the object the way kube-apiserver's generic
// registry does (rest.BeforeDelete with the kind's CheckGracefulDelete):
//
//   - Kinds without graceful deletion (everything but Pods) are removed at
//     once, as by Delete.
//   - A Pod is marked for deletion: metadata.deletionTimestamp = now + grace
//     (whole seconds) and metadata.deletionGracePeriodSeconds = grace,
//     metadata.generation + 1, written as an update (a Modified event, a new
//     resourceVersion). grace is opts.GracePeriodSeconds, else the Pod's
//     spec.terminationGracePeriodSeconds (DefaultTerminationGracePeriodSeconds
//     when unset); it is 0 for a Pod that is not scheduled (no spec.nodeName)
//     or already Succeeded or Failed. The Pod stays stored ("Terminating")
//     until its kubelet deletes it with grace 0. With grace 0 the same
//     transaction also removes the Pod: watchers see the Modified event (with
//     deletionGracePeriodSeconds 0) immediately followed by Deleted, exactly as
//     from kube-apiserver.
//   - A Pod that is already terminating: a grace period shorter than its
//     deletionGracePeriodSeconds moves the deletionTimestamp earlier by the
//     difference and records the new grace (0 removes it, as above); a longer,
//     equal or absent one changes nothing (no write, no event) and returns the
//     stored object. A terminating Pod whose deletionGracePeriodSeconds is 0 or
//     unset is removed at once.
//
// Preconditions are checked first (ErrConflict). It returns the stored object
// when it was only marked (its deletionGracePeriodSeconds is then > 0), or its
// last state, carrying the deletion's resourceVersion, when it was removed; so
// the object is still stored exactly when the returned one has
// deletionGracePeriodSeconds > 0 (see IsTerminating).
//
// The Admitter sees a Delete only when the object is removed, never for the
// marking update (as kube-apiserver does not run the strategy's update
// validation for it), so what a Delete releases is released once. Updates of a
// terminating object keep its deletionTimestamp and deletionGracePeriodSeconds:
// it cannot be un-deleted. Deleting a Namespace removes its objects, terminating
// or not, at once (see Delete). Finalizers are not implemented: they never
// delay a removal.
func (s *Store) DeleteWithOptions(ctx context.Context, res *Resource, namespace, name string, opts DeleteOptions) (Object, error) {
	if err := checkKey(res, namespace, name); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	if g := opts.GracePeriodSeconds; g != nil {
		v := *g
		opts.GracePeriodSeconds = &v // the caller's value is never modified
	}
	return s.do(ctx, &request{op: Delete, res: res, namespace: namespace, name: name,
		rv: opts.Preconditions.ResourceVersion, uid: opts.Preconditions.UID, del: &opts})
}

// IsTerminating reports whether obj is marked for graceful deletion and still
// stored: it has a deletionTimestamp and a deletionGracePeriodSeconds > 0. An
// object returned by DeleteWithOptions with grace 0 (removed) has a
// deletionTimestamp but is not terminating.
func IsTerminating(obj Object) bool {
	g := obj.GetDeletionGracePeriodSeconds()
	return obj.GetDeletionTimestamp() != nil && g != nil && *g > 0
}

// podGracePeriod is kube-apiserver's pod strategy CheckGracefulDelete: the
// grace period a delete of pod with the requested grace (nil = the pod's own)
// gets.
func podGracePeriod(obj Object, requested *int64) int64 {
	pod := obj.(*corev1.Pod)
	period := DefaultTerminationGracePeriodSeconds
	switch {
	case requested != nil:
		period = *requested
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" { // never started: nothing to wait for
		period = 0
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		period = 0
	}
	if period < 0 {
		period = 1
	}
	return period
}

// deleteStep is what a delete request does to the object: its marking
// update, if any, then its removal, if any. Neither = the graceful deletion
// already pending is kept as it is.
type deleteStep struct {
	mark   Object // the object with deletionTimestamp set (or moved earlier); nil = no update
	remove bool
}

// beforeDelete decides a delete of cur with opts (nil = Delete: remove at
// once), as kube-apiserver's rest.BeforeDelete and the generic registry's
// Delete do. now is the current time.
func beforeDelete(res *Resource, cur Object, opts *DeleteOptions, now time.Time) deleteStep {
	if opts == nil || res.gracePeriod == nil {
		return deleteStep{remove: true}
	}
	requested := opts.GracePeriodSeconds
	if requested != nil && *requested < 0 {
		one := int64(1)
		requested = &one
	}
	if ts := cur.GetDeletionTimestamp(); ts != nil {
		curGrace := cur.GetDeletionGracePeriodSeconds()
		if curGrace == nil || *curGrace == 0 {
			return deleteStep{remove: true}
		}
		have := max(*curGrace, 1) // a stored negative grace counts as 1
		if requested == nil || *requested >= have {
			return deleteStep{} // only a shorter grace period may be asked for
		}
		mark := cur.DeepCopyObject().(Object)
		moved := metav1.NewTime(ts.Add(time.Duration(*requested-have) * time.Second))
		mark.SetDeletionTimestamp(&moved)
		mark.SetDeletionGracePeriodSeconds(ptr.To(*requested))
		return deleteStep{mark: mark, remove: *requested == 0}
	}
	period := res.gracePeriod(cur, requested)
	mark := cur.DeepCopyObject().(Object)
	ts := metav1.NewTime(now.Add(time.Duration(period) * time.Second).Truncate(time.Second))
	mark.SetDeletionTimestamp(&ts)
	mark.SetDeletionGracePeriodSeconds(ptr.To(period))
	if g := mark.GetGeneration(); g > 0 {
		mark.SetGeneration(g + 1)
	}
	return deleteStep{mark: mark, remove: period == 0}
}

func ptrTo[T any](v T) *T { return &v }
