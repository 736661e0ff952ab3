package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

func TestWatchOrderAndFilters(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	all, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := s.Watch(ctx, Services, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	inA, err := s.Watch(ctx, nil, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, Namespaces, namespace("a"))                                     // 1
	mustCreate(t, s, Namespaces, namespace("b"))                                     // 2
	mustCreate(t, s, Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}) // 3
	web := mustCreate(t, s, Services, service("a", "web"))                           // 4
	mustCreate(t, s, Services, service("b", "web"))                                  // 5
	mustCreate(t, s, Pods, pod("a", "p", "n1"))                                      // 6
	web.Spec.Ports[0].Port = 81
	if _, err := s.Update(ctx, Services, web, UpdateOptions{}); err != nil { // 7
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, Services, "a", "web", ""); err != nil { // 8
		t.Fatal(err)
	}
	collect := func(ch <-chan Event, n int) []string {
		var out []string
		for range n {
			out = append(out, evString(recv(t, ch)))
		}
		return out
	}
	wantAll := []string{
		"1 ADDED namespaces a",
		"2 ADDED namespaces b",
		"3 ADDED nodes n1",
		"4 ADDED services a/web",
		"5 ADDED services b/web",
		"6 ADDED pods a/p",
		"7 MODIFIED services a/web",
		"8 DELETED services a/web",
	}
	if diff := cmp.Diff(wantAll, collect(all, 8)); diff != "" {
		t.Errorf("all events (-want +got):\n%s", diff)
	}
	wantSvcs := []string{"4 ADDED services a/web", "5 ADDED services b/web", "7 MODIFIED services a/web", "8 DELETED services a/web"}
	if diff := cmp.Diff(wantSvcs, collect(svcs, 4)); diff != "" {
		t.Errorf("service events (-want +got):\n%s", diff)
	}
	wantA := []string{"4 ADDED services a/web", "6 ADDED pods a/p", "7 MODIFIED services a/web", "8 DELETED services a/web"}
	if diff := cmp.Diff(wantA, collect(inA, 4)); diff != "" {
		t.Errorf("namespace a events (-want +got):\n%s", diff)
	}

	// Old and Object of Modified and Deleted, from a resumed watch.
	ch, err := s.Watch(ctx, Services, "a", 6)
	if err != nil {
		t.Fatal(err)
	}
	mod, del := recv(t, ch), recv(t, ch)
	if mod.Type != watch.Modified || mod.Old.GetResourceVersion() != "4" || mod.Object.GetResourceVersion() != "7" ||
		mod.Object.(*corev1.Service).Spec.Ports[0].Port != 81 || mod.Old.(*corev1.Service).Spec.Ports[0].Port != 80 {
		t.Errorf("modified event: old rv %s new rv %s", mod.Old.GetResourceVersion(), mod.Object.GetResourceVersion())
	}
	if del.Type != watch.Deleted || del.Old.GetResourceVersion() != "7" || del.Object.GetResourceVersion() != "8" ||
		del.Object.GetUID() != web.UID {
		t.Errorf("deleted event: old rv %s object rv %s", del.Old.GetResourceVersion(), del.Object.GetResourceVersion())
	}
	if mod.Object.GetObjectKind().GroupVersionKind().Kind != "Service" {
		t.Errorf("event object kind %v", mod.Object.GetObjectKind().GroupVersionKind())
	}
	// Event objects are private copies.
	mod.Object.SetLabels(map[string]string{"mutated": "yes"})
	ch2, _ := s.Watch(ctx, Services, "a", 6)
	if ev := recv(t, ch2); ev.Object.GetLabels()["mutated"] != "" {
		t.Error("mutating one subscriber's event object changed another's")
	}
	if _, err := s.Watch(ctx, Nodes, "a", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("watch cluster-scoped in a namespace: %v, want ErrInvalid", err)
	}
}

func TestWatchResumeAndGone(t *testing.T) {
	s, _ := openTest(t, Options{HistorySize: 4})
	ctx := ctxT(t)
	for i := range 10 {
		mustCreate(t, s, Namespaces, namespace(fmt.Sprintf("ns-%d", i)))
	}
	// History holds rv 7..10.
	for _, from := range []uint64{1, 5} {
		if _, err := s.Watch(ctx, nil, "", from); !errors.Is(err, ErrGone) {
			t.Errorf("watch from %d: %v, want ErrGone", from, err)
		}
	}
	ch, err := s.Watch(ctx, nil, "", 6)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for range 4 {
		got = append(got, recv(t, ch).ResourceVersion)
	}
	if diff := cmp.Diff([]uint64{7, 8, 9, 10}, got); diff != "" {
		t.Errorf("resumed from 6 (-want +got):\n%s", diff)
	}
	// Up to date: from the current rv, the next event is the next write.
	cur, err := s.Watch(ctx, nil, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	// From the future: waits for events after rv 12.
	future, err := s.Watch(ctx, nil, "", 12)
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 13; i++ {
		mustCreate(t, s, Namespaces, namespace(fmt.Sprintf("ns-%d", i)))
	}
	if ev := recv(t, cur); ev.ResourceVersion != 11 {
		t.Errorf("watch from current: first rv %d, want 11", ev.ResourceVersion)
	}
	if ev := recv(t, future); ev.ResourceVersion != 13 {
		t.Errorf("watch from future rv 12: first rv %d, want 13", ev.ResourceVersion)
	}
}

// TestWatchRacingWrites starts watches at resourceVersions taken while writers
// run, and checks that each delivers exactly the events after its start: every
// resourceVersion numbers one event, so the sequence must be contiguous.
func TestWatchRacingWrites(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	const writers, perWriter = 4, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				name := fmt.Sprintf("w%d-%d", w, i)
				svc := mustCreate(t, s, Services, service("demo", name))
				if i%3 == 0 {
					svc.Labels["touched"] = "yes"
					if _, err := s.Update(ctx, Services, svc, UpdateOptions{}); err != nil {
						t.Error(err)
					}
				}
				if i%5 == 0 {
					if _, err := s.Delete(ctx, Services, "demo", name, ""); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	type started struct {
		from uint64
		ch   <-chan Event
	}
	var watches []started
	rng := rand.New(rand.NewPCG(1, 2))
	// Keep starting watches until the writers are done (at least 24, at most 200).
starting:
	for i := range 200 {
		if i >= 24 {
			select {
			case <-writersDone:
				break starting
			default:
			}
		}
		var from uint64
		switch i % 3 {
		case 0:
			from = s.ResourceVersion()
		case 1:
			_, rv, err := s.List(ctx, Services, "", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			from = rv
		case 2:
			if cur := s.ResourceVersion(); cur > 0 {
				from = 1 + rng.Uint64N(cur) // anywhere in the (complete) history
			}
		}
		ch, err := s.Watch(ctx, nil, "", from)
		if err != nil {
			t.Fatal(err)
		}
		watches = append(watches, started{from, ch})
		time.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond) // spread the starts over the writes
	}
	<-writersDone
	final := s.ResourceVersion()
	during := 0
	for _, w := range watches {
		if w.from < final {
			during++
		}
	}
	t.Logf("%d watches, %d of them started before the last write (final rv %d)", len(watches), during, final)
	for _, w := range watches {
		next := w.from + 1
		for next <= final {
			ev := recv(t, w.ch)
			if ev.ResourceVersion != next {
				t.Fatalf("watch from %d: got rv %d, want %d (gap or duplicate)", w.from, ev.ResourceVersion, next)
			}
			if ev.Object.GetResourceVersion() != fmt.Sprint(next) {
				t.Fatalf("event rv %d carries object rv %s", next, ev.Object.GetResourceVersion())
			}
			next++
		}
	}
}

func TestSlowWatcherIsClosed(t *testing.T) {
	s, _ := openTest(t, Options{HistorySize: 50})
	ctx := ctxT(t)
	slow, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 600 // > watchBuffer + HistorySize: the slow watcher must be dropped
	fastDone := make(chan int)
	go func() {
		count := 0
		for range fast {
			count++
			if count == n {
				break
			}
		}
		fastDone <- count
	}()
	// The writes complete although nobody reads the slow channel.
	for i := range n {
		mustCreate(t, s, Namespaces, namespace(fmt.Sprintf("ns-%d", i)))
	}
	if got := <-fastDone; got != n {
		t.Errorf("fast watcher got %d events, want %d", got, n)
	}
	got := 0
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-slow:
			if !ok {
				if got >= n {
					t.Errorf("slow watcher got all %d events, want it dropped", got)
				}
				return
			}
			got++
		case <-timeout:
			t.Fatalf("slow watcher not closed (got %d events)", got)
		}
	}
}

func TestWatchStopsOnContext(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("event on a cancelled watch with no writes")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

func TestConcurrentCreates(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	ch, err := s.Watch(ctx, Pods, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 64, 20
	var mu sync.Mutex
	rvs := map[string]string{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("p-%d-%d", g, i)
				got, err := s.Create(ctx, Pods, pod("demo", name, ""))
				if err != nil {
					t.Errorf("create %s: %v", name, err)
					return
				}
				mu.Lock()
				rvs[got.GetResourceVersion()] = name
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const total = goroutines * each
	if len(rvs) != total {
		t.Fatalf("%d distinct resourceVersions for %d creates", len(rvs), total)
	}
	objs, rv, err := s.List(ctx, Pods, "demo", ListOptions{})
	if err != nil || len(objs) != total || rv != total+1 {
		t.Fatalf("list: %d pods at rv %d (%v), want %d at %d", len(objs), rv, err, total, total+1)
	}
	for _, o := range objs {
		if rvs[o.GetResourceVersion()] != o.GetName() {
			t.Errorf("pod %s stored with rv %s, which was returned for %s", o.GetName(), o.GetResourceVersion(), rvs[o.GetResourceVersion()])
		}
	}
	last := uint64(1)
	for range total {
		ev := recv(t, ch)
		if ev.ResourceVersion != last+1 {
			t.Fatalf("event rv %d after %d", ev.ResourceVersion, last)
		}
		last = ev.ResourceVersion
	}
	st := s.Stats()
	t.Logf("%d changes in %d commits", st.Changes, st.Commits)
}
