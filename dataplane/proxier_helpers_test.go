package dataplane

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Helpers for the proxier tests. Their names start with "px" so they never
// collide with the render tests' helpers in this package.

func pxPort(name string, proto corev1.Protocol, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: port}
}

func pxService(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  clusterIP,
			ClusterIPs: []string{clusterIP},
			Ports:      ports,
		},
	}
}

// pxSlice returns an EndpointSlice of Service ns/svc with one port and a
// ready endpoint on node-1 for each IP.
func pxSlice(ns, svc, portName string, proto corev1.Protocol, port int32, ips ...string) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      svc + "-abc",
			Labels:    map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Protocol: &proto, Port: &port}},
	}
	ready := true
	node := "node-1"
	for _, ip := range ips {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName:   &node,
		})
	}
	return sl
}

// pxCtx returns a context that ends with the test, bounded so a broken
// sync loop fails the test instead of hanging it.
func pxCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pxLogBuffer is a concurrency-safe log sink.
type pxLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *pxLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *pxLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type pxHarness struct {
	p    *Proxier
	fake *FakeRunner
	reg  *prometheus.Registry
	logs *pxLogBuffer
}

// pxStart builds a Proxier for node-1 on a FakeRunner (after tweak edits the
// config), runs it until the test ends and returns it.
func pxStart(t *testing.T, tweak func(*ProxierConfig)) *pxHarness {
	t.Helper()
	return pxStartWith(t, tweak, nil)
}

// pxStartWith is pxStart with a hook that may adjust the Proxier before it
// runs.
func pxStartWith(t *testing.T, tweak func(*ProxierConfig), beforeRun func(*Proxier)) *pxHarness {
	t.Helper()
	h := &pxHarness{fake: NewFakeRunner(), reg: prometheus.NewRegistry(), logs: &pxLogBuffer{}}
	m, err := NewMetrics(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ProxierConfig{
		Node:        Node{Name: "node-1"},
		Config:      Config{},
		Runner:      h.fake,
		Logger:      slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     m,
		RetryPeriod: 10 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h.p, err = NewProxier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if beforeRun != nil {
		beforeRun(h.p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// pxCollect returns the metrics c currently exports.
func pxCollect(c prometheus.Collector) []prometheus.Metric {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out []prometheus.Metric
	for m := range ch {
		out = append(out, m)
	}
	return out
}

// pxCount is the number of series c exports.
func pxCount(c prometheus.Collector) int { return len(pxCollect(c)) }

// pxValue sums the counter and gauge values c exports.
func pxValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	var sum float64
	for _, m := range pxCollect(c) {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	return sum
}
