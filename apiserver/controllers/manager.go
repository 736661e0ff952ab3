package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/svclab/svclab/apiserver/store"
)

// Manager runs svclab's control loops — scheduler, kubelet, EndpointSlice,
// Endpoints and EndpointSliceMirroring controllers, pod garbage collector —
// over one shared cache of the store.
type Manager struct {
	st      *store.Store
	cfg     Config
	log     *slog.Logger // with component=controllers
	baseLog *slog.Logger // as given to NewManager

	cache     *cache
	scheduler *scheduler
	kubelet   *kubelet
	slices    *endpointSliceController
	endpoints *endpointsController
	mirroring *mirroringController
	podGC     *podGC

	started chan struct{} // closed when the workers run (after restore)
	runErr  error         // set before started is closed when Run fails early
	once    sync.Once
}

// NewManager returns a Manager over st that drives rt for the node side.
// A nil logger means slog.Default(); a nil rt means a SimulatedRuntime.
func NewManager(st *store.Store, cfg Config, rt PodRuntime, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.Default()
	}
	if rt == nil {
		rt = &SimulatedRuntime{}
	}
	cfg = cfg.withDefaults()
	log := logger.With("component", "controllers")
	c := newCache(st, log.With("controller", "cache"))
	m := &Manager{
		st: st, cfg: cfg, log: log, baseLog: logger, cache: c,
		scheduler: newScheduler(st, c, log),
		kubelet:   newKubelet(st, c, rt, cfg, log),
		slices:    newEndpointSliceController(st, c, cfg, log),
		endpoints: newEndpointsController(st, c, cfg, log),
		mirroring: newMirroringController(st, c, cfg, log),
		podGC:     newPodGC(st, c, cfg, log),
		started:   make(chan struct{}),
	}
	c.handlers = []eventHandler{m.scheduler, m.kubelet, m.slices, m.endpoints, m.mirroring}
	return m
}

func (m *Manager) queues() []*queue {
	return []*queue{m.scheduler.q, m.kubelet.q, m.slices.q, m.endpoints.q, m.mirroring.q}
}

// Run bootstraps the cluster (when Config.Bootstrap is set), lists the store,
// restores the kubelet's pod IPs and runtime, and runs every controller until
// ctx is done; it then returns nil after the workers stopped. It returns an
// error when bootstrap or the runtime restore fails, or when the store is
// closed under it. Run must be called once.
func (m *Manager) Run(ctx context.Context) error {
	err := m.run(ctx)
	m.once.Do(func() { // Run failed before the workers started: release WaitSynced
		m.runErr = err
		if m.runErr == nil {
			m.runErr = ctx.Err()
		}
		close(m.started)
	})
	return err
}

func (m *Manager) run(ctx context.Context) error {
	if m.cfg.Bootstrap != nil {
		bc := *m.cfg.Bootstrap
		if bc.Logger == nil {
			bc.Logger = m.baseLog
		}
		if err := Bootstrap(ctx, m.st, bc); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var cacheErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.cache.run(ctx); err != nil {
			cacheErr = err
			cancel()
		}
	}()
	defer func() {
		cancel()
		for _, q := range m.queues() {
			q.ShutDown()
		}
		wg.Wait()
	}()

	select {
	case <-m.cache.synced:
	case <-ctx.Done():
		wg.Wait()
		return cacheErr
	}
	if err := m.kubelet.restore(ctx); err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	for _, run := range []func(context.Context){m.scheduler.run, m.kubelet.run, m.slices.run, m.endpoints.run, m.mirroring.run, m.podGC.run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	m.once.Do(func() { close(m.started) })
	m.log.Info("controllers running")
	<-ctx.Done()
	for _, q := range m.queues() {
		q.ShutDown()
	}
	wg.Wait()
	return cacheErr
}

// WaitSynced blocks until the controllers have caught up with the store:
// the cache has seen every change committed so far and every controller has
// worked off its queue, repeated until no write happened meanwhile (so the
// chain bootstrap → scheduler → kubelet → endpoints has settled). Failed keys
// waiting for a retry do not count as work. It returns ctx's error when ctx
// ends first, and Run's error when Run failed before starting.
func (m *Manager) WaitSynced(ctx context.Context) error {
	select {
	case <-m.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if m.runErr != nil {
		return m.runErr
	}
	for {
		rv := m.st.ResourceVersion()
		if err := m.cache.waitFor(ctx, rv); err != nil {
			return err
		}
		for _, q := range m.queues() {
			select {
			case <-q.Idle():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if m.st.ResourceVersion() == rv && m.idle() {
			return nil
		}
	}
}

// idle reports whether every queue is idle right now.
func (m *Manager) idle() bool {
	for _, q := range m.queues() {
		select {
		case <-q.Idle():
		default:
			return false
		}
	}
	return true
}
