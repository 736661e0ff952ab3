package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// clearTimes zeroes the timestamps of a pod status so it can be compared as
// a whole.
func clearTimes(st corev1.PodStatus) corev1.PodStatus {
	st = *st.DeepCopy()
	st.StartTime = nil
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = metav1.Time{}
		st.Conditions[i].LastProbeTime = metav1.Time{}
	}
	for i := range st.ContainerStatuses {
		if r := st.ContainerStatuses[i].State.Running; r != nil {
			r.StartedAt = metav1.Time{}
		}
	}
	return st
}

func TestKubeletRunsPodWithStatus(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	rt := newFakeRuntime()
	l := startLab(t, st, Config{}, rt)
	pod := createPod(t, st, "default", "web-0", withNode("node-2"))
	l.sync()

	got := getPod(t, st, "default", "web-0")
	want := corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		},
		HostIP:   "172.29.0.3",
		HostIPs:  []corev1.HostIP{{IP: "172.29.0.3"}},
		PodIP:    "10.244.2.2",
		PodIPs:   []corev1.PodIP{{IP: "10.244.2.2"}},
		QOSClass: corev1.PodQOSBestEffort,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:        "web",
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			Ready:       true,
			Image:       "docker.io/library/myapp:latest",
			ContainerID: containerID(pod, "web"),
			Started:     ptr.To(true),
		}},
	}
	if diff := cmp.Diff(want, clearTimes(got.Status)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if got.Status.StartTime == nil || got.Status.ContainerStatuses[0].State.Running.StartedAt.IsZero() {
		t.Errorf("startTime/startedAt not set: %+v", got.Status)
	}
	if diff := cmp.Diff(map[string]string{"default/web-0": "10.244.2.2"}, rt.snapshot()); diff != "" {
		t.Errorf("runtime sandboxes (-want +got):\n%s", diff)
	}
}

func TestKubeletAssignsIPsFromNodeCIDRSkippingGateway(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	for i := range 3 {
		createPod(t, st, "default", fmt.Sprintf("a-%d", i), withNode("node-1"))
		createPod(t, st, "default", fmt.Sprintf("b-%d", i), withNode("node-2"))
		l.sync() // one at a time, so the order of allocation is known
	}
	want := map[string]string{
		"default/a-0": "10.244.1.2", "default/a-1": "10.244.1.3", "default/a-2": "10.244.1.4",
		"default/b-0": "10.244.2.2", "default/b-1": "10.244.2.3", "default/b-2": "10.244.2.4",
	}
	if diff := cmp.Diff(want, podIPs(t, st)); diff != "" {
		t.Errorf("pod IPs (-want +got):\n%s", diff)
	}
}

func TestKubeletSameIPsAfterRestart(t *testing.T) {
	path := storePath(t)
	st := openStore(t, path)
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	for i := range 6 {
		createPod(t, st, "default", fmt.Sprintf("p-%d", i))
	}
	l.sync()
	// Free an address in the middle, so a naive "next after the highest"
	// or "lowest free" restore would not reproduce the layout by accident.
	mustDelete(t, st, store.Pods, "default", "p-2")
	l.sync()
	before := podIPs(t, st)
	if len(before) != 5 {
		t.Fatalf("pods with IPs before restart = %d, want 5: %v", len(before), before)
	}
	l.stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path)
	rv := st.ResourceVersion()
	rt := newFakeRuntime()
	startLab(t, st, Config{}, rt)
	if diff := cmp.Diff(before, podIPs(t, st)); diff != "" {
		t.Errorf("pod IPs after restart (-before +after):\n%s", diff)
	}
	if got := st.ResourceVersion(); got != rv {
		t.Errorf("restart wrote to the store: resourceVersion %d → %d", rv, got)
	}
	rt.mu.Lock()
	syncs := rt.syncs
	rt.mu.Unlock()
	if len(syncs) != 1 || len(syncs[0]) != 5 {
		t.Errorf("SyncPods calls = %v, want one call with the 5 pods", syncs)
	}
	snap := rt.snapshot()
	for key, ip := range before {
		if snap[key] != ip {
			t.Errorf("runtime has %s at %v, want %s", key, snap[key], ip)
		}
	}
}

func TestKubeletReleasesIPOnDelete(t *testing.T) {
	st := openStore(t, storePath(t))
	createNamespaces(t, st, "default")
	// A /29: pods can use .2 … .6 (5 addresses).
	createNode(t, st, "node-1", "10.244.1.0/29", "172.29.0.2", true)
	rt := newFakeRuntime()
	l := startLab(t, st, Config{}, rt)
	for i := range 5 {
		createPod(t, st, "default", fmt.Sprintf("p-%d", i))
	}
	l.sync()
	createPod(t, st, "default", "late")
	l.sync()
	late := getPod(t, st, "default", "late")
	if late.Status.PodIP != "" || late.Status.Phase != corev1.PodPending {
		t.Fatalf("pod beyond the CIDR: phase %s ip %q, want Pending without IP", late.Status.Phase, late.Status.PodIP)
	}
	if cs := late.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("pending pod container status = %+v, want waiting ContainerCreating", cs)
	}
	freed := getPod(t, st, "default", "p-3").Status.PodIP
	mustDelete(t, st, store.Pods, "default", "p-3")
	// The freed address goes to the waiting pod at once.
	l.sync()
	if got := getPod(t, st, "default", "late").Status.PodIP; got != freed {
		t.Errorf("late pod IP = %s, want the released %s", got, freed)
	}
	if n := rt.stopCount("default/p-3"); n != 1 {
		t.Errorf("StopPod calls for the deleted pod = %d, want 1", n)
	}
	if _, ok := rt.snapshot()["default/p-3"]; ok {
		t.Error("deleted pod's sandbox still exists")
	}
}

func TestKubeletRotatesAddresses(t *testing.T) {
	// host-local style: a new pod does not take the address a pod just left.
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	createPod(t, st, "default", "a", withNode("node-1"))
	l.sync()
	mustDelete(t, st, store.Pods, "default", "a")
	l.sync()
	createPod(t, st, "default", "b", withNode("node-1"))
	l.sync()
	if got := getPod(t, st, "default", "b").Status.PodIP; got != "10.244.1.3" {
		t.Errorf("next pod IP = %s, want 10.244.1.3", got)
	}
}

func TestKubeletNoDuplicateIPsUnderConcurrentCreates(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	rt := newFakeRuntime()
	l := startLab(t, st, Config{}, rt)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.Create(ctxT(t), store.Pods, testPod("default", fmt.Sprintf("p-%02d", i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l.sync()
	seen := map[string]string{}
	perNode := map[string]int{}
	for _, p := range listPods(t, st, "default") {
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s phase %s, want Running", p.Name, p.Status.Phase)
			continue
		}
		if other, dup := seen[p.Status.PodIP]; dup {
			t.Errorf("IP %s given to %s and %s", p.Status.PodIP, other, p.Name)
		}
		seen[p.Status.PodIP] = p.Name
		perNode[p.Spec.NodeName]++
		cidr := map[string]string{"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24"}[p.Spec.NodeName]
		ip := netip.MustParseAddr(p.Status.PodIP)
		if !netip.MustParsePrefix(cidr).Contains(ip) || ip.As4()[3] < 2 {
			t.Errorf("pod %s on %s has IP %s, want one of %s from .2", p.Name, p.Spec.NodeName, ip, cidr)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct IPs, want %d", len(seen), n)
	}
	if perNode["node-1"] != n/2 || perNode["node-2"] != n/2 {
		t.Errorf("pods per node = %v, want %d each", perNode, n/2)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.dupErrors) > 0 {
		t.Errorf("runtime was asked for doubled IPs: %v", rt.dupErrors)
	}
}

func TestKubeletRetriesFailedStart(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	rt := newFakeRuntime()
	rt.failStart["default/flaky"] = 2
	l := startLab(t, st, Config{}, rt)
	createPod(t, st, "default", "flaky", withNode("node-1"))
	deadline := time.Now().Add(testTimeout)
	for getPod(t, st, "default", "flaky").Status.Phase != corev1.PodRunning {
		if time.Now().After(deadline) {
			t.Fatalf("pod never Running; status %+v", getPod(t, st, "default", "flaky").Status)
		}
		l.sync() // retries are delayed adds: sync until they have happened
	}
	// Each failed attempt released its address; like host-local IPAM the next
	// attempt moves on (.2, .3 failed; .4 worked), and only one is held.
	if got := getPod(t, st, "default", "flaky").Status.PodIP; got != "10.244.1.4" {
		t.Errorf("pod IP after two failed starts = %s, want 10.244.1.4", got)
	}
	l.m.kubelet.mu.Lock()
	n := l.m.kubelet.ipam["node-1"].used()
	l.m.kubelet.mu.Unlock()
	if n != 1 {
		t.Errorf("node-1 addresses in use = %d, want 1", n)
	}
}

func TestKubeletReadinessKnobAndGates(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	createPod(t, st, "default", "gated", withNode("node-1"), func(p *corev1.Pod) {
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	})
	createPod(t, st, "default", "probe", withNode("node-1"), withAnnotation(AnnotationReady, "false"))
	l.sync()

	cond := func(name string, typ corev1.PodConditionType) corev1.PodCondition {
		c := podCondition(&getPod(t, st, "default", name).Status, typ)
		if c == nil {
			t.Fatalf("pod %s has no %s condition", name, typ)
		}
		out := *c
		out.LastTransitionTime = metav1.Time{}
		return out
	}
	want := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady",
		Message: `corresponding condition of pod readiness gate "example.com/lb" does not exist.`}
	if diff := cmp.Diff(want, cond("gated", corev1.PodReady)); diff != "" {
		t.Errorf("gated Ready (-want +got):\n%s", diff)
	}
	want = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady",
		Message: "containers with unready status: [web]"}
	if diff := cmp.Diff(want, cond("probe", corev1.PodReady)); diff != "" {
		t.Errorf("not-ready pod Ready (-want +got):\n%s", diff)
	}

	// The gate's owner sets its condition: the kubelet keeps it and turns Ready.
	mustUpdate(t, st, store.Pods, "default", "gated", "status", func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionTrue})
	})
	// Flip the knob back.
	mustUpdate(t, st, store.Pods, "default", "probe", "", func(p *corev1.Pod) { delete(p.Annotations, AnnotationReady) })
	l.sync()
	for _, name := range []string{"gated", "probe"} {
		if c := cond(name, corev1.PodReady); c.Status != corev1.ConditionTrue {
			t.Errorf("pod %s Ready = %+v, want True", name, c)
		}
	}
	if c := cond("gated", "example.com/lb"); c.Status != corev1.ConditionTrue {
		t.Errorf("gate condition lost: %+v", c)
	}
}

func TestKubeletStopsPodsOfDeletedNode(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	rt := newFakeRuntime()
	l := startLab(t, st, Config{}, rt)
	createPod(t, st, "default", "x", withNode("node-2"))
	l.sync()
	mustDelete(t, st, store.Nodes, "", "node-2")
	l.sync()
	if _, ok := rt.snapshot()["default/x"]; ok {
		t.Error("pod of a deleted node still has a sandbox")
	}
	if n := rt.stopCount("default/x"); n != 1 {
		t.Errorf("StopPod calls = %d, want 1", n)
	}
}

func TestNodeIPAM(t *testing.T) {
	a, err := newNodeIPAM(netip.MustParsePrefix("10.0.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 5 {
		ip, err := a.allocate(fmt.Sprint(i), "u", netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if diff := cmp.Diff([]string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, got); diff != "" {
		t.Errorf("allocation order (-want +got):\n%s", diff)
	}
	if _, err := a.allocate("full", "u", netip.Addr{}); err == nil {
		t.Error("allocation from a full CIDR succeeded")
	}
	a.release("1")
	if ip, err := a.allocate("x", "u", netip.Addr{}); err != nil || ip.String() != "10.0.0.3" {
		t.Errorf("allocate after release = %v, %v; want 10.0.0.3", ip, err)
	}
	// Same key, same uid: same IP. Same key, new uid: the old one is dropped first.
	if ip, _ := a.allocate("x", "u", netip.Addr{}); ip.String() != "10.0.0.3" {
		t.Errorf("re-allocate same pod = %v", ip)
	}
	for _, bad := range []string{"10.0.0.0", "10.0.0.1", "10.0.0.7", "10.0.1.2"} {
		if a.reserve("y", "u", netip.MustParseAddr(bad)) {
			t.Errorf("reserve(%s) succeeded: network, gateway, broadcast or outside", bad)
		}
	}
	if a.reserve("y", "u", netip.MustParseAddr("10.0.0.4")) {
		t.Error("reserve of an address held by another pod succeeded")
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                                 "docker.io/library/nginx:latest",
		"nginx:1.27":                            "docker.io/library/nginx:1.27",
		"me/app":                                "docker.io/me/app:latest",
		"registry.k8s.io/coredns/coredns:v1.12": "registry.k8s.io/coredns/coredns:v1.12",
		"localhost:5000/app":                    "localhost:5000/app:latest",
		"nginx@sha256:abc":                      "docker.io/library/nginx@sha256:abc",
	} {
		if got := normalizeImage(in); got != want {
			t.Errorf("normalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
}

// failingSync is a runtime whose SyncPods fails.
type failingSync struct{ *fakeRuntime }

func (failingSync) SyncPods(context.Context, []*corev1.Pod) error { return errInjected }

func TestManagerRunFailsWhenRuntimeRestoreFails(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	m := NewManager(st, Config{}, failingSync{newFakeRuntime()}, testLogger(t))
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctxT(t)) }()
	select {
	case err := <-errc:
		if !errors.Is(err, errInjected) {
			t.Errorf("Run = %v, want the runtime's error", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not return")
	}
	if err := m.WaitSynced(ctxT(t)); !errors.Is(err, errInjected) {
		t.Errorf("WaitSynced = %v, want the runtime's error", err)
	}
}
