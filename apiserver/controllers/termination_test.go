package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// TestKubeletGracefulTermination drives the kubelet's termination path
// directly: the store deletes at once (it cannot set a deletionTimestamp), so
// the test puts the terminating pod into the kubelet's cache as a graceful
// DELETE would show it, and controls the clock.
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
	if _, err := c.relist(ctx); err != nil {
		t.Fatal(err)
	}
	events, err := st.Watch(ctx, store.Pods, "default", 0)
	if err != nil {
		t.Fatal(err)
	}

	terminating := c.pod("default", "p").DeepCopy()
	terminating.DeletionTimestamp = &metav1.Time{Time: clock.Add(30 * time.Second)}
	terminating.DeletionGracePeriodSeconds = ptr.To[int64](30)
	c.mu.Lock()
	putNS(c.pods, "default", "p", terminating)
	c.mu.Unlock()

	// During the preStop sleep the pod keeps running (and Ready: its endpoint
	// is serving and terminating).
	if err := k.sync(ctx, "default/p"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.snapshot()["default/p"]; !ok {
		t.Fatal("pod stopped before its preStop sleep ended")
	}
	if p := getPod(t, st, "default", "p"); !isPodReady(p) {
		t.Error("pod not Ready during its preStop sleep")
	}
	clock = clock.Add(5 * time.Second)
	if err := k.sync(ctx, "default/p"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.snapshot()["default/p"]; ok {
		t.Error("pod still running after its preStop sleep")
	}
	// The kubelet reported it Succeeded, then deleted it.
	var seen []string
	for len(seen) < 2 {
		select {
		case ev := <-events:
			p := ev.Object.(*corev1.Pod)
			seen = append(seen, fmt.Sprintf("%s %s", ev.Type, p.Status.Phase))
			if ev.Type == watch.Modified {
				if isPodReady(p) || p.Status.ContainerStatuses[0].State.Terminated == nil || p.Status.PodIP == "" {
					t.Errorf("terminal status = %+v", p.Status)
				}
			}
		case <-ctx.Done():
			t.Fatalf("events so far %v", seen)
		}
	}
	if fmt.Sprint(seen) != "[MODIFIED Succeeded DELETED Succeeded]" {
		t.Errorf("events = %v, want the terminal status write then the deletion", seen)
	}
	k.mu.Lock()
	used := k.ipam["node-1"].used()
	k.mu.Unlock()
	if used != 0 {
		t.Errorf("addresses in use after termination = %d", used)
	}
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
