package rest

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are kube-apiserver's request metrics, with its names and labels
// (less dry_run): apiserver_request_total and apiserver_request_duration_seconds.
type metrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var requestLabels = []string{"verb", "group", "version", "resource", "subresource", "scope", "component"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, group, version, resource, scope, component, and HTTP response code.",
		}, append(append([]string{}, requestLabels...), "code")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, requestLabels),
	}
	m.total = register(reg, m.total)
	m.duration = register(reg, m.duration)
	return m
}

// register registers c on reg, or returns the collector already registered
// under the same description (a second handler on one registry shares it).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting collector with the same name: keep counting privately
		// rather than fail the API server.
	}
	return c
}

// observe records one finished request.
func (m *metrics) observe(rq *request, code int, d time.Duration) {
	var group, ver, resource string
	if rq.res != nil {
		group, ver, resource = rq.res.Group, rq.res.Version, rq.res.Name
	}
	lv := []string{rq.verb, group, ver, resource, rq.subresource, rq.scope, "apiserver"}
	m.total.WithLabelValues(append(lv, strconv.Itoa(code))...).Inc()
	m.duration.WithLabelValues(lv...).Observe(d.Seconds())
}
