package sink

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a message, the "result" label of
// baitoru_cdc_sink_deliveries_total.
const (
	ResultDelivered = "delivered" // pushed (2xx) to every link that still needed it; deleted
	ResultDuplicate = "duplicate" // every link already had it (redelivery); deleted
	ResultUnlinked  = "unlinked"  // no active link; deleted
	ResultRetry     = "retry"     // left in the queue for redelivery
	ResultDLQ       = "dlq"       // invalid or rejected; sent to the DLQ
)

// Metrics are the sink's Prometheus metrics. Register them on the registry
// the caller passes in (never the global one).
type Metrics struct {
	Deliveries        *prometheus.CounterVec
	KobotRequests     *prometheus.CounterVec
	KobotFailures     *prometheus.CounterVec
	DeliveryLatency   prometheus.Histogram
	CommitToDelivery  prometheus.Histogram
	ActiveLinks       prometheus.Gauge
	LinkReloads       *prometheus.CounterVec
	BatchErrors       prometheus.Counter
	DeliveryLogErrors prometheus.Counter
	// PayloadsRead counts events read from S3 (a pointer message);
	// PayloadErrors the reads that failed and left the message for
	// redelivery.
	PayloadsRead  prometheus.Counter
	PayloadErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_deliveries_total",
			Help: "Queue messages handled, by result: delivered, duplicate, unlinked, retry, dlq.",
		}, []string{"result"}),
		KobotRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_kobot_requests_total",
			Help: "HTTP requests to Kobot, by status class (2xx, 3xx, 4xx, 429, 5xx, error).",
		}, []string{"class"}),
		KobotFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_kobot_failures_total",
			Help: "Failed push attempts to Kobot, by what went wrong (problem) and what to do about it (fix).",
		}, []string{"problem", "fix"}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "baitoru_cdc_sink_delivery_duration_seconds",
			Help:    "Time from the first attempt of a push to Kobot's 2xx, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		CommitToDelivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "baitoru_cdc_sink_commit_to_delivery_seconds",
			Help:    "Time from the event's commit (its time attribute) to Kobot's 2xx.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		ActiveLinks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "baitoru_cdc_sink_active_links",
			Help: "Active links held in the link cache.",
		}),
		LinkReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_link_reloads_total",
			Help: "Link cache reloads: all (start, reconnect) or keys (a NOTIFY).",
		}, []string{"scope"}),
		BatchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_batch_errors_total",
			Help: "Batches left whole for redelivery because links or the delivery log were unavailable.",
		}),
		DeliveryLogErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_delivery_log_errors_total",
			Help: "Failed writes of the delivery log (deliveries themselves succeeded).",
		}),
		PayloadsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_events_read_from_s3_total",
			Help: "Events read from S3 for messages that point at them (events too large for SNS).",
		}),
		PayloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "baitoru_cdc_sink_s3_read_errors_total",
			Help: "Reads of events from S3 that failed and left the message for redelivery (a missing object goes to the DLQ instead).",
		}),
	}
	for _, r := range []string{ResultDelivered, ResultDuplicate, ResultUnlinked, ResultRetry, ResultDLQ} {
		m.Deliveries.WithLabelValues(r)
	}
	for _, p := range PushProblems {
		m.KobotFailures.WithLabelValues(string(p), p.Fix())
	}
	if reg != nil {
		reg.MustRegister(m.Deliveries, m.KobotRequests, m.KobotFailures, m.DeliveryLatency, m.CommitToDelivery,
			m.ActiveLinks, m.LinkReloads, m.BatchErrors, m.DeliveryLogErrors, m.PayloadsRead, m.PayloadErrors)
	}
	return m
}

var _ PushObserver = (*Metrics)(nil)

// Attempted counts a push attempt by Kobot's answer, and a failed one by
// its problem (PushObserver).
func (m *Metrics) Attempted(a PushAttempt) {
	m.KobotRequests.WithLabelValues(StatusClass(a.Status)).Inc()
	if a.Class != PushDelivered {
		p := a.Problem
		if p == "" {
			p = ProblemRejected
		}
		m.KobotFailures.WithLabelValues(string(p), p.Fix()).Inc()
	}
}

// StatusClass is the class label of an HTTP status: 2xx, 4xx, 429, 5xx, or
// error (no response).
func StatusClass(status int) string {
	switch {
	case status == 0:
		return "error"
	case status == 429:
		return "429"
	default:
		return strconv.Itoa(status/100) + "xx"
	}
}
