package dataplane

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// ErrNoNetns is returned when an operation that must run inside a node's
// network namespace is given no namespace path. svclab never falls back to the
// caller's (host) namespace: the host's tables are never touched.
var ErrNoNetns = errors.New("no network namespace path given")

// onFreshThread runs fn on a new goroutine locked to its OS thread and waits
// for it. It is the one place in this package where a thread's network
// namespace changes: fn may switch the thread into another namespace
// (netns.Set, netns.NewNamed); afterwards onFreshThread switches it back to
// the namespace it started in. If switching back fails, the thread stays
// locked, so the Go runtime terminates it when the goroutine exits instead of
// reusing a thread stuck in the wrong namespace.
//
// Child processes started by fn (exec.Command) are forked from the locked
// thread and therefore inherit its namespace. Goroutines fn starts do not.
func onFreshThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()

		fnErr := fn()

		// Only restore when fn moved us; netns.Set is cheap but checking first
		// keeps the common error path free of a needless setns.
		cur, err := netns.Get()
		if err == nil && cur.Equal(orig) {
			cur.Close()
			runtime.UnlockOSThread()
			errc <- fnErr
			return
		}
		if err == nil {
			cur.Close()
		}
		if err := netns.Set(orig); err != nil {
			// Deliberately no UnlockOSThread: the runtime discards this thread.
			errc <- errors.Join(fnErr, fmt.Errorf("return to original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// inNetns runs fn with the calling thread inside the network namespace bound
// at path (e.g. /var/run/netns/svclab-node-1), the equivalent of
// `ip netns exec NAME …`. Processes fn starts with os/exec run in that
// namespace. It returns ErrNoNetns for an empty path and wraps the error when
// the namespace cannot be opened or entered; fn's own error is returned as is.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return ErrNoNetns
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	return onFreshThread(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		return fn()
	})
}
