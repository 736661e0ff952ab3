package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/fields"
)

// clients is the number of concurrent writers, as in the API's target
// (2,000 creates/s with 16 concurrent clients).
const clients = 16

// benchCreate runs b.N pod creates from `clients` goroutines against a fresh
// store with `watchers` subscribers draining a watch on everything, and reports
// creates/s, the mean group commit size and the heap retained per object.
func benchCreate(b *testing.B, watchers int) {
	s, _ := openTest(b, Options{})
	ctx := context.Background()
	mustCreate(b, s, Namespaces, namespace("bench"))
	for range watchers {
		ch, err := s.Watch(ctx, nil, "", 0)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range ch {
			}
		}()
	}
	var seq atomic.Int64
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			p := pod("bench", fmt.Sprintf("pod-%d", n), fmt.Sprintf("node-%d", n%4+1))
			if _, err := s.Create(ctx, Pods, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
	b.ReportMetric(float64(st.Changes)/float64(st.Commits), "writes/commit")
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/float64(b.N), "retained-B/obj")
}

// BenchmarkCreateParallel measures group-committed creates from 16 concurrent
// clients (b.SetParallelism × GOMAXPROCS goroutines), fsync included.
func BenchmarkCreateParallel(b *testing.B) { benchCreate(b, 0) }

// BenchmarkCreateParallelWatched is BenchmarkCreateParallel with 4 watchers
// draining every event, as controllers, dataplane, DNS and the UI do.
func BenchmarkCreateParallelWatched(b *testing.B) { benchCreate(b, 4) }

// BenchmarkGet measures a read of one object among 10,000 (a deep copy).
func BenchmarkGet(b *testing.B) {
	s, _ := openTest(b, Options{})
	ctx := context.Background()
	mustCreate(b, s, Namespaces, namespace("bench"))
	fillPods(b, s, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Get(ctx, Pods, "bench", fmt.Sprintf("pod-%d", i%10000)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkListNode measures a field-selected List (spec.nodeName) over
// 10,000 pods on 4 nodes: 2,500 results, sorted and copied.
func BenchmarkListNode(b *testing.B) {
	s, _ := openTest(b, Options{})
	ctx := context.Background()
	mustCreate(b, s, Namespaces, namespace("bench"))
	fillPods(b, s, 10000)
	opts := ListOptions{FieldSelector: mustFieldSelector(b, "spec.nodeName=node-1")}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		objs, _, err := s.List(ctx, Pods, "", opts)
		if err != nil || len(objs) != 2500 {
			b.Fatalf("list: %d objects, %v", len(objs), err)
		}
	}
}

// fillPods creates pod-0 … pod-(n-1) in namespace bench from `clients`
// goroutines (so that setup is group-committed too).
func fillPods(b *testing.B, s *Store, n int) {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				p := pod("bench", fmt.Sprintf("pod-%d", i), fmt.Sprintf("node-%d", i%4+1))
				if _, err := s.Create(context.Background(), Pods, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func mustFieldSelector(b *testing.B, sel string) fields.Selector {
	f, err := fields.ParseSelector(sel)
	if err != nil {
		b.Fatal(err)
	}
	return f
}
