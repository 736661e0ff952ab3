package controllers

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/apiserver/store"
)

// BenchmarkPodCreateToEndpoint measures the propagation latency of the whole
// chain for one pod: create → scheduler binds → kubelet writes Running/Ready
// → the EndpointSlice controller lists it (each step a committed, fsynced
// store write and a watch event).
func BenchmarkPodCreateToEndpoint(b *testing.B) {
	st := openStore(b, storePath(b))
	twoNodes(b, st)
	mustCreate(b, st, store.Services, testService("default", "web", "10.96.0.50", map[string]string{"app": "web"},
		svcPort("http", 80, intstr.FromInt32(80))))
	l := startLab(b, st, Config{}, &SimulatedRuntime{})
	l.sync()
	ctx := ctxT(b)
	events, err := st.Watch(ctx, store.EndpointSlices, "default", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("p-%06d", i)
		createPod(b, st, "default", name, withLabels("app", "web"))
	wait:
		for {
			select {
			case ev := <-events:
				for _, e := range ev.Object.(*discoveryv1.EndpointSlice).Endpoints {
					if e.TargetRef != nil && e.TargetRef.Name == name && *e.Conditions.Ready {
						break wait
					}
				}
			case <-ctx.Done():
				b.Fatal("endpoint never appeared")
			}
		}
	}
}

// BenchmarkSliceReconcile1000 measures one EndpointSlice sync of a Service
// with 1000 pods in 10 slices where one pod changed readiness.
func BenchmarkSliceReconcile1000(b *testing.B) {
	r := &sliceReconciler{maxEndpointsPerSlice: 100}
	svc := webService(svcPort("http", 80, intstr.FromInt32(80)))
	var pods []*corev1.Pod
	for i := range 1000 {
		pods = append(pods, runningPod(fmt.Sprintf("p-%04d", i), fmt.Sprintf("10.244.%d.%d", 1+i/250, 2+i%250), true))
	}
	existing := asExisting(r.reconcile(svc, pods, nil, trigger))
	pods[500] = pods[500].DeepCopy()
	pods[500].Status.Conditions[0].Status = corev1.ConditionFalse
	b.ResetTimer()
	for range b.N {
		if p := r.reconcile(svc, pods, existing, trigger); len(p.update) != 1 {
			b.Fatalf("plan updates %d slices", len(p.update))
		}
	}
}

// BenchmarkEndpointsSubsets1000 measures computing the v1 Endpoints subsets
// (kube's RepackSubsets and SortSubsets) of 1000 pods with two ports.
func BenchmarkEndpointsSubsets1000(b *testing.B) {
	svc := webService(svcPort("http", 80, intstr.FromInt32(80)), svcPort("metrics", 9100, intstr.FromInt32(9100)))
	var pods []*corev1.Pod
	for i := range 1000 {
		pods = append(pods, runningPod(fmt.Sprintf("p-%04d", i), fmt.Sprintf("10.244.%d.%d", 1+i/250, 2+i%250), i%10 != 0))
	}
	b.ResetTimer()
	for range b.N {
		if s := desiredSubsets(svc, pods); len(s) != 1 {
			b.Fatalf("%d subsets", len(s))
		}
	}
}
