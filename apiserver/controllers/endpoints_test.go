package controllers

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

func addr(ip string) corev1.EndpointAddress {
	return corev1.EndpointAddress{IP: ip, TargetRef: &corev1.ObjectReference{Kind: "Pod", UID: types.UID("uid-" + ip)}}
}

func TestRepackSubsets(t *testing.T) {
	http := corev1.EndpointPort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}
	dns := corev1.EndpointPort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}
	in := []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.2")}, Ports: []corev1.EndpointPort{http}},
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.10")}, Ports: []corev1.EndpointPort{http}},
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.2")}, Ports: []corev1.EndpointPort{dns}},
		{NotReadyAddresses: []corev1.EndpointAddress{addr("10.0.0.3")}, Ports: []corev1.EndpointPort{http}},
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.10")}, Ports: []corev1.EndpointPort{dns}},
		// 10.0.0.4 is ready for http but not for dns: not ready trumps ready.
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.4")}, Ports: []corev1.EndpointPort{http}},
		{NotReadyAddresses: []corev1.EndpointAddress{addr("10.0.0.4")}, Ports: []corev1.EndpointPort{dns}},
	}
	got := repackSubsets(in)
	// Addresses sort as strings (10.0.0.10 < 10.0.0.2), as kube does.
	want := []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.10"), addr("10.0.0.2")}, NotReadyAddresses: []corev1.EndpointAddress{addr("10.0.0.4")}, Ports: []corev1.EndpointPort{dns}},
		{Addresses: []corev1.EndpointAddress{addr("10.0.0.10"), addr("10.0.0.2"), addr("10.0.0.4")}, NotReadyAddresses: []corev1.EndpointAddress{addr("10.0.0.3")}, Ports: []corev1.EndpointPort{http}},
	}
	// The two subsets are ordered by hash; compare as a set first …
	if len(got) != 2 {
		t.Fatalf("got %d subsets: %+v", len(got), got)
	}
	if got[0].Ports[0].Name != "dns" {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("repack (-want +got):\n%s", diff)
	}
	// … and check the order is a function of the content, not of the input order.
	for i := range 20 {
		shuffled := append([]corev1.EndpointSubset(nil), in...)
		r := rand.New(rand.NewPCG(uint64(i), 1))
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if diff := cmp.Diff(got, repackSubsets(shuffled)); diff != "" {
			t.Fatalf("repack depends on input order (-first +shuffled):\n%s", diff)
		}
	}

	// Headless without ports: the addresses survive, with no ports.
	noPorts := repackSubsets([]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("10.0.0.9")}, Ports: []corev1.EndpointPort{}}})
	if diff := cmp.Diff([]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("10.0.0.9")}}}, noPorts); diff != "" {
		t.Errorf("port-less repack (-want +got):\n%s", diff)
	}
}

func TestTruncateEndpoints(t *testing.T) {
	many := func(prefix string, n int) []corev1.EndpointAddress {
		out := make([]corev1.EndpointAddress, n)
		for i := range out {
			out[i] = corev1.EndpointAddress{IP: fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250)}
		}
		return out
	}
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{
		{Addresses: many("10.1", 600), NotReadyAddresses: many("10.2", 100)},
		{Addresses: many("10.3", 600)},
	}}
	if !truncateEndpoints(ep) {
		t.Fatal("1300 addresses not truncated")
	}
	if n0, n1 := len(ep.Subsets[0].Addresses), len(ep.Subsets[1].Addresses); n0 != 500 || n1 != 500 || len(ep.Subsets[0].NotReadyAddresses) != 0 {
		t.Errorf("after truncation: %d + %d ready, %d not ready; want 500 + 500, 0", n0, n1, len(ep.Subsets[0].NotReadyAddresses))
	}
	small := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{Addresses: many("10.1", 10)}}}
	if truncateEndpoints(small) || len(small.Subsets[0].Addresses) != 10 {
		t.Error("small Endpoints truncated")
	}
}

func TestEndpointsMirrorPods(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	svc := testService("default", "web", "10.96.0.50", map[string]string{"app": "web"},
		svcPort("http", 80, intstr.FromInt32(8080)))
	svc.Labels = map[string]string{"team": "a"}
	mustCreate(t, st, store.Services, svc)
	createPod(t, st, "default", "a", withLabels("app", "web"), withNode("node-1"))
	createPod(t, st, "default", "b", withLabels("app", "web"), withNode("node-2"), withAnnotation(AnnotationReady, "false"))
	l.sync()

	a, b := getPod(t, st, "default", "a"), getPod(t, st, "default", "b")
	ep := getEndpoints(t, st, "default", "web")
	want := []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.244.1.2", NodeName: ptr.To("node-1"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "a", UID: a.UID}}},
		NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.244.2.2", NodeName: ptr.To("node-2"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "b", UID: b.UID}}},
		Ports: []corev1.EndpointPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}},
	}}
	if diff := cmp.Diff(want, ep.Subsets); diff != "" {
		t.Errorf("subsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"team": "a"}, ep.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if ep.Annotations[corev1.EndpointsLastChangeTriggerTime] == "" {
		t.Error("no last-change-trigger-time annotation")
	}

	// publishNotReadyAddresses: everyone is an address.
	mustUpdate(t, st, store.Services, "default", "web", "", func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true })
	l.sync()
	ep = getEndpoints(t, st, "default", "web")
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 2 || len(ep.Subsets[0].NotReadyAddresses) != 0 {
		t.Errorf("publishNotReadyAddresses subsets = %+v", ep.Subsets)
	}

	// Deleting the Endpoints object brings it back.
	mustDelete(t, st, store.Endpoints, "default", "web")
	l.sync()
	getEndpoints(t, st, "default", "web")
}
