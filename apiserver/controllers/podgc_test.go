package controllers

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/apiserver/store"
)

// TestPodGCDeletesOrphanedPods drives the pod garbage collector with a
// controlled clock: pods bound to a node that is gone are deleted once the
// node has been missing for the quarantine time (40 s), a running one first
// marked Failed with DisruptionTarget=True; pods of a node that comes back
// in time, and of nodes that exist, stay.
func TestPodGCDeletesOrphanedPods(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	running := func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }
	for _, p := range []struct {
		name, node string
		phase      corev1.PodPhase
	}{
		{"stays", "node-1", corev1.PodRunning},
		{"orphan", "node-2", corev1.PodRunning},
		{"finished", "node-2", corev1.PodSucceeded},
		{"nowhere", "node-9", corev1.PodPending},
		{"back", "node-3", corev1.PodPending},
	} {
		createPod(t, st, "default", p.name, withNode(p.node))
		phase := p.phase
		mustUpdate(t, st, store.Pods, "default", p.name, "status", func(pod *corev1.Pod) { running(pod); pod.Status.Phase = phase })
	}
	mustDelete(t, st, store.Nodes, "", "node-2")

	ctx := ctxT(t)
	c := newCache(st, testLogger(t))
	relist := func() {
		t.Helper()
		if _, err := c.relist(ctx); err != nil {
			t.Fatal(err)
		}
	}
	relist()
	events, err := st.Watch(ctx, store.Pods, "default", st.ResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	gc := newPodGC(st, c, Config{}.withDefaults(), testLogger(t))
	clock := time.Unix(1_700_000_000, 0)
	gc.now = func() time.Time { return clock }
	names := func() []string {
		var out []string
		for _, p := range listPods(t, st, "default") {
			out = append(out, p.Name)
		}
		slices.Sort(out)
		return out
	}
	all := []string{"back", "finished", "nowhere", "orphan", "stays"}

	gc.collect(ctx) // the quarantine of node-2, node-3 and node-9 starts
	clock = clock.Add(39 * time.Second)
	gc.collect(ctx)
	if diff := cmp.Diff(all, names()); diff != "" {
		t.Fatalf("pods within the quarantine (-want +got):\n%s", diff)
	}

	// node-3 appears in time: its pod stays, and a later loss starts a new quarantine.
	createNode(t, st, "node-3", "10.244.3.0/24", "172.29.0.4", true)
	relist()
	clock = clock.Add(2 * time.Second)
	gc.collect(ctx)
	if diff := cmp.Diff([]string{"back", "stays"}, names()); diff != "" {
		t.Errorf("pods after the quarantine (-want +got):\n%s", diff)
	}
	if _, ok := gc.missingSince["node-3"]; ok {
		t.Error("node-3 is still remembered as missing after it came back")
	}

	// What the pods' watchers saw: the unfinished orphans (running or
	// pending) were marked Failed with the DisruptionTarget condition first;
	// the finished one was just deleted (grace 0, then gone).
	var seen []string
	for len(seen) < 8 {
		select {
		case ev := <-events:
			p := ev.Object.(*corev1.Pod)
			line := fmt.Sprintf("%s %s %s", ev.Type, p.Name, p.Status.Phase)
			if c := podCondition(&p.Status, corev1.DisruptionTarget); c != nil {
				line += fmt.Sprintf(" %s=%s %s %q", c.Type, c.Status, c.Reason, c.Message)
			}
			seen = append(seen, line)
		case <-ctx.Done():
			t.Fatalf("events so far: %q", seen)
		}
	}
	slices.Sort(seen)
	gone := ` Failed DisruptionTarget=True DeletionByPodGC "PodGC: node no longer exists"`
	want := []string{
		"DELETED finished Succeeded",
		"DELETED nowhere" + gone,
		"DELETED orphan" + gone,
		"MODIFIED finished Succeeded",
		"MODIFIED nowhere" + gone, // the status write
		"MODIFIED nowhere" + gone, // grace 0
		"MODIFIED orphan" + gone,
		"MODIFIED orphan" + gone,
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("pod events (-want +got):\n%s", diff)
	}
}

// TestEndpointSliceSkipsPodsOfMissingNodes: when a node is deleted, the
// EndpointSlice controller drops its pods' endpoints at once (kube: "skipping
// Pod for Service, Node not found"), before the pod garbage collector deletes
// the pods; with publishNotReadyAddresses they stay.
func TestEndpointSliceSkipsPodsOfMissingNodes(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	for _, n := range []string{"node-1", "node-2"} {
		createPod(t, st, "default", "web-"+n, withNode(n), withLabels("app", "web"), withPorts(tcpPort("http", 8080)))
	}
	mustCreate(t, st, store.Services, testService("default", "web", "10.96.0.20", map[string]string{"app": "web"}, svcPort("http", 80, intstr.FromString("http"))))
	published := testService("default", "web-all", "10.96.0.21", map[string]string{"app": "web"}, svcPort("http", 80, intstr.FromString("http")))
	published.Spec.PublishNotReadyAddresses = true
	mustCreate(t, st, store.Services, published)
	ips := func(svc string) []string {
		var out []string
		for _, s := range listSlices(t, st, "default", svc) {
			for _, ep := range s.Endpoints {
				out = append(out, ep.Addresses...)
			}
		}
		slices.Sort(out)
		return out
	}
	l.sync()
	if len(ips("web")) != 2 || len(ips("web-all")) != 2 {
		t.Fatalf("endpoints before: web %v, web-all %v; want both pods in each", ips("web"), ips("web-all"))
	}
	node2IP := getPod(t, st, "default", "web-node-2").Status.PodIP

	mustDelete(t, st, store.Nodes, "", "node-2")
	l.sync()
	if !slices.Contains(ips("web-all"), node2IP) {
		t.Errorf("web-all (publishNotReadyAddresses) endpoints %v lost %s", ips("web-all"), node2IP)
	}
	if got := ips("web"); len(got) != 1 {
		t.Errorf("web endpoints %v, want node-1's pod only (not %s)", got, node2IP)
	}
}
