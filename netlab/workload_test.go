package netlab

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func testEnv(t *testing.T) WorkloadEnv {
	return WorkloadEnv{Pod: echoPod, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
}

// fastRestarts shortens the supervisor's timers for a test.
func fastRestarts(t *testing.T) {
	oldReady, oldBackoff := readyTimeout, restartBackoff
	readyTimeout, restartBackoff = 100*time.Millisecond, time.Millisecond
	t.Cleanup(func() { readyTimeout, restartBackoff = oldReady, oldBackoff })
}

func TestWorkloadRestartsAfterExitAndPanic(t *testing.T) {
	fastRestarts(t)
	var runs atomic.Int32
	third := make(chan struct{})
	w := WorkloadFunc(func(ctx context.Context, env WorkloadEnv) error {
		env.Ready()
		switch runs.Add(1) {
		case 1:
			return errFake // exits after being ready
		case 2:
			panic("boom")
		case 3:
			close(third)
		}
		<-ctx.Done()
		return nil
	})
	run, err := startWorkload(t.Context(), w, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-third:
	case <-time.After(10 * time.Second):
		t.Fatalf("workload not restarted twice (runs: %d)", runs.Load())
	}
	if err := run.stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if run.alive() {
		t.Error("supervisor alive after stop")
	}
}

func TestWorkloadFailsBeforeReady(t *testing.T) {
	fastRestarts(t)
	var runs atomic.Int32
	w := WorkloadFunc(func(ctx context.Context, env WorkloadEnv) error {
		runs.Add(1)
		return errFake
	})
	if _, err := startWorkload(t.Context(), w, testEnv(t)); !errors.Is(err, errFake) {
		t.Fatalf("startWorkload = %v, want the workload's error", err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("a workload failing before Ready ran %d times, want 1 (no restart)", n)
	}
	exits := WorkloadFunc(func(ctx context.Context, env WorkloadEnv) error { return nil })
	if _, err := startWorkload(t.Context(), exits, testEnv(t)); err == nil {
		t.Error("a workload returning nil before Ready was accepted")
	}
}

func TestWorkloadWithoutReady(t *testing.T) {
	fastRestarts(t)
	w := WorkloadFunc(func(ctx context.Context, env WorkloadEnv) error {
		<-ctx.Done()
		return nil
	})
	run, err := startWorkload(t.Context(), w, testEnv(t))
	if err != nil {
		t.Fatalf("startWorkload = %v, want success after the ready timeout", err)
	}
	if !run.alive() {
		t.Error("workload not running")
	}
	run.stop(t.Context())
}

func TestWorkloadStartCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	w := WorkloadFunc(func(wctx context.Context, env WorkloadEnv) error {
		cancel() // the caller gives up while the workload starts
		<-wctx.Done()
		close(stopped)
		return nil
	})
	if _, err := startWorkload(ctx, w, testEnv(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("startWorkload = %v, want context.Canceled", err)
	}
	select {
	case <-stopped:
	default:
		t.Error("workload still running after a canceled start")
	}
}
