package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// failoverRig is a primary with a streaming standby set up as docs/dba.md's
// failover runbook says (physical slot, hot_standby_feedback,
// sync_replication_slots and synchronized_standby_slots where the version
// has them), a database with the apps table, a topic with a queue, and a
// connector config whose DSN lists both servers with
// target_session_attrs=read-write.
type failoverRig struct {
	*e2e
	primary, standby *testenv.Postgres
	// multiDSN is the connector's DSN: both hosts, read-write only.
	multiDSN string
}

func newFailoverRig(t *testing.T, version int) *failoverRig {
	t.Helper()
	primary := testenv.OwnPG(t, testenv.PostgresOptions{Version: version})
	e := newE2E(t, primary)
	settings := map[string]string{"hot_standby_feedback": "on"}
	if version >= 17 {
		settings["sync_replication_slots"] = "on"
	}
	standby := testenv.OwnStandby(t, primary, testenv.StandbyOptions{Slot: "standby1", Settings: settings})
	db := e.dsn[strings.LastIndex(e.dsn, "/")+1 : strings.Index(e.dsn, "?")]
	r := &failoverRig{e2e: e, primary: primary, standby: standby,
		multiDSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write", primary.Port, standby.Port, db)}
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "dsn: "+e.dsn+"\n", "dsn: "+r.multiDSN+"\n", 1))
	if !strings.Contains(string(cfg), r.multiDSN) {
		t.Fatalf("config has no dsn line to replace:\n%s", cfg)
	}
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// writer commits transactions of rowsPerTx rows into apps through the
// multi-host DSN until stopped, reconnecting after errors. Ids are never
// reused: a transaction whose commit failed may or may not have committed.
type writer struct {
	dsn    string
	mu     sync.Mutex
	next   int
	errors int
	stop   chan struct{}
	done   chan struct{}
}

// The writer's pace: about 400 rows/s in 40 transactions/s, which the
// connector publishes to the emulator as they come on a loaded machine.
const (
	rowsPerTx = 10
	txEvery   = 25 * time.Millisecond
)

func startWriter(t *testing.T, dsn string) *writer {
	w := &writer{dsn: dsn, next: 1, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(txEvery):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if conn == nil {
				c, err := pgx.Connect(ctx, dsn)
				if err != nil {
					cancel()
					w.mu.Lock()
					w.errors++
					w.mu.Unlock()
					continue
				}
				conn = c
			}
			w.mu.Lock()
			from := w.next
			w.next += rowsPerTx
			w.mu.Unlock()
			_, err := conn.Exec(ctx, insertApps(from, from+rowsPerTx-1))
			cancel()
			if err != nil {
				conn.Close(context.Background())
				conn = nil
				w.mu.Lock()
				w.errors++
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// waitSynced waits until the standby holds slot as a synchronised,
// persistent slot (the one a promotion keeps).
func waitSynced(t *testing.T, standby *testenv.Postgres, db, slot string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var synced bool
		err := testenvQueryRow(standby.DSN(db), `SELECT coalesce(bool_and(synced AND NOT temporary), false) FROM pg_replication_slots WHERE slot_name = '`+slot+`'`, &synced)
		if err == nil && synced {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s not synchronised to the standby after 60s (last error: %v); standby log:\n%s", slot, err, tail(readFile(standby.LogPath), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// committedIDs are the application ids present on the (new) primary.
func committedIDs(t *testing.T, dsn string) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT application_id FROM apps ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// failoverResult is one row of docs/reliability.md's failover table.
type failoverResult struct {
	Committed, Received, Lost, Phantom, Duplicates int
	// Promote is how long the standby took to promote; Resume how long
	// after the promotion the connector streamed from the new primary.
	Promote, Resume time.Duration
}

// TestFailover: a PostgreSQL 17 primary with a streaming standby that
// synchronises the connector's failover slot. While a writer commits rows
// and the connector streams them, the primary stops (immediate: a crash)
// and the standby is promoted. The connector, whose DSN lists both servers
// with target_session_attrs=read-write, reconnects to the new primary and
// continues from the synchronised slot: every row the new primary has
// reaches the queue, re-sent rows carry the same event id, and no event
// names a row the new primary does not have.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	start := time.Now()
	r := newFailoverRig(t, 17)
	db := r.dsn[strings.LastIndex(r.dsn, "/")+1 : strings.Index(r.dsn, "?")]
	t.Logf("primary and standby ready in %v", time.Since(start).Round(time.Millisecond))

	// Before the primary waits for its standby, check says what to set.
	rep, res := checkJSON(t, "--config", r.config)
	if sss := rowsWith(rep, "synchronized_standby_slots"); len(sss) != 1 || sss[0].Status != dba.CheckWarn ||
		!strings.Contains(sss[0].Fix, "ALTER SYSTEM SET synchronized_standby_slots = 'standby1'") {
		t.Fatalf("check without synchronized_standby_slots: %+v\n%s", sss, res)
	}
	testenv.MustExec(t, r.primary.DSN("postgres"), `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`)
	testenv.MustExec(t, r.primary.DSN("postgres"), `SELECT pg_reload_conf()`)

	p := startProc(t, "run", "--config", r.config)
	p.waitLog(t, `"msg":"streaming"`, 60*time.Second)
	if !strings.Contains(p.output(), `"failover":true`) {
		t.Fatalf("the connector did not create its slot with failover:\n%s", p.output())
	}
	// The standby's copy becomes persistent once the primary's slot moved
	// past what the standby can keep: before the load, so that the
	// connector is not behind then.
	start = time.Now()
	waitSynced(t, r.standby, db, "cdc")
	t.Logf("slot synchronised to the standby in %v", time.Since(start).Round(time.Millisecond))
	w := startWriter(t, r.multiDSN) // the connector streams under load
	rep, res = checkJSON(t, "--config", r.config)
	for _, want := range []string{"slot cdc failover", "synchronized_standby_slots", fmt.Sprintf("standby 127.0.0.1:%d", r.standby.Port)} {
		if got := rowsWith(rep, want); len(got) != 1 || got[0].Status != dba.CheckOK {
			t.Errorf("check row %q: %+v", want, got)
		}
	}
	if t.Failed() {
		t.Fatalf("check with a synchronised standby:\n%s", res)
	}
	time.Sleep(2 * time.Second)
	streamsBefore := strings.Count(p.output(), `"msg":"streaming"`)
	if err := r.primary.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := r.standby.Promote(); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	deadline := promoted.Add(60 * time.Second)
	for strings.Count(p.output(), `"msg":"streaming"`) == streamsBefore {
		if time.Now().After(deadline) {
			t.Fatalf("the connector did not stream from the new primary within 60s:\n%s", tail(p.output(), 30))
		}
		select {
		case <-p.Done():
			t.Fatalf("the connector exited (%v) after the failover:\n%s", p.Err(), tail(p.output(), 30))
		case <-time.After(20 * time.Millisecond):
		}
	}
	resumed := time.Now()
	time.Sleep(3 * time.Second) // rows written on the new primary
	w.halt()

	fr := collectFailover(t, r, r.standby.DSN(db))
	fr.Promote, fr.Resume = promoted.Sub(killed), resumed.Sub(promoted)
	t.Logf("failover PostgreSQL 17: rows committed %d, received %d, lost %d, phantom %d, duplicates %d; promotion %v, resumed %v after it (writer errors %d)",
		fr.Committed, fr.Received, fr.Lost, fr.Phantom, fr.Duplicates, fr.Promote.Round(time.Millisecond), fr.Resume.Round(time.Millisecond), w.errors)
	writeFailoverResult(t, fr)
	if fr.Lost != 0 || fr.Phantom != 0 {
		t.Fatalf("lost %d rows, published %d rows the new primary does not have", fr.Lost, fr.Phantom)
	}
}

// collectFailover compares what the queue received with what the new
// primary has.
func collectFailover(t *testing.T, r *failoverRig, dsn string) failoverResult {
	t.Helper()
	ids := committedIDs(t, dsn)
	c, err := r.emu.Collect(context.Background(), r.queue, len(ids), 3*time.Minute)
	if err != nil {
		t.Error(err)
	}
	if len(c.Conflicts) > 0 {
		t.Fatalf("events re-sent with a different body: %v", c.Conflicts[:min(5, len(c.Conflicts))])
	}
	got := map[int64]string{}
	for id, body := range c.ByID {
		var ev struct {
			Data struct {
				ApplicationID int64 `json:"application_id"`
			}
		}
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatalf("bad body: %v: %s", err, body)
		}
		if prev, dup := got[ev.Data.ApplicationID]; dup {
			t.Fatalf("application %d published under two ids: %s and %s", ev.Data.ApplicationID, prev, id)
		}
		got[ev.Data.ApplicationID] = id
	}
	res := failoverResult{Committed: len(ids), Received: len(got), Duplicates: c.Duplicates()}
	var missing []int64
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	res.Lost = len(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d rows of the new primary never reached the queue (first: %v)", len(missing), len(ids), missing[:min(10, len(missing))])
	}
	for id := range got {
		if _, ok := slices.BinarySearch(ids, id); !ok {
			res.Phantom++
		}
	}
	return res
}

// writeFailoverResult records the figures for docs/reliability.md when
// BAITORU_FAILOVER_RESULT names a file.
func writeFailoverResult(t *testing.T, res failoverResult) {
	path := os.Getenv("BAITORU_FAILOVER_RESULT")
	if path == "" {
		return
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Error(err)
	}
}
