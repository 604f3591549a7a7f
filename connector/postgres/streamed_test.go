package postgres_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/stdout"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// eventLog is what a stdout publisher wrote: one event per line.
type eventLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *eventLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// streamedEvent is the part of an event the streaming tests look at.
type streamedEvent struct {
	ID   string
	LSN  string
	Op   string
	Data struct {
		ID  int64
		Grp string
	}
	body string
}

// events returns the events in publishing order, each id once (a re-sent
// event must have the same body: the test fails otherwise).
func (l *eventLog) events(t *testing.T) []streamedEvent {
	t.Helper()
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	var out []streamedEvent
	seen := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev streamedEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event is not JSON: %v: %s", err, sc.Text())
		}
		ev.body = sc.Text()
		if prev, ok := seen[ev.ID]; ok {
			if prev != ev.body {
				t.Fatalf("event %s re-sent with another body:\n%s\n%s", ev.ID, prev, ev.body)
			}
			continue
		}
		seen[ev.ID] = ev.body
		out = append(out, ev)
	}
	return out
}

// waitGrp waits until an event of group grp was published.
func (l *eventLog) waitGrp(t *testing.T, done <-chan error, grp string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, ev := range l.events(t) {
			if ev.Data.Grp == grp {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event of %q after 30s", grp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const bigDDL = `CREATE TABLE big (id bigint PRIMARY KEY, grp text NOT NULL, pad text)`

func bigMapping() config.Table {
	return config.Table{Table: "public.big", Operations: []string{"insert", "update", "delete"}, Key: []string{"id"},
		Columns: []config.Column{{Column: "id"}, {Column: "grp"}, {Column: "pad"}}}
}

// insertBig inserts rows [from, to] of group grp with 200-byte pads: 400
// rows are over the 64kB of logical_decoding_work_mem the tests stream with.
func insertBig(from, to int, grp string) string {
	return fmt.Sprintf(`INSERT INTO big SELECT g, '%s', repeat('x', 200) FROM generate_series(%d, %d) g`, grp, from, to)
}

// streamedConnector runs a subscription of slot into a stdout pipeline whose
// lines go to log.
type streamedConnector struct {
	log  *eventLog
	done chan error
	stop context.CancelFunc
	logs *logBuffer
}

// startStreamed streams slot (publication cdc) with logical_decoding_work_mem
// at its minimum, 64kB, so that any transaction of a few hundred rows is
// streamed before its commit when streaming is asked for.
func startStreamed(t *testing.T, dsn, slot string, ms []*connector.Mapping, streaming bool, memory int64) *streamedConnector {
	t.Helper()
	c := &streamedConnector{log: &eventLog{}, done: make(chan error, 1), logs: &logBuffer{}}
	// The log is kept (the test looks for what was streamed) and shown
	// when the test fails.
	log := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s connector log:\n%s", slot, c.logs.String())
		}
	})
	opts := stdoutPipeline()
	opts.MaxInflightBytes = memory
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), stdout.New(c.log), opts, nil, log)
	sub := postgres.New(postgres.Options{DSN: dsn + "&logical_decoding_work_mem=64kB", Pool: newPool(t, dsn), Slot: slot, Publication: "cdc", Mappings: ms, Acked: pipe.Acked,
		StatusInterval: 100 * time.Millisecond, ReconnectInitial: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		Streaming: streaming, StreamMemory: memory, StreamSpillDir: t.TempDir()}, pipe.Handle, log)
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go func() {
		errs := make(chan error, 1)
		go func() { errs <- pipe.Run(ctx) }()
		err := sub.Run(ctx)
		cancel()
		if perr := <-errs; err == nil {
			err = perr
		}
		c.done <- err
	}()
	t.Cleanup(cancel)
	deadline := time.Now().Add(30 * time.Second)
	for !sub.Streaming() {
		if time.Now().After(deadline) {
			t.Fatal("not streaming after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

func (c *streamedConnector) close(t *testing.T) {
	t.Helper()
	c.stop()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("connector did not stop")
	}
}

// TestStreamedTransactions: large transactions streamed before their commit
// (source.streaming) publish exactly what a connector reading them at
// commit publishes, with the same ids, in the same order: nothing before
// the commit, nothing of an aborted transaction or of a savepoint rolled
// back, interleaved streams and small transactions in commit order, a
// schema change in an aborted stream without effect, and a stream broken
// off mid-transaction read again whole. The streaming connector's memory
// bound is 16 KiB, so its transactions spill to files.
func TestStreamedTransactions(t *testing.T) {
	integration(t)
	testStreamedTransactions(t, testenv.PG(t))
}

// testStreamedTransactions is TestStreamedTransactions on pg's server; on
// PostgreSQL 13, which cannot stream, streaming falls back to reading at
// commit with a warning, and the events are the same.
func testStreamedTransactions(t *testing.T, pg *testenv.Postgres) {
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	exec(t, dsn, bigDDL)
	admin := connect(t, dsn)
	ms := compile(t, bigMapping())
	if _, err := dba.ApplyPublication(ctx, admin, dba.ApplyOptions{Publication: "cdc", Mappings: ms}); err != nil {
		t.Fatal(err)
	}
	for _, slot := range []string{"cdc_on", "cdc_off"} {
		if _, err := dba.EnsureSlot(ctx, admin, slot, false); err != nil {
			t.Fatal(err)
		}
	}
	canStream := postgres.Supports(pg.Version()*10000, postgres.FeatureStreaming)
	on := startStreamed(t, dsn, "cdc_on", ms, true, 16<<10)
	off := startStreamed(t, dsn, "cdc_off", ms, false, 0)

	a, b := connect(t, dsn), connect(t, dsn)
	run := func(conn *pgx.Conn, sqls ...string) {
		t.Helper()
		for _, s := range sqls {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	// A committed transaction, an aborted one, one with a savepoint
	// rolled back, updates and deletes.
	run(a, insertBig(1, 400, "committed"))
	run(a, "BEGIN", insertBig(2001, 2400, "aborted"))
	if canStream {
		// PostgreSQL 17+ drops a transaction it already knows aborted
		// instead of streaming it: roll back once its stream began.
		var xid int64
		if err := a.QueryRow(ctx, "SELECT txid_current() % 4294967296").Scan(&xid); err != nil {
			t.Fatal(err)
		}
		started := fmt.Sprintf(`msg="streamed transaction started" xid=%d`, xid)
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(on.logs.String(), started) {
			if time.Now().After(deadline) {
				t.Fatalf("transaction %d not streamed within 30s", xid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	run(a, "ROLLBACK")
	run(a, "BEGIN", insertBig(3001, 3200, "kept1"), "SAVEPOINT s",
		insertBig(3501, 3900, "rolledback"), "ROLLBACK TO s", insertBig(4501, 4550, "kept2"), "COMMIT")
	run(a, "BEGIN", `UPDATE big SET pad = repeat('y', 200) WHERE grp = 'committed'`, `DELETE FROM big WHERE id <= 10`, "COMMIT")

	// Interleaved streams (A, B, A) and small transactions in between.
	run(a, "BEGIN", insertBig(5001, 5300, "A"))
	run(b, "BEGIN", insertBig(6001, 6300, "B"))
	run(admin, insertBig(7001, 7001, "small1"))
	run(a, insertBig(5501, 5800, "A"))
	run(admin, insertBig(7002, 7002, "small2"))
	on.log.waitGrp(t, on.done, "small2")
	for _, ev := range on.log.events(t) {
		if ev.Data.Grp == "A" || ev.Data.Grp == "B" {
			t.Fatalf("event of a transaction not committed yet was published: %s", ev.body)
		}
	}
	run(b, "COMMIT")
	run(admin, insertBig(7003, 7003, "small3"))
	run(a, "COMMIT")
	run(admin, insertBig(7004, 7004, "small4"))

	// A schema change in an aborted stream leaves the relation as it was.
	run(a, "BEGIN", `ALTER TABLE big ADD COLUMN extra text DEFAULT 'e'`, insertBig(8001, 8400, "altered"), "ROLLBACK")
	run(admin, insertBig(9001, 9001, "after"))

	// A stream broken off mid-transaction: the walsender ends after part
	// of the transaction was streamed; the server streams it again whole.
	var before int64
	if canStream {
		before = streamTxns(t, admin, "cdc_on")
	}
	run(a, "BEGIN", insertBig(10001, 10400, "broken"))
	if canStream {
		deadline := time.Now().Add(30 * time.Second)
		for streamTxns(t, admin, "cdc_on") == before {
			if time.Now().After(deadline) {
				t.Fatal("the transaction was not streamed before its commit")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	run(admin, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdc_on' AND active`)
	run(a, insertBig(11001, 11050, "broken"), "COMMIT")
	run(admin, insertBig(99999, 99999, "end"))

	on.log.waitGrp(t, on.done, "end")
	off.log.waitGrp(t, off.done, "end")
	got, want := on.log.events(t), off.log.events(t)

	// The same events, ids and order as read at commit.
	if len(got) != len(want) {
		t.Errorf("streaming published %d events, reading at commit %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].body != want[i].body {
			t.Fatalf("event %d differs:\nstreaming: %s\nat commit: %s", i, got[i].body, want[i].body)
		}
	}
	// What each group published, and the commit order.
	count := map[string]int{}
	var order []string
	for _, ev := range got {
		grp := ev.Data.Grp
		if ev.Op == "delete" {
			grp = "committed" // a delete carries the key only
		}
		count[grp+"/"+ev.Op]++
		if len(order) == 0 || order[len(order)-1] != grp {
			order = append(order, grp)
		}
		if strings.Contains(ev.body, `"extra"`) {
			t.Errorf("column of an aborted ALTER TABLE published: %s", ev.body)
		}
	}
	wantCount := map[string]int{"committed/insert": 400, "kept1/insert": 200, "kept2/insert": 50, "committed/update": 400,
		"committed/delete": 10, "A/insert": 600, "B/insert": 300, "small1/insert": 1, "small2/insert": 1, "small3/insert": 1,
		"small4/insert": 1, "after/insert": 1, "broken/insert": 450, "end/insert": 1}
	if fmt.Sprint(count) != fmt.Sprint(wantCount) {
		t.Errorf("events per group and operation:\n got %v\nwant %v", count, wantCount)
	}
	wantOrder := "committed kept1 kept2 committed small1 small2 B small3 A small4 after broken end"
	if g := strings.Join(order, " "); g != wantOrder {
		t.Errorf("commit order %q, want %q", g, wantOrder)
	}
	if canStream {
		if n := streamTxns(t, admin, "cdc_on"); n == 0 {
			t.Error("pg_stat_replication_slots.stream_txns is 0: nothing was streamed")
		}
		for _, line := range []string{"streamed transaction aborted", "streamed subtransaction rolled back"} {
			if !strings.Contains(on.logs.String(), line) {
				t.Errorf("no %q: the abort was not streamed", line)
			}
		}
	} else if !strings.Contains(on.logs.String(), "cannot stream transactions before their commit") {
		t.Errorf("PostgreSQL %d: no warning that streaming falls back:\n%s", pg.Version(), on.logs.String())
	}
	waitSlotConfirmed(t, admin, "cdc_on")
	on.close(t)
	off.close(t)
}

// streamTxns is the slot's pg_stat_replication_slots.stream_txns.
func streamTxns(t *testing.T, conn *pgx.Conn, slot string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name = $1`, slot).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitSlotConfirmed waits until slot confirmed the current WAL position.
func waitSlotConfirmed(t *testing.T, conn *pgx.Conn, slot string) {
	t.Helper()
	ctx := context.Background()
	var target string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`, target, slot).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s did not confirm %s", slot, target)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var _ io.Writer = (*eventLog)(nil)
