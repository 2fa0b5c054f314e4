package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the relay's own Prometheus series, on a registry of their own
// so that tests and several relays in one process never collide.
type Metrics struct {
	Registry *prometheus.Registry
	// webhooks counts requests by outcome: accepted, spooled, duplicate,
	// rejected, unauthorized, unavailable.
	webhooks *prometheus.CounterVec
	// deliveries counts delivery attempts by channel (email, slack) and
	// outcome: sent, retry, rate_limited, failed, already_sent.
	deliveries *prometheus.CounterVec
	sendTime   *prometheus.HistogramVec
	// digestSize and digestDelay describe posted digests: registrations
	// in each, and seconds from the first registration to the post.
	digestSize  prometheus.Histogram
	digestDelay prometheus.Histogram
}

func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhooks_total",
			Help: "Webhook requests by outcome (accepted, spooled, duplicate, rejected, unauthorized, unavailable).",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_deliveries_total",
			Help: "Delivery attempts by channel (email, slack) and outcome (sent, retry, rate_limited, failed, already_sent).",
		}, []string{"channel", "outcome"}),
		sendTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_send_duration_seconds",
			Help:    "Time to hand one message to the SMTP server or Slack.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"channel"}),
	}
	m.digestSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relay_digest_registrations",
		Help:    "Registrations per posted Slack digest.",
		Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
	})
	m.digestDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relay_digest_delay_seconds",
		Help:    "Time from a digest's first registration to its Slack post.",
		Buckets: []float64{1, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600},
	})
	m.Registry.MustRegister(m.webhooks, m.deliveries, m.sendTime, m.digestSize, m.digestDelay,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"accepted", "spooled", "duplicate", "rejected", "unauthorized", "unavailable"} {
		m.webhooks.WithLabelValues(o)
	}
	for _, c := range []string{"email", "slack"} {
		for _, o := range []string{"sent", "retry", "rate_limited", "failed", "already_sent"} {
			m.deliveries.WithLabelValues(c, o)
		}
	}
	return m
}

// ObserveSpool exports how many registrations wait in s for Redis.
func (m *Metrics) ObserveSpool(s *Spool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relay_spool_depth",
		Help: "Registrations kept on local disk, waiting for Redis.",
	}, func() float64 { return float64(s.Depth()) }))
}
