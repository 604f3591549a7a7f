// Package telemetry is what the connector (`baitoru-cdc run`) tells the
// outside world about itself: Prometheus metrics (Metrics, an observer of
// the pipeline, of the publisher's retries and of backfills through the
// connector's Observer, RetryObserver and BackfillObserver interfaces), the
// HTTP endpoint serving them
// with /healthz and /readyz (Server, on the routes of internal/monitoring
// that the sink serves too), and the periodic one-line status log (Status).
//
// Every metric is named baitoru_cdc_<what>_<unit>, in base units (seconds,
// bytes), counters ending in _total. The sink's metrics
// (baitoru_cdc_sink_*) are served by the sink itself.
package telemetry

import (
	"sync"
	"sync/atomic"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
)

// Metric names, for dashboards, alert rules and tests.
const (
	ChangesRead          = "baitoru_cdc_changes_read_total"
	EventsPublished      = "baitoru_cdc_events_published_total"
	PublishFailures      = "baitoru_cdc_publish_failures_total"
	PublishRetries       = "baitoru_cdc_publish_retries_total"
	PublishBatchDuration = "baitoru_cdc_publish_batch_duration_seconds"
	CommitToPublish      = "baitoru_cdc_commit_to_publish_seconds"
	ConfirmedLSN         = "baitoru_cdc_confirmed_lsn"
	SlotRetainedWALBytes = "baitoru_cdc_slot_retained_wal_bytes"
	InflightEvents       = "baitoru_cdc_inflight_events"
	InflightBytes        = "baitoru_cdc_inflight_bytes"
	ReplicationStreaming = "baitoru_cdc_replication_streaming"
	LastPublishTimestamp = "baitoru_cdc_last_publish_timestamp_seconds"
	ColumnTypeChanges    = "baitoru_cdc_column_type_changes_total"
	ConfigReloads        = "baitoru_cdc_config_reloads_total"
	TableUnpublished     = "baitoru_cdc_table_unpublished"
	EventsStoredInS3     = "baitoru_cdc_events_stored_in_s3_total"
	EventBytesStoredInS3 = "baitoru_cdc_event_bytes_stored_in_s3_total"
)

// ops are the operations every table's series are created for, so that
// rate() and absent() work from the first scrape.
var ops = [...]connector.Op{connector.OpInsert, connector.OpUpdate, connector.OpDelete}

// Metrics are the connector's Prometheus metrics. They implement
// connector.Observer (the pipeline's hot path: per-table counters are
// resolved once per table, not per event), connector.RetryObserver (the
// publisher's retries) and the slot monitor's observer (retained WAL).
// Safe for concurrent use.
type Metrics struct {
	reg *prom.Registry

	read, published, failed *prom.CounterVec
	retries                 *prom.CounterVec
	typeChanges             *prom.CounterVec
	reloads                 *prom.CounterVec
	storedInS3, bytesInS3   *prom.CounterVec
	unpublished             *prom.GaugeVec
	batchDuration           *durations
	commitToPublish         *durations
	confirmed               prom.Gauge
	retained                prom.Gauge
	lastPublish             atomic.Int64 // unix nanoseconds

	// tables maps a table name to its pre-resolved counters; copy on
	// write, so lookups take no lock.
	tables atomic.Pointer[map[string]*tableCounters]
	mu     sync.Mutex // serialises writers of tables

	watch atomic.Pointer[watched]

	backfill *backfillMetrics

	// Totals for the status log.
	nRead, nPublished, nFailed, nRetried atomic.Int64
	maxLagNanos                          atomic.Int64 // longest commit→publish since the last status line
	lastLSN                              atomic.Uint64
	retainedBytes                        atomic.Int64 // -1 until the slot monitor reported
}

// tableCounters are one table's series, indexed by connector.Op.
type tableCounters struct {
	read, published, failed [connector.OpDelete + 1]prom.Counter
}

// known reports whether op indexes tableCounters.
func known(op connector.Op) bool { return op >= connector.OpInsert && op <= connector.OpDelete }

// Window is the pipeline's in-flight window (*connector.Pipeline).
type Window interface {
	Window() (events int, bytes int64)
}

// Replication tells whether the replication stream is up
// (*postgres.Subscription).
type Replication interface {
	Streaming() bool
}

type watched struct {
	w Window
	r Replication
}

var (
	_ connector.Observer        = (*Metrics)(nil)
	_ connector.RetryObserver   = (*Metrics)(nil)
	_ connector.SchemaObserver  = (*Metrics)(nil)
	_ connector.OffloadObserver = (*Metrics)(nil)
)

// New returns the connector's metrics, registered on a registry of their
// own together with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: monitoring.NewRegistry(),
		read: prom.NewCounterVec(prom.CounterOpts{
			Name: ChangesRead,
			Help: "Row changes read from the replication stream, by table and operation (mapped or not).",
		}, []string{"table", "op"}),
		published: prom.NewCounterVec(prom.CounterOpts{
			Name: EventsPublished,
			Help: "Events accepted by the publisher (SNS), by table and operation. Re-sent events after a restart count again.",
		}, []string{"table", "op"}),
		failed: prom.NewCounterVec(prom.CounterOpts{
			Name: PublishFailures,
			Help: "Events of batches that failed for good (the connector stops), by table and operation.",
		}, []string{"table", "op"}),
		retries: prom.NewCounterVec(prom.CounterOpts{
			Name: PublishRetries,
			Help: "Events sent again to SNS, or stored again in S3, after a retryable failure, by reason (AWS error code, or network).",
		}, []string{"reason"}),
		reloads: prom.NewCounterVec(prom.CounterOpts{
			Name: ConfigReloads,
			Help: "Reloads of the configuration (SIGHUP), by result: applied, unchanged, invalid (the file has problems; nothing changed), refused (a publication change for a DBA; nothing changed).",
		}, []string{"result"}),
		typeChanges: prom.NewCounterVec(prom.CounterOpts{
			Name: ColumnTypeChanges,
			Help: "Type changes of published columns (ALTER COLUMN … TYPE) seen in the stream, by table: the JSON form of a field in events changed.",
		}, []string{"table"}),
		storedInS3: prom.NewCounterVec(prom.CounterOpts{
			Name: EventsStoredInS3,
			Help: "Events over their table's large_payloads threshold, stored in S3 and published as a pointer, by table.",
		}, []string{"table"}),
		bytesInS3: prom.NewCounterVec(prom.CounterOpts{
			Name: EventBytesStoredInS3,
			Help: "Bytes of the events stored in S3 (their CloudEvents JSON), by table.",
		}, []string{"table"}),
		unpublished: prom.NewGaugeVec(prom.GaugeOpts{
			Name: TableUnpublished,
			Help: "1 while the publication leaves out changes of a mapped table, which are then not published (the gap is recorded in baitoru_cdc.gaps); kind: table (not in the publication), insert, update, delete (an operation not published), columns (a mapped column not in the column list), row filter (a filter the config does not have).",
		}, []string{"table", "kind"}),
		batchDuration: newDurations(PublishBatchDuration,
			"Time to publish one batch, retries included.",
			time.Millisecond, 2, 15), // 1ms .. 16s
		commitToPublish: newDurations(CommitToPublish,
			"Time from an event's commit in PostgreSQL (its commit timestamp) to its acceptance by the publisher.",
			time.Millisecond, 2, 17), // 1ms .. 65s
		confirmed: prom.NewGauge(prom.GaugeOpts{
			Name: ConfirmedLSN,
			Help: "WAL position (as a number) up to which every event was accepted: what the connector confirms to PostgreSQL.",
		}),
		retained: prom.NewGauge(prom.GaugeOpts{
			Name: SlotRetainedWALBytes,
			Help: "WAL the replication slot keeps on the PostgreSQL server (current WAL position minus the slot's restart position).",
		}),
	}
	for _, res := range []string{"applied", "unchanged", "invalid", "refused"} {
		m.reloads.WithLabelValues(res)
	}
	m.retainedBytes.Store(-1)
	m.backfill = newBackfillMetrics()
	m.reg.MustRegister(m.backfill.collectors()...)
	empty := map[string]*tableCounters{}
	m.tables.Store(&empty)
	m.reg.MustRegister(
		m.read, m.published, m.failed, m.retries, m.typeChanges, m.reloads, m.unpublished, m.storedInS3, m.bytesInS3,
		m.batchDuration, m.commitToPublish,
		m.confirmed, m.retained,
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: LastPublishTimestamp,
			Help: "Unix time of the last batch accepted by the publisher (0: none yet).",
		}, func() float64 { return float64(m.lastPublish.Load()) / 1e9 }),
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: InflightEvents,
			Help: "Events read from the WAL and not yet accepted by the publisher (bounded by publisher.max_inflight_events).",
		}, func() float64 { n, _ := m.window(); return float64(n) }),
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: InflightBytes,
			Help: "Bytes of the events in flight (bounded by publisher.max_inflight_bytes).",
		}, func() float64 { _, b := m.window(); return float64(b) }),
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: ReplicationStreaming,
			Help: "1 while the replication stream is connected and streaming, 0 while connecting, reconnecting or waiting for the slot.",
		}, func() float64 {
			if m.Streaming() {
				return 1
			}
			return 0
		}),
	)
	return m
}

// Registry returns the registry the metrics are registered on; register
// more collectors on it to serve them on the same endpoint.
func (m *Metrics) Registry() *prom.Registry { return m.reg }

// Watch makes the metrics sample the pipeline's in-flight window and the
// replication state when scraped (until it is called they read 0).
func (m *Metrics) Watch(w Window, r Replication) {
	m.watch.Store(&watched{w: w, r: r})
}

func (m *Metrics) window() (int, int64) {
	if w := m.watch.Load(); w != nil && w.w != nil {
		return w.w.Window()
	}
	return 0, 0
}

// Streaming reports whether the watched replication stream is up.
func (m *Metrics) Streaming() bool {
	w := m.watch.Load()
	return w != nil && w.r != nil && w.r.Streaming()
}

// AddTable creates the series of table for every operation, at 0. Tables
// first seen in the stream get theirs then; adding the mapped tables at
// start makes them visible before their first change.
func (m *Metrics) AddTable(table string) { m.table(table) }

// table returns the counters of table, creating them on first use.
func (m *Metrics) table(table string) *tableCounters {
	if t := (*m.tables.Load())[table]; t != nil {
		return t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.tables.Load()
	if t := old[table]; t != nil {
		return t
	}
	t := &tableCounters{}
	m.typeChanges.WithLabelValues(table)
	m.unpublished.WithLabelValues(table, "table")
	m.storedInS3.WithLabelValues(table)
	m.bytesInS3.WithLabelValues(table)
	m.backfill.addTable(table)
	for _, op := range ops {
		t.read[op] = m.read.WithLabelValues(table, op.String())
		t.published[op] = m.published.WithLabelValues(table, op.String())
		t.failed[op] = m.failed.WithLabelValues(table, op.String())
	}
	next := make(map[string]*tableCounters, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[table] = t
	m.tables.Store(&next)
	return t
}

// ChangeRead counts a row change read from the stream (connector.Observer).
func (m *Metrics) ChangeRead(table string, op connector.Op) {
	m.nRead.Add(1)
	if known(op) {
		m.table(table).read[op].Inc()
	}
}

// Published counts an accepted batch: per table and operation, the batch
// duration, and each event's commit→publish latency (connector.Observer).
func (m *Metrics) Published(events []*connector.Event, took time.Duration) {
	now := time.Now()
	m.batchDuration.observe(took, 1)
	m.lastPublish.Store(now.UnixNano())
	m.nPublished.Add(int64(len(events)))
	m.eachRun(events, func(t *tableCounters, op connector.Op, n int) { t.published[op].Add(float64(n)) })
	// One observation per run of events with the same commit time (one
	// transaction), weighted by its length.
	var maxLag time.Duration
	for i := 0; i < len(events); {
		ct := events[i].CommitTime
		j := i + 1
		for j < len(events) && events[j].CommitTime.Equal(ct) {
			j++
		}
		if !ct.IsZero() {
			lag := max(now.Sub(ct), 0) // negative: the clocks of PostgreSQL and this host disagree
			m.commitToPublish.observe(lag, j-i)
			maxLag = max(maxLag, lag)
		}
		i = j
	}
	for {
		cur := m.maxLagNanos.Load()
		if int64(maxLag) <= cur || m.maxLagNanos.CompareAndSwap(cur, int64(maxLag)) {
			break
		}
	}
}

// PublishFailed counts the events of a batch that failed for good
// (connector.Observer).
func (m *Metrics) PublishFailed(events []*connector.Event, _ error) {
	m.nFailed.Add(int64(len(events)))
	m.eachRun(events, func(t *tableCounters, op connector.Op, n int) { t.failed[op].Add(float64(n)) })
}

// eachRun calls fn once per run of consecutive events of the same table
// and operation (batches are usually one table).
func (m *Metrics) eachRun(events []*connector.Event, fn func(t *tableCounters, op connector.Op, n int)) {
	for i := 0; i < len(events); {
		e := events[i]
		j := i + 1
		for j < len(events) && events[j].Table == e.Table && events[j].Op == e.Op {
			j++
		}
		if known(e.Op) {
			fn(m.table(e.Table), e.Op, j-i)
		}
		i = j
	}
}

// Flushed records the position that may be confirmed: the pipeline tells
// what it acknowledged (connector.Observer), the subscription what it may
// confirm beyond (postgres.PositionObserver), from two goroutines. The
// highest wins.
func (m *Metrics) Flushed(lsn connector.LSN) {
	for {
		cur := m.lastLSN.Load()
		if uint64(lsn) <= cur {
			return
		}
		if m.lastLSN.CompareAndSwap(cur, uint64(lsn)) {
			break
		}
	}
	m.confirmed.Set(float64(m.lastLSN.Load())) // the highest, whoever sets last; exact below 2^53 bytes of WAL (8 PiB)
}

// Reloaded counts a reload of the configuration by result: applied,
// unchanged, invalid or refused.
func (m *Metrics) Reloaded(result string) { m.reloads.WithLabelValues(result).Inc() }

// ColumnTypeChanged counts a type change of a published column
// (connector.SchemaObserver).
func (m *Metrics) ColumnTypeChanged(tc connector.TypeChange) {
	m.typeChanges.WithLabelValues(tc.Table).Inc()
}

// ChangesUnpublished sets whether the publication leaves out changes of a
// mapped table of a kind (dba.LossObserver).
func (m *Metrics) ChangesUnpublished(table, kind string, unpublished bool) {
	v := 0.0
	if unpublished {
		v = 1
	}
	m.unpublished.WithLabelValues(table, kind).Set(v)
}

// Offloaded counts an event stored in S3 (connector.OffloadObserver).
func (m *Metrics) Offloaded(table string, bytes int) {
	m.storedInS3.WithLabelValues(table).Inc()
	m.bytesInS3.WithLabelValues(table).Add(float64(bytes))
}

// Retried counts events sent to SNS or stored in S3 again
// (connector.RetryObserver).
func (m *Metrics) Retried(_, code string, entries int) {
	if code == "" {
		code = "network"
	}
	m.nRetried.Add(int64(entries))
	m.retries.WithLabelValues(code).Add(float64(entries))
}

// SlotRetainedWAL records the WAL the slot retains on the server, in bytes,
// as measured by the slot monitor.
func (m *Metrics) SlotRetainedWAL(bytes int64) {
	m.retainedBytes.Store(bytes)
	m.retained.Set(float64(bytes))
}

// snapshot is what the status log reads.
type snapshot struct {
	read, published, failed, retried int64
	maxLag                           time.Duration
	confirmed                        connector.LSN
	retained                         int64
}

// take returns the totals, and the longest commit→publish latency since
// the previous take.
func (m *Metrics) take() snapshot {
	return snapshot{
		read: m.nRead.Load(), published: m.nPublished.Load(), failed: m.nFailed.Load(), retried: m.nRetried.Load(),
		maxLag:    time.Duration(m.maxLagNanos.Swap(0)),
		confirmed: connector.LSN(m.lastLSN.Load()),
		retained:  m.retainedBytes.Load(),
	}
}
