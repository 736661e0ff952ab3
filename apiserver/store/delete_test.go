package store

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// testClock is the store clock of these tests: a whole second plus a
// fraction, so that truncation of deletionTimestamp to seconds shows.
var testClock = time.Date(2026, 5, 4, 10, 0, 0, 700_000_000, time.UTC)

// openGraceful opens a store with a fixed clock, namespace demo and node-1.
func openGraceful(t *testing.T, opts Options) *Store {
	t.Helper()
	s, _ := openTest(t, opts)
	s.now = func() time.Time { return testClock }
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	return s
}

// at returns the test clock plus d, truncated to seconds, as a *metav1.Time.
func at(d time.Duration) *metav1.Time {
	ts := metav1.NewTime(testClock.Add(d).Truncate(time.Second))
	return &ts
}

// TestBeforeDelete is the decision table of kube-apiserver's rest.BeforeDelete
// with the pod strategy's CheckGracefulDelete.
func TestBeforeDelete(t *testing.T) {
	running := func(mod ...func(*corev1.Pod)) *corev1.Pod {
		p := pod("demo", "p", "node-1")
		p.Generation = 1
		p.ResourceVersion = "5"
		p.Status.Phase = corev1.PodRunning
		for _, m := range mod {
			m(p)
		}
		return p
	}
	terminating := func(grace *int64) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.DeletionTimestamp = at(30 * time.Second)
			p.DeletionGracePeriodSeconds = grace
		}
	}
	marked := func(ts *metav1.Time, grace, gen int64) *corev1.Pod {
		p := running()
		p.DeletionTimestamp = ts
		p.DeletionGracePeriodSeconds = ptr.To(grace)
		p.Generation = gen
		return p
	}
	opts := func(grace *int64) *DeleteOptions { return &DeleteOptions{GracePeriodSeconds: grace} }
	for _, tc := range []struct {
		name string
		res  *Resource
		cur  Object
		opts *DeleteOptions
		want deleteStep
	}{
		{"Delete (no options) removes at once", Pods, running(), nil, deleteStep{remove: true}},
		{"other kinds are removed at once", Services, service("demo", "web"), opts(ptr.To[int64](30)), deleteStep{remove: true}},
		{"default grace 30", Pods, running(), opts(nil), deleteStep{mark: marked(at(30*time.Second), 30, 2)}},
		{"spec.terminationGracePeriodSeconds", Pods, running(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5) }),
			opts(nil), deleteStep{mark: func() *corev1.Pod {
				p := marked(at(5*time.Second), 5, 2)
				p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
				return p
			}()}},
		{"requested grace wins", Pods, running(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5) }),
			opts(ptr.To[int64](12)), deleteStep{mark: func() *corev1.Pod {
				p := marked(at(12*time.Second), 12, 2)
				p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
				return p
			}()}},
		{"negative grace counts as 1", Pods, running(), opts(ptr.To[int64](-3)), deleteStep{mark: marked(at(time.Second), 1, 2)}},
		{"negative spec grace counts as 1", Pods, running(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) }),
			opts(nil), deleteStep{mark: func() *corev1.Pod {
				p := marked(at(time.Second), 1, 2)
				p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1)
				return p
			}()}},
		{"grace 0: marked and removed", Pods, running(), opts(ptr.To[int64](0)), deleteStep{mark: marked(at(0), 0, 2), remove: true}},
		{"unscheduled: grace 0", Pods, running(func(p *corev1.Pod) { p.Spec.NodeName = "" }), opts(ptr.To[int64](30)),
			deleteStep{mark: func() *corev1.Pod { p := marked(at(0), 0, 2); p.Spec.NodeName = ""; return p }(), remove: true}},
		{"succeeded: grace 0", Pods, running(func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), opts(nil),
			deleteStep{mark: func() *corev1.Pod { p := marked(at(0), 0, 2); p.Status.Phase = corev1.PodSucceeded; return p }(), remove: true}},
		{"failed: grace 0", Pods, running(func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }), opts(nil),
			deleteStep{mark: func() *corev1.Pod { p := marked(at(0), 0, 2); p.Status.Phase = corev1.PodFailed; return p }(), remove: true}},
		{"no generation: none bumped", Pods, running(func(p *corev1.Pod) { p.Generation = 0 }), opts(nil), deleteStep{mark: marked(at(30*time.Second), 30, 0)}},
		{"terminating: no grace keeps it pending", Pods, running(terminating(ptr.To[int64](30))), opts(nil), deleteStep{}},
		{"terminating: longer grace keeps it pending", Pods, running(terminating(ptr.To[int64](30))), opts(ptr.To[int64](60)), deleteStep{}},
		{"terminating: equal grace keeps it pending", Pods, running(terminating(ptr.To[int64](30))), opts(ptr.To[int64](30)), deleteStep{}},
		{"terminating: shorter grace moves the deadline", Pods, running(terminating(ptr.To[int64](30))), opts(ptr.To[int64](10)),
			deleteStep{mark: marked(at(10*time.Second), 10, 1)}},
		{"terminating: grace 0 removes", Pods, running(terminating(ptr.To[int64](30))), opts(ptr.To[int64](0)),
			deleteStep{mark: marked(at(0), 0, 1), remove: true}},
		{"terminating with grace 0 stored: removed", Pods, running(terminating(ptr.To[int64](0))), opts(nil), deleteStep{remove: true}},
		{"terminating without grace stored: removed", Pods, running(terminating(nil)), opts(nil), deleteStep{remove: true}},
		{"terminating with negative stored grace counts as 1", Pods, running(terminating(ptr.To[int64](-1))), opts(ptr.To[int64](0)),
			deleteStep{mark: marked(at(29*time.Second), 0, 1), remove: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cur.DeepCopyObject()
			got := beforeDelete(tc.res, tc.cur, tc.opts, testClock)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(deleteStep{})); diff != "" {
				t.Errorf("step (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.cur); diff != "" {
				t.Errorf("current object modified (-before +after):\n%s", diff)
			}
		})
	}
}

// podEvents summarizes pod events: type, resourceVersion, deletionTimestamp
// and deletionGracePeriodSeconds.
func podEvents(t *testing.T, ch <-chan Event, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ev := recv(t, ch)
		o := ev.Object
		ts, grace := "-", "-"
		if d := o.GetDeletionTimestamp(); d != nil {
			ts = d.UTC().Format(time.RFC3339)
		}
		if g := o.GetDeletionGracePeriodSeconds(); g != nil {
			grace = strconv.FormatInt(*g, 10)
		}
		out = append(out, fmt.Sprintf("%s %s %s rv=%s gen=%d ts=%s grace=%s", ev.Type, ev.Resource.Name, objName(o),
			o.GetResourceVersion(), o.GetGeneration(), ts, grace))
	}
	return out
}

// TestGracefulPodDelete marks a pod, shortens its grace period, checks that it
// cannot be un-deleted and survives a restart, and removes it with grace 0.
func TestGracefulPodDelete(t *testing.T) {
	s, path := openTest(t, Options{})
	s.now = func() time.Time { return testClock }
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	p := mustCreate(t, s, Pods, pod("demo", "web-1", "node-1"))
	ch, err := s.Watch(ctx, Pods, "", s.ResourceVersion())
	if err != nil {
		t.Fatal(err)
	}

	got, err := s.DeleteWithOptions(ctx, Pods, "demo", "web-1", DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := p.DeepCopy()
	want.ResourceVersion = "3"
	want.Generation = 2
	want.DeletionTimestamp = at(30 * time.Second)
	want.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if diff := cmp.Diff(Object(want), got); diff != "" {
		t.Errorf("returned object (-want +got):\n%s", diff)
	}
	if !IsTerminating(got) {
		t.Error("IsTerminating(marked pod) = false")
	}
	stored, err := s.Get(ctx, Pods, "demo", "web-1")
	if err != nil {
		t.Fatalf("terminating pod not stored: %v", err)
	}
	if diff := cmp.Diff(Object(want), stored); diff != "" {
		t.Errorf("stored object (-want +got):\n%s", diff)
	}

	// A second delete may only shorten the grace period.
	for _, grace := range []*int64{nil, ptr.To[int64](30), ptr.To[int64](300)} {
		again, err := s.DeleteWithOptions(ctx, Pods, "demo", "web-1", DeleteOptions{GracePeriodSeconds: grace})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Object(want), again); diff != "" {
			t.Errorf("delete with grace %v changed the pod (-want +got):\n%s", ptr.Deref(grace, -1), diff)
		}
	}
	if rv := s.ResourceVersion(); rv != 3 {
		t.Errorf("pending deletes wrote: resourceVersion %d, want 3", rv)
	}

	// Updates keep the deletion: main resource, status and GuaranteedUpdate.
	undelete := want.DeepCopy()
	undelete.DeletionTimestamp, undelete.DeletionGracePeriodSeconds = nil, nil
	undelete.Labels = map[string]string{"app": "web", "try": "undelete"}
	if _, err := s.Update(ctx, Pods, undelete, UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	undelete.Status.Phase = corev1.PodRunning
	undelete.ResourceVersion = ""
	if _, err := s.Update(ctx, Pods, undelete, UpdateOptions{Subresource: "status"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GuaranteedUpdate(ctx, Pods, "demo", "web-1", UpdateOptions{}, func(cur Object) (Object, error) {
		cur.SetDeletionTimestamp(nil)
		cur.SetDeletionGracePeriodSeconds(ptr.To[int64](3600))
		cur.SetAnnotations(map[string]string{"try": "again"})
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	stored, _ = s.Get(ctx, Pods, "demo", "web-1")
	if !IsTerminating(stored) || !stored.GetDeletionTimestamp().Equal(want.DeletionTimestamp) || *stored.GetDeletionGracePeriodSeconds() != 30 {
		t.Errorf("after updates: deletionTimestamp %v, grace %v; want %v, 30", stored.GetDeletionTimestamp(),
			stored.GetDeletionGracePeriodSeconds(), want.DeletionTimestamp)
	}

	// Shorter: the deadline moves 20 s earlier.
	if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "web-1", DeleteOptions{GracePeriodSeconds: ptr.To[int64](10)}); err != nil {
		t.Fatal(err)
	}
	wantEvents := []string{
		"MODIFIED pods demo/web-1 rv=3 gen=2 ts=2026-05-04T10:00:30Z grace=30",
		"MODIFIED pods demo/web-1 rv=4 gen=2 ts=2026-05-04T10:00:30Z grace=30", // labels
		"MODIFIED pods demo/web-1 rv=5 gen=2 ts=2026-05-04T10:00:30Z grace=30", // status
		"MODIFIED pods demo/web-1 rv=6 gen=2 ts=2026-05-04T10:00:30Z grace=30", // annotations
		"MODIFIED pods demo/web-1 rv=7 gen=2 ts=2026-05-04T10:00:10Z grace=10",
	}
	if diff := cmp.Diff(wantEvents, podEvents(t, ch, len(wantEvents))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// Restart: the terminating pod is stored as it is.
	before, _ := s.Get(ctx, Pods, "demo", "web-1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.now = func() time.Time { return testClock.Add(time.Hour) }
	after, err := s2.Get(ctx, Pods, "demo", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("terminating pod after restart (-before +after):\n%s", diff)
	}
	ch2, err := s2.Watch(ctx, Pods, "", s2.ResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	last, err := s2.DeleteWithOptions(ctx, Pods, "demo", "web-1", DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil {
		t.Fatal(err)
	}
	if IsTerminating(last) || last.GetResourceVersion() != "9" {
		t.Errorf("grace-0 delete returned rv %s grace %v, want the removed pod at rv 9", last.GetResourceVersion(), last.GetDeletionGracePeriodSeconds())
	}
	if _, err := s2.Get(ctx, Pods, "demo", "web-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after grace-0 delete: %v, want ErrNotFound", err)
	}
	wantEvents = []string{
		"MODIFIED pods demo/web-1 rv=8 gen=2 ts=2026-05-04T10:00:00Z grace=0",
		"DELETED pods demo/web-1 rv=9 gen=2 ts=2026-05-04T10:00:00Z grace=0",
	}
	if diff := cmp.Diff(wantEvents, podEvents(t, ch2, len(wantEvents))); diff != "" {
		t.Errorf("events of the grace-0 delete (-want +got):\n%s", diff)
	}
}

// TestImmediateDeletes: what DeleteWithOptions removes at once, and the
// events it publishes.
func TestImmediateDeletes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create func(s *Store)
		res    *Resource
		objKey string
		opts   DeleteOptions
		want   []string
	}{
		{
			name:   "grace 0 (kubectl --force --grace-period=0)",
			create: func(s *Store) { mustCreate(t, s, Pods, pod("demo", "p", "node-1")) },
			res:    Pods, objKey: "p", opts: DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)},
			want: []string{
				"MODIFIED pods demo/p rv=5 gen=2 ts=2026-05-04T10:00:00Z grace=0",
				"DELETED pods demo/p rv=6 gen=2 ts=2026-05-04T10:00:00Z grace=0",
			},
		},
		{
			name:   "unscheduled pod",
			create: func(s *Store) { mustCreate(t, s, Pods, pod("demo", "p", "")) },
			res:    Pods, objKey: "p", opts: DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)},
			want: []string{
				"MODIFIED pods demo/p rv=5 gen=2 ts=2026-05-04T10:00:00Z grace=0",
				"DELETED pods demo/p rv=6 gen=2 ts=2026-05-04T10:00:00Z grace=0",
			},
		},
		{
			name: "succeeded pod",
			create: func(s *Store) {
				p := mustCreate(t, s, Pods, pod("demo", "p", "node-1"))
				p.Status.Phase = corev1.PodSucceeded
				if _, err := s.Update(ctxT(t), Pods, p, UpdateOptions{Subresource: "status"}); err != nil {
					t.Fatal(err)
				}
			},
			res: Pods, objKey: "p",
			want: []string{
				"MODIFIED pods demo/p rv=6 gen=2 ts=2026-05-04T10:00:00Z grace=0",
				"DELETED pods demo/p rv=7 gen=2 ts=2026-05-04T10:00:00Z grace=0",
			},
		},
		{
			name:   "service",
			create: func(s *Store) { mustCreate(t, s, Services, service("demo", "p")) },
			res:    Services, objKey: "p", opts: DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)},
			want: []string{"DELETED services demo/p rv=5 gen=0 ts=- grace=-"},
		},
		{
			name:   "endpointslice",
			create: func(s *Store) { mustCreate(t, s, EndpointSlices, slice("demo", "p")) },
			res:    EndpointSlices, objKey: "p",
			want: []string{"DELETED endpointslices demo/p rv=5 gen=1 ts=- grace=-"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openGraceful(t, Options{})
			ctx := ctxT(t)
			mustCreate(t, s, Services, service("demo", "other")) // rv 3
			tc.create(s)
			ch, err := s.Watch(ctx, nil, "", s.ResourceVersion())
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.DeleteWithOptions(ctx, tc.res, "demo", tc.objKey, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if IsTerminating(out) {
				t.Errorf("returned object is terminating: %v", out.GetDeletionGracePeriodSeconds())
			}
			if _, err := s.Get(ctx, tc.res, "demo", tc.objKey); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after delete: %v, want ErrNotFound", err)
			}
			got := podEvents(t, ch, len(tc.want))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if rv := fmt.Sprint(s.ResourceVersion()); out.GetResourceVersion() != rv {
				t.Errorf("returned rv %s, want the deletion's %s", out.GetResourceVersion(), rv)
			}
		})
	}
}

// TestDeleteWithOptionsPreconditionsAndAdmission: preconditions refuse before
// anything is written, the Admitter sees a Delete only for the removal, and a
// refused removal leaves the pod unmarked.
func TestDeleteWithOptionsPreconditionsAndAdmission(t *testing.T) {
	adm := &fakeAdmitter{}
	s := openGraceful(t, Options{Admitters: map[string]Admitter{"pods": adm}})
	ctx := ctxT(t)
	p := mustCreate(t, s, Pods, pod("demo", "p", "node-1"))
	start := s.ResourceVersion()
	for _, pre := range []Preconditions{{UID: "other"}, {ResourceVersion: "1"}, {UID: p.UID, ResourceVersion: "1"}} {
		if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "p", DeleteOptions{Preconditions: pre}); !errors.Is(err, ErrConflict) {
			t.Errorf("precondition %+v: %v, want ErrConflict", pre, err)
		}
	}
	if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "nope", DeleteOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing pod: %v, want ErrNotFound", err)
	}
	if rv := s.ResourceVersion(); rv != start {
		t.Fatalf("refused deletes wrote: rv %d, want %d", rv, start)
	}

	marked, err := s.DeleteWithOptions(ctx, Pods, "demo", "p", DeleteOptions{Preconditions: Preconditions{UID: p.UID, ResourceVersion: p.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	if calls, _ := adm.snapshot(); !cmp.Equal(calls, []string{"CREATE demo/p"}) {
		t.Errorf("admitter calls after marking = %v, want no DELETE", calls)
	}

	adm.mu.Lock()
	adm.refuse = func(op Operation, old, obj Object) error {
		if op == Delete {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, old.GetName(), errors.New("pinned"))
		}
		return nil
	}
	adm.mu.Unlock()
	if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "p", DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); !apierrors.IsForbidden(err) {
		t.Fatalf("refused removal: %v, want Forbidden", err)
	}
	stored, _ := s.Get(ctx, Pods, "demo", "p")
	if diff := cmp.Diff(marked, stored); diff != "" {
		t.Errorf("refused removal changed the pod (-marked +stored):\n%s", diff)
	}
	adm.mu.Lock()
	adm.refuse = nil
	adm.mu.Unlock()

	// The kubelet's final delete: grace 0 with the uid precondition.
	ch, err := s.Watch(ctx, Pods, "", s.ResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "p", DeleteOptions{Preconditions: Preconditions{UID: p.UID}, GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if calls, _ := adm.snapshot(); !cmp.Equal(calls, []string{"CREATE demo/p", "DELETE demo/p", "DELETE demo/p"}) {
		t.Errorf("admitter calls = %v, want the refused and the admitted removal", calls)
	}
	ev := recv(t, ch)
	if ev.Type != watch.Modified || ev.Old.GetDeletionGracePeriodSeconds() == nil || *ev.Old.GetDeletionGracePeriodSeconds() != 30 {
		t.Errorf("first event %s with old grace %v, want MODIFIED from grace 30", ev.Type, ev.Old.GetDeletionGracePeriodSeconds())
	}
	if ev := recv(t, ch); ev.Type != watch.Deleted || ev.Old.GetResourceVersion() != fmt.Sprint(s.ResourceVersion()-1) {
		t.Errorf("second event %s with old rv %s, want DELETED of the grace-0 state", ev.Type, ev.Old.GetResourceVersion())
	}
}

// TestDeleteStaysImmediate: Delete removes a pod at once (no marking), also
// a terminating one.
func TestDeleteStaysImmediate(t *testing.T) {
	s := openGraceful(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Pods, pod("demo", "a", "node-1"))
	mustCreate(t, s, Pods, pod("demo", "b", "node-1"))
	if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "b", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, Pods, "", s.ResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := s.Delete(ctx, Pods, "demo", name, ""); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"DELETED pods demo/a rv=6 gen=1 ts=- grace=-",
		"DELETED pods demo/b rv=7 gen=2 ts=2026-05-04T10:00:30Z grace=30",
	}
	if diff := cmp.Diff(want, podEvents(t, ch, 2)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestNamespaceDeleteRemovesTerminatingPods: a Namespace delete cascades at
// once, terminating pods included.
func TestNamespaceDeleteRemovesTerminatingPods(t *testing.T) {
	s := openGraceful(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Pods, pod("demo", "p", "node-1"))
	if _, err := s.DeleteWithOptions(ctx, Pods, "demo", "p", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteWithOptions(ctx, Namespaces, "", "demo", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, Pods, "demo", "p"); !errors.Is(err, ErrNotFound) {
		t.Errorf("terminating pod after namespace delete: %v, want ErrNotFound", err)
	}
}
