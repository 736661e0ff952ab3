package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/store"
)

// startServer opens a full control plane (admission, bootstrap, controllers with the simulated
// node side) on a temporary store and serves its API on a loopback httptest server.
func startServer(tb testing.TB) (*Server, string) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Open(ctx, Config{Path: filepath.Join(tb.TempDir(), "svclab.db"), Nodes: 2,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	if err := srv.WaitSynced(ctx); err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler(nil, nil))
	tb.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("controllers: %v", err)
		}
		if err := srv.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return srv, hs.URL
}

func serviceJSON(name string) []byte {
	b, _ := json.Marshal(&corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"bench": "yes"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	})
	return b
}

// TestServerEndToEnd checks that the assembled control plane serves the seed's flow without a
// kernel: a Service created over HTTP gets a cluster IP, a pod is scheduled, gets an IP from its
// node's podCIDR and becomes Ready, and the Service's EndpointSlice lists it.
func TestServerEndToEnd(t *testing.T) {
	srv, url := startServer(t)
	post := func(path string, body string) {
		t.Helper()
		resp, err := http.Post(url+path, "application/yaml", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/api/v1/namespaces/default/services", `
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`)
	post("/api/v1/namespaces/default/pods", `
apiVersion: v1
kind: Pod
metadata: {name: web-0, labels: {app: web}}
spec:
  containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := srv.Store.Watch(ctx, store.EndpointSlices, "default", 0)
	if err != nil {
		t.Fatal(err)
	}
	check := func() bool {
		objs, _, err := srv.Store.List(ctx, store.EndpointSlices, "default", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			b, _ := json.Marshal(o)
			if bytes.Contains(b, []byte(`"kubernetes.io/service-name":"web"`)) && bytes.Contains(b, []byte(`"10.244.`)) &&
				bytes.Contains(b, []byte(`"port":8080`)) && bytes.Contains(b, []byte(`"ready":true`)) {
				return true
			}
		}
		return false
	}
	for !check() {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("the Service's EndpointSlice never listed the ready pod on port 8080")
		}
	}
	svc, err := srv.Store.Get(ctx, store.Services, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if ip := svc.(*corev1.Service).Spec.ClusterIP; ip == "" || ip == "None" {
		t.Fatalf("clusterIP = %q, want an allocated address", ip)
	}
}

// BenchmarkCreateServicesHTTP creates 10,000 Services through the HTTP API with 16 concurrent
// clients against the assembled control plane (admission, allocation, controllers running) and
// reports creates/s, the p99 request latency and the heap held per 10,000 Services.
func BenchmarkCreateServicesHTTP(b *testing.B) {
	const total, clients = 10000, 16
	for range b.N {
		b.StopTimer()
		srv, url := startServer(b)
		tr := &http.Transport{MaxIdleConnsPerHost: clients}
		client := &http.Client{Transport: tr}
		bodies := make([][]byte, total)
		for i := range bodies {
			bodies[i] = serviceJSON(fmt.Sprintf("svc-%05d", i))
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var next atomic.Int64
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		var failed atomic.Int64
		b.StartTimer()
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= total {
						return
					}
					t0 := time.Now()
					resp, err := client.Post(url+"/api/v1/namespaces/default/services", "application/json", bytes.NewReader(bodies[i]))
					if err != nil || resp.StatusCode != http.StatusCreated {
						failed.Add(1)
					}
					if resp != nil {
						io.Copy(io.Discard, resp.Body) // drain so the connection is reused
						resp.Body.Close()
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d creates failed", n)
		}
		objs, _, err := srv.Store.List(context.Background(), store.Services, "default", store.ListOptions{})
		if err != nil || len(objs) < total {
			b.Fatalf("listed %d services (err %v), want at least %d", len(objs), err, total)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		all := slices.Concat(lat...)
		slices.Sort(all)
		b.ReportMetric(float64(total)/elapsed.Seconds(), "creates/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB/10k")
		tr.CloseIdleConnections()
		b.StartTimer()
	}
}
