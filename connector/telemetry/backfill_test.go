package telemetry

import (
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector"
)

// TestBackfillMetrics drives the metrics through a backfill's life as the
// runner reports it: started, paused (lag, then queue), two chunks, done;
// a second one cancelled, a third refused.
func TestBackfillMetrics(t *testing.T) {
	m := New()
	m.AddTable("public.job_postings")
	g := m.Registry()
	const table = "public.job_postings"
	for _, name := range []string{BackfillRowsRead, BackfillRowsPublished, BackfillChunks} {
		if v := mustValue(t, g, name, "table", table); v != 0 {
			t.Errorf("%s = %v before any backfill, want 0", name, v)
		}
	}
	if v := mustValue(t, g, BackfillsRunning); v != 0 {
		t.Errorf("%s = %v, want 0", BackfillsRunning, v)
	}

	st := &connector.BackfillState{ID: "bf-1", Table: table, Status: connector.BackfillRunning, RowsEstimated: 1000, ChunkSize: 100}
	m.BackfillProgress(st)
	m.BackfillPaused("bf-1", "lag")
	if v := mustValue(t, g, BackfillPaused, "reason", "lag"); v != 1 {
		t.Errorf("paused{lag} = %v, want 1", v)
	}
	m.BackfillPaused("bf-1", "queue")
	if lag, queue := mustValue(t, g, BackfillPaused, "reason", "lag"), mustValue(t, g, BackfillPaused, "reason", "queue"); lag != 0 || queue != 1 {
		t.Errorf("paused lag=%v queue=%v, want 0 and 1", lag, queue)
	}
	m.BackfillPaused("bf-1", "")
	st.RowsDone, st.ChunkSize = 100, 200
	m.BackfillChunk(st, 100, 97, 30*time.Millisecond)
	m.BackfillProgress(st)
	st.RowsDone, st.ChunkSize = 300, 400
	m.BackfillChunk(st, 200, 200, 3*time.Second)
	m.BackfillProgress(st)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{BackfillRowsRead, []string{"table", table}, 300},
		{BackfillRowsPublished, []string{"table", table}, 297},
		{BackfillChunks, []string{"table", table}, 2},
		{BackfillChunkDuration, nil, 2},
		{BackfillRowsDone, []string{"backfill", "bf-1", "table", table}, 300},
		{BackfillRowsEstimated, []string{"backfill", "bf-1", "table", table}, 1000},
		{BackfillChunkRows, []string{"backfill", "bf-1", "table", table}, 400},
		{BackfillsRunning, nil, 1},
		{BackfillPaused, []string{"reason", "lag"}, 0},
		{BackfillPaused, []string{"reason", "queue"}, 0},
	} {
		if v := mustValue(t, g, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}

	st.Status = connector.BackfillDone
	m.BackfillProgress(st)
	m.BackfillProgress(&connector.BackfillState{ID: "bf-2", Table: table, Status: connector.BackfillRunning})
	m.BackfillPaused("bf-2", "lag")
	m.BackfillProgress(&connector.BackfillState{ID: "bf-2", Table: table, Status: connector.BackfillCancelled})
	m.BackfillProgress(&connector.BackfillState{ID: "bf-3", Table: "public.nope", Status: connector.BackfillFailed})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{BackfillsFinished, []string{"state", "done"}, 1},
		{BackfillsFinished, []string{"state", "cancelled"}, 1},
		{BackfillsFinished, []string{"state", "failed"}, 1},
		{BackfillsRunning, nil, 0},
		{BackfillPaused, []string{"reason", "lag"}, 0}, // nothing runs: nothing waits
	} {
		if v := mustValue(t, g, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	// A backfill's own series go when it ends.
	for _, name := range []string{BackfillRowsDone, BackfillRowsEstimated, BackfillChunkRows} {
		if _, ok := value(t, g, name, "backfill", "bf-1", "table", table); ok {
			t.Errorf("%s{backfill=bf-1} still exported after the backfill ended", name)
		}
	}
}
