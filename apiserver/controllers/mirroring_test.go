package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

func mirroredSlices(t testing.TB, st *store.Store, ns, name string) []*discoveryv1.EndpointSlice {
	t.Helper()
	var out []*discoveryv1.EndpointSlice
	for _, s := range listSlices(t, st, ns, name) {
		if s.Labels[discoveryv1.LabelManagedBy] == MirroringControllerName {
			out = append(out, s)
		}
	}
	return out
}

func TestMirroringSelectorlessEndpoints(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	mustCreate(t, st, store.Services, testService("default", "db", "10.96.0.80", nil, svcPort("pg", 5432, intstr.FromInt32(5432))))
	ep := mustCreate(t, st, store.Endpoints, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db", Labels: map[string]string{"team": "data"},
			Annotations: map[string]string{"note": "external", corev1.EndpointsLastChangeTriggerTime: "2025-01-01T00:00:00Z"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{{IP: "192.0.2.10"}, {IP: "192.0.2.11", Hostname: "db-b"}},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "192.0.2.12"}},
			Ports:             []corev1.EndpointPort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}},
		}},
	})
	l.sync()
	got := mirroredSlices(t, st, "default", "db")
	if len(got) != 1 {
		t.Fatalf("mirrored slices = %d, want 1", len(got))
	}
	s := got[0]
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "db-", Namespace: "default",
			Labels:      map[string]string{"team": "data", discoveryv1.LabelServiceName: "db", discoveryv1.LabelManagedBy: MirroringControllerName},
			Annotations: map[string]string{"note": "external"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Endpoints", Name: "db", UID: ep.GetUID(),
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"192.0.2.10"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"192.0.2.11"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}, Hostname: ptr.To("db-b")},
			{Addresses: []string{"192.0.2.12"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	gotCmp := s.DeepCopy()
	gotCmp.TypeMeta, gotCmp.Name, gotCmp.UID, gotCmp.ResourceVersion, gotCmp.CreationTimestamp, gotCmp.Generation = metav1.TypeMeta{}, "", "", "", metav1.Time{}, 0
	if diff := cmp.Diff(want, gotCmp); diff != "" {
		t.Errorf("mirrored slice (-want +got):\n%s", diff)
	}

	// The user edits the Endpoints: the same slice is updated.
	mustUpdate(t, st, store.Endpoints, "default", "db", "", func(e *corev1.Endpoints) {
		e.Subsets[0].NotReadyAddresses = nil
	})
	l.sync()
	got = mirroredSlices(t, st, "default", "db")
	if len(got) != 1 || got[0].Name != s.Name || len(got[0].Endpoints) != 2 {
		t.Errorf("after edit: %d slices (name %v), want %s with 2 endpoints", len(got), names(got), s.Name)
	}

	// skip-mirror: the mirrored slice goes.
	mustUpdate(t, st, store.Endpoints, "default", "db", "", func(e *corev1.Endpoints) {
		e.Labels[discoveryv1.LabelSkipMirror] = "true"
	})
	l.sync()
	if got := mirroredSlices(t, st, "default", "db"); len(got) != 0 {
		t.Errorf("skip-mirror left %d slices", len(got))
	}
	mustUpdate(t, st, store.Endpoints, "default", "db", "", func(e *corev1.Endpoints) { delete(e.Labels, discoveryv1.LabelSkipMirror) })
	l.sync()
	if got := mirroredSlices(t, st, "default", "db"); len(got) != 1 {
		t.Fatalf("mirrored slices after removing skip-mirror = %d", len(got))
	}

	// The Service gets a selector: mirroring stops, the endpointslice
	// controller takes over (and the Endpoints controller rewrites Endpoints).
	mustUpdate(t, st, store.Services, "default", "db", "", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "db"} })
	l.sync()
	if got := mirroredSlices(t, st, "default", "db"); len(got) != 0 {
		t.Errorf("mirrored slices after the service got a selector: %d", len(got))
	}
	if got := listSlices(t, st, "default", "db"); len(got) != 1 || got[0].Labels[discoveryv1.LabelManagedBy] != EndpointSliceControllerName {
		t.Errorf("slices = %d, want the endpointslice controller's placeholder", len(got))
	}
}
