// Package informer feeds the store's committed changes to in-process consumers — the dataplane's
// per-node proxiers, the DNS index, the node side — the way client-go's informers feed kube-proxy
// and CoreDNS: list once, then watch from the list's resourceVersion, and when a watch ends (the
// consumer fell behind, or the history no longer reaches back far enough) list again and replay the
// difference as adds, updates and deletes. Consumers therefore see every object's latest state and
// never a stale one, and they never read the store themselves.
package informer

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/svclab/svclab/apiserver/store"
)

// Handler receives the changes of one resource. Calls are made from a single goroutine per Run, in
// commit order; a handler must not block for long.
type Handler interface {
	OnAdd(obj store.Object)
	OnUpdate(old, obj store.Object)
	OnDelete(obj store.Object)
}

// Funcs adapts plain functions to Handler; nil fields are skipped.
type Funcs struct {
	Add    func(obj store.Object)
	Update func(old, obj store.Object)
	Delete func(obj store.Object)
}

// OnAdd calls f.Add when set.
func (f Funcs) OnAdd(obj store.Object) {
	if f.Add != nil {
		f.Add(obj)
	}
}

// OnUpdate calls f.Update when set.
func (f Funcs) OnUpdate(old, obj store.Object) {
	if f.Update != nil {
		f.Update(old, obj)
	}
}

// OnDelete calls f.Delete when set.
func (f Funcs) OnDelete(obj store.Object) {
	if f.Delete != nil {
		f.Delete(obj)
	}
}

// Run lists res in every namespace, hands each object to h.OnAdd, calls synced (if non-nil) once the
// first list has been delivered, and then delivers every committed change until ctx is done. It
// returns nil when ctx is done; it never returns early on a broken watch (it re-lists instead).
func Run(ctx context.Context, st *store.Store, res *store.Resource, h Handler, synced func(), logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "informer", "resource", res.Name)
	known := map[string]store.Object{}
	first := true
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		objs, rv, err := st.List(ctx, res, "", store.ListOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Error("list failed; retrying", "err", err, "backoff", backoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		replay(known, objs, h)
		if first {
			first = false
			if synced != nil {
				synced()
			}
		}
		ch, err := st.Watch(ctx, res, "", rv)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Warn("watch failed; re-listing", "err", err, "resourceVersion", rv)
			continue
		}
		for ev := range ch {
			deliver(known, ev, h)
		}
		if ctx.Err() == nil {
			logger.Info("watch closed; re-listing")
		}
	}
	return nil
}

// replay diffs a fresh list against what the consumer has seen and delivers the difference.
func replay(known map[string]store.Object, objs []store.Object, h Handler) {
	seen := make(map[string]bool, len(objs))
	for _, obj := range objs {
		k := key(obj)
		seen[k] = true
		old, ok := known[k]
		switch {
		case !ok:
			h.OnAdd(obj)
		case old.GetResourceVersion() != obj.GetResourceVersion():
			h.OnUpdate(old, obj)
		}
		known[k] = obj
	}
	for k, old := range known {
		if !seen[k] {
			delete(known, k)
			h.OnDelete(old)
		}
	}
}

func deliver(known map[string]store.Object, ev store.Event, h Handler) {
	k := key(ev.Object)
	switch ev.Type {
	case watch.Added:
		if old, ok := known[k]; ok {
			// Already seen through a re-list that raced the watch: it is an update at most.
			if old.GetResourceVersion() != ev.Object.GetResourceVersion() {
				h.OnUpdate(old, ev.Object)
			}
		} else {
			h.OnAdd(ev.Object)
		}
		known[k] = ev.Object
	case watch.Modified:
		old, ok := known[k]
		if !ok {
			h.OnAdd(ev.Object)
		} else {
			h.OnUpdate(old, ev.Object)
		}
		known[k] = ev.Object
	case watch.Deleted:
		if _, ok := known[k]; ok {
			delete(known, k)
			h.OnDelete(ev.Object)
		}
	}
}

func key(obj store.Object) string {
	return obj.GetNamespace() + "/" + obj.GetName()
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
