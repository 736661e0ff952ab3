package controllers

import (
	"sync"
	"time"
)

// Retry backoff of a key whose sync failed: baseBackoff doubled per
// consecutive failure, capped at maxBackoff (client-go's default controller
// rate limiter starts at 5ms too; its cap of 1000s is too long for a lab).
const (
	baseBackoff = 5 * time.Millisecond
	maxBackoff  = 10 * time.Second
)

// queue is a small keyed work queue in the style of client-go's workqueue:
// a key added several times before a worker takes it is processed once
// (bursts coalesce), a key is never processed by two workers at once, and a
// key added while it is being processed is processed again after Done.
// Delayed adds (AddAfter, AddRateLimited) use timers; the earliest pending
// deadline of a key wins.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []string            // keys ready to be taken, FIFO
	dirty      map[string]bool     // keys waiting (in order, or re-added while processing)
	processing map[string]bool     // keys taken by a worker and not yet Done
	failures   map[string]int      // consecutive failures per key
	timers     map[string]deadline // pending delayed adds
	idle       []chan struct{}     // closed when nothing is dirty or processing
	shutdown   bool
}

type deadline struct {
	at    time.Time
	timer *time.Timer
}

func newQueue() *queue {
	q := &queue{
		dirty:      make(map[string]bool),
		processing: make(map[string]bool),
		failures:   make(map[string]int),
		timers:     make(map[string]deadline),
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add marks key for processing. It is a no-op after ShutDown and when key is
// already waiting.
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *queue) addLocked(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // Done re-queues it
	}
	q.order = append(q.order, key)
	q.cond.Signal()
}

// AddAfter adds key once d has passed (immediately if d <= 0). If key already
// has an earlier pending delayed add, that one is kept.
func (q *queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	at := time.Now().Add(d)
	if cur, ok := q.timers[key]; ok {
		if !cur.at.After(at) {
			return
		}
		cur.timer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if cur, ok := q.timers[key]; ok && cur.timer == t {
			delete(q.timers, key)
		}
		q.addLocked(key)
	})
	q.timers[key] = deadline{at: at, timer: t}
}

// AddRateLimited adds key after the backoff for its consecutive failures and
// counts one more failure.
func (q *queue) AddRateLimited(key string) {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	d := baseBackoff << min(n, 30)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	q.AddAfter(key, d)
}

// Forget resets key's failure count (call it after a successful sync).
func (q *queue) Forget(key string) {
	q.mu.Lock()
	delete(q.failures, key)
	q.mu.Unlock()
}

// Failures returns the number of consecutive failures recorded for key.
func (q *queue) Failures(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Get blocks until a key is ready and returns it; the caller must call Done
// with it. ok is false once the queue is shut down.
func (q *queue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key = q.order[0]
	q.order[0] = ""
	q.order = q.order[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	return key, true
}

// Done marks key as processed; if it was added again meanwhile, it becomes
// ready again.
func (q *queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] && !q.shutdown {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
	q.notifyIdleLocked()
}

// Len returns the number of keys ready to be taken.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// Idle returns a channel that is closed as soon as no key is waiting or being
// processed (at once if that is already so, or when the queue shuts down).
// Pending delayed adds (retries) do not count as work.
func (q *queue) Idle() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	ch := make(chan struct{})
	q.idle = append(q.idle, ch)
	q.notifyIdleLocked()
	return ch
}

func (q *queue) notifyIdleLocked() {
	if len(q.idle) == 0 || (!q.shutdown && (len(q.dirty) > 0 || len(q.processing) > 0)) {
		return
	}
	for _, ch := range q.idle {
		close(ch)
	}
	q.idle = nil
}

// ShutDown makes Get return ok=false to every worker, drops pending delayed
// adds and releases Idle waiters.
func (q *queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, d := range q.timers {
		d.timer.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
	q.notifyIdleLocked()
}
