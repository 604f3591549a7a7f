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
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/stdout"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// compile resolves table mappings as package config does for a file.
func compile(t testing.TB, tables ...config.Table) []*connector.Mapping {
	t.Helper()
	ms, err := config.CompileTables(tables)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// stdoutPipeline are the pipeline options run uses with publisher.kind
// stdout and the default configuration.
func stdoutPipeline() connector.PipelineOptions {
	p := config.Defaults().Publisher
	return connector.PipelineOptions{Lanes: 1, MaxBatch: 256, MaxInflightEvents: p.MaxInflightEvents,
		MaxInflightBytes: p.MaxInflightBytes, ShutdownGrace: p.ShutdownGrace}
}

// newPool is the connector's pool of regular connections to dsn, closed
// when the test ends.
func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.NewPool(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

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
	tables := []config.Table{{Table: "public.weird; drop", Type: "baitoru.weird", Operations: []string{"insert"},
		Columns: []config.Column{{Column: "Id"}, {Column: `a"b`}}, Where: `"a""b" <> 'x;y'`}}
	ms := compile(t, tables...)
	res, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "cdc", Mappings: ms})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != dba.PublicationCreated {
		t.Fatalf("action %s", res.Action)
	}
	st, err := dba.ReadPublication(ctx, conn, 150000, "cdc")
	if err != nil || st == nil {
		t.Fatal(st, err)
	}
	pt := st.Tables["public.weird; drop"]
	if pt == nil || strings.Join(pt.Columns, ",") != `Id,a"b` || !slices.Equal(pt.WhereColumns, []string{`a"b`}) {
		t.Fatalf("published table: %+v (tables %v)", pt, st.Tables)
	}
	if res, err = dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "cdc", Mappings: ms}); err != nil || res.Action != dba.PublicationUnchanged {
		t.Fatalf("second setup: %+v %v", res, err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = 'drop_me'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("drop_me: %d %v", n, err)
	}
	if _, err := dba.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, ms)
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

// recorder is the handler between the subscription and the pipeline: it
// records what the replication stream carried.
type recorder struct {
	pipe    *connector.Pipeline
	mu      sync.Mutex
	changes []seen
	cancel  context.CancelFunc
	done    chan error
	sub     *postgres.Subscription
}

func (r *recorder) handle(ctx context.Context, m connector.Message) error {
	if m.Kind == connector.MsgChange {
		r.record(m.Change)
	}
	return r.pipe.Handle(ctx, m)
}

func (r *recorder) record(c *connector.Change) {
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
func startRecorded(t *testing.T, dsn string, ms []*connector.Mapping, opts ...func(*postgres.Options)) *recorder {
	t.Helper()
	log := testLogger(t)
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), stdout.New(io.Discard), stdoutPipeline(), nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{pipe: pipe, cancel: cancel, done: make(chan error, 1)}
	o := postgres.Options{DSN: dsn, Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", Mappings: ms, Acked: pipe.Acked,
		StatusInterval: 200 * time.Millisecond, ReconnectInitial: 100 * time.Millisecond, ReconnectMax: time.Second}
	for _, f := range opts {
		f(&o)
	}
	r.sub = postgres.New(o, r.handle, log)
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
	testRowFilterPushdown(t, testenv.PG(t))
}

// testRowFilterPushdown is TestRowFilterPushdown on pg's server (15+).
func testRowFilterPushdown(t *testing.T, pg *testenv.Postgres) {
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	exec(t, dsn, appsDDL)
	conn := connect(t, dsn)
	tables := []config.Table{{Table: "public.apps", Operations: []string{"insert"}, Where: "company_id % 2 = 0",
		Columns: []config.Column{{Column: "application_id"}, {Column: "company_id"}}}}
	ms := compile(t, tables...)
	if _, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "cdc", Mappings: ms}); err != nil {
		t.Fatal(err)
	}
	if _, err := dba.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, ms)
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
	testIdleSlotAdvances(t, testenv.PG(t))
}

// testIdleSlotAdvances is TestIdleSlotAdvances on pg's server.
func testIdleSlotAdvances(t *testing.T, pg *testenv.Postgres) {
	ctx := context.Background()
	dsn, other := pg.NewDatabase(t), pg.NewDatabase(t)
	exec(t, dsn, appsDDL)
	exec(t, other, `CREATE TABLE busy (id serial PRIMARY KEY, v text)`)
	conn := connect(t, dsn)
	ms := compile(t, appsMapping())
	if _, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "cdc", Mappings: ms}); err != nil {
		t.Fatal(err)
	}
	if _, err := dba.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, ms)
	const interval = time.Second
	hbCtx, hbStop := context.WithCancel(ctx)
	hbDone := make(chan error, 1)
	go func() { hbDone <- postgres.NewHeartbeat(newPool(t, dsn), interval, testLogger(t)).Run(hbCtx) }()

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
	if _, err := dba.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	exec(t, dsn, insertApps(1, 2000))
	var logs logBuffer
	obs := &retainedObserver{}
	mon := postgres.NewSlotMonitor(postgres.MonitorOptions{Pool: newPool(t, dsn), Slot: "cdc", Interval: 100 * time.Millisecond,
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
	ms := compile(t, appsMapping())
	log := testLogger(t)
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), stdout.New(io.Discard), stdoutPipeline(), nil, log)
	if err := dba.Prepare(ctx, dba.PrepareOptions{Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", Create: true, Mappings: ms}, log); err != nil {
		t.Fatal(err)
	}
	sub := postgres.New(postgres.Options{DSN: dsn, Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", Mappings: ms, Acked: pipe.Acked,
		StatusInterval: 100 * time.Millisecond, ReconnectInitial: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}, pipe.Handle, log)
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
