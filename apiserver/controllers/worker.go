package controllers

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/svclab/svclab/apiserver/store"
)

// syncFunc syncs one key; an error retries the key with backoff.
type syncFunc func(ctx context.Context, key string) error

// runWorkers runs n workers taking keys from q until it shuts down, and
// returns when they have all stopped.
func runWorkers(ctx context.Context, q *queue, n int, syncKey syncFunc, log *slog.Logger) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := q.Get()
				if !ok {
					return
				}
				err := syncKey(ctx, key)
				switch {
				case err == nil:
					q.Forget(key)
				case ctx.Err() != nil:
					// shutting down: drop it
				default:
					lvl := slog.LevelWarn
					if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrAlreadyExists) {
						lvl = slog.LevelDebug // stale cache; the retry sees the fresh object
					}
					log.Log(ctx, lvl, "sync failed; retrying", "key", key, "err", err, "failures", q.Failures(key)+1)
					q.AddRateLimited(key)
				}
				q.Done(key)
			}
		}()
	}
	wg.Wait()
}

// splitKey splits "namespace/name" ("name" for cluster-scoped objects).
func splitKey(key string) (namespace, name string) {
	if ns, n, ok := strings.Cut(key, "/"); ok {
		return ns, n
	}
	return "", key
}

// objKey returns "namespace/name" of obj.
func objKey(obj store.Object) string {
	return obj.GetNamespace() + "/" + obj.GetName()
}
