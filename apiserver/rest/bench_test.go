package rest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
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

// BenchmarkCreateServicesHTTP creates 10,000 Services per iteration through a
// real HTTP server (httptest, loopback) from 16 concurrent clients, the whole
// path a kubectl create takes: HTTP, decoding, validation, the store's group
// commit with fsync, encoding the answer. It reports creates/s, the p99
// latency of one create, and the live heap the 10,000 objects add (store
// view and watch history included). Each iteration uses a fresh namespace.
// Run it with -benchtime=1x. No admission runs here (the lead re-runs it with
// the real Admitters).
func BenchmarkCreateServicesHTTP(b *testing.B) {
	const total, clients = 10000, 16
	a := newTestAPI(b, store.Options{}, Options{})
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	lat := make([]time.Duration, 0, total*b.N)
	var elapsed time.Duration
	var heap float64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		ns := fmt.Sprintf("bench-%d", i)
		if _, err := a.st.Create(context.Background(), store.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
		url := a.srv.URL + "/api/v1/namespaces/" + ns + "/services"
		bodies := make([][]byte, total)
		for j := range bodies {
			s := testService(fmt.Sprintf("svc-%05d", j), map[string]string{"app": "bench", "n": fmt.Sprint(j % 100)})
			bodies[j] = mustJSON(b, s)
		}
		iterLat := make([]time.Duration, total)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()

		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					j := int(next.Add(1) - 1)
					if j >= total {
						return
					}
					t0 := time.Now()
					res, err := client.Post(url, "application/json", bytes.NewReader(bodies[j]))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusCreated {
						b.Errorf("create %d: status %d", j, res.StatusCode)
						return
					}
					iterLat[j] = time.Since(t0)
				}
			}()
		}
		wg.Wait()
		elapsed += time.Since(start)

		b.StopTimer()
		bodies = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		lat = append(lat, iterLat...)
		b.StartTimer()
	}
	b.StopTimer()
	if b.Failed() {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "creates/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(heap/float64(b.N)/(1<<20), "heap-MiB/10k")
}
