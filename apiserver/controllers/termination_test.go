package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// TestKubeletGracefulTermination drives the kubelet's termination path with
// a controlled clock: the pod is deleted gracefully in the store (as the API's
// DELETE does), the kubelet keeps it running through its preStop sleep, then
// stops it, reports it Succeeded and deletes it with grace 0.
func TestKubeletGracefulTermination(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	createPod(t, st, "default", "p", withNode("node-1"), func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
	})
	ctx := ctxT(t)
	c := newCache(st, testLogger(t))
	if _, err := c.relist(ctx); err != nil {
		t.Fatal(err)
	}
	rt := newFakeRuntime()
	k := newKubelet(st, c, rt, Config{}.withDefaults(), testLogger(t))
	clock := time.Unix(1_700_000_000, 0)
	k.now = func() time.Time { return clock }
	if err := k.restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.sync(ctx, "default/p"); err != nil {
		t.Fatal(err)
	}
	marked, err := st.DeleteWithOptions(ctx, store.Pods, "default", "p", store.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !store.IsTerminating(marked) {
		t.Fatalf("pod not terminating after a graceful delete: %v", marked.GetDeletionGracePeriodSeconds())
	}
	if _, err := c.relist(ctx); err != nil {
		t.Fatal(err)
	}
	events, err := st.Watch(ctx, store.Pods, "default", 0)
	if err != nil {
		t.Fatal(err)
	}

	// During the preStop sleep the pod keeps running (and Ready: its endpoint
	// is serving and terminating).
	if err := k.sync(ctx, "default/p"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.snapshot()["default/p"]; !ok {
		t.Fatal("pod stopped before its preStop sleep ended")
	}
	if p := getPod(t, st, "default", "p"); !isPodReady(p) || p.DeletionTimestamp == nil {
		t.Errorf("pod during its preStop sleep: ready %v, deletionTimestamp %v; want Ready and terminating", isPodReady(p), p.DeletionTimestamp)
	}
	clock = clock.Add(5 * time.Second)
	if err := k.sync(ctx, "default/p"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.snapshot()["default/p"]; ok {
		t.Error("pod still running after its preStop sleep")
	}
	// The kubelet reported it Succeeded, then deleted it with grace 0 (which
	// the store records as an update to grace 0, then the deletion).
	var seen []string
	for len(seen) < 3 {
		select {
		case ev := <-events:
			p := ev.Object.(*corev1.Pod)
			seen = append(seen, fmt.Sprintf("%s %s grace=%d", ev.Type, p.Status.Phase, ptr.Deref(p.DeletionGracePeriodSeconds, -1)))
			if ev.Type == watch.Modified {
				if isPodReady(p) || p.Status.ContainerStatuses[0].State.Terminated == nil || p.Status.PodIP == "" {
					t.Errorf("terminal status = %+v", p.Status)
				}
			}
		case <-ctx.Done():
			t.Fatalf("events so far %v", seen)
		}
	}
	want := []string{"MODIFIED Succeeded grace=30", "MODIFIED Succeeded grace=0", "DELETED Succeeded grace=0"}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	k.mu.Lock()
	used := k.ipam["node-1"].used()
	k.mu.Unlock()
	if used != 0 {
		t.Errorf("addresses in use after termination = %d", used)
	}
}

// TestKubeletFinishesTerminatingPods: a terminating pod that has nothing to
// wait for is deleted by its node's kubelet; one bound to a missing node stays.
func TestKubeletFinishesTerminatingPods(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   string
		status func(*corev1.Pod) // applied after the pod was marked
		kept   bool
	}{
		{name: "finished while terminating", node: "node-1", status: func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }},
		{name: "never started", node: "node-1"},
		{name: "node missing", node: "node-9", kept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, storePath(t))
			twoNodes(t, st)
			ctx := ctxT(t)
			p := createPod(t, st, "default", "p", withNode(tc.node))
			if _, err := st.DeleteWithOptions(ctx, store.Pods, "default", "p", store.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.status != nil {
				mustUpdate(t, st, store.Pods, "default", "p", "status", tc.status)
			}
			c := newCache(st, testLogger(t))
			if _, err := c.relist(ctx); err != nil {
				t.Fatal(err)
			}
			k := newKubelet(st, c, newFakeRuntime(), Config{}.withDefaults(), testLogger(t))
			if err := k.sync(ctx, "default/p"); err != nil {
				t.Fatal(err)
			}
			_, err := st.Get(ctx, store.Pods, "default", "p")
			if tc.kept {
				if err != nil {
					t.Errorf("pod on a missing node: %v, want it kept Terminating", err)
				}
				return
			}
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("pod after sync: %v, want deleted", err)
			}
			// A pod re-created under the same name is not the one the kubelet
			// was finishing: the uid precondition protects it.
			createPod(t, st, "default", "p", withNode(tc.node))
			if err := k.deletePod(ctx, "default/p", p); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, store.Pods, "default", "p"); err != nil {
				t.Errorf("re-created pod after deletePod of the old one: %v", err)
			}
		})
	}
}

// TestGracefulDeletionEndToEnd runs the controllers with the simulated
// runtime: a pod with a preStop sleep behind a Service is deleted as the API
// does it; its endpoint turns terminating (ready=false, serving=true,
// terminating=true) while the pod is still stored, then the kubelet deletes
// the pod and the endpoint goes. The order is checked on one watch of all
// resources, which delivers events in resourceVersion order.
func TestGracefulDeletionEndToEnd(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	rt := &SimulatedRuntime{}
	l := startLab(t, st, Config{}, rt)
	ctx := ctxT(t)
	mustCreate(t, st, store.Services, testService("default", "web", "10.96.0.10", map[string]string{"app": "web"},
		svcPort("http", 80, intstr.FromInt32(80))))
	createPod(t, st, "default", "stay", withLabels("app", "web"))
	createPod(t, st, "default", "leave", withLabels("app", "web"), func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	})
	l.sync()
	if got := endpointStates(listSlices(t, st, "default", "web")); cmp.Diff(map[string]string{
		"leave": "ready=true serving=true terminating=false", "stay": "ready=true serving=true terminating=false",
	}, got) != "" {
		t.Fatalf("endpoints before the delete: %v", got)
	}

	events, err := st.Watch(ctx, nil, "default", st.ResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	marked, err := st.DeleteWithOptions(ctx, store.Pods, "default", "leave", store.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !store.IsTerminating(marked) {
		t.Fatalf("pod not terminating after a graceful delete")
	}

	// The steps, in order; each event is matched against the steps not yet
	// seen. The last two may come in either order: the endpoint goes when the
	// kubelet reports the pod Succeeded, just before it deletes it.
	leaveState := func(ev store.Event) (string, bool) {
		if ev.Resource != store.EndpointSlices || ev.Type == watch.Deleted {
			return "", false
		}
		s, ok := endpointStates([]*discoveryv1.EndpointSlice{ev.Object.(*discoveryv1.EndpointSlice)})["leave"]
		return s, ok
	}
	podEvent := func(typ watch.EventType) func(store.Event) bool {
		return func(ev store.Event) bool {
			return ev.Resource == store.Pods && ev.Object.GetName() == "leave" && ev.Type == typ && ev.Object.GetDeletionTimestamp() != nil
		}
	}
	steps := []struct {
		name  string
		after int // index of the step that must have been seen first; -1 = none
		match func(ev store.Event) bool
	}{
		{"pod marked", -1, podEvent(watch.Modified)},
		{"endpoint terminating", 0, func(ev store.Event) bool {
			s, ok := leaveState(ev)
			return ok && s == "ready=false serving=true terminating=true"
		}},
		{"pod deleted", 1, podEvent(watch.Deleted)},
		{"endpoint removed", 1, func(ev store.Event) bool {
			_, ok := leaveState(ev)
			return ev.Resource == store.EndpointSlices && ev.Type == watch.Modified && !ok
		}},
	}
	seen := make([]bool, len(steps))
	for n := 0; n < len(steps); {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch closed; steps seen %v", seen)
			}
			for i, s := range steps {
				if seen[i] || !s.match(ev) {
					continue
				}
				if s.after >= 0 && !seen[s.after] {
					t.Fatalf("%q (rv %d) before %q", s.name, ev.ResourceVersion, steps[s.after].name)
				}
				seen[i] = true
				n++
			}
		case <-ctx.Done():
			t.Fatalf("steps not all seen within the test timeout: %v", seen)
		}
	}
	if _, err := st.Get(ctx, store.Pods, "default", "leave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pod after termination: %v, want deleted", err)
	}
	l.sync()
	if got := endpointStates(listSlices(t, st, "default", "web")); cmp.Diff(map[string]string{
		"stay": "ready=true serving=true terminating=false",
	}, got) != "" {
		t.Errorf("endpoints after the delete: %v", got)
	}
	if _, ok := rt.Sandboxes()["default/leave"]; ok {
		t.Error("sandbox of the deleted pod still running")
	}
}

// endpointStates returns pod name → "ready=… serving=… terminating=…" of
// the slices' endpoints.
func endpointStates(slices []*discoveryv1.EndpointSlice) map[string]string {
	out := map[string]string{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			out[ep.TargetRef.Name] = fmt.Sprintf("ready=%v serving=%v terminating=%v",
				ptr.Deref(c.Ready, false), ptr.Deref(c.Serving, false), ptr.Deref(c.Terminating, false))
		}
	}
	return out
}

func TestEndpointsExcludeTerminatingPods(t *testing.T) {
	svc := webService(svcPort("http", 80, intstr.FromInt32(80)))
	leaving := runningPod("leaving", "10.244.1.4", true, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: trigger} })
	pods := []*corev1.Pod{runningPod("a", "10.244.1.2", true), leaving}
	if got := desiredSubsets(svc, pods); len(got) != 1 || len(got[0].Addresses) != 1 || len(got[0].NotReadyAddresses) != 0 {
		t.Errorf("subsets = %+v, want only the running pod", got)
	}
	svc.Spec.PublishNotReadyAddresses = true
	if got := desiredSubsets(svc, pods); len(got) != 1 || len(got[0].Addresses) != 2 {
		t.Errorf("publishNotReadyAddresses subsets = %+v, want both pods ready", got)
	}
}

// blockingHandler stalls the cache on its first event until released, so
// the store's watch falls behind its history and is closed.
type blockingHandler struct {
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
	mu      sync.Mutex
	resyncs int
}

func (b *blockingHandler) handle(store.Event) {
	b.once.Do(func() {
		close(b.entered)
		<-b.gate
	})
}

func (b *blockingHandler) resync() {
	b.mu.Lock()
	b.resyncs++
	b.mu.Unlock()
}

func TestCacheRelistsWhenWatchFallsBehind(t *testing.T) {
	st, err := store.Open(storePath(t), store.Options{Logger: testLogger(t), HistorySize: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	twoNodes(t, st)
	ctx := ctxT(t)
	bh := &blockingHandler{entered: make(chan struct{}), gate: make(chan struct{})}
	m := NewManager(st, Config{}, &SimulatedRuntime{}, testLogger(t))
	m.cache.handlers = append(m.cache.handlers, bh)
	done := make(chan error, 1)
	runCtx, cancel := context.WithCancel(ctx)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	createPod(t, st, "default", "first")
	<-bh.entered
	// 300 writes while the cache is stalled: far more than the history (20)
	// plus the watch channel's buffer.
	for i := range 150 {
		createPod(t, st, "default", fmt.Sprintf("p-%03d", i))
		mustDelete(t, st, store.Pods, "default", fmt.Sprintf("p-%03d", i))
	}
	createPod(t, st, "default", "last")
	close(bh.gate)
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	bh.mu.Lock()
	resyncs := bh.resyncs
	bh.mu.Unlock()
	if resyncs < 2 {
		t.Errorf("resyncs = %d, want the initial list and at least one re-list", resyncs)
	}
	got := podIPs(t, st)
	if len(got) != 2 || got["default/first"] == "" || got["default/last"] == "" {
		t.Errorf("pods with IPs after the re-list = %v, want first and last", got)
	}
	if n := len(m.kubelet.podIPs()); n != 2 {
		t.Errorf("kubelet runs %d pods, want 2 (the deleted ones stopped)", n)
	}
}
