package postgres_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
)

// timeline records what the runner reports, with the time it did.
type timeline struct {
	mu     sync.Mutex
	events []tlEvent
}

type tlEvent struct {
	at         time.Time
	id, reason string // pause: reason ("" for its end)
	pause      bool
	chunkRows  int // rows of a chunk (0: a progress report)
	size       int // the chunk size after it
	status     connector.BackfillStatus
}

func (l *timeline) add(e tlEvent) {
	e.at = time.Now()
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *timeline) BackfillChunk(st *connector.BackfillState, rows, _ int, _ time.Duration) {
	l.add(tlEvent{id: st.ID, chunkRows: rows, size: st.ChunkSize})
}
func (l *timeline) BackfillProgress(st *connector.BackfillState) {
	l.add(tlEvent{id: st.ID, status: st.Status, size: st.ChunkSize})
}
func (l *timeline) BackfillPaused(id, reason string) {
	l.add(tlEvent{id: id, pause: true, reason: reason})
}

func (l *timeline) of(id string) []tlEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []tlEvent
	for _, e := range l.events {
		if e.id == id {
			out = append(out, e)
		}
	}
	return out
}

// TestBackfillGentle: the backfill's load stays within its bounds, as the
// runner reports it. Chunk size grows from the first size while chunks
// take well under source.backfill.chunk_time, never past the largest
// size; the rows/s cap holds (rows read over the time they took, which a
// loaded machine only makes longer); the backfill pauses, reading nothing,
// while more live events wait for SNS than max_queued_events, and while the
// slot's lag is over max_lag_bytes (SNS blocked, a megabyte of WAL written
// to an unmapped table), and finishes once SNS takes events again.
func TestBackfillGentle(t *testing.T) {
	integration(t)
	dsn, conn, emu, topic := postingsForBackfill(t, 300, "7", `CREATE TABLE junk (b text)`)
	const capRows = 100.0
	var blocked atomic.Bool
	block := func([]*connector.Event) error {
		for blocked.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	tl := &timeline{}
	startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, nil, block, func(o *connector.BackfillOptions, obs *[]connector.BackfillObserver) {
		*o = connector.BackfillOptions{ChunkRows: 10, MinChunkRows: 5, MaxChunkRows: 80, ChunkTime: 5 * time.Second,
			MaxRowsPerSecond: capRows, MaxQueuedEvents: 30, MaxLagBytes: 512 << 10,
			Poll: 50 * time.Millisecond, WindowTimeout: 20 * time.Second}
		*obs = append(*obs, tl)
	})

	// 1. Free: sizes 10, 20, 40, 80, 80, …; the cap holds.
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bf-a', 'start', 'public.postings')`)
	waitBackfill(t, conn, "bf-a", "done")
	var sizes []int
	var rows int
	var first, last time.Time
	for _, e := range tl.of("bf-a") {
		switch {
		case e.status == connector.BackfillRunning && first.IsZero():
			first = e.at
		case e.chunkRows > 0:
			sizes = append(sizes, e.chunkRows)
			if e.size > 80 {
				t.Errorf("chunk size %d over the largest (80)", e.size)
			}
			rows += e.chunkRows
			last = e.at
		}
	}
	want := []int{10, 20, 40, 80, 80, 70}
	if len(sizes) != len(want) {
		t.Fatalf("chunks of %v rows, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("chunks of %v rows, want %v (doubling while under half the time budget)", sizes, want)
		}
	}
	// Every chunk but the last is followed by its wait: the rows before
	// the last chunk took at least rows/cap.
	if rate := float64(rows-sizes[len(sizes)-1]) / last.Sub(first).Seconds(); rate > capRows*1.02 {
		t.Errorf("%.0f rows/s, over the cap of %.0f", rate, capRows)
	} else {
		t.Logf("%.0f rows/s (cap %.0f)", rate, capRows)
	}

	// 2. SNS blocked while live events queue: the backfill pauses (queue),
	// reads nothing while paused, and ends once SNS takes them.
	// 3. Then the slot's lag (a megabyte of WAL of an unmapped table
	// behind a few events SNS does not take): it pauses (lag).
	for _, c := range []struct {
		id, reason string
		load       []string
	}{
		{"bf-q", "queue", []string{`INSERT INTO postings SELECT i, 8, 'live ' || i FROM generate_series(1001, 1040) i`}},
		{"bf-l", "lag", []string{`INSERT INTO postings SELECT i, 8, 'live ' || i FROM generate_series(2001, 2003) i`,
			`INSERT INTO junk SELECT repeat('x', 1000) FROM generate_series(1, 1000)`}},
	} {
		blocked.Store(true)
		exec(t, dsn, c.load...)
		exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, filter) VALUES ('`+c.id+`', 'start', 'public.postings', 'id <= 30')`)
		waitFor(t, func() bool {
			for _, e := range tl.of(c.id) {
				if e.pause && e.reason == c.reason {
					return true
				}
			}
			return false
		})
		chunks := func() int {
			n := 0
			for _, e := range tl.of(c.id) {
				if e.chunkRows > 0 {
					n++
				}
			}
			return n
		}
		before := chunks()
		time.Sleep(500 * time.Millisecond)
		if st, _, _, _ := backfillStatus(t, conn, c.id); st != "running" || chunks() != before {
			t.Errorf("%s: paused (%s), yet %d chunks read meanwhile, status %s", c.id, c.reason, chunks()-before, st)
		}
		blocked.Store(false)
		waitBackfill(t, conn, c.id, "done")
		ended := false
		for _, e := range tl.of(c.id) {
			ended = ended || e.pause && e.reason == ""
		}
		if !ended {
			t.Errorf("%s: the pause (%s) was never reported as ended", c.id, c.reason)
		}
	}

	// 4. A cancel while paused ends the backfill at once, without waiting
	// for the pause to end.
	blocked.Store(true)
	exec(t, dsn, `INSERT INTO postings SELECT i, 8, 'live ' || i FROM generate_series(3001, 3040) i`,
		`INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, filter) VALUES ('bf-c', 'start', 'public.postings', 'id <= 30')`)
	waitFor(t, func() bool {
		for _, e := range tl.of("bf-c") {
			if e.pause && e.reason == "queue" {
				return true
			}
		}
		return false
	})
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action) VALUES ('bf-c', 'cancel')`)
	waitBackfill(t, conn, "bf-c", "cancelled")
	if _, _, n, _ := backfillStatus(t, conn, "bf-c"); n != 0 {
		t.Errorf("bf-c: %d rows read while paused, then cancelled", n)
	}
	blocked.Store(false)
}
