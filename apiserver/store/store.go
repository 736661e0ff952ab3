package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Operation is the kind of write an Admitter is asked to admit.
type Operation string

// The operations passed to Admitter.Admit.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// Admitter defaults, validates and allocates for one resource. It runs inside
// the store's serialized write path (one write at a time), before the object is
// staged in the transaction.
type Admitter interface {
	// Admit is called for Create (old == nil), Update (both set; obj is the
	// proposed new object, after the status subresource rule was applied; old is
	// a private copy) and Delete (obj == nil; also once per object removed by a
	// Namespace delete). It may mutate obj (defaults, allocated
	// clusterIP/nodePorts/LB IPs). A non-nil error refuses the write and nothing
	// is written (return *apierrors.StatusError, e.g. apierrors.NewInvalid(kind,
	// name, field.ErrorList)); the returned undo is then ignored. undo, if
	// non-nil, is called when the admitted write does not commit (the bbolt
	// commit failed, the update turned out to change nothing, or another part of
	// the same Namespace delete was refused), to release what Admit took (or
	// re-take what a Delete released). Admit must not call the store (it is
	// called from the store's writer goroutine and would deadlock).
	Admit(ctx context.Context, op Operation, old, obj Object) (undo func(), err error)
	// Rebuild is called once by Open (and before any Admit) with every stored
	// object of the resource (copies, sorted by namespace/name), so that
	// in-memory state such as allocators is rebuilt exactly after a restart.
	Rebuild(objs []Object) error
}

// DefaultHistorySize is the number of events kept for Watch resume when
// Options.HistorySize is not set. 100000 events is tens of seconds of history
// at the benchmark's create rate and hours at lab rates, so a consumer that
// re-watches after a hiccup rarely has to re-list. The ring grows lazily and
// holds pointers: created objects are shared with the in-memory view, but each
// update keeps its previous version alive (about 2 KB per Pod), so a full ring
// of updates costs up to ~200 MB; set a smaller HistorySize to bound that.
const DefaultHistorySize = 100000

// maxBatch bounds the number of queued writes committed in one transaction.
const maxBatch = 512

// Options configure Open.
type Options struct {
	Logger      *slog.Logger        // nil = slog.Default()
	HistorySize int                 // watch history kept for resume (events); <= 0 = DefaultHistorySize
	Admitters   map[string]Admitter // by Resource.Name; resources without one are admitted as given
}

const (
	metaBucket = "svclab.meta"
	rvKey      = "resourceVersion"
)

// Store is the bbolt-backed object store. It is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	log       *slog.Logger
	admitters map[string]Admitter

	reqs       chan *request
	closing    chan struct{} // closed by Close: stop accepting writes
	writerDone chan struct{} // closed when the writer goroutine has exited
	closeOnce  sync.Once
	closeErr   error
	watchers   sync.WaitGroup

	// failCommit, if set (tests only), is called before each commit; an error
	// makes the commit fail as a failing disk would.
	failCommit func() error
	// failStage, if set (tests only), is called before each bbolt Put/Delete of
	// an object; an error breaks the transaction as a failing Put would.
	failStage func(res *Resource, obj Object) error
	// now is the clock of deletionTimestamps (time.Now; tests replace it
	// before the first write).
	now func() time.Time

	commits atomic.Uint64 // committed transactions
	changes atomic.Uint64 // committed changes (events)

	mu     sync.RWMutex // guards everything below
	objs   map[*Resource]map[string]map[string]Object
	rv     uint64 // resourceVersion of the last published change
	hist   history
	notify chan struct{} // closed and replaced on every publish and on close
	closed bool
}

// Open opens (creating if needed) the bbolt file at path, loads every stored
// object, calls each Admitter's Rebuild with the objects of its resource, and
// starts the writer. It does not create any Namespace (bootstrap does). It
// fails if another process holds the file (after a 2 s wait), if the file holds
// an object it cannot decode, or if a Rebuild fails.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "store")
	size := opts.HistorySize
	if size <= 0 {
		size = DefaultHistorySize
	}
	for name := range opts.Admitters {
		if ResourceByName(name) == nil {
			return nil, fmt.Errorf("open store: admitter for unknown resource %q", name)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoFreelistSync: true, // the freelist is rebuilt on open: less to write per commit
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		db:         db,
		log:        log,
		admitters:  opts.Admitters,
		reqs:       make(chan *request, maxBatch),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		objs:       make(map[*Resource]map[string]map[string]Object),
		notify:     make(chan struct{}),
		now:        time.Now,
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.hist = history{size: size, base: s.rv}
	if err := s.rebuild(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	go s.writer()
	log.Info("store opened", "path", path, "resourceVersion", s.rv, "historySize", size)
	return s, nil
}

// load creates the buckets and reads the counter and every object into memory.
func (s *Store) load() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(metaBucket)); err != nil {
			return fmt.Errorf("create bucket %s: %w", metaBucket, err)
		}
		for _, res := range allResources {
			if _, err := tx.CreateBucketIfNotExists([]byte(res.Name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", res.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(metaBucket)).Get([]byte(rvKey)); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("bad %s/%s value of %d bytes", metaBucket, rvKey, len(v))
			}
			s.rv = binary.BigEndian.Uint64(v)
		}
		for _, res := range allResources {
			err := tx.Bucket([]byte(res.Name)).ForEach(func(k, v []byte) error {
				obj := res.New()
				if err := json.Unmarshal(v, obj); err != nil {
					return fmt.Errorf("decode %s %q: %w", res.Name, k, err)
				}
				if gvk := obj.GetObjectKind().GroupVersionKind(); gvk != res.GroupVersionKind() {
					return fmt.Errorf("decode %s %q: stored kind %v", res.Name, k, gvk)
				}
				if !bytes.Equal(k, objectKey(obj.GetNamespace(), obj.GetName())) {
					return fmt.Errorf("decode %s %q: object is %s/%s", res.Name, k, obj.GetNamespace(), obj.GetName())
				}
				if rv, err := ParseResourceVersion(obj.GetResourceVersion()); err != nil || rv > s.rv {
					return fmt.Errorf("decode %s %q: resourceVersion %q beyond counter %d", res.Name, k, obj.GetResourceVersion(), s.rv)
				}
				s.put(res, obj)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// rebuild hands each Admitter copies of its resource's objects.
func (s *Store) rebuild() error {
	for _, res := range allResources {
		a := s.admitters[res.Name]
		if a == nil {
			continue
		}
		objs := filterSorted(res, s.collect(res, ""), ListOptions{})
		for i, o := range objs {
			objs[i] = o.DeepCopyObject().(Object)
		}
		if err := a.Rebuild(objs); err != nil {
			return fmt.Errorf("rebuild admitter of %s from %d objects: %w", res.Name, len(objs), err)
		}
	}
	return nil
}

// Close stops accepting writes, lets the writer finish its current batch
// (queued writes not yet taken get ErrClosed), closes every watch channel and
// the bbolt file. Calling it again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.writerDone
		s.mu.Lock()
		s.closed = true
		close(s.notify)
		s.mu.Unlock()
		s.watchers.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
		s.log.Info("store closed", "resourceVersion", s.rv)
	})
	return s.closeErr
}

// ResourceVersion returns the resourceVersion of the last committed and
// published change (0 for an empty new store).
func (s *Store) ResourceVersion() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rv
}

// Stats are counters of the writer since Open.
type Stats struct {
	Commits uint64 // committed bbolt transactions (one fsync each)
	Changes uint64 // committed changes (one resourceVersion and event each)
}

// Stats returns the writer's counters; Changes/Commits is the mean group
// commit size.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Changes: s.changes.Load()}
}

// Get returns a copy of the object, or an error wrapping ErrNotFound. namespace
// must be empty for cluster-scoped resources (else ErrInvalid).
func (s *Store) Get(ctx context.Context, res *Resource, namespace, name string) (Object, error) {
	if err := checkKey(res, namespace, name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	s.mu.RLock()
	closed := s.closed
	obj := s.objs[res][namespace][name]
	s.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("get %s: %w", res.Name, ErrClosed)
	}
	if obj == nil {
		return nil, notFound(res, namespace, name)
	}
	return obj.DeepCopyObject().(Object), nil
}

// List returns copies of the objects of res in namespace ("" = all
// namespaces) that match opts, sorted by namespace then name, and the store's
// resourceVersion at which that list was current (pass it to Watch to follow
// on without gap). An unsupported field selector key gives an error wrapping
// ErrInvalidSelector; an empty result is an empty slice, not an error.
func (s *Store) List(ctx context.Context, res *Resource, namespace string, opts ListOptions) ([]Object, uint64, error) {
	if err := checkResource(res); err != nil {
		return nil, 0, fmt.Errorf("list: %w", err)
	}
	if !res.Namespaced && namespace != "" {
		return nil, 0, fmt.Errorf("list %s in namespace %q: %w: resource is cluster-scoped", res.Name, namespace, ErrInvalid)
	}
	if err := opts.Validate(res); err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", res.Name, err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, 0, fmt.Errorf("list %s: %w", res.Name, ErrClosed)
	}
	all := s.collect(res, namespace)
	rv := s.rv
	s.mu.RUnlock()
	// Filter, sort and copy outside the lock: stored objects are immutable.
	objs := filterSorted(res, all, opts)
	for i, o := range objs {
		objs[i] = o.DeepCopyObject().(Object)
	}
	return objs, rv, nil
}

// collect returns the (shared) objects of res in namespace ("" = all), in no
// particular order. Callers hold s.mu or are the writer.
func (s *Store) collect(res *Resource, namespace string) []Object {
	var out []Object
	if namespace != "" {
		m := s.objs[res][namespace]
		out = make([]Object, 0, len(m))
		for _, o := range m {
			out = append(out, o)
		}
		return out
	}
	n := 0
	for _, m := range s.objs[res] {
		n += len(m)
	}
	out = make([]Object, 0, n)
	for _, m := range s.objs[res] {
		for _, o := range m {
			out = append(out, o)
		}
	}
	return out
}

// filterSorted keeps the objects that match opts (in place) and sorts them by
// namespace/name. The result is never nil.
func filterSorted(res *Resource, objs []Object, opts ListOptions) []Object {
	out := objs[:0]
	for _, o := range objs {
		if opts.Matches(res, o) {
			out = append(out, o)
		}
	}
	clear(objs[len(out):])
	if out == nil {
		out = []Object{}
	}
	slices.SortFunc(out, compareObjects)
	return out
}

func compareObjects(a, b Object) int {
	return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
}

// put stores obj in the in-memory view (writer or load only, under s.mu).
func (s *Store) put(res *Resource, obj Object) {
	byNS := s.objs[res]
	if byNS == nil {
		byNS = make(map[string]map[string]Object)
		s.objs[res] = byNS
	}
	m := byNS[obj.GetNamespace()]
	if m == nil {
		m = make(map[string]Object)
		byNS[obj.GetNamespace()] = m
	}
	m[obj.GetName()] = obj
}

// remove deletes an object from the in-memory view (writer only, under s.mu).
func (s *Store) remove(res *Resource, namespace, name string) {
	m := s.objs[res][namespace]
	delete(m, name)
	if len(m) == 0 {
		delete(s.objs[res], namespace)
	}
}

// objectKey is the bbolt key of an object: "namespace/name", or "name" for
// cluster-scoped objects.
func objectKey(namespace, name string) []byte {
	if namespace == "" {
		return []byte(name)
	}
	return []byte(namespace + "/" + name)
}

func checkResource(res *Resource) error {
	if res == nil || ResourceByName(res.Name) != res {
		return fmt.Errorf("%w: unregistered resource %v", ErrInvalid, res)
	}
	return nil
}

// checkKey validates res, namespace and name for a read or delete.
func checkKey(res *Resource, namespace, name string) error {
	if err := checkResource(res); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("%s: %w: name is required", res.Name, ErrInvalid)
	}
	return checkNamespace(res, namespace, name)
}

func notFound(res *Resource, namespace, name string) error {
	if namespace == "" {
		return fmt.Errorf("%s %q: %w", res.Name, name, ErrNotFound)
	}
	return fmt.Errorf("%s %q in namespace %q: %w", res.Name, name, namespace, ErrNotFound)
}

// ParseResourceVersion parses a resourceVersion string (the decimal counter).
// The empty string is an error; "0" is 0.
func ParseResourceVersion(s string) (uint64, error) {
	rv, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad resourceVersion %q", ErrInvalid, s)
	}
	return rv, nil
}
