package store

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/watch"
)

// Event is one committed change. Events are published in commit order
// (resourceVersion order); every resourceVersion numbers exactly one event.
type Event struct {
	Type     watch.EventType // watch.Added, watch.Modified, watch.Deleted
	Resource *Resource
	Object   Object // the new object (for Deleted: the last state, with the deletion's resourceVersion)
	Old      Object // the previous object for Modified and Deleted; nil for Added
	// ResourceVersion is the change's resourceVersion (Object's, as a number).
	ResourceVersion uint64
}

const (
	// watchBuffer is the capacity of each subscriber's channel. The history
	// ring, not this buffer, decides when a subscriber is too far behind.
	watchBuffer = 128
	// scanChunk bounds the events a subscriber examines per read lock.
	scanChunk = 1024
)

// history is the ring of the most recent events: it holds the events with
// resourceVersions base+1 .. base+n, contiguous.
type history struct {
	buf   []Event // grows lazily up to size
	start int     // index of the oldest event
	n     int
	size  int
	base  uint64 // resourceVersion just before the oldest kept event
}

func (h *history) head() uint64 { return h.base + uint64(h.n) }

// add appends ev, dropping the oldest event when full. ev must carry the
// resourceVersion head()+1.
func (h *history) add(ev Event) {
	if ev.ResourceVersion != h.head()+1 {
		panic(fmt.Sprintf("store: event resourceVersion %d published after %d", ev.ResourceVersion, h.head()))
	}
	if h.n < h.size {
		if len(h.buf) < h.size {
			h.buf = append(h.buf, ev)
		} else {
			h.buf[(h.start+h.n)%h.size] = ev
		}
		h.n++
		return
	}
	h.buf[h.start] = ev
	h.start = (h.start + 1) % h.size
	h.base++
}

// at returns the event with resourceVersion rv; base < rv <= head().
func (h *history) at(rv uint64) Event {
	return h.buf[(h.start+int(rv-h.base-1))%h.size]
}

// Watch streams committed changes of res (nil = all resources) in namespace
// ("" = all; a namespace excludes cluster-scoped objects), starting after
// resourceVersion fromRV (0 = from now on): exactly the events with
// resourceVersion > fromRV, in order, without gaps or duplicates. Each event's
// objects are copies the receiver may modify. If fromRV is older than the kept
// history → ErrGone (re-list, then watch from the list's resourceVersion); a
// fromRV in the future waits for that resourceVersion. The channel is closed
// when ctx is done, when the store closes, or when the subscriber falls more
// than the history size behind (the consumer then re-lists and re-watches, as
// informers do). Never blocks the writer.
func (s *Store) Watch(ctx context.Context, res *Resource, namespace string, fromRV uint64) (<-chan Event, error) {
	if res != nil {
		if err := checkResource(res); err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
		if !res.Namespaced && namespace != "" {
			return nil, fmt.Errorf("watch %s in namespace %q: %w: resource is cluster-scoped", res.Name, namespace, ErrInvalid)
		}
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, fmt.Errorf("watch %v: %w", res, ErrClosed)
	}
	after := fromRV
	if fromRV == 0 {
		after = s.rv
	} else if fromRV < s.hist.base {
		base := s.hist.base
		s.mu.RUnlock()
		return nil, fmt.Errorf("watch %v from resourceVersion %d: %w: oldest available is %d", res, fromRV, ErrGone, base)
	}
	s.watchers.Add(1) // under the lock, so Close cannot be waiting yet
	s.mu.RUnlock()
	out := make(chan Event, watchBuffer)
	go s.forward(ctx, res, namespace, after, out)
	return out, nil
}

// forward feeds one subscriber from the history ring, starting after
// resourceVersion after.
func (s *Store) forward(ctx context.Context, res *Resource, namespace string, after uint64, out chan<- Event) {
	defer s.watchers.Done()
	defer close(out)
	var pending []Event
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return
		}
		if after < s.hist.base {
			base := s.hist.base
			s.mu.RUnlock()
			s.log.Warn("watcher fell behind the history, closing its channel",
				"resource", res.String(), "namespace", namespace, "at", after, "oldest", base)
			return
		}
		head := s.hist.head()
		notify := s.notify
		if after >= head {
			s.mu.RUnlock()
			select {
			case <-notify:
				continue
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			}
		}
		end := min(head, after+scanChunk)
		pending = pending[:0]
		for rv := after + 1; rv <= end; rv++ {
			ev := s.hist.at(rv)
			if (res == nil || ev.Resource == res) && (namespace == "" || ev.Object.GetNamespace() == namespace) {
				pending = append(pending, ev)
			}
		}
		after = end
		s.mu.RUnlock()
		for i, ev := range pending {
			ev.Object = ev.Object.DeepCopyObject().(Object)
			if ev.Old != nil {
				ev.Old = ev.Old.DeepCopyObject().(Object)
			}
			pending[i] = Event{}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			}
		}
	}
}
