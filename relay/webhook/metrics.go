package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exam-relay/relay/relay"
)

// Metrics are the HTTP surface's Prometheus series.
type Metrics struct {
	reg prometheus.Registerer
	// webhooks counts requests by outcome; byOutcome holds its counters,
	// looked up once here rather than by label on every request.
	webhooks  *prometheus.CounterVec
	byOutcome map[relay.Outcome]prometheus.Counter
	// unreplicated counts the registrations given a copy because the
	// replicas did not hold them within the wait.
	unreplicated prometheus.Counter
}

// NewMetrics registers the webhook's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhooks_total",
			Help: "Webhook requests by outcome (accepted, spooled, duplicate, rejected, unauthorized, unavailable).",
		}, []string{"outcome"}),
	}
	m.unreplicated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_webhooks_unreplicated_total",
		Help: "Registrations Redis took that fewer replicas than RELAY_REDIS_MIN_REPLICAS held within the wait: each has a copy kept on local disk until they do.",
	})
	reg.MustRegister(m.webhooks, m.unreplicated)
	m.byOutcome = map[relay.Outcome]prometheus.Counter{}
	for _, o := range []relay.Outcome{relay.Accepted, relay.Spooled, relay.Duplicate, relay.Rejected, relay.Unauthorized, relay.Unavailable} {
		// Made now, so every outcome shows from the start, at 0.
		m.byOutcome[o] = m.webhooks.WithLabelValues(string(o))
	}
	return m
}

// countWebhook counts one request that came to o.
func (m *Metrics) countWebhook(o relay.Outcome) {
	c, ok := m.byOutcome[o]
	if !ok {
		c = m.webhooks.WithLabelValues(string(o))
	}
	c.Inc()
}

// ObserveSpool exports how many registrations wait in s for Redis.
func (m *Metrics) ObserveSpool(s *Spool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relay_spool_depth",
		Help: "Registrations kept on local disk, waiting for Redis.",
	}, func() float64 { return float64(s.Depth()) }))
}

// ObserveUnreplicated exports how many registrations Redis took have a
// copy kept in s until enough replicas hold them; a nil s, none.
func (m *Metrics) ObserveUnreplicated(s *Spool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relay_spool_unreplicated",
		Help: "Registrations kept on local disk until RELAY_REDIS_MIN_REPLICAS replicas hold them.",
	}, func() float64 {
		if s == nil {
			return 0
		}
		return float64(s.Depth())
	}))
}
