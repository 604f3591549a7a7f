package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// bfRecorder is the publisher under test wrapped: it records, per key and in
// order, the events the connector got accepted.
type bfRecorder struct {
	inner connector.Publisher
	mu    sync.Mutex
	sent  []sentEvent
	// fail, when set, is called before each batch; an error fails it
	// (after publishing the first half: a crash mid-publish).
	fail func(batch []*connector.Event) error
}

type sentEvent struct {
	ID, Key, Op, Backfill string
	LSN                   connector.LSN
	Data                  map[string]any
	Attrs                 map[string]string
}

func (r *bfRecorder) Publish(ctx context.Context, events []*connector.Event) error {
	if r.fail != nil {
		if err := r.fail(events); err != nil {
			half := events[:len(events)/2]
			if len(half) > 0 {
				if perr := r.inner.Publish(ctx, half); perr == nil {
					r.record(half)
				}
			}
			return err
		}
	}
	if err := r.inner.Publish(ctx, events); err != nil {
		return err
	}
	r.record(events)
	return nil
}

func (r *bfRecorder) record(events []*connector.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		var body struct {
			Op       string         `json:"op"`
			LSN      string         `json:"lsn"`
			Backfill string         `json:"backfill"`
			Data     map[string]any `json:"data"`
		}
		if err := json.Unmarshal(e.Body, &body); err != nil {
			panic(err)
		}
		var hi, lo uint32
		fmt.Sscanf(body.LSN, "%X/%X", &hi, &lo)
		attrs := map[string]string{}
		for _, a := range e.Attributes {
			attrs[a.Name] = a.Value
		}
		r.sent = append(r.sent, sentEvent{ID: e.ID, Key: e.Key, Op: body.Op, Backfill: body.Backfill,
			LSN: connector.LSN(uint64(hi)<<32 | uint64(lo)), Data: body.Data, Attrs: attrs})
	}
}

func (r *bfRecorder) events() []sentEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sentEvent(nil), r.sent...)
}

// hooked wraps the backfill source to change the table inside a chunk's
// window: before its SELECT (after the low watermark) and after it (before
// the high watermark).
type hooked struct {
	connector.BackfillSource
	chunks       int
	before       func(chunk int)
	after        func(chunk int)
	beforeSave   func(chunk int) error
	beforeHWMark func(chunk int) error
}

func (h *hooked) ReadChunk(ctx context.Context, p *connector.BackfillPlan, after []string, limit int, each connector.RowFunc) (*connector.BackfillChunk, error) {
	h.chunks++
	if h.before != nil {
		h.before(h.chunks)
	}
	c, err := h.BackfillSource.ReadChunk(ctx, p, after, limit, each)
	if h.after != nil {
		h.after(h.chunks)
	}
	return c, err
}

func (h *hooked) Watermark(ctx context.Context, w connector.Watermark) error {
	if w.Mark == "high" && h.beforeHWMark != nil {
		if err := h.beforeHWMark(h.chunks); err != nil {
			return err
		}
	}
	return h.BackfillSource.Watermark(ctx, w)
}

func (h *hooked) Save(ctx context.Context, st *connector.BackfillState) (bool, error) {
	if h.beforeSave != nil && st.Status == connector.BackfillRunning {
		if err := h.beforeSave(int(st.Chunks)); err != nil {
			return false, err
		}
	}
	return h.BackfillSource.Save(ctx, st)
}

// backfillRig is a connector with backfill: subscription, pipeline,
// interleaver and runner, as run wires them.
type backfillRig struct {
	cancel  context.CancelFunc
	done    chan struct{}
	rec     *bfRecorder
	metrics *telemetry.Metrics // the runner's observer
	pipe    *connector.Pipeline
}

var postingsTable = config.Table{Table: "public.postings", Type: "baitoru.postings", Operations: []string{"insert", "update", "delete"},
	Columns: []config.Column{{Column: "id"}, {Column: "company_id"}, {Column: "title"}}, Key: []string{"id"}}

// rigOption changes the runner's options or adds an observer.
type rigOption func(*connector.BackfillOptions, *[]connector.BackfillObserver)

func startBackfillRig(t *testing.T, dsn, topic string, emu *testenv.Emulator, tables []config.Table, wrap func(connector.BackfillSource) connector.BackfillSource, fail func([]*connector.Event) error, opts ...rigOption) *backfillRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := testLogger(t)
	ms := compile(t, tables...)
	d := config.Defaults()
	rec := &bfRecorder{inner: sns.New(emu.SNS(), sns.Options{DefaultTopic: topic, RetryInitial: d.Publisher.Retry.Initial, RetryMax: d.Publisher.Retry.Max}, log), fail: fail}
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), rec, connector.PipelineOptions{
		Lanes: 4, MaxBatch: sns.MaxBatchEntries, MaxInflightEvents: 1000, MaxInflightBytes: 1 << 24}, nil, log)
	if err := dba.Prepare(ctx, dba.PrepareOptions{Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", Create: true, Mappings: ms}, log); err != nil {
		t.Fatal(err)
	}
	il := connector.NewInterleaver(pipe, "cdc", postgres.BackfillRequestsTable, log)
	sub := postgres.New(postgres.Options{
		DSN: dsn, Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", BackfillPublication: postgres.BackfillPublication("cdc"), Mappings: ms,
		StatusInterval: 100 * time.Millisecond, ReconnectInitial: 100 * time.Millisecond, ReconnectMax: time.Second,
		Acked: pipe.Acked,
	}, il.Handle, log)
	var src connector.BackfillSource = postgres.NewBackfillSource(newPool(t, dsn), "cdc", ms, log)
	metrics := telemetry.New()
	if wrap != nil {
		src = wrap(src)
	}
	bo := connector.BackfillOptions{
		ChunkRows: 5, MinChunkRows: 5, MaxChunkRows: 5, Poll: 50 * time.Millisecond, WindowTimeout: 20 * time.Second,
	}
	observers := []connector.BackfillObserver{metrics}
	for _, o := range opts {
		o(&bo, &observers)
	}
	runner := connector.NewBackfillRunner(il, src, bo, sub.Streaming, teeObserver(observers), log)
	r := &backfillRig{cancel: cancel, done: make(chan struct{}), rec: rec, metrics: metrics, pipe: pipe}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = pipe.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := sub.Run(ctx); err != nil {
			t.Logf("subscription: %v", err)
			cancel()
		}
	}()
	go func() { defer wg.Done(); _ = runner.Run(ctx) }()
	go func() { wg.Wait(); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *backfillRig) stop(t *testing.T) {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("connector did not stop")
	}
}

func backfillStatus(t *testing.T, conn *pgx.Conn, id string) (status, msg string, rows, chunks int64) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `SELECT status, coalesce(error, ''), rows_done, chunks FROM baitoru_cdc.backfills WHERE backfill_id = $1`, id).Scan(&status, &msg, &rows, &chunks)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return status, msg, rows, chunks
}

func waitBackfill(t *testing.T, conn *pgx.Conn, id string, want string) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		st, msg, _, _ := backfillStatus(t, conn, id)
		if st == want {
			return msg
		}
		if st != "" && st != "running" {
			t.Fatalf("backfill %s: %s (%s), want %s", id, st, msg, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, msg, rows, chunks := backfillStatus(t, conn, id)
	t.Fatalf("backfill %s: still %q after 90s (%s; %d rows, %d chunks)", id, st, msg, rows, chunks)
	return ""
}

// kobotState applies the recorded events in order, per key, as the sink
// (last writer wins) would, and checks that no read of a key follows a
// change of that key committed after the read's position.
func kobotState(t *testing.T, events []sentEvent) map[string]map[string]any {
	t.Helper()
	state := map[string]map[string]any{}
	lastChange := map[string]connector.LSN{}
	for _, e := range events {
		switch e.Op {
		case "read":
			if l := lastChange[e.Key]; l > e.LSN {
				t.Errorf("key %s: read %s (at %s) after a change committed at %s", e.Key, e.ID, e.LSN, l)
			}
			state[e.Key] = e.Data
		case "delete":
			lastChange[e.Key] = e.LSN
			delete(state, e.Key)
		default:
			lastChange[e.Key] = e.LSN
			state[e.Key] = e.Data
		}
	}
	return state
}

// tableState is the table's rows of the given companies (nil: all), by key.
func tableState(t *testing.T, conn *pgx.Conn, companies ...int) map[string]map[string]any {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT id, company_id, title FROM postings WHERE $1::int[] IS NULL OR company_id = ANY ($1) ORDER BY id`, companies)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for rows.Next() {
		var id int64
		var company int
		var title *string
		if err := rows.Scan(&id, &company, &title); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{"id": float64(id), "company_id": float64(company), "title": nil}
		if title != nil {
			m["title"] = *title
		}
		out[fmt.Sprint(id)] = m
	}
	return out
}

// TestBackfillWatermarks is the acceptance test of the watermark method: a
// backfill of company 7's 100 postings (among company 8's) in chunks of 5,
// with inserts, updates, deletes, a move to company 8, a primary-key update
// and a transaction spanning the watermarks injected inside the windows,
// and foreign watermarks in the stream. Kobot's view (the events applied in
// the order the connector got them accepted) then equals the table for
// every key it holds, every row of company 7 is there, and no read of a key
// follows a newer change of it. Read events carry op read, type
// <type>.read, the SNS attribute op=read and the backfill's name; a second
// backfill of the same rows gets new ids.
func TestBackfillWatermarks(t *testing.T) {
	integration(t)
	pg := testenv.PG(t)
	if !postgres.Supports(pg.Version()*10000, postgres.FeatureBackfill) {
		t.Fatalf("PostgreSQL %d: backfill needs 14+", pg.Version())
	}
	dsn, conn, emu, topic := postingsForBackfill(t, 150, companies7and8)
	var other *pgx.Conn // a transaction spanning watermarks
	var otherTx pgx.Tx
	ctx := context.Background()
	wrap := func(src connector.BackfillSource) connector.BackfillSource {
		return &hooked{BackfillSource: src,
			before: func(n int) {
				switch n {
				case 2: // inside the window, before the SELECT
					exec(t, dsn, `UPDATE postings SET title = 'updated before select' WHERE id = 11`,
						`DELETE FROM postings WHERE id = 13`,
						`INSERT INTO postings VALUES (1000, 7, 'inserted live, beyond the scan''s bound')`)
					// Foreign watermarks: another slot's, and this slot's
					// with another run: both ignored.
					for _, wm := range []string{`{"slot":"other","backfill":"bf-1","chunk":2,"run":"x","mark":"high"}`,
						`{"slot":"cdc","backfill":"bf-1","chunk":2,"run":"stale","mark":"high"}`} {
						exec(t, dsn, `SELECT pg_logical_emit_message(true, '`+connector.WatermarkPrefix+`', '`+wm+`')`)
					}
				case 4:
					var err error
					if other, err = pgx.Connect(ctx, dsn); err != nil {
						t.Error(err)
						return
					}
					if otherTx, err = other.Begin(ctx); err != nil {
						t.Error(err)
						return
					}
					if _, err := otherTx.Exec(ctx, `UPDATE postings SET title = 'spans the watermarks' WHERE id = 26`); err != nil {
						t.Error(err)
					}
				case 6:
					if err := otherTx.Commit(ctx); err != nil {
						t.Error(err)
					}
					other.Close(ctx)
				}
			},
			after: func(n int) {
				switch n {
				case 3: // after the SELECT, before the high watermark: the chunk's copies are stale
					exec(t, dsn, `UPDATE postings SET title = 'updated after select' WHERE id = 17`,
						`UPDATE postings SET company_id = 8 WHERE id = 19`,
						`DELETE FROM postings WHERE id = 20`,
						`UPDATE postings SET id = 2000 WHERE id = 22`)
				case 5:
					exec(t, dsn, `UPDATE postings SET title = 'moved', company_id = 8 WHERE id = 35`)
				}
			},
		}
	}
	rig := startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, wrap, nil)
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, filter) VALUES ('bf-1', 'start', 'public.postings', 'company_id = 7')`)
	waitBackfill(t, conn, "bf-1", "done")
	// A last live change, then wait for it: everything before it is in.
	exec(t, dsn, `INSERT INTO postings VALUES (9999, 9, 'marker')`)
	waitFor(t, func() bool {
		for _, e := range rig.rec.events() {
			if e.Key == "9999" {
				return true
			}
		}
		return false
	})
	events := rig.rec.events()
	kobot := kobotState(t, events)
	table := tableState(t, conn)
	for k, got := range kobot {
		if want := table[k]; fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("key %s: Kobot holds %v, the table %v", k, got, want)
		}
	}
	for k := range tableState(t, conn, 7) {
		if _, ok := kobot[k]; !ok {
			t.Errorf("company 7's row %s never reached Kobot", k)
		}
	}
	reads := map[string]sentEvent{}
	for _, e := range events {
		if e.Op != "read" {
			continue
		}
		if e.Backfill != "bf-1" || e.Attrs["op"] != "read" || e.Attrs["type"] != "baitoru.postings.read" {
			t.Errorf("read event %s: backfill %q, attributes %v", e.ID, e.Backfill, e.Attrs)
		}
		if e.Data["company_id"] != float64(7) {
			t.Errorf("read of company %v: %v", e.Data["company_id"], e.Data)
		}
		if _, dup := reads[e.Key]; dup {
			t.Errorf("key %s read twice", e.Key)
		}
		reads[e.Key] = e
	}
	// Rows changed inside a window are not read (their live events stand
	// in); the row inserted after the start arrives once, live.
	for _, k := range []string{"11", "13", "17", "19", "20", "22", "2000", "35", "1000"} {
		if r, ok := reads[k]; ok {
			t.Errorf("row %s changed inside a window was also read: %v", k, r.Data)
		}
	}
	if len(reads) < 90 {
		t.Errorf("%d reads; want about 100", len(reads))
	}

	// A second backfill of the same rows: new ids.
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, filter) VALUES ('bf-2', 'start', 'public.postings', 'company_id = 7 AND id <= 10')`)
	waitBackfill(t, conn, "bf-2", "done")
	waitFor(t, func() bool {
		n := 0
		for _, e := range rig.rec.events() {
			if e.Backfill == "bf-2" {
				n++
				if old, ok := reads[e.Key]; ok && old.ID == e.ID {
					t.Fatalf("backfill bf-2 reused id %s of bf-1", e.ID)
				}
			}
		}
		return n == 7 // ids 1..10 of company 7 (3, 6, 9 are company 8's)
	})

	// The runner's metrics agree with the saved progress: rows and chunks
	// of both backfills, reads published (rows read minus those a live
	// change stood in for), two done, none running.
	var rowsDone, chunks int64
	if err := conn.QueryRow(ctx, `SELECT sum(rows_done), sum(chunks) FROM baitoru_cdc.backfills`).Scan(&rowsDone, &chunks); err != nil {
		t.Fatal(err)
	}
	nReads := 0
	for _, e := range rig.rec.events() {
		if e.Op == "read" {
			nReads++
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{telemetry.BackfillRowsRead, []string{"table", "public.postings"}, float64(rowsDone)},
		{telemetry.BackfillChunks, []string{"table", "public.postings"}, float64(chunks)},
		{telemetry.BackfillRowsPublished, []string{"table", "public.postings"}, float64(nReads)},
		{telemetry.BackfillChunkDuration, nil, float64(chunks)},
		{telemetry.BackfillsFinished, []string{"state", "done"}, 2},
		{telemetry.BackfillsRunning, nil, 0},
	} {
		if got := metricValue(t, rig.metrics, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if nReads >= int(rowsDone) {
		t.Errorf("%d reads published of %d rows read: the rows changed inside windows should not be", nReads, rowsDone)
	}
}

// metricValue is the value of the series name{labels} (a histogram's
// sample count) in m's registry; the test fails when there is none.
func metricValue(t *testing.T, m *telemetry.Metrics, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			if len(s.GetLabel())*2 != len(labels) {
				continue
			}
			for i, lp := range s.GetLabel() {
				if lp.GetName() != labels[2*i] || lp.GetValue() != labels[2*i+1] {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				return s.GetCounter().GetValue()
			case s.Gauge != nil:
				return s.GetGauge().GetValue()
			case s.Histogram != nil:
				return float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBackfillRefused: requests that cannot run fail with a message naming
// the problem and the fix, and change nothing: an unmapped table, a table
// without primary key, a predicate naming an unpublished column, and
// predicates that try to run SQL.
func TestBackfillRefused(t *testing.T) {
	integration(t)
	dsn, emu, topic := backfillEnv(t)
	exec(t, dsn, `CREATE TABLE postings (id bigint PRIMARY KEY, company_id int NOT NULL, title text, secret text)`,
		`CREATE TABLE nokey (n int, v text)`, `CREATE TABLE unmapped (id int PRIMARY KEY)`,
		`INSERT INTO postings VALUES (1, 7, 'a', 's'), (2, 8, 'b', 's')`)
	conn := connect(t, dsn)
	applyBackfillObjects(t, conn)
	nokey := config.Table{Table: "public.nokey", Type: "baitoru.nokey", Operations: []string{"insert"}, Columns: []config.Column{{Column: "n"}, {Column: "v"}}}
	// Insert only: a table without primary key can be published then.
	inserts := postingsTable
	inserts.Operations = []string{"insert"}
	rig := startBackfillRig(t, dsn, topic, emu, []config.Table{inserts, nokey}, nil, nil)
	for _, c := range []struct{ id, table, filter, want string }{
		{"unmapped", "public.unmapped", "", "table public.unmapped is not mapped"},
		{"nokey", "public.nokey", "", "has no primary key"},
		{"unpublished", "public.postings", "secret = 's'", "secret is not a published field"},
		{"statement", "public.postings", "company_id = 7; DROP TABLE postings", `";`},
		{"function", "public.postings", "company_id = 7 OR pg_sleep(1) IS NULL", "pg_sleep is not a published field"},
		{"comment", "public.postings", "company_id = 7 -- x", `"-`},
		{"paren", "public.postings", "company_id = 7) OR (true", `unexpected ")"`},
		{"cast", "public.postings", "company_id = 7::text", `":`},
		{"subquery", "public.postings", "company_id IN (SELECT 1)", `expected a value`},
		{"type", "public.postings", "company_id = 'seven'", "PostgreSQL refused the filter"},
	} {
		testenv.MustExec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, filter) VALUES ($1, 'start', $2, nullif($3, ''))`, c.id, c.table, c.filter)
		msg := waitBackfill(t, conn, c.id, "failed")
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "permanent error") {
			t.Errorf("%s: %q: error %q, want it to contain %q (and no internal words)", c.id, c.filter, msg, c.want)
		}
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM postings`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("postings after the refused requests: %d %v", n, err)
	}
	if got := rig.rec.events(); len(got) != 0 {
		t.Errorf("refused backfills published %d events", len(got))
	}
}

// TestBackfillMappingsReloaded: the runner encodes a chunk's reads as it
// reads the rows, with the mappings in use then; when they are reloaded
// before the chunk's high watermark is decoded, the chunk is read again and
// encoded with the new ones. No read goes out with the old mappings after
// the reload, none is lost, none is sent twice.
func TestBackfillMappingsReloaded(t *testing.T) {
	integration(t)
	dsn, conn, emu, topic := postingsForBackfill(t, 20, "7")
	renamed := postingsTable
	renamed.Columns = []config.Column{{Column: "id"}, {Column: "company_id"}, {Column: "title", Rename: "headline"}}
	var rig *backfillRig
	var h *hooked
	wrap := func(src connector.BackfillSource) connector.BackfillSource {
		h = &hooked{BackfillSource: src, after: func(n int) {
			if n == 2 { // between the SELECT of rows 6-10 and their high watermark
				// Rows 6-10 are read ahead while the first chunk's
				// high watermark may still be on its way: wait until
				// its reads went out, so that only the second chunk
				// was read with the old mappings and not confirmed.
				deadline := time.Now().Add(30 * time.Second)
				for reads(rig.rec.events()) < 5 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				rig.pipe.Reload(compile(t, renamed), "v2", 0, nil)
			}
		}}
		return h
	}
	rig = startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, wrap, nil)
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bf-m', 'start', 'public.postings')`)
	waitBackfill(t, conn, "bf-m", "done")
	rig.stop(t)
	seen := map[string]int{}
	for _, e := range rig.rec.events() {
		if e.Op != "read" {
			continue
		}
		seen[e.Key]++
		id := int(e.Data["id"].(float64))
		_, old := e.Data["title"]
		_, renamed := e.Data["headline"]
		if want := id > 5; renamed != want || old == want {
			t.Errorf("read of row %d: data %v, want the field title renamed headline: %t", id, e.Data, want)
		}
	}
	for id := 1; id <= 20; id++ {
		if n := seen[fmt.Sprint(id)]; n != 1 {
			t.Errorf("row %d: %d reads, want 1", id, n)
		}
	}
	// 4 chunks of 5 rows and the empty last one; the second read twice
	// (and the third too when it was read ahead with the old mappings).
	if h.chunks < 6 || h.chunks > 7 {
		t.Errorf("%d chunks read, want 6 or 7 (the second one twice)", h.chunks)
	}
}

// reads counts the read events in sent.
func reads(sent []sentEvent) int {
	n := 0
	for _, e := range sent {
		if e.Op == "read" {
			n++
		}
	}
	return n
}

// TestBackfillResumes: the connector stops abruptly at the worst moments of
// a chunk (before its high watermark is written, after SNS accepted it but
// before its progress is saved, in the middle of publishing it) and
// starts again: the backfill resumes after the last saved chunk, every row
// of company 7 reaches Kobot, and a row sent twice has the same id.
func TestBackfillResumes(t *testing.T) {
	integration(t)
	dsn, conn, emu, topic := postingsForBackfill(t, 60, companies7and8)
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, filter) VALUES ('bf-r', 'start', 'public.postings', 'company_id = 7')`)
	var all []sentEvent
	crash := errors.New("crash")
	for _, c := range []struct {
		name string
		hook func(h *hooked, stop func())
		fail func(stop func()) func([]*connector.Event) error
	}{
		{name: "before the high watermark", hook: func(h *hooked, stop func()) {
			h.beforeHWMark = func(n int) error {
				if n == 2 {
					stop()
					return crash
				}
				return nil
			}
		}},
		{name: "before the progress is saved", hook: func(h *hooked, stop func()) {
			h.beforeSave = func(n int) error {
				if n == 2 {
					stop()
					return crash
				}
				return nil
			}
		}},
		{name: "mid-publish", fail: func(stop func()) func([]*connector.Event) error {
			return func(batch []*connector.Event) error {
				for _, e := range batch {
					if e.Op == connector.OpRead && len(batch) > 1 {
						stop()
						return crash
					}
				}
				return nil
			}
		}},
	} {
		var rig *backfillRig
		started := make(chan struct{}) // rig is set (the hooks run on the rig's goroutines)
		stop := func() { go func() { <-started; rig.cancel() }() }
		wrap := func(src connector.BackfillSource) connector.BackfillSource {
			h := &hooked{BackfillSource: src}
			if c.hook != nil {
				c.hook(h, stop)
			}
			return h
		}
		var fail func([]*connector.Event) error
		if c.fail != nil {
			fail = c.fail(stop)
		}
		rig = startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, wrap, fail)
		close(started)
		select {
		case <-rig.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: the connector did not stop", c.name)
		}
		all = append(all, rig.rec.events()...)
		if st, _, _, _ := backfillStatus(t, conn, "bf-r"); st != "running" {
			t.Fatalf("%s: status %q after the crash", c.name, st)
		}
	}
	rig := startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, nil, nil)
	waitBackfill(t, conn, "bf-r", "done")
	rig.stop(t)
	all = append(all, rig.rec.events()...)
	ids := map[string]string{}
	dups := 0
	for _, e := range all {
		if e.Op != "read" {
			continue
		}
		if id, ok := ids[e.Key]; ok {
			dups++
			if id != e.ID {
				t.Errorf("key %s sent again with id %s, first %s", e.Key, e.ID, id)
			}
		}
		ids[e.Key] = e.ID
	}
	for k := range tableState(t, conn, 7) {
		if _, ok := ids[k]; !ok {
			t.Errorf("company 7's row %s never read", k)
		}
	}
	if dups == 0 {
		t.Errorf("no row was sent twice: the crashes did not happen where intended")
	}
	t.Logf("%d reads, %d sent again", len(ids), dups)
}

// TestBackfillCancelledMidway: a cancel requested while a backfill runs
// (here right after its third chunk was read) is found within a chunk or
// two: the backfill ends cancelled, its last saved progress kept, without
// reading the rest of the table.
func TestBackfillCancelledMidway(t *testing.T) {
	integration(t)
	dsn, conn, emu, topic := postingsForBackfill(t, 60, "7")
	requests := connect(t, dsn) // used by the runner's goroutine only
	wrap := func(src connector.BackfillSource) connector.BackfillSource {
		return &hooked{BackfillSource: src, after: func(n int) {
			if n == 3 {
				if _, err := requests.Exec(context.Background(), `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action) VALUES ('bf-x', 'cancel')`); err != nil {
					t.Error(err)
				}
			}
		}}
	}
	startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, wrap, nil)
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bf-x', 'start', 'public.postings')`)
	waitBackfill(t, conn, "bf-x", "cancelled")
	if _, _, rows, chunks := backfillStatus(t, conn, "bf-x"); rows == 0 || rows > 20 || chunks > 4 {
		t.Errorf("cancelled after %d rows in %d chunks; want it cancelled within a chunk or two of the request (made after chunk 3 was read: 10-20 rows)", rows, chunks)
	}
}

// TestBackfillTextKeys: a composite primary key of text values holding
// quotes, backslashes, spaces and non-ASCII letters bounds the chunks
// (the last key read is the next chunk's lower bound): every row is read
// once, in chunks of 5.
func TestBackfillTextKeys(t *testing.T) {
	integration(t)
	dsn, emu, topic := backfillEnv(t)
	names := []string{`o'brien`, `back\slash`, `\'`, `''`, `"quoted"`, `a b`, `ünï`, `E'x'`, `$1`, `plain`, `\\n`, ``}
	exec(t, dsn, `CREATE TABLE tags (name text, n int, PRIMARY KEY (name, n))`)
	conn := connect(t, dsn)
	for _, name := range names {
		for n := 1; n <= 2; n++ {
			if _, err := conn.Exec(context.Background(), `INSERT INTO tags VALUES ($1, $2)`, name, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	applyBackfillObjects(t, conn)
	tags := config.Table{Table: "public.tags", Type: "baitoru.tags", Operations: []string{"insert", "update", "delete"},
		Columns: []config.Column{{Column: "name"}, {Column: "n"}}, Key: []string{"name", "n"}}
	rig := startBackfillRig(t, dsn, topic, emu, []config.Table{tags}, nil, nil)
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bf-t', 'start', 'public.tags')`)
	waitBackfill(t, conn, "bf-t", "done")
	rig.stop(t)
	read := map[string]int{}
	for _, e := range rig.rec.events() {
		if e.Op == "read" {
			read[fmt.Sprintf("%v/%v", e.Data["name"], e.Data["n"])]++
		}
	}
	for _, name := range names {
		for n := 1; n <= 2; n++ {
			if k := fmt.Sprintf("%v/%v", name, n); read[k] != 1 {
				t.Errorf("row %q read %d times, want once", k, read[k])
			}
		}
	}
	if len(read) != 2*len(names) {
		t.Errorf("%d rows read, want %d: %v", len(read), 2*len(names), read)
	}
	if _, _, rows, chunks := backfillStatus(t, conn, "bf-t"); rows != int64(2*len(names)) || chunks < 4 {
		t.Errorf("done after %d rows in %d chunks, want %d rows in chunks of 5", rows, chunks, 2*len(names))
	}
}

// teeObserver tells every observer.
type teeObserver []connector.BackfillObserver

func (t teeObserver) BackfillChunk(st *connector.BackfillState, rows, published int, took time.Duration) {
	for _, o := range t {
		o.BackfillChunk(st, rows, published, took)
	}
}

func (t teeObserver) BackfillProgress(st *connector.BackfillState) {
	for _, o := range t {
		o.BackfillProgress(st)
	}
}

func (t teeObserver) BackfillPaused(id, reason string) {
	for _, o := range t {
		o.BackfillPaused(id, reason)
	}
}

// backfillEnv is a fresh database and an SNS topic in the emulator, for a
// backfill rig.
func backfillEnv(t *testing.T) (dsn string, emu *testenv.Emulator, topic string) {
	t.Helper()
	dsn = testenv.PG(t).NewDatabase(t)
	emu = testenv.Emu(t)
	topic, _ = pipeTopic(t, emu, false)
	return dsn, emu, topic
}

// companies7and8 spreads postingsForBackfill's rows over companies 7 (two
// in three) and 8.
const companies7and8 = "CASE WHEN i % 3 = 0 THEN 8 ELSE 7 END"

// postingsForBackfill is where the backfill tests start: a database whose
// table postings (id, company_id, title) holds rows 1 to n of company
// companySQL (an SQL expression over i), with the backfill objects, and an
// SNS topic in the emulator. extra statements run after the table is
// created, before its rows are inserted.
func postingsForBackfill(t *testing.T, n int, companySQL string, extra ...string) (dsn string, conn *pgx.Conn, emu *testenv.Emulator, topic string) {
	t.Helper()
	dsn, emu, topic = backfillEnv(t)
	stmts := append([]string{`CREATE TABLE postings (id bigint PRIMARY KEY, company_id int NOT NULL, title text)`}, extra...)
	stmts = append(stmts, fmt.Sprintf(`INSERT INTO postings SELECT i, %s, 'posting ' || i FROM generate_series(1, %d) i`, companySQL, n))
	exec(t, dsn, stmts...)
	conn = connect(t, dsn)
	applyBackfillObjects(t, conn)
	return dsn, conn, emu, topic
}

// applyBackfillObjects creates what setup creates for backfills (schema
// baitoru_cdc, publication cdc_backfill) in conn's database.
func applyBackfillObjects(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	if _, err := dba.ApplyBackfill(context.Background(), conn, dba.BackfillObjects{Schema: "baitoru_cdc", Publication: "cdc_backfill"}, false); err != nil {
		t.Fatal(err)
	}
}
