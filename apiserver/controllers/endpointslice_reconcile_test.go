package controllers

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var trigger = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// runningPod returns a pod with an IP on node-1, Ready unless ready is false.
func runningPod(name, ip string, ready bool, opts ...podOpt) *corev1.Pod {
	p := testPod("default", name, withNode("node-1"), withLabels("app", "web"))
	p.UID = types.UID("uid-" + name)
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func webService(ports ...corev1.ServicePort) *corev1.Service {
	svc := testService("default", "web", "10.96.0.50", map[string]string{"app": "web"}, ports...)
	svc.UID = "svc-uid"
	svc.Labels = map[string]string{"team": "a"}
	return svc
}

// sliceSummary is a readable form of a slice for whole-output comparisons.
type sliceSummary struct {
	Name      string
	Ports     []string // "name/proto/port", sorted
	Endpoints []string // "ip node ready/serving/terminating [hostname]", in order
}

func summarize(s *discoveryv1.EndpointSlice) sliceSummary {
	out := sliceSummary{Name: s.Name}
	if s.Name == "" {
		out.Name = s.GenerateName + "*"
	}
	for _, p := range s.Ports {
		out.Ports = append(out.Ports, fmt.Sprintf("%s/%s/%d", *p.Name, *p.Protocol, *p.Port))
	}
	slices.Sort(out.Ports)
	for _, e := range s.Endpoints {
		c := e.Conditions
		line := fmt.Sprintf("%s %s %v/%v/%v", strings.Join(e.Addresses, ","), ptr.Deref(e.NodeName, "-"),
			ptr.Deref(c.Ready, false), ptr.Deref(c.Serving, false), ptr.Deref(c.Terminating, false))
		if e.Hostname != nil {
			line += " " + *e.Hostname
		}
		out.Endpoints = append(out.Endpoints, line)
	}
	return out
}

type planSummary struct {
	Create, Update, Delete []sliceSummary
}

func summarizePlan(p slicePlan) planSummary {
	var out planSummary
	for _, s := range p.create {
		out.Create = append(out.Create, summarize(s))
	}
	for _, s := range p.update {
		out.Update = append(out.Update, summarize(s))
	}
	for _, s := range p.delete {
		out.Delete = append(out.Delete, sliceSummary{Name: s.Name})
	}
	return out
}

// asExisting turns planned creates into stored slices named name-N.
func asExisting(p slicePlan) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for i, s := range p.create {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%s%d", s.GenerateName, i)
		s.ResourceVersion = "1"
		out = append(out, s)
	}
	return out
}

func TestSliceReconcile(t *testing.T) {
	namedSvc := webService(svcPort("http", 80, intstr.FromString("http")), svcPort("metrics", 9100, intstr.FromInt32(9100)))
	r := &sliceReconciler{maxEndpointsPerSlice: 100}
	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want planSummary
	}{
		{
			name: "no pods: one placeholder",
			svc:  webService(svcPort("http", 80, intstr.FromInt32(8080))),
			want: planSummary{Create: []sliceSummary{{Name: "web-*"}}},
		},
		{
			name: "named port groups pods by resolved ports",
			svc:  namedSvc,
			pods: []*corev1.Pod{
				runningPod("a", "10.244.1.2", true, withPorts(tcpPort("http", 8080))),
				runningPod("b", "10.244.1.3", true, withPorts(tcpPort("http", 8081))),
				runningPod("c", "10.244.1.4", true, withPorts(tcpPort("web", 8080))), // lacks "http"
				runningPod("d", "10.244.1.5", true, withPorts(corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolUDP})),
				runningPod("e", "10.244.1.6", true, withPorts(tcpPort("http", 8080))),
			},
			// One slice per resolved port set (in the order of the sets' hashes).
			want: planSummary{Create: []sliceSummary{
				{Name: "web-*", Ports: []string{"http/TCP/8080", "metrics/TCP/9100"}, Endpoints: []string{
					"10.244.1.2 node-1 true/true/false", "10.244.1.6 node-1 true/true/false"}},
				{Name: "web-*", Ports: []string{"metrics/TCP/9100"}, Endpoints: []string{
					"10.244.1.4 node-1 true/true/false", "10.244.1.5 node-1 true/true/false"}},
				{Name: "web-*", Ports: []string{"http/TCP/8081", "metrics/TCP/9100"}, Endpoints: []string{"10.244.1.3 node-1 true/true/false"}},
			}},
		},
		{
			name: "readiness, terminating, no IP, terminal",
			svc:  webService(svcPort("http", 80, intstr.FromInt32(80))),
			pods: []*corev1.Pod{
				runningPod("ready", "10.244.1.2", true),
				runningPod("unready", "10.244.1.3", false),
				runningPod("leaving", "10.244.1.4", true, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: trigger} }),
				runningPod("leaving-unready", "10.244.1.5", false, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: trigger} }),
				runningPod("no-ip", "", true, func(p *corev1.Pod) { p.Status.PodIPs = nil }),
				runningPod("done", "10.244.1.6", false, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
			},
			want: planSummary{Create: []sliceSummary{{Name: "web-*", Ports: []string{"http/TCP/80"}, Endpoints: []string{
				"10.244.1.2 node-1 true/true/false",
				"10.244.1.3 node-1 false/false/false",
				"10.244.1.4 node-1 false/true/true",
				"10.244.1.5 node-1 false/false/true",
			}}}},
		},
		{
			name: "publishNotReadyAddresses: ready regardless, serving is the truth",
			svc: func() *corev1.Service {
				s := webService(svcPort("http", 80, intstr.FromInt32(80)))
				s.Spec.PublishNotReadyAddresses = true
				return s
			}(),
			pods: []*corev1.Pod{
				runningPod("unready", "10.244.1.3", false),
				runningPod("leaving", "10.244.1.4", true, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: trigger} }),
			},
			want: planSummary{Create: []sliceSummary{{Name: "web-*", Ports: []string{"http/TCP/80"}, Endpoints: []string{
				"10.244.1.3 node-1 true/false/false",
				"10.244.1.4 node-1 true/true/true",
			}}}},
		},
		{
			name: "hostname only when subdomain names the service",
			svc:  webService(svcPort("http", 80, intstr.FromInt32(80))),
			pods: []*corev1.Pod{
				runningPod("a", "10.244.1.2", true, withHostname("alpha", "web")),
				runningPod("b", "10.244.1.3", true, withHostname("beta", "other")),
			},
			want: planSummary{Create: []sliceSummary{{Name: "web-*", Ports: []string{"http/TCP/80"}, Endpoints: []string{
				"10.244.1.2 node-1 true/true/false alpha",
				"10.244.1.3 node-1 true/true/false",
			}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarizePlan(r.reconcile(tt.svc, tt.pods, nil, trigger))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSliceReconcileNewSlice(t *testing.T) {
	// The whole object the controller creates, as kube-controller-manager would.
	svc := webService(svcPort("http", 80, intstr.FromInt32(8080)))
	pod := runningPod("a", "10.244.1.2", true, withHostname("a", "web"))
	plan := (&sliceReconciler{maxEndpointsPerSlice: 100}).reconcile(svc, []*corev1.Pod{pod}, nil, trigger)
	if len(plan.create) != 1 {
		t.Fatalf("plan = %+v, want one create", summarizePlan(plan))
	}
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-",
			Namespace:    "default",
			Labels: map[string]string{
				"team":                                   "a",
				"kubernetes.io/service-name":             "web",
				"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
			},
			Annotations: map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2025-01-02T03:04:05Z"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: "web", UID: "svc-uid",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.1.2"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			Hostname:   ptr.To("a"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "a", UID: "uid-a"},
			NodeName:   ptr.To("node-1"),
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	if diff := cmp.Diff(want, plan.create[0]); diff != "" {
		t.Errorf("slice (-want +got):\n%s", diff)
	}

	// Headless: the headless label; no trigger time: no annotation.
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
	plan = (&sliceReconciler{maxEndpointsPerSlice: 100}).reconcile(svc, []*corev1.Pod{pod}, nil, time.Time{})
	if got := plan.create[0].Labels; got[corev1.IsHeadlessService] != "" || len(got) != 4 {
		t.Errorf("headless labels = %v", got)
	}
	if _, ok := plan.create[0].Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		t.Error("trigger annotation set for a zero trigger time")
	}
}

func TestSliceReconcileChurn(t *testing.T) {
	r := &sliceReconciler{maxEndpointsPerSlice: 100}
	svc := webService(svcPort("http", 80, intstr.FromInt32(80)))
	pods := func(from, to int) []*corev1.Pod {
		var out []*corev1.Pod
		for i := from; i < to; i++ {
			out = append(out, runningPod(fmt.Sprintf("p-%03d", i), fmt.Sprintf("10.244.%d.%d", 1+i/250, 2+i%250), true))
		}
		return out
	}
	existing := asExisting(r.reconcile(svc, pods(0, 100), nil, trigger))
	if len(existing) != 1 || len(existing[0].Endpoints) != 100 {
		t.Fatalf("100 pods → %d slices", len(existing))
	}

	// Unchanged: nothing to write.
	if p := r.reconcile(svc, pods(0, 100), existing, trigger); !p.empty() {
		t.Errorf("unchanged state plans writes: %+v", summarizePlan(p))
	}

	// 50 more: the full slice stays untouched, one new slice.
	p := r.reconcile(svc, pods(0, 150), existing, trigger)
	if len(p.update) != 0 || len(p.delete) != 0 || len(p.create) != 1 || len(p.create[0].Endpoints) != 50 {
		t.Errorf("scale 100→150 plan = %+v", summarizePlan(p))
	}
	existing = append(existing, asExisting(p)...)
	existing[1].Name = "web-extra"

	// One pod of the first slice becomes unready: only that slice is updated.
	ps := pods(0, 150)
	ps[7].Status.Conditions[0].Status = corev1.ConditionFalse
	p = r.reconcile(svc, ps, existing, trigger)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || p.update[0].Name != "web-0" {
		t.Errorf("readiness change plan = %+v", summarizePlan(p))
	} else if ep := p.update[0].Endpoints[7]; *ep.Conditions.Ready || ep.TargetRef.Name != "p-007" {
		t.Errorf("endpoint 7 after update = %+v (kept in place?)", ep)
	}

	// Down to 10 pods of the first slice: the second slice is deleted, the
	// first updated in place.
	p = r.reconcile(svc, pods(0, 10), existing, trigger)
	if diff := cmp.Diff([]string{"web-0"}, names(p.update)); diff != "" {
		t.Errorf("scale down updates (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"web-extra"}, names(p.delete)); diff != "" {
		t.Errorf("scale down deletes (-want +got):\n%s", diff)
	}

	// Down to 0: the last slice becomes the placeholder (an update, not
	// delete + create).
	p = r.reconcile(svc, nil, existing[:1], trigger)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || len(p.update[0].Endpoints) != 0 || p.update[0].Ports != nil {
		t.Errorf("scale to zero plan = %+v", summarizePlan(p))
	}

	// The service's target port changes: the slice is rewritten in place.
	svc2 := svc.DeepCopy()
	svc2.Spec.Ports[0].TargetPort = intstr.FromInt32(8080)
	p = r.reconcile(svc2, pods(0, 100), existing[:1], trigger)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || p.update[0].Name != "web-0" || *p.update[0].Ports[0].Port != 8080 {
		t.Errorf("target port change plan = %+v", summarizePlan(p))
	}

	// A slice owned by an older Service of the same name is replaced.
	svc3 := svc.DeepCopy()
	svc3.UID = "new-uid"
	p = r.reconcile(svc3, pods(0, 3), existing[:1], trigger)
	if len(p.create) != 1 || len(p.delete) != 1 || p.delete[0].Name != "web-0" {
		t.Errorf("new owner plan = %+v", summarizePlan(p))
	}
}

func names(s []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Name)
	}
	return out
}

func TestTriggerTimeTracker(t *testing.T) {
	tr := newTriggerTimeTracker()
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := webService()
	svc.CreationTimestamp = metav1.Time{Time: created}
	pod := func(name string, readyAt time.Time) *corev1.Pod {
		p := runningPod(name, "10.0.0.1", true)
		p.Status.Conditions[0].LastTransitionTime = metav1.Time{Time: readyAt}
		return p
	}
	t1, t2 := created.Add(time.Minute), created.Add(2*time.Minute)
	steps := []struct {
		pods []*corev1.Pod
		want time.Time
	}{
		{[]*corev1.Pod{pod("a", t1)}, created},                        // new service: its creation
		{[]*corev1.Pod{pod("a", t1)}, time.Time{}},                    // nothing changed
		{[]*corev1.Pod{pod("a", t1), pod("b", t2)}, t2},               // b became ready
		{[]*corev1.Pod{pod("a", t2), pod("b", t2)}, t2},               // a flipped later
		{[]*corev1.Pod{pod("b", t2)}, time.Time{}},                    // a deleted: no trigger time
		{[]*corev1.Pod{pod("b", t2), pod("c", t1), pod("d", t2)}, t1}, // earliest of the changes
	}
	for i, s := range steps {
		if got := tr.compute("default/web", svc, s.pods); !got.Equal(s.want) {
			t.Errorf("step %d: trigger = %v, want %v", i, got, s.want)
		}
	}
}
