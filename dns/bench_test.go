package dns

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// benchServices is the cluster size the benchmarks load.
const benchServices = 10000

// loadServices fills x with n ClusterIP Services spread over 100
// namespaces, each with a named port and an EndpointSlice of two ready
// endpoints, and returns their names.
func loadServices(x *Index, n int) []string {
	tcp := corev1.ProtocolTCP
	names := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns%d", i%100)
		name := fmt.Sprintf("svc-%d", i)
		ip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})
		x.UpsertService(service(ns, name, ip.String(), svcPort("http", 80, tcp)))
		x.UpsertEndpointSlice(endpointSlice(ns, name+"-abcde", name,
			[]discoveryv1.EndpointPort{slicePort("http", 8080, tcp)},
			endpoint(fmt.Sprintf("10.%d.%d.%d", 128+i>>16, byte(i>>8), byte(i)), true, ""),
			endpoint(fmt.Sprintf("10.%d.%d.%d", 160+i>>16, byte(i>>8), byte(i)), true, "")))
		names = append(names, name+"."+ns+".svc.cluster.local.")
	}
	return names
}

func benchQueries(names []string, qtype uint16) []*mdns.Msg {
	msgs := make([]*mdns.Msg, len(names))
	for i, n := range names {
		m := new(mdns.Msg)
		m.SetQuestion(n, qtype)
		msgs[i] = m
	}
	return msgs
}

// BenchmarkQueryClusterIP answers A queries for 10,000 Services in process:
// ServeDNS plus packing the reply (the fake writer packs as the real one).
func BenchmarkQueryClusterIP(b *testing.B) {
	x := NewIndex("")
	msgs := benchQueries(loadServices(x, benchServices), mdns.TypeA)
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, x)
	w := &fakeWriter{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ServeDNS(w, msgs[i%len(msgs)])
	}
	b.StopTimer()
	if w.err != nil || len(w.msg.Answer) != 1 {
		b.Fatalf("bad reply %v: %v", w.msg, w.err)
	}
}

// BenchmarkQueryClusterIPParallel is BenchmarkQueryClusterIP on every CPU.
func BenchmarkQueryClusterIPParallel(b *testing.B) {
	x := NewIndex("")
	msgs := benchQueries(loadServices(x, benchServices), mdns.TypeA)
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, x)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &fakeWriter{}
		i := 0
		for pb.Next() {
			s.ServeDNS(w, msgs[i%len(msgs)])
			i++
		}
	})
}

// BenchmarkQueryOther covers the other common answers over the same 10,000
// Services: SRV with glue, endpoint names, NXDOMAIN (an ndots:5 search-path
// miss) and the headless shape.
func BenchmarkQueryOther(b *testing.B) {
	x := NewIndex("")
	names := loadServices(x, benchServices)
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, x)
	cases := []struct {
		name  string
		qname func(i int) string
		qtype uint16
	}{
		{"SRV", func(i int) string { return "_http._tcp." + names[i] }, mdns.TypeSRV},
		{"Endpoint", func(i int) string {
			return fmt.Sprintf("10-%d-%d-%d.%s", 128+i>>16, byte(i>>8), byte(i), names[i])
		}, mdns.TypeA},
		{"NXDOMAIN", func(i int) string { return names[i] + "svc.cluster.local." }, mdns.TypeA},
		{"AAAA-NODATA", func(i int) string { return names[i] }, mdns.TypeAAAA},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			msgs := make([]*mdns.Msg, 1000)
			for i := range msgs {
				msgs[i] = new(mdns.Msg)
				msgs[i].SetQuestion(c.qname(i), c.qtype)
			}
			w := &fakeWriter{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.ServeDNS(w, msgs[i%len(msgs)])
			}
			b.StopTimer()
			if w.err != nil {
				b.Fatal(w.err)
			}
		})
	}
}

// BenchmarkIndexMemory reports the heap held by an index of 10,000 Services
// with their EndpointSlices (two endpoints each), as heapB/10kSvc.
func BenchmarkIndexMemory(b *testing.B) {
	var total float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := NewIndex("")
		loadServices(x, benchServices)
		runtime.GC()
		runtime.ReadMemStats(&after)
		total += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(x)
	}
	b.ReportMetric(total/float64(b.N), "heapB/10kSvc")
}

// BenchmarkUpdateToAnswer measures an index update followed by the query
// that must already see it (the DNS share of "a change is visible within
// 100 ms"), with 10,000 Services loaded.
func BenchmarkUpdateToAnswer(b *testing.B) {
	x := NewIndex("")
	loadServices(x, benchServices)
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, x)
	m := new(mdns.Msg)
	m.SetQuestion("moving.ns1.svc.cluster.local.", mdns.TypeA)
	w := &fakeWriter{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ip := netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)})
		x.UpsertService(service("ns1", "moving", ip.String(), svcPort("http", 80, corev1.ProtocolTCP)))
		s.ServeDNS(w, m)
		if a, ok := w.msg.Answer[0].(*mdns.A); !ok || !a.A.Equal(ip.AsSlice()) {
			b.Fatalf("query after update %d answered %v, want %s", i, w.msg.Answer, ip)
		}
	}
}
