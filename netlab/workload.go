package netlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Workload is what runs in a pod instead of containers. Run serves until
// ctx is done and then returns (its return value is then ignored). It
// opens sockets only through env.Listen and env.ListenPacket, which create
// them inside the pod's network namespace, and calls env.Ready once it
// serves. A Run that returns early, or panics, is restarted with backoff
// (1 s doubling to 30 s) until the pod is deleted.
type Workload interface {
	Run(ctx context.Context, env WorkloadEnv) error
}

// WorkloadFunc adapts a function to Workload.
type WorkloadFunc func(ctx context.Context, env WorkloadEnv) error

// Run calls f.
func (f WorkloadFunc) Run(ctx context.Context, env WorkloadEnv) error { return f(ctx, env) }

// WorkloadEnv is what a workload gets to work with.
type WorkloadEnv struct {
	// Pod is the pod's spec with defaults filled in (Protocol, Hostname,
	// Workload).
	Pod PodSpec
	// Listen opens a stream listener INSIDE the pod's network namespace
	// (net.Listen semantics, e.g. ("tcp", ":80")).
	Listen func(network, address string) (net.Listener, error)
	// ListenPacket opens a packet socket INSIDE the pod's network namespace.
	ListenPacket func(network, address string) (net.PacketConn, error)
	// Logger carries the pod's identity.
	Logger *slog.Logger
	// Ready tells EnsurePod that the workload serves; EnsurePod returns
	// when Ready is called, when Run returns, or after readyTimeout (with a
	// warning). May be nil when a test calls Run directly; safe to call
	// more than once.
	Ready func()
}

// readyTimeout bounds how long EnsurePod waits for a workload that never
// calls Ready; restartBackoff is the first pause before a workload that
// exited is restarted (doubling to maxRestartBackoff). Variables for tests.
var (
	readyTimeout      = 2 * time.Second
	restartBackoff    = time.Second
	maxRestartBackoff = 30 * time.Second
)

// workloadRun is one supervised workload.
type workloadRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor exits
}

// stop cancels the workload and waits for it, or for ctx.
func (r *workloadRun) stop(ctx context.Context) error {
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for workload to stop: %w", ctx.Err())
	}
}

// alive reports whether the supervisor still runs.
func (r *workloadRun) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// startWorkload starts w under a supervisor and waits until it is ready.
// The workload lives until stop, independent of ctx, which bounds only the
// wait. When the first Run ends before Ready, the workload is given up and
// its error returned; later exits are restarted with backoff.
func startWorkload(ctx context.Context, w Workload, env WorkloadEnv) (*workloadRun, error) {
	rctx, cancel := context.WithCancel(context.Background())
	run := &workloadRun{cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	var once sync.Once
	env.Ready = func() { once.Do(func() { close(ready) }) }
	first := make(chan error, 1)
	go supervise(rctx, w, env, ready, first, run.done)

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return run, nil
	case err := <-first:
		if err == nil {
			err = errors.New("exited before it was ready")
		}
		<-run.done
		cancel()
		return nil, err
	case <-timer.C:
		env.Logger.Warn("workload did not report ready; continuing", "after", readyTimeout)
		env.Ready()
		return run, nil
	case <-ctx.Done():
		cancel()
		<-run.done
		return nil, ctx.Err()
	}
}

// supervise runs w until ctx is done, restarting it with backoff once it
// has been ready. A first Run that ends before Ready is reported on first
// and not restarted.
func supervise(ctx context.Context, w Workload, env WorkloadEnv, ready <-chan struct{}, first chan<- error, done chan<- struct{}) {
	defer close(done)
	backoff := restartBackoff
	for attempt := 0; ; attempt++ {
		err := runSafely(ctx, w, env)
		if ctx.Err() != nil {
			return
		}
		if attempt == 0 && !isClosed(ready) {
			first <- err
			return
		}
		env.Logger.Warn("workload exited; restarting", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxRestartBackoff)
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

// runSafely turns a panic in Run into an error.
func runSafely(ctx context.Context, w Workload, env WorkloadEnv) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("workload panicked: %v", r)
		}
	}()
	return w.Run(ctx, env)
}
