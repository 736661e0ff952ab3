package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/apiserver/admission"
	"github.com/svclab/svclab/apiserver/store"
)

// TestWithAdmission runs bootstrap and the controllers against a store with
// svclab's real admitters, which validate and default every write the
// controllers make (bindings, pod status, slices, Endpoints), across a
// restart.
func TestWithAdmission(t *testing.T) {
	path := storePath(t)
	open := func() *store.Store {
		adm, err := admission.New(admission.Config{}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(path, store.Options{Logger: testLogger(t), Admitters: adm.Admitters()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	cfg := Config{Bootstrap: &BootstrapConfig{Logger: testLogger(t)}}
	l := startLab(t, st, cfg, &SimulatedRuntime{})
	svc := &corev1.Service{Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
	}}
	svc.Name, svc.Namespace = "web", "default"
	mustCreate(t, st, store.Services, svc)
	for _, name := range []string{"web-0", "web-1", "web-2"} {
		p := testPod("default", name, withLabels("app", "web"), withPorts(corev1.ContainerPort{Name: "http", ContainerPort: 8080}))
		mustCreate(t, st, store.Pods, p)
	}
	l.sync()
	// The CoreDNS pods hold .2 on each node; web-0 and web-2 go to node-1.
	want := []sliceSummary{{Ports: []string{"http/TCP/8080"}, Endpoints: []string{
		"10.244.1.3 node-1 true/true/false", "10.244.1.4 node-1 true/true/false", "10.244.2.3 node-2 true/true/false",
	}}}
	if diff := cmp.Diff(want, sliceView(t, st, "default", "web")); diff != "" {
		t.Errorf("web slices (-want +got):\n%s", diff)
	}
	dns := sliceView(t, st, "kube-system", "kube-dns")
	if len(dns) != 1 || len(dns[0].Endpoints) != 2 {
		t.Errorf("kube-dns slices = %+v", dns)
	}
	before := podIPs(t, st)
	l.stop()
	st.Close()

	st = open()
	rv := st.ResourceVersion()
	startLab(t, st, cfg, &SimulatedRuntime{})
	if diff := cmp.Diff(before, podIPs(t, st)); diff != "" {
		t.Errorf("pod IPs after restart (-before +after):\n%s", diff)
	}
	if got := st.ResourceVersion(); got != rv {
		t.Errorf("restart wrote to the store: resourceVersion %d → %d", rv, got)
	}
}
