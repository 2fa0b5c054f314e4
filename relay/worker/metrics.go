package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exam-relay/relay/relay"
)

// Metrics are the worker's Prometheus series.
type Metrics struct {
	// deliveries counts delivery attempts by channel and outcome.
	deliveries *prometheus.CounterVec
	sendTime   *prometheus.HistogramVec
	// digestSize and digestDelay describe posted digests: registrations
	// in each, and seconds from the first registration to the post.
	digestSize  prometheus.Histogram
	digestDelay prometheus.Histogram
	// digestWaiting is the registrations waiting in digests, which
	// asynq's own series do not count.
	digestWaiting prometheus.Gauge
	// smtpWaiting, throttled and quotaUsed show the mail provider's
	// limits at work.
	smtpWaiting prometheus.Gauge
	throttled   *prometheus.CounterVec
	quotaUsed   prometheus.Gauge
	quotaLimit  prometheus.Gauge
}

// deliveryOutcomes are the outcomes a delivery attempt is counted by.
var deliveryOutcomes = []relay.Outcome{relay.Sent, relay.Retry, relay.RateLimited, relay.Failed, relay.AlreadySent, relay.Outdated}

// NewMetrics registers the worker's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_deliveries_total",
			Help: "Delivery attempts by channel (email, slack, teams) and outcome (sent, retry, rate_limited, failed, already_sent, outdated).",
		}, []string{"channel", "outcome"}),
		sendTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_send_duration_seconds",
			Help:    "Time to hand one message to the SMTP server, Slack or Teams.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"channel"}),
		digestSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_digest_registrations",
			Help:    "Registrations per posted staff digest.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
		digestDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_digest_delay_seconds",
			Help:    "Time from a digest's first registration to its post.",
			Buckets: []float64{1, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600},
		}),
	}
	m.digestWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_digest_waiting",
		Help: "Registrations waiting in staff digests, not yet handed to the queue, as this process last counted them (each second).",
	})
	m.smtpWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_smtp_waiting",
		Help: "Emails this process holds while they wait for a slot of RELAY_SMTP_RATE.",
	})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_smtp_throttled_total",
		Help: "Replies by which a mail server asked every sender to wait, by server and kind (rate, quota).",
	}, []string{"server", "kind"})
	m.quotaUsed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_smtp_quota_used",
		Help: "Emails sent in the last 24 hours, counted against RELAY_SMTP_DAILY_LIMIT, as this process last saw it.",
	})
	m.quotaLimit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_smtp_quota_limit",
		Help: "RELAY_SMTP_DAILY_LIMIT: emails allowed per rolling 24 hours; 0: none.",
	})
	reg.MustRegister(m.deliveries, m.sendTime, m.digestSize, m.digestDelay, m.digestWaiting, m.smtpWaiting, m.throttled, m.quotaUsed, m.quotaLimit)
	for _, channel := range []string{channelEmail, string(relay.Slack), string(relay.Teams)} {
		for _, o := range deliveryOutcomes {
			m.deliveries.WithLabelValues(channel, string(o))
		}
	}
	return m
}

func (m *Metrics) delivered(channel string, o relay.Outcome) {
	m.deliveries.WithLabelValues(channel, string(o)).Inc()
}
