package postgres_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestHeartbeat: the heartbeat writes a non-transactional logical message
// with its prefix into the source database's WAL at every interval (seen
// through a second, test_decoding slot), stops writing when its context
// ends, and the connector's stream decodes those messages without an
// event or an error and confirms past them. A heartbeat that cannot
// connect logs one warning and keeps trying; it never stops the connector.
func TestHeartbeat(t *testing.T) {
	integration(t)
	testHeartbeat(t, testenv.PG(t))
}

// testHeartbeat is TestHeartbeat on pg's server. Before PostgreSQL 14
// pgoutput has no messages option: the heartbeat still writes its
// messages, the stream does not carry them, and the connector confirms
// past them from the server's keepalives.
func testHeartbeat(t *testing.T, pg *testenv.Postgres) {
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	exec(t, dsn, appsDDL, `CREATE TABLE hb_flush (x int)`)
	conn := connect(t, dsn)
	ms := compile(t, appsMapping())
	if _, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "cdc", Mappings: ms}); err != nil {
		t.Fatal(err)
	}
	if _, err := dba.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	exec(t, dsn, `SELECT pg_create_logical_replication_slot('hb_probe', 'test_decoding')`)
	rec := startRecorded(t, dsn, ms)

	messages := func() (n int, last string) {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT lsn::text, data FROM pg_logical_slot_peek_changes('hb_probe', NULL, NULL) WHERE data LIKE 'message:%'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var lsn, data string
			if err := rows.Scan(&lsn, &data); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(data, "message: transactional: 0 prefix: "+postgres.HeartbeatPrefix+",") {
				t.Fatalf("unexpected logical message: %s", data)
			}
			n, last = n+1, lsn
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return n, last
	}

	const interval = 100 * time.Millisecond
	hbCtx, hbStop := context.WithCancel(ctx)
	hbDone := make(chan error, 1)
	go func() { hbDone <- postgres.NewHeartbeat(newPool(t, dsn), interval, testLogger(t)).Run(hbCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	var n int
	var last string
	for n, last = messages(); n < 5; n, last = messages() {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeat messages after 20s, want 5", n)
		}
		time.Sleep(interval / 2)
	}
	hbStop()
	if err := <-hbDone; err != nil {
		t.Fatalf("heartbeat Run: %v", err)
	}
	// Non-transactional messages are not flushed on their own; decoding
	// reads flushed WAL only. A committed write flushes everything before it.
	flush := func() { exec(t, dsn, `INSERT INTO hb_flush VALUES (1)`) }
	flush()
	stopped, _ := messages()
	time.Sleep(5 * interval)
	flush()
	if after, _ := messages(); after != stopped {
		t.Fatalf("heartbeat wrote %d messages after its context ended", after-stopped)
	}

	// The connector's stream carried them: it confirms past the last one
	// without producing an event.
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'`, last).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot cdc did not confirm past the heartbeat at %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec.mu.Lock()
	got := len(rec.changes)
	rec.mu.Unlock()
	if got != 0 {
		t.Fatalf("heartbeats produced %d changes", got)
	}
	rec.stop(t)

	// Unreachable database: one warning, no error, Run returns nil on stop.
	var logs logBuffer
	bad := strings.Replace(dsn, "/"+conn.Config().Database+"?", "/no_such_database_hb?", 1)
	badCtx, badStop := context.WithCancel(ctx)
	badDone := make(chan error, 1)
	go func() {
		badDone <- postgres.NewHeartbeat(newPool(t, bad), 20*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil))).Run(badCtx)
	}()
	for !strings.Contains(logs.String(), "heartbeat failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning from a failing heartbeat; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(10 * 20 * time.Millisecond)
	badStop()
	if err := <-badDone; err != nil {
		t.Fatalf("failing heartbeat Run returned %v; want nil (it never stops the connector)", err)
	}
	if c := strings.Count(logs.String(), "heartbeat failed"); c != 1 {
		t.Fatalf("failing heartbeat logged %d warnings, want 1 while it keeps failing:\n%s", c, logs.String())
	}
}
