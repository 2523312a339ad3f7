package controlplane

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the control-plane election's metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	leader      prometheus.Gauge
	transitions *prometheus.CounterVec
	failoverH   prometheus.Histogram
	renewH      prometheus.Histogram
	renewFails  prometheus.Counter
	ready       prometheus.Gauge
}

// NewMetrics registers the lbd_control_plane_* metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_control_plane_leader",
			Help: "1 while this node holds the control-plane VIP.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_control_plane_transitions_total",
			Help: "Times this node took (acquired) or gave up (released) the control-plane VIP, by reason.",
		}, []string{"direction", "reason"}),
		failoverH: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lbd_control_plane_failover_seconds",
			Help:    "On taking the VIP over: from the previous holder's last renewal (or release) of the Lease to this node's first gratuitous ARP / unsolicited NA.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 10, 30},
		}),
		renewH: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lbd_control_plane_lease_renew_seconds",
			Help:    "Latency of successful renewals of the control-plane Lease through the local API server.",
			Buckets: []float64{0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2},
		}),
		renewFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lbd_control_plane_lease_renew_failures_total",
			Help: "Failed renewals of the control-plane Lease by this node.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_control_plane_api_ready",
			Help: "1 while the local API server passes the readiness gate.",
		}),
	}
	// Every transition at 0 from the start: increase() over a series born
	// at its first transition misses that transition, and the failover
	// alert (packaging/prometheus) counts acquisitions with it.
	for _, r := range []string{ReasonElected, ReasonExpired, ReasonRestarted} {
		m.transitions.WithLabelValues("acquired", r)
	}
	for _, r := range []string{ReasonAPINotReady, ReasonRenewFailed, ReasonLost, ReasonShutdown} {
		m.transitions.WithLabelValues("released", r)
	}
	reg.MustRegister(m.leader, m.transitions, m.failoverH, m.renewH, m.renewFails, m.ready)
	return m
}

func (m *Metrics) leading(on bool) {
	if m != nil {
		m.leader.Set(b2f(on))
	}
}

func (m *Metrics) apiReady(on bool) {
	if m != nil {
		m.ready.Set(b2f(on))
	}
}

func (m *Metrics) transition(direction, reason string) {
	if m != nil {
		m.transitions.WithLabelValues(direction, reason).Inc()
	}
}

func (m *Metrics) failover(d time.Duration) {
	if m != nil {
		m.failoverH.Observe(d.Seconds())
	}
}

func (m *Metrics) renewed(d time.Duration) {
	if m != nil {
		m.renewH.Observe(d.Seconds())
	}
}

func (m *Metrics) renewFailed() {
	if m != nil {
		m.renewFails.Inc()
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
