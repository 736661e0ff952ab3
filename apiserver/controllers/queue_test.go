package controllers

import (
	"testing"
	"time"
)

func getKey(t *testing.T, q *queue) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		k, ok := q.Get()
		if !ok {
			k = "<shutdown>"
		}
		ch <- k
	}()
	select {
	case k := <-ch:
		return k
	case <-time.After(testTimeout):
		t.Fatal("Get blocked")
		return ""
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestQueueCoalescesAndSerializesKeys(t *testing.T) {
	q := newQueue()
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2 (a deduplicated)", n)
	}
	if k := getKey(t, q); k != "a" {
		t.Fatalf("first key %q, want a", k)
	}
	q.Add("a") // while a is processed: not handed out again yet
	if k := getKey(t, q); k != "b" {
		t.Fatalf("second key %q, want b", k)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("Len while a is processing = %d, want 0", n)
	}
	idle := q.Idle()
	q.Done("a")
	if n := q.Len(); n != 1 {
		t.Fatalf("Len after Done(a) = %d, want 1 (re-added)", n)
	}
	if isClosed(idle) {
		t.Fatal("Idle closed while keys wait")
	}
	q.Done("b")
	if k := getKey(t, q); k != "a" {
		t.Fatalf("third key %q, want a", k)
	}
	q.Done("a")
	if !isClosed(idle) {
		t.Fatal("Idle not closed after the last Done")
	}
	q.ShutDown()
	if k := getKey(t, q); k != "<shutdown>" {
		t.Fatalf("Get after ShutDown = %q", k)
	}
}

func TestQueueDelayedAndRateLimited(t *testing.T) {
	q := newQueue()
	start := time.Now()
	q.AddAfter("late", 20*time.Millisecond)
	q.AddAfter("late", time.Hour) // the earlier deadline wins
	if !isClosed(q.Idle()) {
		t.Error("a pending delayed add counts as work")
	}
	if k := getKey(t, q); k != "late" {
		t.Fatalf("got %q", k)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("delayed key delivered after %v, before its delay", d)
	}
	q.Done("late")
	for i := range 3 {
		if n := q.Failures("k"); n != i {
			t.Fatalf("failures = %d, want %d", n, i)
		}
		q.AddRateLimited("k")
		if k := getKey(t, q); k != "k" {
			t.Fatalf("got %q", k)
		}
		q.Done("k")
	}
	q.Forget("k")
	if n := q.Failures("k"); n != 0 {
		t.Errorf("failures after Forget = %d", n)
	}
	q.AddAfter("never", time.Hour)
	q.ShutDown()
	if k := getKey(t, q); k != "<shutdown>" {
		t.Fatalf("Get after ShutDown = %q", k)
	}
}
