package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/stdout"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// One table per kind of replica identity. Every table has the columns
// id, a, b, c; key is the replica identity column used by filters.
const safetyDDL = `
CREATE TABLE t_pk (id int PRIMARY KEY, a int, b text, c int);
CREATE TABLE t_full (id int PRIMARY KEY, a int, b text, c int);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_nopk (id int, a int, b text, c int);
CREATE TABLE t_idx (id int, u int NOT NULL, a int, b text, c int);
CREATE UNIQUE INDEX t_idx_u ON t_idx (u);
ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_u;
CREATE TABLE t_nothing (id int PRIMARY KEY, a int, b text, c int);
ALTER TABLE t_nothing REPLICA IDENTITY NOTHING;`

var safetyTables = []struct{ name, key string }{
	{"public.t_pk", "id"}, {"public.t_full", "id"}, {"public.t_nopk", "id"}, {"public.t_idx", "u"}, {"public.t_nothing", "id"},
}

// writesSucceed runs INSERT, UPDATE (one row, every row, the key) and
// DELETE on every table, as Baitoru's application would.
func writesSucceed(ctx context.Context, conn *pgx.Conn, n int) error {
	for _, tb := range safetyTables {
		qt := postgres.QuoteTable(tb.name)
		cols, vals := "id, a, b, c", "$1, $1, 'x', $1"
		if tb.name == "public.t_idx" {
			cols, vals = "id, u, a, b, c", "$1, $1, $1, 'x', $1"
		}
		for _, sql := range []string{
			"INSERT INTO " + qt + " (" + cols + ") VALUES (" + vals + ")",
			"UPDATE " + qt + " SET b = 'y', c = c + 1 WHERE id = $1",
			"UPDATE " + qt + " SET a = a + 1",
			"UPDATE " + qt + " SET " + tb.key + " = " + tb.key + " + 100000 WHERE id = $1",
			"DELETE FROM " + qt + " WHERE id = $1",
		} {
			args := []any{n}
			if !strings.Contains(sql, "$1") {
				args = nil
			}
			if _, err := conn.Exec(ctx, sql, args...); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	return nil
}

// pubString renders a publication deterministically, for comparisons.
func pubString(st *postgres.PublicationState) string {
	if st == nil {
		return "none"
	}
	var names []string
	for n := range st.Tables {
		names = append(names, n)
	}
	slices.Sort(names)
	s := fmt.Sprintf("publish=%v truncate=%v", st.Operations(), st.Truncate)
	for _, n := range names {
		pt := st.Tables[n]
		s += fmt.Sprintf("; %s %v where=%s", n, pt.Columns, pt.Where)
	}
	return s
}

type shape struct {
	tables []config.Table
}

func (s shape) String() string {
	var parts []string
	for _, t := range s.tables {
		cols := "all"
		if t.Columns != nil {
			var cs []string
			for _, c := range t.Columns {
				cs = append(cs, c.Column)
			}
			cols = strings.Join(cs, ",")
		}
		p := fmt.Sprintf("%s[%s] cols=%s", t.Table, strings.Join(t.Operations, ","), cols)
		if t.Where != "" {
			p += " where=" + t.Where
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " + ")
}

// TestSetupNeverBreaksWrites applies, one after the other on the same
// publication (so creation and every kind of ALTER are exercised), every
// mapping shape the config allows: each kind of replica identity; inserts
// only, updates, deletes, both; with and without a column list (with and
// without the key); with no filter, a filter on the key, a filter on
// another column; and tables mixing them. After every setup, accepted or
// refused, INSERT, UPDATE and DELETE on every table must still succeed. An
// accepted shape applied again must change nothing; a refused one must
// leave the publication as it was and say why and what to do.
func TestSetupNeverBreaksWrites(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, safetyDDL)
	conn := connect(t, dsn)

	col := func(names ...string) []config.Column {
		if names == nil {
			return nil
		}
		out := make([]config.Column, len(names))
		for i, n := range names {
			out[i] = config.Column{Column: n}
		}
		return out
	}
	var shapes []shape
	for _, tb := range safetyTables {
		for _, ops := range [][]string{{"insert"}, {"update"}, {"insert", "update"}, {"delete"}, {"insert", "update", "delete"}} {
			for _, cols := range [][]string{nil, {"a", "b"}, {tb.key, "a"}} {
				for _, where := range []string{"", tb.key + " > 0", "c > 0"} {
					shapes = append(shapes, shape{[]config.Table{{Table: tb.name, Operations: ops, Columns: col(cols...), Where: where}}})
				}
			}
		}
	}
	shapes = append(shapes,
		shape{[]config.Table{
			{Table: "public.t_pk", Operations: []string{"insert"}, Columns: col("a"), Where: "c > 0"},
			{Table: "public.t_idx", Operations: []string{"insert", "update"}, Columns: col("a")},
		}},
		shape{[]config.Table{
			{Table: "public.t_full", Operations: []string{"insert"}, Columns: col("a"), Where: "c > 0"},
			{Table: "public.t_pk", Operations: []string{"insert", "update", "delete"}, Columns: col("b"), Where: "id > 0"},
		}},
		shape{[]config.Table{
			{Table: "public.t_nopk", Operations: []string{"insert"}, Columns: col("a")},
			{Table: "public.t_pk", Operations: []string{"insert", "update"}, Columns: col("a")},
		}},
		shape{[]config.Table{
			{Table: "public.t_nopk", Operations: []string{"insert"}, Where: "c > 0"},
			{Table: "public.t_pk", Operations: []string{"insert"}, Columns: col("b"), Where: "a > 0 AND b <> 'z'"},
			{Table: "public.t_nothing", Operations: []string{"insert"}, Columns: col("a")},
		}},
	)
	// Some outcomes stated explicitly, so that a planner refusing
	// everything (or nothing) fails.
	want := map[string]bool{
		"public.t_pk[insert] cols=a,b where=c > 0":                                    true,
		"public.t_pk[insert,update] cols=a,b":                                         true, // identity added to the list
		"public.t_pk[update] cols=a,b where=c > 0":                                    false,
		"public.t_pk[delete] cols=id,a where=id > 0":                                  true,
		"public.t_full[insert,update] cols=a,b where=c > 0":                           true, // no column list with FULL
		"public.t_full[delete] cols=all where=c > 0":                                  true,
		"public.t_nopk[insert] cols=a,b where=c > 0":                                  true,
		"public.t_nopk[update] cols=all":                                              false,
		"public.t_nothing[delete] cols=a,b":                                           false,
		"public.t_idx[insert,update,delete] cols=a,b where=u > 0":                     true,
		"public.t_idx[update] cols=all where=c > 0":                                   false,
		"public.t_nopk[insert] cols=a + public.t_pk[insert,update] cols=a":            false, // publish update reaches t_nopk too
		"public.t_pk[insert] cols=a where=c > 0 + public.t_idx[insert,update] cols=a": false,
	}
	accepted, refused := 0, 0
	for i, s := range shapes {
		spec := postgres.SpecFromConfig(s.tables)
		before, err := postgres.ReadPublication(ctx, conn, 150000, "safety")
		if err != nil {
			t.Fatal(err)
		}
		res, err := postgres.ApplyPublication(ctx, conn, postgres.ApplyOptions{Publication: "safety", Spec: spec})
		var pe *postgres.PlanError
		switch {
		case err == nil:
			accepted++
			again, err := postgres.ApplyPublication(ctx, conn, postgres.ApplyOptions{Publication: "safety", Spec: spec})
			if err != nil || again.Action != postgres.PublicationUnchanged || len(again.Statements) != 0 {
				t.Errorf("%s: second setup was not a no-op: %+v, %v", s, again, err)
			}
			if w, ok := want[s.String()]; ok && !w {
				t.Errorf("%s: accepted (%s), want refused", s, res.Action)
			}
		case errors.As(err, &pe):
			refused++
			if !strings.Contains(err.Error(), "fix: ") {
				t.Errorf("%s: refusal without a fix: %v", s, err)
			}
			after, rerr := postgres.ReadPublication(ctx, conn, 150000, "safety")
			if rerr != nil {
				t.Fatal(rerr)
			}
			if pubString(before) != pubString(after) {
				t.Errorf("%s: refused, but the publication changed", s)
			}
			if w, ok := want[s.String()]; ok && w {
				t.Errorf("%s: refused, want accepted: %v", s, err)
			}
		default:
			t.Fatalf("%s: %v", s, err)
		}
		if err := writesSucceed(ctx, conn, i+1); err != nil {
			t.Fatalf("after setup of %s: a write fails: %v", s, err)
		}
	}
	for k := range want {
		found := slices.ContainsFunc(shapes, func(s shape) bool { return s.String() == k })
		if !found {
			t.Errorf("expected outcome for unknown shape %q", k)
		}
	}
	t.Logf("%d shapes: %d accepted, %d refused; writes succeeded after each", len(shapes), accepted, refused)
}

// TestSetupQuotesIdentifiers sets up a table named `weird; drop` with a
// column holding a double quote and a mixed-case key, twice, then streams
// a row of it: every identifier is quoted, nothing is injected.
func TestSetupQuotesIdentifiers(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE "weird; drop" ("Id" int PRIMARY KEY, "a""b" text, c text);
		CREATE TABLE drop_me (x int)`)
	conn := connect(t, dsn)
	tables := []config.Table{{Table: "public.weird; drop", Operations: []string{"insert"},
		Columns: []config.Column{{Column: "Id"}, {Column: `a"b`}}, Where: `"a""b" <> 'x;y'`}}
	spec := postgres.SpecFromConfig(tables)
	res, err := postgres.ApplyPublication(ctx, conn, postgres.ApplyOptions{Publication: "cdc", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != postgres.PublicationCreated {
		t.Fatalf("action %s", res.Action)
	}
	st, err := postgres.ReadPublication(ctx, conn, 150000, "cdc")
	if err != nil || st == nil {
		t.Fatal(st, err)
	}
	pt := st.Tables["public.weird; drop"]
	if pt == nil || strings.Join(pt.Columns, ",") != `Id,a"b` || !slices.Equal(pt.WhereColumns, []string{`a"b`}) {
		t.Fatalf("published table: %+v (tables %v)", pt, st.Tables)
	}
	if res, err = postgres.ApplyPublication(ctx, conn, postgres.ApplyOptions{Publication: "cdc", Spec: spec}); err != nil || res.Action != postgres.PublicationUnchanged {
		t.Fatalf("second setup: %+v %v", res, err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = 'drop_me'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("drop_me: %d %v", n, err)
	}
	if _, err := postgres.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, tables, spec)
	testenv.MustExec(t, dsn, `INSERT INTO "weird; drop" VALUES (1, 'x;y', 'no'), (2, 'ok', 'no')`)
	got := rec.waitFor(t, func(c seen) bool { return c.values["Id"] == "2" })
	if len(got) != 1 || got[0].values[`a"b`] != "ok" || slices.Contains(got[0].columns, "c") {
		t.Fatalf("stream carried %+v; want only row 2, without column c", got)
	}
	rec.stop(t)
}

// seen is one change as the stream carried it.
type seen struct {
	table   string
	op      connector.Op
	columns []string
	values  map[string]string
}

// recorder is the Handler between the subscription and the pipeline: it
// records what the replication stream carried.
type recorder struct {
	*connector.Pipeline
	mu      sync.Mutex
	changes []seen
	cancel  context.CancelFunc
	done    chan error
	sub     *postgres.Subscription
}

func (r *recorder) Change(ctx context.Context, c *connector.Change) error {
	s := seen{table: c.Rel.QualifiedName(), op: c.Op, values: map[string]string{}}
	row := c.New
	if c.Op == connector.OpDelete {
		row = c.Old
	}
	for i, col := range c.Rel.Columns {
		s.columns = append(s.columns, col.Name)
		if i < len(row) && row[i].Kind == connector.DatumText {
			s.values[col.Name] = string(row[i].Value)
		}
	}
	r.mu.Lock()
	r.changes = append(r.changes, s)
	r.mu.Unlock()
	return r.Pipeline.Change(ctx, c)
}

// waitFor waits until a recorded change matches last and returns them all.
func (r *recorder) waitFor(t *testing.T, last func(seen) bool) []seen {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.changes)
		r.mu.Unlock()
		if slices.ContainsFunc(got, last) {
			return got
		}
		select {
		case err := <-r.done:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("change not streamed after 30s; got %+v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("connector did not stop")
	}
}

// startRecorded streams slot and publication "cdc" (made by setup:
// Create false) into a stdout pipeline, recording every change. opts may
// adjust the subscription's options.
func startRecorded(t *testing.T, dsn string, tables []config.Table, spec postgres.PublicationSpec, opts ...func(*postgres.Options)) *recorder {
	t.Helper()
	ms, err := connector.Mappings(tables)
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t)
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), stdout.New(io.Discard), connector.PipelineOptions{}, nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{Pipeline: pipe, cancel: cancel, done: make(chan error, 1)}
	o := postgres.Options{DSN: dsn, Slot: "cdc", Publication: "cdc", Publish: spec,
		StatusInterval: 200 * time.Millisecond, ReconnectInitial: 100 * time.Millisecond, ReconnectMax: time.Second}
	for _, f := range opts {
		f(&o)
	}
	r.sub = postgres.New(o, r, log)
	go func() {
		errs := make(chan error, 2)
		go func() { errs <- pipe.Run(ctx) }()
		err := r.sub.Run(ctx)
		cancel()
		if perr := <-errs; err == nil {
			err = perr
		}
		r.done <- err
	}()
	t.Cleanup(cancel)
	deadline := time.Now().Add(30 * time.Second)
	for !r.sub.Streaming() {
		if time.Now().After(deadline) {
			t.Fatal("not streaming after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// TestRowFilterPushdown: rows that do not match a mapping's where, and
// columns that are not mapped, never leave the server: the replication
// stream itself does not carry them.
func TestRowFilterPushdown(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	exec(t, dsn, appsDDL)
	conn := connect(t, dsn)
	tables := []config.Table{{Table: "public.apps", Operations: []string{"insert"}, Where: "company_id % 2 = 0",
		Columns: []config.Column{{Column: "application_id"}, {Column: "company_id"}}}}
	spec := postgres.SpecFromConfig(tables)
	if _, err := postgres.ApplyPublication(ctx, conn, postgres.ApplyOptions{Publication: "cdc", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, tables, spec)
	exec(t, dsn, `INSERT INTO apps (application_id, company_id, applicant_email) SELECT g, g, 'a@b' FROM generate_series(1, 40) g`,
		`INSERT INTO apps (application_id, company_id, applicant_email) VALUES (1000, 1000, 'last@b')`)
	got := rec.waitFor(t, func(c seen) bool { return c.values["application_id"] == "1000" })
	if len(got) != 21 {
		t.Errorf("stream carried %d changes, want the 21 matching rows", len(got))
	}
	for _, c := range got {
		var id int
		fmt.Sscan(c.values["company_id"], &id)
		if id%2 != 0 {
			t.Errorf("row not matching the filter streamed: %+v", c)
		}
		if !slices.Equal(c.columns, []string{"application_id", "company_id"}) {
			t.Errorf("stream carried columns %v, want only the mapped ones", c.columns)
		}
	}
	rec.stop(t)
}

// TestIdleSlotAdvances: with only another database writing, the mapped
// database's slot confirms past that WAL within the heartbeat interval, so
// it does not hold WAL back. The heartbeat runs as in production, but on
// PostgreSQL 15 the connector's own confirmation of the server's WAL end
// from keepalives (nothing in flight) is already enough: this test passes
// without the heartbeat too. TestHeartbeat tests the heartbeat itself.
func TestIdleSlotAdvances(t *testing.T) {
	integration(t)
	ctx := context.Background()
	pg := testenv.PG(t)
	dsn, other := pg.NewDatabase(t), pg.NewDatabase(t)
	exec(t, dsn, appsDDL)
	exec(t, other, `CREATE TABLE busy (id serial PRIMARY KEY, v text)`)
	conn := connect(t, dsn)
	tables := []config.Table{appsMapping()}
	spec := postgres.SpecFromConfig(tables)
	if _, err := postgres.ApplyPublication(ctx, conn, postgres.ApplyOptions{Publication: "cdc", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, tables, spec)
	const interval = time.Second
	hbCtx, hbStop := context.WithCancel(ctx)
	hbDone := make(chan error, 1)
	go func() { hbDone <- postgres.NewHeartbeat(dsn, interval, testLogger(t)).Run(hbCtx) }()

	otherConn := connect(t, other)
	for round := 0; round < 3; round++ {
		for i := 0; i < 20; i++ {
			if _, err := otherConn.Exec(ctx, `INSERT INTO busy (v) SELECT repeat('x', 200) FROM generate_series(1, 100)`); err != nil {
				t.Fatal(err)
			}
		}
		var target string
		if err := otherConn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			var ok bool
			var confirmed string
			if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'`, target).Scan(&ok, &confirmed); err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Logf("round %d: slot confirmed %s ≥ %s after %v", round, confirmed, target, time.Since(start).Round(time.Millisecond))
				break
			}
			// The heartbeat interval, plus a status interval and slack
			// for a loaded machine.
			if time.Since(start) > interval+time.Second {
				t.Fatalf("round %d: slot confirmed_flush_lsn %s still behind %s after %v", round, confirmed, target, time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := len(rec.changes); got != 0 {
		t.Errorf("idle mapped tables streamed %d changes", got)
	}
	hbStop()
	if err := <-hbDone; err != nil {
		t.Fatal(err)
	}
	rec.stop(t)
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type retainedObserver struct {
	mu   sync.Mutex
	last int64
	n    int
}

func (o *retainedObserver) SlotRetainedWAL(b int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last, o.n = b, o.n+1
}

func (o *retainedObserver) get() (int64, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last, o.n
}

// TestSlotMonitor: the monitor reports the retained WAL, warns above
// max_lag_bytes, and stops with a loud error when the slot vanishes.
func TestSlotMonitor(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	exec(t, dsn, appsDDL)
	conn := connect(t, dsn)
	if _, err := postgres.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	exec(t, dsn, insertApps(1, 2000))
	var logs logBuffer
	obs := &retainedObserver{}
	mon := postgres.NewSlotMonitor(postgres.MonitorOptions{DSN: dsn, Slot: "cdc", Interval: 100 * time.Millisecond,
		MaxLagBytes: 4096, Observer: obs}, slog.New(slog.NewTextHandler(&logs, nil)))
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, n := obs.get(); n > 0 && b > 4096 && strings.Contains(logs.String(), "retains more WAL than source.max_lag_bytes") {
			break
		}
		if time.Now().After(deadline) {
			b, n := obs.get()
			t.Fatalf("no retained-WAL report/warning: %d reports, last %d; log:\n%s", n, b, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot('cdc')`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, postgres.ErrSlotLost) || !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "vanished") || !strings.Contains(err.Error(), "backfill") {
			t.Fatalf("monitor: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("monitor did not stop after the slot vanished")
	}
}

// TestSlotVanishedWhileStreaming: a slot dropped under a running
// subscription (source.create: true) is an error, never a new slot that
// would skip the rows in between.
func TestSlotVanishedWhileStreaming(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	exec(t, dsn, appsDDL)
	conn := connect(t, dsn)
	tables := []config.Table{appsMapping()}
	spec := postgres.SpecFromConfig(tables)
	ms, _ := connector.Mappings(tables)
	log := testLogger(t)
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), stdout.New(io.Discard), connector.PipelineOptions{}, nil, log)
	sub := postgres.New(postgres.Options{DSN: dsn, Slot: "cdc", Publication: "cdc", Create: true, Publish: spec,
		StatusInterval: 100 * time.Millisecond, ReconnectInitial: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}, pipe, log)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = pipe.Run(runCtx) }()
	done := make(chan error, 1)
	go func() { done <- sub.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !sub.Streaming() {
		if time.Now().After(deadline) {
			t.Fatal("not streaming")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// End the walsender and drop the slot before the connector reconnects.
	for {
		_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdc' AND active`)
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot('cdc')`); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("could not drop the slot")
		}
	}
	select {
	case err := <-done:
		if !errors.Is(err, postgres.ErrSlotLost) || !strings.Contains(err.Error(), "vanished") {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("subscription did not stop")
	}
	slot, err := postgres.LookupSlot(ctx, conn, "cdc")
	if err != nil || slot != nil {
		t.Fatalf("a new slot was created: %+v %v", slot, err)
	}
}
