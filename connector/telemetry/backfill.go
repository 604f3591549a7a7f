package telemetry

import (
	"sync"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Backfill metric names.
const (
	BackfillRowsRead       = "baitoru_cdc_backfill_rows_read_total"
	BackfillRowsPublished  = "baitoru_cdc_backfill_rows_published_total"
	BackfillChunks         = "baitoru_cdc_backfill_chunks_total"
	BackfillChunkDuration  = "baitoru_cdc_backfill_chunk_duration_seconds"
	BackfillChunkRows      = "baitoru_cdc_backfill_chunk_rows"
	BackfillRowsDone       = "baitoru_cdc_backfill_rows_done"
	BackfillRowsEstimated  = "baitoru_cdc_backfill_rows_estimated"
	BackfillPaused         = "baitoru_cdc_backfill_paused"
	BackfillsRunning       = "baitoru_cdc_backfills_running"
	BackfillsFinished      = "baitoru_cdc_backfills_finished_total"
	backfillPauseLag       = "lag"
	backfillPauseQueue     = "queue"
	backfillStateDone      = string(connector.BackfillDone)
	backfillStateCancelled = string(connector.BackfillCancelled)
	backfillStateFailed    = string(connector.BackfillFailed)
)

var _ connector.BackfillObserver = (*Metrics)(nil)

// backfillMetrics are the series of backfills (connector.BackfillObserver).
// The per-backfill gauges (rows done, estimated, chunk size) exist while
// the backfill runs in this connector and are removed when it ends, so
// their number stays that of the running backfills.
type backfillMetrics struct {
	rowsRead, rowsPublished, chunks *prom.CounterVec
	chunkDuration                   *durations
	chunkRows, rowsDone, rowsEst    *prom.GaugeVec
	paused                          *prom.GaugeVec
	finished                        *prom.CounterVec

	mu      sync.Mutex
	running map[string]string // backfill id -> table, while it runs here
}

func newBackfillMetrics() *backfillMetrics {
	b := &backfillMetrics{
		rowsRead: prom.NewCounterVec(prom.CounterOpts{
			Name: BackfillRowsRead,
			Help: "Rows read by backfill chunks whose events SNS accepted, by table (a chunk read again after a restart counts again).",
		}, []string{"table"}),
		rowsPublished: prom.NewCounterVec(prom.CounterOpts{
			Name: BackfillRowsPublished,
			Help: "Read events of backfill chunks accepted by SNS, by table: rows read minus those a newer live change of the same key stood in for.",
		}, []string{"table"}),
		chunks: prom.NewCounterVec(prom.CounterOpts{
			Name: BackfillChunks,
			Help: "Backfill chunks read, published and saved, by table.",
		}, []string{"table"}),
		chunkDuration: newDurations(BackfillChunkDuration,
			"Time of one backfill chunk's SELECT on the source database (its size adapts to source.backfill.chunk_time).",
			time.Millisecond, 2, 15), // 1ms .. 16s
		chunkRows: prom.NewGaugeVec(prom.GaugeOpts{
			Name: BackfillChunkRows,
			Help: "Rows the next chunk of a running backfill reads (adapted to source.backfill.chunk_time), by backfill and table.",
		}, []string{"backfill", "table"}),
		rowsDone: prom.NewGaugeVec(prom.GaugeOpts{
			Name: BackfillRowsDone,
			Help: "Rows read so far by a running backfill (saved progress, across restarts), by backfill and table.",
		}, []string{"backfill", "table"}),
		rowsEst: prom.NewGaugeVec(prom.GaugeOpts{
			Name: BackfillRowsEstimated,
			Help: "Rows a running backfill is estimated to read in all when it started (counted up to 200,000, the planner's estimate beyond), by backfill and table.",
		}, []string{"backfill", "table"}),
		paused: prom.NewGaugeVec(prom.GaugeOpts{
			Name: BackfillPaused,
			Help: "1 while the running backfill waits, by reason: lag (the slot's lag is over source.backfill.max_lag_bytes) or queue (more live events in flight than source.backfill.max_queued_events).",
		}, []string{"reason"}),
		finished: prom.NewCounterVec(prom.CounterOpts{
			Name: BackfillsFinished,
			Help: "Backfills this connector ended, by state: done, cancelled or failed (refused requests included).",
		}, []string{"state"}),
		running: map[string]string{},
	}
	for _, r := range []string{backfillPauseLag, backfillPauseQueue} {
		b.paused.WithLabelValues(r)
	}
	for _, s := range []string{backfillStateDone, backfillStateCancelled, backfillStateFailed} {
		b.finished.WithLabelValues(s)
	}
	return b
}

// collectors returns what to register.
func (b *backfillMetrics) collectors() []prom.Collector {
	return []prom.Collector{b.rowsRead, b.rowsPublished, b.chunks, b.chunkDuration, b.chunkRows, b.rowsDone, b.rowsEst, b.paused, b.finished,
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name: BackfillsRunning,
			Help: "Backfills this connector is running (started or resumed, not ended); a standby connector runs none.",
		}, func() float64 {
			b.mu.Lock()
			defer b.mu.Unlock()
			return float64(len(b.running))
		}),
	}
}

// addTable creates table's backfill series at 0.
func (b *backfillMetrics) addTable(table string) {
	b.rowsRead.WithLabelValues(table)
	b.rowsPublished.WithLabelValues(table)
	b.chunks.WithLabelValues(table)
}

// BackfillChunk counts a chunk (connector.BackfillObserver).
func (m *Metrics) BackfillChunk(st *connector.BackfillState, rows, published int, took time.Duration) {
	b := m.backfill
	b.rowsRead.WithLabelValues(st.Table).Add(float64(rows))
	b.rowsPublished.WithLabelValues(st.Table).Add(float64(published))
	b.chunks.WithLabelValues(st.Table).Inc()
	b.chunkDuration.observe(took, 1)
}

// BackfillProgress sets a backfill's progress gauges while it runs and
// counts it by its final state when it ends (connector.BackfillObserver).
func (m *Metrics) BackfillProgress(st *connector.BackfillState) {
	b := m.backfill
	b.mu.Lock()
	defer b.mu.Unlock()
	if st.Status == connector.BackfillRunning {
		b.running[st.ID] = st.Table
		b.rowsDone.WithLabelValues(st.ID, st.Table).Set(float64(st.RowsDone))
		b.rowsEst.WithLabelValues(st.ID, st.Table).Set(float64(st.RowsEstimated))
		b.chunkRows.WithLabelValues(st.ID, st.Table).Set(float64(st.ChunkSize))
		return
	}
	delete(b.running, st.ID)
	b.rowsDone.DeleteLabelValues(st.ID, st.Table)
	b.rowsEst.DeleteLabelValues(st.ID, st.Table)
	b.chunkRows.DeleteLabelValues(st.ID, st.Table)
	b.finished.WithLabelValues(string(st.Status)).Inc()
	if len(b.running) == 0 {
		b.paused.WithLabelValues(backfillPauseLag).Set(0)
		b.paused.WithLabelValues(backfillPauseQueue).Set(0)
	}
}

// BackfillPaused sets the pause gauge: reason "lag" or "queue" while
// paused, "" when it ends (connector.BackfillObserver).
func (m *Metrics) BackfillPaused(_ string, reason string) {
	b := m.backfill
	for _, r := range []string{backfillPauseLag, backfillPauseQueue} {
		v := 0.0
		if r == reason {
			v = 1
		}
		b.paused.WithLabelValues(r).Set(v)
	}
}
