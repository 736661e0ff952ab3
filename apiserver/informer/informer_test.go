package informer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/svclab/svclab/apiserver/store"
)

// recorder is a Handler that writes down what it was told, one line per call.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) OnAdd(obj store.Object) {
	r.add("add %s@%s", obj.GetName(), obj.GetResourceVersion())
}
func (r *recorder) OnUpdate(old, obj store.Object) {
	r.add("update %s@%s->%s", obj.GetName(), old.GetResourceVersion(), obj.GetResourceVersion())
}
func (r *recorder) OnDelete(obj store.Object) { r.add("delete %s", obj.GetName()) }

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func svc(name, rv string) store.Object {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, ResourceVersion: rv}}
}

// TestReplay checks the re-list path: a fresh list is diffed against what the consumer has seen,
// so objects changed, added or deleted while the watch was broken are delivered exactly once.
func TestReplay(t *testing.T) {
	known := map[string]store.Object{}
	var r recorder
	replay(known, []store.Object{svc("a", "1"), svc("b", "2"), svc("c", "3")}, &r)
	replay(known, []store.Object{svc("a", "1"), svc("b", "7"), svc("d", "8")}, &r)
	want := []string{"add a@1", "add b@2", "add c@3", "update b@2->7", "add d@8", "delete c"}
	if diff := cmp.Diff(want, r.snapshot()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestDeliver checks that watch events after a re-list that raced them are not delivered twice.
func TestDeliver(t *testing.T) {
	known := map[string]store.Object{}
	var r recorder
	replay(known, []store.Object{svc("a", "5")}, &r)
	deliver(known, store.Event{Type: watch.Added, Object: svc("a", "5")}, &r)    // seen in the list already
	deliver(known, store.Event{Type: watch.Modified, Object: svc("a", "6")}, &r) // a real change
	deliver(known, store.Event{Type: watch.Modified, Object: svc("n", "7")}, &r) // unseen: an add
	deliver(known, store.Event{Type: watch.Deleted, Object: svc("a", "8")}, &r)  // a real delete
	deliver(known, store.Event{Type: watch.Deleted, Object: svc("zz", "9")}, &r) // never seen: nothing
	deliver(known, store.Event{Type: watch.Added, Object: svc("b", "10")}, &r)   // a real add
	want := []string{"add a@5", "update a@5->6", "add n@7", "delete a", "add b@10"}
	if diff := cmp.Diff(want, r.snapshot()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestRunAgainstStore runs an informer over a real store: the initial list arrives before synced
// is called, then every committed change arrives in commit order.
func TestRunAgainstStore(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := st.Create(ctx, store.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	create := func(name string) {
		t.Helper()
		if _, err := st.Create(ctx, store.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	create("before")
	var r recorder
	synced := make(chan []string, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, st, store.Services, &r, func() { synced <- r.snapshot() }, nil) }()
	select {
	case got := <-synced:
		if diff := cmp.Diff([]string{"add before@2"}, got); diff != "" {
			t.Fatalf("calls before synced (-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("synced was never called")
	}
	create("after")
	cur, err := st.Get(ctx, store.Services, "default", "after")
	if err != nil {
		t.Fatal(err)
	}
	cur.SetLabels(map[string]string{"x": "y"})
	if _, err := st.Update(ctx, store.Services, cur, store.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Delete(ctx, store.Services, "default", "before", ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"add before@2", "add after@3", "update after@3->4", "delete before"}
	deadline := time.Now().Add(10 * time.Second)
	ch, err := st.Watch(ctx, store.Services, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for !slices.Equal(r.snapshot(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("calls = %q, want %q", r.snapshot(), want)
		}
		select { // wake on any further store change, or re-check soon: the informer runs concurrently
		case <-ch:
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
