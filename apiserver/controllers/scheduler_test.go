package controllers

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSchedulerSpreadsPods(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	createNode(t, st, "node-3", "10.244.3.0/24", "172.29.0.4", true)
	// Two pods pinned to node-1 beforehand: the scheduler must count them.
	createPod(t, st, "default", "pinned-0", withNode("node-1"))
	createPod(t, st, "default", "pinned-1", withNode("node-1"))
	l := startLab(t, st, Config{}, newFakeRuntime())

	// One at a time, so each placement sees the previous ones.
	var order []string
	for i := range 7 {
		name := fmt.Sprintf("p-%d", i)
		createPod(t, st, "default", name)
		l.sync()
		order = append(order, getPod(t, st, "default", name).Spec.NodeName)
	}
	// node-2 and node-3 have 0 (tie → node-2), then node-3, then 1/1/2 …
	want := []string{"node-2", "node-3", "node-2", "node-3", "node-1", "node-2", "node-3"}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
	c := podCondition(&getPod(t, st, "default", "p-0").Status, corev1.PodScheduled)
	if c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled = %+v, want True", c)
	}
}

func TestSchedulerBurstIsBalanced(t *testing.T) {
	// Many pods at once: binds race their own watch events, which the
	// scheduler must count before they reach the cache.
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	for i := range 40 {
		createPod(t, st, "default", fmt.Sprintf("p-%02d", i))
	}
	l.sync()
	per := map[string]int{}
	for _, p := range listPods(t, st, "default") {
		per[p.Spec.NodeName]++
	}
	if diff := cmp.Diff(map[string]int{"node-1": 20, "node-2": 20}, per); diff != "" {
		t.Errorf("pods per node (-want +got):\n%s", diff)
	}
}

func TestSchedulerHonoursNodeName(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	for i := range 3 {
		createPod(t, st, "default", fmt.Sprintf("p-%d", i), withNode("node-2"))
	}
	l.sync()
	for _, p := range listPods(t, st, "default") {
		if p.Spec.NodeName != "node-2" || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s: node %q phase %s, want node-2 Running", p.Name, p.Spec.NodeName, p.Status.Phase)
		}
	}
}

func TestSchedulerUnknownNodeStaysPending(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	rt := newFakeRuntime()
	l := startLab(t, st, Config{}, rt)
	createPod(t, st, "default", "lost", withNode("node-9"))
	l.sync()
	p := getPod(t, st, "default", "lost")
	// As in kube: bound to a node no kubelet serves, the pod is never touched.
	want := corev1.PodStatus{Phase: corev1.PodPending}
	if diff := cmp.Diff(want, p.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if _, ok := rt.snapshot()["default/lost"]; ok {
		t.Error("runtime started a pod of an unknown node")
	}
	// The node appears: its kubelet picks the pod up.
	createNode(t, st, "node-9", "10.244.9.0/24", "172.29.0.10", true)
	l.sync()
	p = getPod(t, st, "default", "lost")
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP != "10.244.9.2" {
		t.Errorf("after node-9 joined: phase %s ip %s, want Running 10.244.9.2", p.Status.Phase, p.Status.PodIP)
	}
}

func TestSchedulerNoReadyNodes(t *testing.T) {
	st := openStore(t, storePath(t))
	createNamespaces(t, st, "default")
	createNode(t, st, "node-1", "10.244.1.0/24", "172.29.0.2", false)
	createNode(t, st, "node-2", "10.244.2.0/24", "172.29.0.3", false)
	l := startLab(t, st, Config{}, newFakeRuntime())
	createPod(t, st, "default", "waiting")
	l.sync()
	p := getPod(t, st, "default", "waiting")
	c := podCondition(&p.Status, corev1.PodScheduled)
	if c == nil {
		t.Fatalf("no PodScheduled condition: %+v", p.Status)
	}
	got := *c
	got.LastTransitionTime = metav1.Time{}
	want := corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. " +
			"preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PodScheduled (-want +got):\n%s", diff)
	}
	if p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Errorf("pod bound to %q phase %s, want unbound Pending", p.Spec.NodeName, p.Status.Phase)
	}

	setNodeReady(t, st, "node-2", "172.29.0.3", true)
	l.sync()
	p = getPod(t, st, "default", "waiting")
	if p.Spec.NodeName != "node-2" || p.Status.Phase != corev1.PodRunning {
		t.Errorf("after node-2 became Ready: node %q phase %s", p.Spec.NodeName, p.Status.Phase)
	}
	if c := podCondition(&p.Status, corev1.PodScheduled); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "" {
		t.Errorf("PodScheduled after binding = %+v, want True", c)
	}
}

func TestSchedulerPick(t *testing.T) {
	ready := func(n *corev1.Node) *corev1.Node {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		return n
	}
	node := func(name string, mods ...func(*corev1.Node)) *corev1.Node {
		n := ready(testNode(name, "10.244.1.0/24", ""))
		for _, m := range mods {
			m(n)
		}
		return n
	}
	cordoned := func(n *corev1.Node) { n.Spec.Unschedulable = true }
	tainted := func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	}
	preferNo := func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule}}
	}
	unknown := func(n *corev1.Node) { n.Status.Conditions = nil }
	pod := func(mods ...func(*corev1.Pod)) *corev1.Pod {
		p := testPod("default", "p")
		for _, m := range mods {
			m(p)
		}
		return p
	}
	tolerateDB := func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	}
	ssd := func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }
	const pre = ". preemption: 0/%d nodes are available: %d Preemption is not helpful for scheduling."
	tests := []struct {
		name    string
		pod     *corev1.Pod
		nodes   []*corev1.Node
		counts  map[string]int
		want    string
		wantMsg string
		wantWhy string
	}{
		{name: "fewest pods", pod: pod(), nodes: []*corev1.Node{node("a"), node("b")}, counts: map[string]int{"a": 2, "b": 1}, want: "b"},
		{name: "tie to lowest name", pod: pod(), nodes: []*corev1.Node{node("a"), node("b")}, counts: map[string]int{"a": 1, "b": 1}, want: "a"},
		{name: "no nodes", pod: pod(), wantWhy: corev1.PodReasonSchedulerError, wantMsg: "no nodes available to schedule pods"},
		{name: "cordoned skipped", pod: pod(), nodes: []*corev1.Node{node("a", cordoned), node("b")}, counts: map[string]int{"b": 9}, want: "b"},
		{name: "prefer-no-schedule is not a filter", pod: pod(), nodes: []*corev1.Node{node("a", preferNo)}, want: "a"},
		{name: "toleration", pod: pod(tolerateDB), nodes: []*corev1.Node{node("a", tainted)}, want: "a"},
		{name: "node selector", pod: pod(ssd), nodes: []*corev1.Node{node("a"), node("b", func(n *corev1.Node) { n.Labels["disk"] = "ssd" })}, want: "b"},
		{
			name: "all unfit", pod: pod(ssd), nodes: []*corev1.Node{node("a", cordoned), node("b", tainted), node("c", unknown), node("d")},
			wantWhy: corev1.PodReasonUnschedulable,
			wantMsg: "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: db}, " +
				"1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable" + fmt.Sprintf(pre, 4, 4),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScheduler(nil, nil, testLogger(t))
			for n, c := range tt.counts {
				for i := range c {
					s.assignLocked(fmt.Sprintf("%s/%d", n, i), n)
				}
			}
			got, why, msg := s.pick(tt.pod, tt.nodes)
			if got != tt.want || why != tt.wantWhy || msg != tt.wantMsg {
				t.Errorf("pick = (%q, %q, %q), want (%q, %q, %q)", got, why, msg, tt.want, tt.wantWhy, tt.wantMsg)
			}
		})
	}
}

func TestSchedulerIgnoresOtherSchedulers(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	createPod(t, st, "default", "custom", func(p *corev1.Pod) { p.Spec.SchedulerName = "my-scheduler" })
	l.sync()
	if p := getPod(t, st, "default", "custom"); p.Spec.NodeName != "" || len(p.Status.Conditions) != 0 {
		t.Errorf("pod of another scheduler was touched: node %q conditions %v", p.Spec.NodeName, p.Status.Conditions)
	}
}
