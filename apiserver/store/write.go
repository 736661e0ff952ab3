package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
)

// UpdateOptions select what an update writes.
type UpdateOptions struct {
	// Subresource "" updates the main resource (for resources with a status
	// subresource the stored status is kept); "status" takes only the status
	// from the new object. Any other value, or "status" for a resource
	// without status, gives an error wrapping ErrNotFound.
	Subresource string
}

// request is one queued write.
type request struct {
	ctx       context.Context
	op        Operation
	res       *Resource
	obj       Object // Create, Update: a private copy of the caller's object
	namespace string // Update (with fn), Delete
	name      string
	rv        string         // Delete precondition
	uid       types.UID      // Delete precondition
	del       *DeleteOptions // DeleteWithOptions; nil = Delete (remove at once)
	sub       string         // Update subresource
	fn        func(cur Object) (Object, error)
	done      chan result // buffered: the writer never blocks answering
}

type result struct {
	obj Object
	err error
}

// Create stores a new object and returns a copy of what was stored. It sets
// uid, creationTimestamp, generation=1 and resourceVersion, resets what
// kube-apiserver resets on create (a Service's or Pod's status, a Namespace's
// phase to Active), generates the name from metadata.generateName when name is
// empty, and runs the resource's Admitter. Errors: ErrInvalid (wrong type, no
// name, namespace missing for a namespaced resource or set for a
// cluster-scoped one), ErrNotFound (the namespace does not exist),
// ErrAlreadyExists, or the Admitter's error unchanged. obj itself is not
// modified.
func (s *Store) Create(ctx context.Context, res *Resource, obj Object) (Object, error) {
	if err := checkObject(res, obj); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	o := obj.DeepCopyObject().(Object)
	if o.GetName() == "" && o.GetGenerateName() == "" {
		return nil, fmt.Errorf("create %s: %w: metadata.name or metadata.generateName is required", res.Name, ErrInvalid)
	}
	if err := checkNamespace(res, o.GetNamespace(), o.GetName()); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	res.setTypeMeta(o)
	return s.do(ctx, &request{op: Create, res: res, obj: o})
}

// Update replaces the object named by obj's namespace/name and returns a copy
// of the stored result. If obj's resourceVersion is set and differs from the
// stored one → ErrConflict; empty = unconditional. A set uid that differs from
// the stored one → ErrConflict. uid, creationTimestamp and generation are kept;
// generation is incremented when anything but metadata and status changed (for
// EndpointSlices also labels). See UpdateOptions for status handling. The
// Admitter sees the merged object. An update that changes nothing writes
// nothing, publishes no event and keeps the resourceVersion. obj itself is not
// modified.
func (s *Store) Update(ctx context.Context, res *Resource, obj Object, opts UpdateOptions) (Object, error) {
	if err := checkObject(res, obj); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if err := checkKey(res, obj.GetNamespace(), obj.GetName()); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if err := checkSubresource(res, opts.Subresource); err != nil {
		return nil, fmt.Errorf("update %s %q: %w", res.Name, obj.GetName(), err)
	}
	o := obj.DeepCopyObject().(Object)
	res.setTypeMeta(o)
	return s.do(ctx, &request{op: Update, res: res, obj: o, namespace: o.GetNamespace(), name: o.GetName(), sub: opts.Subresource})
}

// GuaranteedUpdate reads the current object and calls fn with a private copy,
// in the writer (so no conflict can happen); fn returns the new object (the
// store takes ownership of it; its resourceVersion is ignored), or an error to
// abort (nothing written, the error is returned unchanged). Returning the
// object unchanged performs no write and publishes no event. The rest is as
// Update. fn must not call the store (it would deadlock) and should be quick:
// every other write waits for it.
func (s *Store) GuaranteedUpdate(ctx context.Context, res *Resource, namespace, name string,
	opts UpdateOptions, fn func(cur Object) (Object, error)) (Object, error) {
	if err := checkKey(res, namespace, name); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if err := checkSubresource(res, opts.Subresource); err != nil {
		return nil, fmt.Errorf("update %s %q: %w", res.Name, name, err)
	}
	if fn == nil {
		return nil, fmt.Errorf("update %s %q: %w: nil update function", res.Name, name, ErrInvalid)
	}
	return s.do(ctx, &request{op: Update, res: res, namespace: namespace, name: name, sub: opts.Subresource, fn: fn})
}

// Delete removes the object at once and returns its last state, carrying the
// deletion's resourceVersion. If rv != "" and differs from the stored
// resourceVersion → ErrConflict. It never deletes gracefully: a Pod, running or
// terminating, is removed in one step with a single Deleted event (what
// in-process callers cleaning up after themselves want); the API's DELETE uses
// DeleteWithOptions, which does what kube-apiserver does. Deleting a Namespace also deletes every object
// in it, in the same transaction (each gets its own resourceVersion and Deleted
// event, before the Namespace's own); the Admitter of every deleted object is
// called, and if any refuses, nothing is deleted.
func (s *Store) Delete(ctx context.Context, res *Resource, namespace, name string, rv string) (Object, error) {
	if err := checkKey(res, namespace, name); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	return s.do(ctx, &request{op: Delete, res: res, namespace: namespace, name: name, rv: rv})
}

// do queues r for the writer and waits for its answer. If ctx ends while the
// request waits, ctx's error is returned; the write may then still happen (as
// with a timed-out etcd request) unless the writer had not started it yet.
func (s *Store) do(ctx context.Context, r *request) (Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.ctx = ctx
	r.done = make(chan result, 1)
	select {
	case s.reqs <- r:
	case <-s.closing:
		return nil, fmt.Errorf("%s %s: %w", r.op, r.res.Name, ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var res result
	select {
	case res = <-r.done:
	case <-s.writerDone:
		select {
		case res = <-r.done:
		default:
			return nil, fmt.Errorf("%s %s: %w", r.op, r.res.Name, ErrClosed)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if res.err != nil {
		return nil, res.err
	}
	return res.obj.DeepCopyObject().(Object), nil
}

// maxLinger bounds how long the writer waits for expected requests before
// starting a batch (see gather).
const maxLinger = 2 * time.Millisecond

// writer is the single goroutine that applies writes: it takes the queued
// requests (up to maxBatch) and commits them in one transaction.
func (s *Store) writer() {
	defer close(s.writerDone)
	reqs := make([]*request, 0, maxBatch)
	expect, linger := 0, time.Duration(0)
	for {
		select {
		case r := <-s.reqs:
			reqs = s.gather(append(reqs[:0], r), expect, linger)
			start := time.Now()
			s.runBatch(reqs)
			// The callers just answered tend to come back with their next
			// write; together with those already waiting they are what the
			// next batch can expect.
			expect = min(maxBatch, len(reqs)+len(s.reqs))
			linger = min(time.Since(start)/2, maxLinger)
			clear(reqs)
		case <-s.closing:
			for {
				select {
				case r := <-s.reqs:
					r.done <- result{err: fmt.Errorf("%s %s: %w", r.op, r.res.Name, ErrClosed)}
				default:
					return
				}
			}
		}
	}
}

// gather adds the queued requests to reqs. If fewer than expect are there, it
// waits up to linger for more, as PostgreSQL's commit_delay does: without
// this, N concurrent clients settle into two cohorts of N/2 that alternate,
// one waiting while the other's batch commits, and each fsync serves only half
// of them. The wait is at most half the previous batch's duration, and none
// for a lone client (expect is 1).
func (s *Store) gather(reqs []*request, expect int, linger time.Duration) []*request {
	drain := func() {
		for len(reqs) < maxBatch {
			select {
			case r := <-s.reqs:
				reqs = append(reqs, r)
			default:
				return
			}
		}
	}
	drain()
	if len(reqs) >= expect || linger <= 0 {
		return reqs
	}
	timer := time.NewTimer(linger)
	defer timer.Stop()
	for len(reqs) < expect {
		select {
		case r := <-s.reqs:
			reqs = append(reqs, r)
		case <-timer.C:
			drain()
			return reqs
		case <-s.closing:
			return reqs
		}
	}
	drain()
	return reqs
}

// batch is the state of one group commit: the transaction, the last assigned
// resourceVersion, and the objects staged so far (visible to later requests
// of the same batch).
type batch struct {
	s       *Store
	tx      *bolt.Tx
	rv      uint64
	overlay map[objKey]Object // nil value = deleted in this batch
	events  []Event
	undos   []func()
	fatal   error // the transaction can no longer be trusted: the batch fails
}

type objKey struct {
	res             *Resource
	namespace, name string
}

// runBatch applies reqs in order in one transaction, commits, publishes and
// answers every request. If staging one request breaks the transaction (a
// bbolt Put error), everything is rolled back and undone, that request fails,
// and the others are applied again in a fresh transaction. If the commit
// fails, every request of the batch fails.
func (s *Store) runBatch(reqs []*request) {
	results := make([]result, len(reqs))
	todo := make([]int, len(reqs))
	for i := range todo {
		todo[i] = i
	}
	for {
		culprit := s.attempt(reqs, todo, results)
		if culprit < 0 {
			break
		}
		todo = slices.DeleteFunc(todo, func(i int) bool { return i == culprit })
	}
	for i, r := range reqs {
		r.done <- results[i]
	}
}

// attempt runs the requests reqs[todo...] in one transaction and fills their
// results. It returns the index of a request whose staging broke the
// transaction (after rolling back and undoing everything), or -1.
func (s *Store) attempt(reqs []*request, todo []int, results []result) (culprit int) {
	tx, err := s.db.Begin(true)
	if err != nil {
		err = fmt.Errorf("begin transaction: %w", err)
		s.log.Error("write batch failed", "err", err, "requests", len(todo))
		for _, i := range todo {
			results[i] = result{err: err}
		}
		return -1
	}
	b := &batch{s: s, tx: tx, rv: s.rv, overlay: make(map[objKey]Object)}
	undoAll := func() {
		for i := len(b.undos) - 1; i >= 0; i-- {
			b.undos[i]()
		}
	}
	for _, i := range todo {
		r := reqs[i]
		if err := r.ctx.Err(); err != nil {
			results[i] = result{err: err}
			continue
		}
		obj, err := b.apply(r)
		if b.fatal != nil {
			_ = tx.Rollback()
			undoAll()
			s.log.Error("staging a write broke the transaction; retrying the batch without it",
				"err", b.fatal, "resource", r.res.Name, "requests", len(todo))
			results[i] = result{err: b.fatal}
			return i
		}
		results[i] = result{obj: obj, err: err}
	}
	if len(b.events) == 0 { // only refusals and no-op updates
		_ = tx.Rollback()
		return -1
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], b.rv)
	err = tx.Bucket([]byte(metaBucket)).Put([]byte(rvKey), v[:])
	if err != nil {
		err = fmt.Errorf("stage resourceVersion: %w", err)
	} else if s.failCommit != nil {
		err = s.failCommit()
	}
	if err != nil {
		_ = tx.Rollback()
	} else if err = tx.Commit(); err != nil { // bbolt rolls back a failed commit itself
		err = fmt.Errorf("commit: %w", err)
	}
	if err != nil {
		undoAll()
		s.log.Error("write batch failed, nothing written", "err", err, "requests", len(todo), "changes", len(b.events))
		for _, i := range todo {
			if results[i].err == nil {
				results[i] = result{err: fmt.Errorf("write %s: %w", reqs[i].res.Name, err)}
			}
		}
		return -1
	}
	s.commits.Add(1)
	s.changes.Add(uint64(len(b.events)))
	s.publish(b.events)
	return -1
}

// publish makes committed events visible: the in-memory view, the watch
// history and the resourceVersion change together, under one lock.
func (s *Store) publish(events []Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range events {
		if ev.Type == watch.Deleted {
			s.remove(ev.Resource, ev.Object.GetNamespace(), ev.Object.GetName())
		} else {
			s.put(ev.Resource, ev.Object)
		}
		s.hist.add(ev)
	}
	s.rv = events[len(events)-1].ResourceVersion
	close(s.notify)
	s.notify = make(chan struct{})
}

// plan is what one request will change, computed before anything is staged.
type plan struct {
	ops    []stagedOp
	undos  []func()
	result Object
}

type stagedOp struct {
	ev   Event
	data []byte // encoded object; nil for a delete
}

func (p *plan) addUndo(u func()) {
	if u != nil {
		p.undos = append(p.undos, u)
	}
}

func (p *plan) runUndo() {
	for i := len(p.undos) - 1; i >= 0; i-- {
		p.undos[i]()
	}
}

// stage adds a change to p with the next resourceVersion after those already
// planned. For Deleted, obj is ignored and the event carries a copy of old.
func (p *plan) stage(b *batch, typ watch.EventType, res *Resource, obj, old Object) error {
	rv := b.rv + uint64(len(p.ops)) + 1
	if typ == watch.Deleted {
		obj = old.DeepCopyObject().(Object)
	}
	obj.SetResourceVersion(strconv.FormatUint(rv, 10))
	op := stagedOp{ev: Event{Type: typ, Resource: res, Object: obj, Old: old, ResourceVersion: rv}}
	if typ != watch.Deleted {
		data, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode %s %q: %w", res.Name, obj.GetName(), err)
		}
		op.data = data
	}
	p.ops = append(p.ops, op)
	p.result = obj
	return nil
}

// apply plans and stages one request. An error refuses this request only
// (nothing staged), unless b.fatal is set: then the transaction can no longer
// be trusted and the whole batch must fail.
func (b *batch) apply(r *request) (Object, error) {
	var p plan
	var err error
	switch r.op {
	case Create:
		err = b.planCreate(r, &p)
	case Update:
		err = b.planUpdate(r, &p)
	case Delete:
		err = b.planDelete(r, &p)
	default:
		err = fmt.Errorf("%w: unknown operation %q", ErrInvalid, r.op)
	}
	if err != nil {
		p.runUndo()
		return nil, err
	}
	if len(p.ops) == 0 { // an update that changes nothing
		p.runUndo()
		return p.result, nil
	}
	for _, op := range p.ops {
		if err := b.write(op); err != nil {
			p.runUndo()
			b.fatal = err
			return nil, err
		}
		b.events = append(b.events, op.ev)
	}
	b.rv += uint64(len(p.ops))
	b.undos = append(b.undos, p.undos...)
	return p.result, nil
}

// write puts (or deletes) one staged change in the transaction and the overlay.
func (b *batch) write(op stagedOp) error {
	o, res := op.ev.Object, op.ev.Resource
	key := objectKey(o.GetNamespace(), o.GetName())
	if b.s.failStage != nil {
		if err := b.s.failStage(res, o); err != nil {
			return fmt.Errorf("stage %s %q: %w", res.Name, key, err)
		}
	}
	bucket := b.tx.Bucket([]byte(res.Name))
	var err error
	if op.ev.Type == watch.Deleted {
		err = bucket.Delete(key)
		b.overlay[objKey{res, o.GetNamespace(), o.GetName()}] = nil
	} else {
		err = bucket.Put(key, op.data)
		b.overlay[objKey{res, o.GetNamespace(), o.GetName()}] = o
	}
	if err != nil {
		return fmt.Errorf("stage %s %q: %w", res.Name, key, err)
	}
	return nil
}

// get returns the current object (staged in this batch, or committed), or nil.
func (b *batch) get(res *Resource, namespace, name string) Object {
	if o, ok := b.overlay[objKey{res, namespace, name}]; ok {
		return o
	}
	return b.s.objs[res][namespace][name]
}

// members returns the current objects of res in namespace, sorted by name.
func (b *batch) members(res *Resource, namespace string) []Object {
	names := make(map[string]bool)
	for name := range b.s.objs[res][namespace] {
		names[name] = true
	}
	for k := range b.overlay {
		if k.res == res && k.namespace == namespace {
			names[k.name] = true
		}
	}
	var out []Object
	for name := range names {
		if o := b.get(res, namespace, name); o != nil {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, compareObjects)
	return out
}

// admit runs res's Admitter, turning a panic into an error so that one bad
// request cannot stop the writer.
func (b *batch) admit(ctx context.Context, res *Resource, op Operation, old, obj Object) (undo func(), err error) {
	a := b.s.admitters[res.Name]
	if a == nil {
		return nil, nil
	}
	defer func() {
		if p := recover(); p != nil {
			b.s.log.Error("admitter panicked", "resource", res.Name, "op", op, "panic", p)
			undo, err = nil, fmt.Errorf("admit %s %s: panic: %v", op, res.Name, p)
		}
	}()
	undo, err = a.Admit(ctx, op, old, obj)
	if err != nil {
		return nil, err
	}
	return undo, nil
}

func (b *batch) planCreate(r *request, p *plan) error {
	res, obj := r.res, r.obj
	if obj.GetName() == "" {
		if err := b.generateName(res, obj); err != nil {
			return err
		}
	}
	ns, name := obj.GetNamespace(), obj.GetName()
	if res.Namespaced && b.get(Namespaces, "", ns) == nil {
		return fmt.Errorf("create %s %q: namespaces %q: %w", res.Name, name, ns, ErrNotFound)
	}
	if b.get(res, ns, name) != nil {
		return fmt.Errorf("create %s: %w", keyString(res, ns, name), ErrAlreadyExists)
	}
	obj.SetUID(uuid.NewUUID())
	obj.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	obj.SetGeneration(0)
	if res.tracksGeneration {
		obj.SetGeneration(1)
	}
	obj.SetResourceVersion("")
	obj.SetDeletionTimestamp(nil)
	obj.SetDeletionGracePeriodSeconds(nil)
	if res.prepareForCreate != nil {
		res.prepareForCreate(obj)
	}
	undo, err := b.admit(r.ctx, res, Create, nil, obj)
	if err != nil {
		return err
	}
	p.addUndo(undo)
	if err := sameKey(res, obj, ns, name); err != nil {
		return err
	}
	res.setTypeMeta(obj)
	return p.stage(b, watch.Added, res, obj, nil)
}

// generateName picks a free name from metadata.generateName, as
// kube-apiserver's SimpleNameGenerator does (prefix + 5 random characters).
func (b *batch) generateName(res *Resource, obj Object) error {
	base := obj.GetGenerateName()
	const maxNameLength, randomLength = 63, 5
	if len(base) > maxNameLength-randomLength {
		base = base[:maxNameLength-randomLength]
	}
	for range 16 {
		name := base + utilrand.String(randomLength)
		if b.get(res, obj.GetNamespace(), name) == nil {
			obj.SetName(name)
			return nil
		}
	}
	return fmt.Errorf("create %s with generateName %q: %w: no free name found", res.Name, base, ErrAlreadyExists)
}

func (b *batch) planUpdate(r *request, p *plan) error {
	res, ns, name := r.res, r.namespace, r.name
	cur := b.get(res, ns, name)
	if cur == nil {
		return fmt.Errorf("update: %w", notFound(res, ns, name))
	}
	proposed := r.obj
	if r.fn != nil {
		out, err := callUpdateFn(r.fn, cur.DeepCopyObject().(Object))
		if err != nil {
			return err
		}
		if out == nil || reflect.TypeOf(out) != reflect.TypeOf(cur) {
			return fmt.Errorf("update %s: %w: update function returned %T", keyString(res, ns, name), ErrInvalid, out)
		}
		proposed = out
	} else if rv := proposed.GetResourceVersion(); rv != "" && rv != cur.GetResourceVersion() {
		return fmt.Errorf("update %s: %w: resourceVersion %s is not the stored %s (the object has been modified)",
			keyString(res, ns, name), ErrConflict, rv, cur.GetResourceVersion())
	}
	if err := sameKey(res, proposed, ns, name); err != nil {
		return err
	}
	if uid := proposed.GetUID(); uid != "" && uid != cur.GetUID() {
		return fmt.Errorf("update %s: %w: uid %s is not the stored %s", keyString(res, ns, name), ErrConflict, uid, cur.GetUID())
	}
	var next Object
	switch r.sub {
	case "":
		next = proposed
		if res.StatusSubresource {
			res.copyStatus(next, cur)
		}
		if res.prepareForUpdate != nil {
			res.prepareForUpdate(next, cur)
		}
	case "status":
		next = cur.DeepCopyObject().(Object)
		res.copyStatus(next, proposed)
	default:
		return fmt.Errorf("update %s: %w", keyString(res, ns, name), checkSubresource(res, r.sub))
	}
	next.SetUID(cur.GetUID())
	next.SetCreationTimestamp(cur.GetCreationTimestamp())
	next.SetGeneration(cur.GetGeneration())
	next.SetDeletionTimestamp(cur.GetDeletionTimestamp())
	next.SetDeletionGracePeriodSeconds(cur.GetDeletionGracePeriodSeconds())
	next.SetResourceVersion(cur.GetResourceVersion())
	res.setTypeMeta(next)
	undo, err := b.admit(r.ctx, res, Update, cur.DeepCopyObject().(Object), next)
	if err != nil {
		return err
	}
	p.addUndo(undo)
	if err := sameKey(res, next, ns, name); err != nil {
		return err
	}
	if res.specChanged(cur, next) {
		next.SetGeneration(cur.GetGeneration() + 1)
	}
	next.SetResourceVersion(cur.GetResourceVersion())
	res.setTypeMeta(next)
	data, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode %s: %w", keyString(res, ns, name), err)
	}
	if bytes.Equal(data, b.tx.Bucket([]byte(res.Name)).Get(objectKey(ns, name))) {
		p.result = next // nothing changed: no write, no event
		return nil
	}
	return p.stage(b, watch.Modified, res, next, cur)
}

// callUpdateFn calls a GuaranteedUpdate function, turning a panic into an error.
func callUpdateFn(fn func(Object) (Object, error), cur Object) (out Object, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("update function panicked: %v", p)
		}
	}()
	return fn(cur)
}

func (b *batch) planDelete(r *request, p *plan) error {
	res, ns, name := r.res, r.namespace, r.name
	cur := b.get(res, ns, name)
	if cur == nil {
		return fmt.Errorf("delete: %w", notFound(res, ns, name))
	}
	if r.uid != "" && r.uid != cur.GetUID() {
		return fmt.Errorf("delete %s: %w: uid %s in the precondition is not the stored %s (the object might have been deleted and then recreated)",
			keyString(res, ns, name), ErrConflict, r.uid, cur.GetUID())
	}
	if r.rv != "" && r.rv != cur.GetResourceVersion() {
		return fmt.Errorf("delete %s: %w: resourceVersion %s is not the stored %s",
			keyString(res, ns, name), ErrConflict, r.rv, cur.GetResourceVersion())
	}
	step := beforeDelete(res, cur, r.del, b.s.now())
	if step.mark != nil {
		res.setTypeMeta(step.mark)
		if err := p.stage(b, watch.Modified, res, step.mark, cur); err != nil {
			return err
		}
		cur = step.mark
	}
	if !step.remove {
		if step.mark == nil {
			p.result = cur // graceful deletion already pending: nothing written
		}
		return nil
	}
	undo, err := b.admit(r.ctx, res, Delete, cur.DeepCopyObject().(Object), nil)
	if err != nil {
		return err
	}
	p.addUndo(undo)
	if res == Namespaces {
		for _, cres := range allResources {
			if !cres.Namespaced {
				continue
			}
			for _, o := range b.members(cres, name) {
				undo, err := b.admit(r.ctx, cres, Delete, o.DeepCopyObject().(Object), nil)
				if err != nil {
					return err
				}
				p.addUndo(undo)
				if err := p.stage(b, watch.Deleted, cres, nil, o); err != nil {
					return err
				}
			}
		}
	}
	return p.stage(b, watch.Deleted, res, nil, cur)
}

// sameKey refuses an Admitter's or update function's renaming of the object.
func sameKey(res *Resource, obj Object, namespace, name string) error {
	if obj.GetNamespace() != namespace || obj.GetName() != name {
		return fmt.Errorf("%s: %w: object was renamed to %s", keyString(res, namespace, name), ErrInvalid,
			keyString(res, obj.GetNamespace(), obj.GetName()))
	}
	return nil
}

func keyString(res *Resource, namespace, name string) string {
	if namespace == "" {
		return fmt.Sprintf("%s %q", res.Name, name)
	}
	return fmt.Sprintf("%s %q in namespace %q", res.Name, name, namespace)
}

// checkObject validates that obj is a non-nil object of res's type.
func checkObject(res *Resource, obj Object) error {
	if err := checkResource(res); err != nil {
		return err
	}
	if obj == nil || reflect.ValueOf(obj).IsNil() {
		return fmt.Errorf("%s: %w: nil object", res.Name, ErrInvalid)
	}
	if reflect.TypeOf(obj) != reflect.TypeOf(res.New()) {
		return fmt.Errorf("%s: %w: object is a %T", res.Name, ErrInvalid, obj)
	}
	return nil
}

// checkNamespace validates the namespace for res's scope, and that the
// object's key fits bbolt.
func checkNamespace(res *Resource, namespace, name string) error {
	switch {
	case len(namespace)+1+len(name) > bolt.MaxKeySize:
		return fmt.Errorf("%s: %w: namespace and name longer than %d bytes", res.Name, ErrInvalid, bolt.MaxKeySize)
	case res.Namespaced && namespace == "":
		return fmt.Errorf("%s %q: %w: namespace is required", res.Name, name, ErrInvalid)
	case !res.Namespaced && namespace != "":
		return fmt.Errorf("%s %q: %w: resource is cluster-scoped, got namespace %q", res.Name, name, ErrInvalid, namespace)
	}
	return nil
}

func checkSubresource(res *Resource, sub string) error {
	if sub == "" || (sub == "status" && res.StatusSubresource) {
		return nil
	}
	return fmt.Errorf("subresource %q of %s: %w", sub, res.Name, ErrNotFound)
}
