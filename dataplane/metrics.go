package dataplane

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds kube-proxy's Prometheus metrics (iptables mode, v1.30+ names)
// for every Proxier of this process. kube-proxy runs one process per node, so
// its metrics carry no node; svclab runs all nodes' proxiers in one process,
// so every metric here has a "node" label (the Node.Name of the Proxier) in
// addition to kube-proxy's own labels ("table" on the rule gauges).
//
// Histogram buckets follow kube-proxy except for
// kubeproxy_network_programming_duration_seconds, whose kube-proxy buckets
// start at 250ms; svclab prepends millisecond buckets because its syncs are
// that fast.
type Metrics struct {
	SyncDuration          *prometheus.HistogramVec // kubeproxy_sync_proxy_rules_duration_seconds
	SyncFullDuration      *prometheus.HistogramVec // kubeproxy_sync_full_proxy_rules_duration_seconds
	SyncPartialDuration   *prometheus.HistogramVec // kubeproxy_sync_partial_proxy_rules_duration_seconds
	NetworkProgramming    *prometheus.HistogramVec // kubeproxy_network_programming_duration_seconds
	LastSyncTimestamp     *prometheus.GaugeVec     // kubeproxy_sync_proxy_rules_last_timestamp_seconds
	LastQueuedTimestamp   *prometheus.GaugeVec     // kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds
	RulesTotal            *prometheus.GaugeVec     // kubeproxy_sync_proxy_rules_iptables_total{table}
	RulesLast             *prometheus.GaugeVec     // kubeproxy_sync_proxy_rules_iptables_last{table}
	RestoreFailures       *prometheus.CounterVec   // kubeproxy_sync_proxy_rules_iptables_restore_failures_total
	PartialRestoreFailure *prometheus.CounterVec   // kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total
	ServiceChangesTotal   *prometheus.CounterVec   // kubeproxy_sync_proxy_rules_service_changes_total
	EndpointChangesTotal  *prometheus.CounterVec   // kubeproxy_sync_proxy_rules_endpoint_changes_total
	ServiceChangesPending *prometheus.GaugeVec     // kubeproxy_sync_proxy_rules_service_changes_pending
	EndpointChangesPend   *prometheus.GaugeVec     // kubeproxy_sync_proxy_rules_endpoint_changes_pending
	ConntrackDeleted      *prometheus.CounterVec   // kubeproxy_conntrack_reconciler_deleted_entries_total
}

const (
	metricsSubsystem = "kubeproxy"
	labelNode        = "node"
	labelTable       = "table"
)

// networkProgrammingBuckets are 1ms…128ms, then kube-proxy's 0.25s, 0.5s,
// 1…59s, 60…115s, 120…300s.
func networkProgrammingBuckets() []float64 {
	b := prometheus.ExponentialBuckets(0.001, 2, 8) // 1ms … 128ms
	b = append(b, prometheus.LinearBuckets(0.25, 0.25, 2)...)
	b = append(b, prometheus.LinearBuckets(1, 1, 59)...)
	b = append(b, prometheus.LinearBuckets(60, 5, 12)...)
	return append(b, prometheus.LinearBuckets(120, 30, 7)...)
}

// NewMetrics creates the metrics and registers them with reg. A nil reg
// creates unregistered metrics (useful in tests). Registering twice with the
// same registry fails with the registry's AlreadyRegisteredError (wrapped):
// create one Metrics per process and share it between Proxiers.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	syncBuckets := prometheus.ExponentialBuckets(0.001, 2, 15)
	hist := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: metricsSubsystem, Name: name, Help: help, Buckets: buckets,
		}, []string{labelNode})
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: metricsSubsystem, Name: name, Help: help,
		}, append([]string{labelNode}, labels...))
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: metricsSubsystem, Name: name, Help: help,
		}, []string{labelNode})
	}
	m := &Metrics{
		SyncDuration:          hist("sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", syncBuckets),
		SyncFullDuration:      hist("sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs", syncBuckets),
		SyncPartialDuration:   hist("sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs", syncBuckets),
		NetworkProgramming:    hist("network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds", networkProgrammingBuckets()),
		LastSyncTimestamp:     gauge("sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced"),
		LastQueuedTimestamp:   gauge("sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued"),
		RulesTotal:            gauge("sync_proxy_rules_iptables_total", "Total number of iptables rules owned by kube-proxy", labelTable),
		RulesLast:             gauge("sync_proxy_rules_iptables_last", "Number of iptables rules written by kube-proxy in last sync", labelTable),
		RestoreFailures:       counter("sync_proxy_rules_iptables_restore_failures_total", "Cumulative proxy iptables restore failures"),
		PartialRestoreFailure: counter("sync_proxy_rules_iptables_partial_restore_failures_total", "Cumulative proxy iptables partial restore failures"),
		ServiceChangesTotal:   counter("sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes"),
		EndpointChangesTotal:  counter("sync_proxy_rules_endpoint_changes_total", "Cumulative proxy rules Endpoint changes"),
		ServiceChangesPending: gauge("sync_proxy_rules_service_changes_pending", "Pending proxy rules Service changes"),
		EndpointChangesPend:   gauge("sync_proxy_rules_endpoint_changes_pending", "Pending proxy rules Endpoint changes"),
		ConntrackDeleted:      counter("conntrack_reconciler_deleted_entries_total", "Cumulative conntrack flows deleted by conntrack reconciler"),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register kube-proxy metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.SyncDuration, m.SyncFullDuration, m.SyncPartialDuration, m.NetworkProgramming,
		m.LastSyncTimestamp, m.LastQueuedTimestamp, m.RulesTotal, m.RulesLast,
		m.RestoreFailures, m.PartialRestoreFailure, m.ServiceChangesTotal, m.EndpointChangesTotal,
		m.ServiceChangesPending, m.EndpointChangesPend, m.ConntrackDeleted,
	}
}

// forgetNode deletes every series of node, for a Proxier that stops for good
// (the node was removed from the lab).
func (m *Metrics) forgetNode(node string) {
	match := prometheus.Labels{labelNode: node}
	m.SyncDuration.DeletePartialMatch(match)
	m.SyncFullDuration.DeletePartialMatch(match)
	m.SyncPartialDuration.DeletePartialMatch(match)
	m.NetworkProgramming.DeletePartialMatch(match)
	m.LastSyncTimestamp.DeletePartialMatch(match)
	m.LastQueuedTimestamp.DeletePartialMatch(match)
	m.RulesTotal.DeletePartialMatch(match)
	m.RulesLast.DeletePartialMatch(match)
	m.RestoreFailures.DeletePartialMatch(match)
	m.PartialRestoreFailure.DeletePartialMatch(match)
	m.ServiceChangesTotal.DeletePartialMatch(match)
	m.EndpointChangesTotal.DeletePartialMatch(match)
	m.ServiceChangesPending.DeletePartialMatch(match)
	m.EndpointChangesPend.DeletePartialMatch(match)
	m.ConntrackDeleted.DeletePartialMatch(match)
}
