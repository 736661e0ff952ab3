package dataplane

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// benchInput builds n ClusterIP Services with two endpoints each (one on the
// rendered node), spread over 10 namespaces.
func benchInput(n int) Input {
	in := Input{Node: Node{Name: "node-1"}, Config: Config{ClusterCIDR: mustPrefix("10.0.0.0/8")}}
	for i := 0; i < n; i++ {
		ns, name := fmt.Sprintf("ns%d", i%10), fmt.Sprintf("svc%d", i)
		in.Services = append(in.Services, makeService(ns, name, func(s *corev1.Service) {
			s.Spec.ClusterIP = fmt.Sprintf("172.30.%d.%d", i/250, i%250+1)
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
		}))
		in.EndpointSlices = append(in.EndpointSlices, makeSlice(ns, name, name+"-abcde", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{
				{Addresses: []string{fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}, NodeName: ptrTo("node-1")},
				{Addresses: []string{fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)}, NodeName: ptrTo("node-2")},
			}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
		}))
	}
	return in
}

// BenchmarkRender10kServices renders a full sync of 10,000 Services × 2
// endpoints (20,000 endpoints: large-cluster mode, as kube-proxy would be).
func BenchmarkRender10kServices(b *testing.B) {
	in := benchInput(10000)
	var res *Result
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res = Render(in)
	}
	b.ReportMetric(float64(len(res.Payload)), "payload-bytes")
	b.ReportMetric(float64(res.RuleCounts[TableNAT]+res.RuleCounts[TableFilter]), "rules")
}

// BenchmarkParseSave10kServices parses the payload of BenchmarkRender10kServices.
func BenchmarkParseSave10kServices(b *testing.B) {
	payload := Render(benchInput(10000)).Payload
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ParseSave(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTraceClusterIP traces one packet to a ClusterIP among 10,000
// Services (a linear scan of KUBE-SERVICES, as in the kernel).
func BenchmarkTraceClusterIP(b *testing.B) {
	rs, err := ParseSave(Render(benchInput(10000)).Payload)
	if err != nil {
		b.Fatal(err)
	}
	pkt := Packet{Src: mustAddr("10.1.0.9"), Dst: mustAddr("172.30.39.250"), Proto: "tcp", DstPort: 80, Hook: HookPrerouting}
	b.ResetTimer()
	for b.Loop() {
		if r := Trace(rs, pkt, TraceOptions{}); len(r.Backends()) != 2 {
			b.Fatalf("backends: %s", r.Summary())
		}
	}
}

// BenchmarkRenderPartial10kServices is the rendering part of a partial sync
// that adds one Service and its EndpointSlice to 10,000: the renderer's cache
// holds the previous output, and Changed names the new Service.
func BenchmarkRenderPartial10kServices(b *testing.B) {
	in := benchInput(10000)
	var r renderer
	_, base := r.render(in, nil)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		extra := benchInput(1)
		svc, sl := extra.Services[0], extra.EndpointSlices[0]
		svc.Name, sl.Name = fmt.Sprintf("new%d", i), fmt.Sprintf("new%d-abcde", i)
		sl.Labels[discoveryv1.LabelServiceName] = svc.Name
		svc.Spec.ClusterIP = fmt.Sprintf("172.31.%d.%d", i/250, i%250+1)
		i++
		in.Services = append(in.Services, svc)
		in.EndpointSlices = append(in.EndpointSlices, sl)
		var res *Result
		res, base = r.render(Input{
			Node: in.Node, Config: in.Config, Services: in.Services, EndpointSlices: in.EndpointSlices,
			Changed: map[types.NamespacedName]bool{{Namespace: svc.Namespace, Name: svc.Name}: true},
		}, base)
		if len(res.ServiceChains) == 0 {
			b.Fatal("no service chains")
		}
	}
}
