package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Defaults of ProxierConfig's periods.
const (
	// DefaultSyncPeriod is how often the canary chains are checked
	// (kube-proxy --iptables-sync-period).
	DefaultSyncPeriod = 30 * time.Second
	// DefaultFullSyncPeriod is how often a full resync runs even without
	// changes (kube-proxy's proxyutil.FullSyncPeriod).
	DefaultFullSyncPeriod = time.Hour
	// DefaultRetryPeriod is the wait before retrying a failed sync. kube-proxy
	// waits syncPeriod; svclab retries sooner because its syncs are cheap.
	DefaultRetryPeriod = time.Second
)

// maxPendingTriggers bounds the change timestamps kept for
// kubeproxy_network_programming_duration_seconds while syncs fail.
const maxPendingTriggers = 10000

// ErrAlreadyRunning is returned by Run when the Proxier is already running.
var ErrAlreadyRunning = errors.New("proxier already running")

// ProxierConfig configures NewProxier.
type ProxierConfig struct {
	// Node is the node whose rules this Proxier programs.
	Node Node
	// Config holds the kube-proxy flags passed to Render.
	Config Config
	// NetnsPath is the node's network namespace, e.g.
	// /var/run/netns/svclab-node-1. Required unless Runner is set.
	NetnsPath string
	// Runner executes the kernel operations; nil means
	// NewBackendRunner(NetnsPath, Backend).
	Runner Runner
	// Backend is the iptables implementation to program when Runner is nil:
	// BackendAuto (also the zero value) is whatever `iptables` is on this
	// machine, which is what a user running `iptables -t nat -nL` in the node
	// sees; BackendNFT or BackendLegacy force one (rules written with one are
	// invisible to the other's tools). With a Runner, its Backend is used
	// and this field is ignored. The trade-off at scale is described in
	// apply.go: nft makes small changes cheap whatever the ruleset size,
	// legacy makes full syncs cheap but every change costs a whole-table
	// replace; only nft has `xtables-monitor --trace`.
	Backend IPTablesBackend
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives kube-proxy's metrics under this node's label; nil
	// means private, unregistered metrics.
	Metrics *Metrics
	// MinSyncPeriod is the least time between the starts of two syncs
	// (kube-proxy --iptables-min-sync-period, default 1s there). 0 syncs as
	// soon as the previous sync ends; changes that arrive while a sync runs
	// are always coalesced into the next one.
	MinSyncPeriod time.Duration
	// SyncPeriod is how often the canary chains are checked; 0 means
	// DefaultSyncPeriod.
	SyncPeriod time.Duration
	// FullSyncPeriod is how often a full resync runs without changes; 0 means
	// DefaultFullSyncPeriod.
	FullSyncPeriod time.Duration
	// RetryPeriod is the wait before a full resync after a failed sync,
	// doubled after each further consecutive failure up to SyncPeriod; 0
	// means DefaultRetryPeriod.
	RetryPeriod time.Duration
}

// SyncStatus describes a Proxier's progress, for tests, benchmarks and the UI.
type SyncStatus struct {
	// Generation counts the changes received: one per handler call that
	// changed something, and one per RequestFullSync.
	Generation uint64
	// SyncedGeneration is the Generation the last successful sync included.
	SyncedGeneration uint64
	// LastSync is when the last successful sync finished (zero if none).
	LastSync time.Time
	// LastSyncFull tells whether the last successful sync was a full one.
	LastSyncFull bool
	// LastError is the error of the most recent sync attempt, nil when it
	// succeeded.
	LastError error
	// FullSyncs, PartialSyncs and Failures count sync attempts by outcome.
	FullSyncs, PartialSyncs, Failures int
}

// nodeMetrics are the Metrics children of one node.
type nodeMetrics struct {
	sync, syncFull, syncPartial, netProg prometheus.Observer
	lastSync, lastQueued                 prometheus.Gauge
	rulesTotal, rulesLast                *prometheus.GaugeVec
	restoreFailures, partialFailures     prometheus.Counter
	svcChanges, epChanges                prometheus.Counter
	svcPending, epPending                prometheus.Gauge
	conntrackDeleted                     prometheus.Counter
}

func newNodeMetrics(m *Metrics, node string) nodeMetrics {
	return nodeMetrics{
		sync:             m.SyncDuration.WithLabelValues(node),
		syncFull:         m.SyncFullDuration.WithLabelValues(node),
		syncPartial:      m.SyncPartialDuration.WithLabelValues(node),
		netProg:          m.NetworkProgramming.WithLabelValues(node),
		lastSync:         m.LastSyncTimestamp.WithLabelValues(node),
		lastQueued:       m.LastQueuedTimestamp.WithLabelValues(node),
		rulesTotal:       m.RulesTotal.MustCurryWith(prometheus.Labels{labelNode: node}),
		rulesLast:        m.RulesLast.MustCurryWith(prometheus.Labels{labelNode: node}),
		restoreFailures:  m.RestoreFailures.WithLabelValues(node),
		partialFailures:  m.PartialRestoreFailure.WithLabelValues(node),
		svcChanges:       m.ServiceChangesTotal.WithLabelValues(node),
		epChanges:        m.EndpointChangesTotal.WithLabelValues(node),
		svcPending:       m.ServiceChangesPending.WithLabelValues(node),
		epPending:        m.EndpointChangesPend.WithLabelValues(node),
		conntrackDeleted: m.ConntrackDeleted.WithLabelValues(node),
	}
}

// Proxier is kube-proxy's iptables proxier for one svclab node. It receives
// Service and EndpointSlice changes through handler methods (the same as
// kube-proxy's config handlers), and a single sync goroutine (Run) renders and
// applies them: changes are coalesced, a sync writes only the per-service
// chains of the Services that changed since the last successful sync
// (partial sync), and everything after start, after a failure, when the
// KUBE-PROXY-CANARY chain disappears and every FullSyncPeriod (full sync).
// After each sync it deletes the UDP conntrack entries that point to removed
// endpoints.
//
// The rules in the kernel are always those of Render's full payload, but to
// scale to 10,000 Services the transactions differ from kube-proxy's (see
// apply.go): a partial sync also updates KUBE-SERVICES & co. rule by rule
// (-D/-I) instead of rewriting them, so their rule order differs from
// Render's (kube-proxy's is a Go map's) and their counters survive partial
// syncs; with iptables-nft a large full sync is split into several
// transactions. A failed partial sync falls back to a full one at once.
//
// Handler methods are safe for concurrent use and never block on a sync. The
// objects passed in are kept and read later: callers must not modify them
// afterwards (as with informer caches).
type Proxier struct {
	node           Node
	cfg            Config
	runner         Runner
	backend        IPTablesBackend
	log            *slog.Logger
	metrics        *Metrics
	m              nodeMetrics
	minSyncPeriod  time.Duration
	syncPeriod     time.Duration
	fullSyncPeriod time.Duration
	retryPeriod    time.Duration
	startTime      time.Time
	kick           chan struct{}
	running        atomic.Bool

	mu             sync.Mutex
	services       map[types.NamespacedName]*corev1.Service
	slices         map[types.NamespacedName]*discoveryv1.EndpointSlice
	changed        map[types.NamespacedName]bool
	triggers       []time.Time
	svcPending     int
	epPending      int
	servicesSynced bool
	slicesSynced   bool
	needFull       bool
	status         SyncStatus
	progress       chan struct{} // closed and replaced after every sync attempt
	published      *Result

	// Owned by the sync goroutine.
	last     *Result
	lastOut  *renderOutput // how last was rendered, for incremental syncs
	nftBatch int           // per-service chains per full-sync transaction (nft)
	render   renderer
	udp      udpState
}

// NewProxier returns a Proxier for cfg.Node. It does not touch the kernel:
// the first sync happens in Run once OnSynced (or both OnServiceSynced and
// OnEndpointSlicesSynced) has been called. It fails when no Runner is given
// and NewRunner fails (no NetnsPath, iptables tools missing).
func NewProxier(cfg ProxierConfig) (*Proxier, error) {
	r := cfg.Runner
	if r == nil {
		var err error
		if r, err = NewBackendRunner(cfg.NetnsPath, cfg.Backend); err != nil {
			return nil, fmt.Errorf("proxier for node %q: %w", cfg.Node.Name, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	if m == nil {
		m, _ = NewMetrics(nil) // cannot fail without a registry
	}
	p := &Proxier{
		node:           cfg.Node,
		cfg:            cfg.Config,
		runner:         r,
		backend:        r.Backend(),
		log:            log.With("component", "dataplane", "node", cfg.Node.Name),
		metrics:        m,
		m:              newNodeMetrics(m, cfg.Node.Name),
		minSyncPeriod:  cfg.MinSyncPeriod,
		syncPeriod:     orDefault(cfg.SyncPeriod, DefaultSyncPeriod),
		fullSyncPeriod: orDefault(cfg.FullSyncPeriod, DefaultFullSyncPeriod),
		retryPeriod:    orDefault(cfg.RetryPeriod, DefaultRetryPeriod),
		startTime:      time.Now(),
		kick:           make(chan struct{}, 1),
		services:       map[types.NamespacedName]*corev1.Service{},
		slices:         map[types.NamespacedName]*discoveryv1.EndpointSlice{},
		changed:        map[types.NamespacedName]bool{},
		needFull:       true,
		progress:       make(chan struct{}),
		nftBatch:       nftBatchChains,
	}
	return p, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Node returns the node this Proxier programs.
func (p *Proxier) Node() Node { return p.node }

// Backend returns the iptables backend this Proxier programs (BackendNFT or
// BackendLegacy): tools that read or trace the node's rules must use the
// same one (`xtables-monitor --trace` only sees nft rules).
func (p *Proxier) Backend() IPTablesBackend { return p.backend }

// OnServiceAdd records a new Service.
func (p *Proxier) OnServiceAdd(svc *corev1.Service) { p.OnServiceUpdate(nil, svc) }

// OnServiceUpdate records a changed Service. old may be nil. An update whose
// resourceVersion equals the stored one (an informer resync) is ignored.
func (p *Proxier) OnServiceUpdate(old, svc *corev1.Service) {
	if svc == nil {
		return
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	p.mu.Lock()
	if cur := p.services[key]; cur != nil && cur.ResourceVersion != "" && cur.ResourceVersion == svc.ResourceVersion {
		p.mu.Unlock()
		return
	}
	p.services[key] = svc
	p.svcPending++
	p.m.svcPending.Set(float64(p.svcPending))
	p.markLocked([]types.NamespacedName{key}, time.Now(), true)
	p.mu.Unlock()
	p.m.svcChanges.Inc()
	p.signal()
}

// OnServiceDelete records a deleted Service.
func (p *Proxier) OnServiceDelete(svc *corev1.Service) {
	if svc == nil {
		return
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	p.mu.Lock()
	delete(p.services, key)
	p.svcPending++
	p.m.svcPending.Set(float64(p.svcPending))
	p.markLocked([]types.NamespacedName{key}, time.Now(), true)
	p.mu.Unlock()
	p.m.svcChanges.Inc()
	p.signal()
}

// OnServiceSynced records that the initial list of Services is complete.
func (p *Proxier) OnServiceSynced() { p.setSynced(true, false) }

// OnEndpointSliceAdd records a new EndpointSlice.
func (p *Proxier) OnEndpointSliceAdd(slice *discoveryv1.EndpointSlice) {
	p.OnEndpointSliceUpdate(nil, slice)
}

// OnEndpointSliceUpdate records a changed EndpointSlice. old may be nil. The
// change time used for kubeproxy_network_programming_duration_seconds is the
// slice's endpoints.kubernetes.io/last-change-trigger-time annotation when
// present (ignored, as kube-proxy does, when older than the Proxier), else
// the time of this call. An update whose resourceVersion equals the stored
// one is ignored.
func (p *Proxier) OnEndpointSliceUpdate(old, slice *discoveryv1.EndpointSlice) {
	if slice == nil {
		return
	}
	now := time.Now()
	key := types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name}
	p.mu.Lock()
	prev := p.slices[key]
	if prev != nil && prev.ResourceVersion != "" && prev.ResourceVersion == slice.ResourceVersion {
		p.mu.Unlock()
		return
	}
	if prev == nil {
		prev = old
	}
	p.slices[key] = slice
	p.epPending++
	p.m.epPending.Set(float64(p.epPending))
	at, measure := p.triggerTime(slice, now)
	p.markLocked(sliceServices(prev, slice), at, measure)
	p.mu.Unlock()
	p.m.epChanges.Inc()
	p.signal()
}

// OnEndpointSliceDelete records a deleted EndpointSlice.
func (p *Proxier) OnEndpointSliceDelete(slice *discoveryv1.EndpointSlice) {
	if slice == nil {
		return
	}
	key := types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name}
	p.mu.Lock()
	prev := p.slices[key]
	delete(p.slices, key)
	p.epPending++
	p.m.epPending.Set(float64(p.epPending))
	p.markLocked(sliceServices(prev, slice), time.Now(), true)
	p.mu.Unlock()
	p.m.epChanges.Inc()
	p.signal()
}

// OnEndpointSlicesSynced records that the initial list of EndpointSlices is
// complete.
func (p *Proxier) OnEndpointSlicesSynced() { p.setSynced(false, true) }

// OnSynced records that the initial lists of Services and EndpointSlices are
// complete; the first (full) sync follows.
func (p *Proxier) OnSynced() { p.setSynced(true, true) }

func (p *Proxier) setSynced(services, slices bool) {
	p.mu.Lock()
	p.servicesSynced = p.servicesSynced || services
	p.slicesSynced = p.slicesSynced || slices
	p.mu.Unlock()
	p.signal()
}

// triggerTime returns when slice's change happened and whether to measure it.
func (p *Proxier) triggerTime(slice *discoveryv1.EndpointSlice, now time.Time) (time.Time, bool) {
	v, ok := slice.Annotations[corev1.EndpointsLastChangeTriggerTime]
	if !ok {
		return now, true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return now, true
	}
	return t, !t.Before(p.startTime)
}

// sliceServices returns the Services the given slices belong to (their
// kubernetes.io/service-name label); nil slices and unlabelled ones add none.
func sliceServices(slices ...*discoveryv1.EndpointSlice) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, sl := range slices {
		if sl == nil || sl.Labels[discoveryv1.LabelServiceName] == "" {
			continue
		}
		k := types.NamespacedName{Namespace: sl.Namespace, Name: sl.Labels[discoveryv1.LabelServiceName]}
		if len(keys) == 0 || keys[0] != k {
			keys = append(keys, k)
		}
	}
	return keys
}

// markLocked records one change (one handler call): it marks keys changed,
// bumps the generation and, when measure is set, remembers at for
// kubeproxy_network_programming_duration_seconds.
func (p *Proxier) markLocked(keys []types.NamespacedName, at time.Time, measure bool) {
	for _, k := range keys {
		p.changed[k] = true
	}
	p.status.Generation++
	if measure && len(p.triggers) < maxPendingTriggers {
		p.triggers = append(p.triggers, at)
	}
}

// signal wakes the sync goroutine without blocking.
func (p *Proxier) signal() {
	p.m.lastQueued.SetToCurrentTime()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// RequestFullSync makes the next sync a full one and wakes the sync
// goroutine. It returns the generation to wait for (see WaitForGeneration).
func (p *Proxier) RequestFullSync() uint64 {
	p.mu.Lock()
	p.needFull = true
	p.status.Generation++
	gen := p.status.Generation
	p.mu.Unlock()
	p.signal()
	return gen
}

// Status returns a snapshot of the Proxier's progress.
func (p *Proxier) Status() SyncStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Generation returns the number of changes received so far; a successful
// sync that started after a change includes it.
func (p *Proxier) Generation() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status.Generation
}

// WaitForGeneration blocks until a successful sync has included every change
// up to generation gen, or ctx ends. On ctx's end it returns ctx's error,
// joined with the last sync error if there is one.
func (p *Proxier) WaitForGeneration(ctx context.Context, gen uint64) error {
	return p.WaitFor(ctx, func(s SyncStatus) bool {
		return s.SyncedGeneration >= gen && !s.LastSync.IsZero()
	})
}

// WaitFor blocks until cond holds for the Proxier's SyncStatus, checking
// now and after every sync attempt, or until ctx ends. On ctx's end it
// returns ctx's error, joined with the last sync error if there is one.
func (p *Proxier) WaitFor(ctx context.Context, cond func(SyncStatus) bool) error {
	for {
		p.mu.Lock()
		st, ch := p.status, p.progress
		p.mu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if st.LastError != nil {
				return errors.Join(ctx.Err(), fmt.Errorf("last sync: %w", st.LastError))
			}
			return ctx.Err()
		}
	}
}

// WaitForSync blocks until every change received before the call is in the
// kernel (WaitForGeneration of the current Generation).
func (p *Proxier) WaitForSync(ctx context.Context) error {
	return p.WaitForGeneration(ctx, p.Generation())
}

// LastResult returns the Result of the last successful sync, nil before the
// first. The Result is shared: do not modify it.
func (p *Proxier) LastResult() *Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published
}

// Close drops this node's metric series (for a node removed from the lab).
// It does not remove rules: they go with the node's network namespace.
func (p *Proxier) Close() { p.metrics.forgetNode(p.node.Name) }

// Run is the sync loop; it returns nil when ctx ends, ErrAlreadyRunning when
// called twice. It syncs once the initial lists are in (OnSynced) and then
// whenever changes arrive, checks the canary chains every SyncPeriod, retries
// failed syncs after RetryPeriod and resyncs fully every FullSyncPeriod.
func (p *Proxier) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer p.running.Store(false)

	monitor := time.NewTicker(p.syncPeriod)
	defer monitor.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	full := time.NewTicker(p.fullSyncPeriod)
	defer full.Stop()

	var lastStart time.Time
	failures := 0 // consecutive failed syncs, for the retry backoff
	p.signal()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry.C:
		case <-full.C:
			p.mu.Lock()
			p.needFull = true
			p.mu.Unlock()
		case <-monitor.C:
			if !p.ready() || p.canaryPresent(ctx) {
				continue
			}
			p.log.Info("canary chain gone, someone flushed the tables: full resync", "chain", CanaryChain)
			p.mu.Lock()
			p.needFull = true
			p.mu.Unlock()
		}
		if !p.ready() {
			continue
		}
		if wait := p.minSyncPeriod - time.Since(lastStart); wait > 0 && !lastStart.IsZero() {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		lastStart = time.Now()
		if err := p.syncOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// RetryPeriod, doubling per consecutive failure up to SyncPeriod.
			retry.Reset(min(p.retryPeriod<<min(failures, 16), max(p.syncPeriod, p.retryPeriod)))
			failures++
		} else {
			failures = 0
		}
	}
}

func (p *Proxier) ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.servicesSynced && p.slicesSynced
}

// canaryPresent checks KUBE-PROXY-CANARY in every canary table; an error
// checking counts as present (the next sync will tell).
func (p *Proxier) canaryPresent(ctx context.Context) bool {
	for _, t := range CanaryTables {
		ok, err := p.runner.ChainExists(ctx, t, CanaryChain)
		if err != nil {
			p.log.Warn("cannot check canary chain", "table", t, "err", err)
			continue
		}
		if !ok {
			return false
		}
	}
	return true
}

// syncSnapshot is what one sync works on, taken under p.mu.
type syncSnapshot struct {
	full    bool
	changed map[types.NamespacedName]bool
	// changedUDP: a changed Service has a UDP port now, or had one at the
	// last conntrack cleanup (so the UDP state may have changed).
	changedUDP bool
	triggers   []time.Time
	gen        uint64
	services   []*corev1.Service
	slices     []*discoveryv1.EndpointSlice
}

func (p *Proxier) takeSnapshot() syncSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := syncSnapshot{
		full:     p.needFull || p.last == nil,
		changed:  p.changed,
		triggers: p.triggers,
		gen:      p.status.Generation,
		services: make([]*corev1.Service, 0, len(p.services)),
		slices:   make([]*discoveryv1.EndpointSlice, 0, len(p.slices)),
	}
	for _, svc := range p.services {
		s.services = append(s.services, svc)
	}
	for nn := range p.changed {
		if hasUDPPort(p.services[nn]) || p.udp.services[nn] {
			s.changedUDP = true
			break
		}
	}
	for _, sl := range p.slices {
		s.slices = append(s.slices, sl)
	}
	p.changed = map[types.NamespacedName]bool{}
	p.triggers = nil
	p.needFull = false
	p.svcPending, p.epPending = 0, 0
	p.m.svcPending.Set(0)
	p.m.epPending.Set(0)
	return s
}

// syncOnce runs one sync, then cleans up UDP conntrack entries. A partial
// sync checks the canary and applies one incremental transaction (see
// apply.go); when the canary is gone, the large-cluster mode flipped or the
// transaction fails, the sync becomes a full one at once. A full sync
// ensures the canary and jump rules, reads the existing chains and applies
// the full payload (in batches with iptables-nft at scale). It returns the
// error that made the sync fail.
func (p *Proxier) syncOnce(ctx context.Context) (err error) {
	snap := p.takeSnapshot()
	if !snap.full && len(snap.changed) == 0 {
		// Woken without a change that needs rules (a late wake-up, or a
		// slice that names no Service): the kernel is already in sync.
		p.mu.Lock()
		p.status.SyncedGeneration = max(p.status.SyncedGeneration, snap.gen)
		close(p.progress)
		p.progress = make(chan struct{})
		p.mu.Unlock()
		return nil
	}
	start := time.Now()
	defer func() {
		elapsed := time.Since(start).Seconds()
		p.m.sync.Observe(elapsed)
		if snap.full {
			p.m.syncFull.Observe(elapsed)
		} else {
			p.m.syncPartial.Observe(elapsed)
		}
		p.finishSync(snap, err)
	}()

	written := map[Table]int{}
	var res *Result
	if !snap.full {
		if res = p.syncPartial(ctx, snap, written); res == nil {
			if err = ctx.Err(); err != nil {
				return err
			}
			snap.full = true
			clear(written)
		}
	}
	if snap.full {
		if res, err = p.syncFull(ctx, snap, written); err != nil {
			return err
		}
	}

	p.last = res
	for t, n := range res.RuleCounts {
		p.m.rulesTotal.WithLabelValues(string(t)).Set(float64(n))
	}
	for _, t := range []Table{TableFilter, TableNAT} {
		p.m.rulesLast.WithLabelValues(string(t)).Set(float64(written[t]))
	}
	p.m.lastSync.SetToCurrentTime()
	now := time.Now()
	for _, t := range snap.triggers {
		p.m.netProg.Observe(now.Sub(t).Seconds())
	}
	p.log.Debug("synced proxy rules", "full", snap.full, "services", len(snap.services),
		"changed", len(snap.changed), "rulesWritten", written[TableFilter]+written[TableNAT], "elapsed", time.Since(start))

	p.cleanupConntrack(ctx, snap)
	return nil
}

// syncPartial renders the changes in snap and applies them as one
// incremental transaction, counting the rules it writes into written. It
// returns nil when the sync must be a full one instead: there is no previous
// sync to build on, the canary chain is gone, the large-cluster mode flipped
// (the comments of every SEP chain change), or the transaction failed
// (logged and counted in the restore failure metrics).
func (p *Proxier) syncPartial(ctx context.Context, snap syncSnapshot, written map[Table]int) *Result {
	if p.last == nil || p.lastOut == nil {
		return nil
	}
	// With nft, one cheap `iptables -S` tells whether someone flushed the
	// nat table since the last sync. With legacy that read costs a copy of
	// the whole table, so the transaction itself checks (planIncremental's
	// guard).
	guard := p.backend == BackendLegacy
	if !guard {
		if ok, cerr := p.runner.ChainExists(ctx, TableNAT, CanaryChain); cerr == nil && !ok {
			p.log.Info("canary chain gone, someone flushed the tables: full resync", "chain", CanaryChain)
			return nil
		}
	}
	res, out := p.render.render(Input{
		Node:           p.node,
		Config:         p.cfg,
		Services:       snap.services,
		EndpointSlices: snap.slices,
		Changed:        snap.changed,
		Existing:       p.last.Chains,
	}, p.lastOut)
	if out.largeCluster != p.lastOut.largeCluster {
		p.log.Info("large-cluster mode changed (SEP rule comments): full resync", "largeCluster", out.largeCluster)
		return nil
	}
	plan := planIncremental(p.lastOut, out, guard)
	if plan.payload != nil {
		if err := p.runner.Restore(ctx, plan.payload); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var re *RestoreError
			if errors.As(err, &re) && slices.Contains(plan.guardLines, re.Line) {
				p.log.Info("canary chain gone, someone flushed the tables: full resync", "chain", CanaryChain)
				return nil
			}
			p.m.restoreFailures.Inc()
			p.m.partialFailures.Inc()
			p.logRestoreError(err, plan.payload, false)
			p.log.Info("incremental sync failed: full resync")
			return nil
		}
		countWrittenRules(plan.payload, written)
	}
	p.lastOut = out
	return res
}

// syncFull ensures the canary and jump rules, renders everything and applies
// it (see planFull), counting the rules it writes into written.
func (p *Proxier) syncFull(ctx context.Context, snap syncSnapshot, written map[Table]int) (*Result, error) {
	existing, err := p.prepareFullSync(ctx)
	if err != nil {
		return nil, err
	}
	res, out := p.render.render(Input{
		Node:           p.node,
		Config:         p.cfg,
		Services:       snap.services,
		EndpointSlices: snap.slices,
		Existing:       existing,
	}, nil)
	// Until this sync succeeds nothing is known about the kernel's state.
	p.lastOut = nil
	steps := planFull(res, out, p.backend, p.nftBatch)
	for i, payload := range steps {
		if err := p.runner.Restore(ctx, payload); err != nil {
			p.m.restoreFailures.Inc()
			if len(steps) > 1 {
				err = fmt.Errorf("full sync transaction %d of %d: %w", i+1, len(steps), err)
			}
			p.logRestoreError(err, payload, true)
			return nil, err
		}
		countWrittenRules(payload, written)
	}
	p.lastOut = out
	return res, nil
}

// logRestoreError logs a failed restore with the payload lines around the
// failing one.
func (p *Proxier) logRestoreError(err error, payload []byte, full bool) {
	var re *RestoreError
	if errors.As(err, &re) && re.Line > 0 {
		p.log.Error("iptables-restore failed", "err", err, "full", full, "rules", extractLines(payload, re.Line, 3))
	} else {
		p.log.Error("iptables-restore failed", "err", err, "full", full)
	}
}

// prepareFullSync ensures the canary chains and kube-proxy's jump rules
// exist and returns the chains now present in filter and nat. It reads the
// three tables with iptables-save and creates what is missing in one
// iptables-restore transaction (":CHAIN" for a missing chain, "-I CHAIN 1
// rule" for a missing jump, in JumpRules order) instead of kube-proxy's
// `iptables -N`/`-C`/`-I` calls, one process each; the result is the same.
func (p *Proxier) prepareFullSync(ctx context.Context) (map[Table]map[string]bool, error) {
	existing := map[Table]map[string]bool{}
	rules := map[Table]map[string]bool{}
	for _, t := range []Table{TableMangle, TableFilter, TableNAT} {
		out, err := p.runner.SaveCounters(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("read existing chains: %w", err)
		}
		existing[t], rules[t] = scanSave(out)
	}
	var ensure bytes.Buffer
	for _, t := range []Table{TableMangle, TableFilter, TableNAT} {
		var decls, inserts []string
		if slices.Contains(CanaryTables, t) && !existing[t][CanaryChain] {
			decls = append(decls, CanaryChain)
		}
		for _, j := range JumpRules {
			if j.Table != t {
				continue
			}
			if !existing[t][j.DstChain] && !slices.Contains(decls, j.DstChain) {
				decls = append(decls, j.DstChain)
			}
			if text := jumpRuleText(j); !rules[t][text] {
				inserts = append(inserts, "-I "+j.SrcChain+" 1"+strings.TrimPrefix(text, "-A "+j.SrcChain))
			}
		}
		if len(decls) == 0 && len(inserts) == 0 {
			continue
		}
		ensure.WriteString("*" + string(t) + "\n")
		for _, c := range decls {
			ensure.WriteString(":" + c + " - [0:0]\n")
			existing[t][c] = true
		}
		for _, l := range inserts {
			ensure.WriteString(l + "\n")
		}
		ensure.WriteString("COMMIT\n")
	}
	if ensure.Len() > 0 {
		if err := p.runner.Restore(ctx, ensure.Bytes()); err != nil {
			p.logRestoreError(err, ensure.Bytes(), true)
			return nil, fmt.Errorf("ensure canary chains and jump rules: %w", err)
		}
	}
	delete(existing, TableMangle)
	return existing, nil
}

// jumpRuleText is the line iptables-save prints for j (without counters).
func jumpRuleText(j JumpRule) string {
	var b strings.Builder
	b.WriteString("-A ")
	b.WriteString(j.SrcChain)
	for _, a := range j.Args() {
		b.WriteByte(' ')
		if strings.ContainsAny(a, " \t") {
			b.WriteString(`"` + a + `"`)
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// scanSave returns the chains declared in iptables-save output (":NAME …"
// lines) and its rule lines ("-A …", counters stripped). Only the rules of
// built-in chains are kept: they are all prepareFullSync needs.
func scanSave(out []byte) (chains map[string]bool, builtinRules map[string]bool) {
	chains, builtinRules = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ":") {
			name, _, _ := strings.Cut(line[1:], " ")
			chains[name] = true
			continue
		}
		if strings.HasPrefix(line, "[") {
			if _, rest, ok := strings.Cut(line, "] "); ok {
				line = rest
			}
		}
		if strings.HasPrefix(line, "-A ") {
			chain, _, _ := strings.Cut(line[3:], " ")
			if !strings.HasPrefix(chain, "KUBE-") {
				builtinRules[line] = true
			}
		}
	}
	return chains, builtinRules
}

// finishSync records the outcome of a sync attempt and wakes waiters.
func (p *Proxier) finishSync(snap syncSnapshot, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.LastError = err
	if err != nil {
		p.status.Failures++
		// The changes of this sync are not in the kernel; we no longer know
		// what is, so the next sync is a full one. Keep the change times so
		// they are measured when a sync succeeds.
		p.needFull = true
		if room := maxPendingTriggers - len(p.triggers); room > 0 {
			p.triggers = append(snap.triggers[:min(len(snap.triggers), room):min(len(snap.triggers), room)], p.triggers...)
		}
	} else {
		if snap.full {
			p.status.FullSyncs++
		} else {
			p.status.PartialSyncs++
		}
		p.status.SyncedGeneration = snap.gen
		p.status.LastSync = time.Now()
		p.status.LastSyncFull = snap.full
		p.published = p.last
	}
	close(p.progress)
	p.progress = make(chan struct{})
}

// cleanupConntrack deletes UDP conntrack entries that point to endpoints or
// frontends the new rules no longer use. It runs after every full sync and
// after partial syncs that changed the UDP state; errors are logged, not
// fatal (kube-proxy behaves the same). A partial sync that changed no
// Service with a UDP port (now or before) leaves the state as it was
// without recomputing it, so it costs nothing at 10,000 TCP Services.
func (p *Proxier) cleanupConntrack(ctx context.Context, snap syncSnapshot) {
	if !snap.full && !snap.changedUDP {
		return
	}
	cur := buildUDPState(snap.services, snap.slices)
	prev := p.udp
	p.mu.Lock()
	p.udp = cur
	p.mu.Unlock()
	if cur.empty() && prev.empty() {
		return
	}
	if !snap.full && cur.equal(prev) {
		return
	}
	f := newStaleUDPFilter(prev, cur)
	for _, fam := range f.families() {
		n, err := p.runner.DeleteConntrack(ctx, fam, f)
		if n > 0 {
			p.m.conntrackDeleted.Add(float64(n))
			p.log.Info("deleted stale UDP conntrack entries", "count", n, "family", fam)
		}
		if err != nil {
			p.log.Error("conntrack cleanup failed", "err", err)
		}
	}
}
