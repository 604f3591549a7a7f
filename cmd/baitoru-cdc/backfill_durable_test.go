package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestBackfillDurable: a backfill of 3,000 rows (small chunks, capped at
// 600 rows/s so it lasts a few seconds) while a writer updates rows of the
// table, through the three things it must survive: SIGKILL of the
// connector's process (restarted), a PostgreSQL crash and restart, and a
// takeover by the standby connector (the active one killed). It resumes
// after the last chunk SNS accepted: every row of the table arrives at
// least once as a read, re-sent reads keep their ids, and per key no read
// carries an older state than a live change published before it (events
// ordered by their position in the WAL: a consumer applying the newest
// wins holds the table).
func TestBackfillDurable(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.PG(t)
	e := newE2E(t, pg)
	const rows = 3000
	testenv.MustExec(t, e.dsn, insertApps(1, rows))
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("  reconnect:\n"), []byte("  backfill:\n    chunk_rows: 50\n    max_rows_per_second: 600\n  reconnect:\n"), 1)
	cfg = bytes.Replace(cfg, []byte("log:\n"), []byte("metrics:\n  listen: \"127.0.0.1:0\"\nlog:\n"), 1)
	cfg = bytes.Replace(cfg, []byte("    key: [company_id]\n"), []byte("    operations: [insert, update]\n    key: [application_id]\n"), 1)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, "setup", "--config", e.config); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	a := startProc(t, "run", "--config", e.config)
	a.waitLog(t, `"msg":"streaming"`, 30*time.Second)

	// Live updates of rows across the table while the backfill runs.
	var updates atomic.Int64
	var phase atomic.Value // what the test is doing, for the messages
	phase.Store("backfill")
	updatedIn := map[int]string{} // v -> phase (writer goroutine, read after it ended)
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			id := (v*7919)%rows + 1
			updatedIn[v] = phase.Load().(string)
			if err := testenv.Exec(context.Background(), e.dsn, fmt.Sprintf(`UPDATE apps SET answers = jsonb_build_object('n', application_id, 'v', %d) WHERE application_id IN (%d, %d)`, v, id, id%rows+1)); err == nil {
				updates.Add(1)
			}
		}
	}()
	if res := runCLI(t, "backfill", "start", "--config", e.config, "--table", "public.apps", "--id", "bf-durable", "--wait=false"); res.code != 0 {
		t.Fatalf("backfill start: %s", res)
	}
	done := func() (status string, n int64) {
		_ = testenvQueryRow(e.dsn, `SELECT coalesce((SELECT status FROM baitoru_cdc.backfills WHERE backfill_id = 'bf-durable'), ''), coalesce((SELECT rows_done FROM baitoru_cdc.backfills WHERE backfill_id = 'bf-durable'), 0)`, &status, &n)
		return status, n
	}
	waitRows := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			st, got := done()
			if st == "done" {
				t.Fatalf("the backfill ended before %s (at %d rows): the disruption did not happen inside it", what, got)
			}
			if got >= n {
				t.Logf("%s at %d rows done", what, got)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: the backfill did not reach %d rows", what, n)
	}

	// 1. SIGKILL, then a new process.
	waitRows("SIGKILL", 300)
	phase.Store("SIGKILL")
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.wait(t, 10*time.Second)
	a = startProc(t, "run", "--config", e.config)
	aURL := "http://" + logAttr(t, a, "serving /metrics, /healthz, /readyz", "addr")
	a.waitLog(t, `"msg":"backfill resumed"`, 30*time.Second)

	// A standby waits for the slot (it takes over in 3).
	b := startProc(t, "run", "--config", e.config)
	bURL := "http://" + logAttr(t, b, "serving /metrics, /healthz, /readyz", "addr")
	b.waitLog(t, `"msg":"waiting for the replication slot; another connector streams it"`, 60*time.Second)

	// 2. PostgreSQL crashes (no checkpoint) and restarts.
	waitRows("PostgreSQL restart", 1200)
	phase.Store("PostgreSQL restart")
	if err := pg.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}

	// 3. The active connector is killed: the standby takes over.
	waitRows("takeover", 2000)
	phase.Store("takeover")
	am := scrape(t, aURL+"/metrics")
	t.Logf("A before the kill: rows read %v, read events published %v, chunks %v", sample(am, "baitoru_cdc_backfill_rows_read_total", "table", "public.apps"), sample(am, "baitoru_cdc_backfill_rows_published_total", "table", "public.apps"), sample(am, "baitoru_cdc_backfill_chunks_total", "table", "public.apps"))
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.wait(t, 10*time.Second)
	b.waitLog(t, `"msg":"backfill resumed"`, 60*time.Second)

	deadline := time.Now().Add(90 * time.Second)
	for st, _ := done(); st != "done"; st, _ = done() {
		if time.Now().After(deadline) || st != "running" {
			t.Fatalf("backfill %q after the disruptions", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-writerDone
	bm := scrape(t, bURL+"/metrics")
	t.Logf("B: SNS accepted %v read events, %v updates", sample(bm, "baitoru_cdc_events_published_total", "table", "public.apps", "op", "read"), sample(bm, "baitoru_cdc_events_published_total", "table", "public.apps", "op", "update"))
	t.Logf("B: rows read %v, read events published %v, chunks %v", sample(bm, "baitoru_cdc_backfill_rows_read_total", "table", "public.apps"), sample(bm, "baitoru_cdc_backfill_rows_published_total", "table", "public.apps"), sample(bm, "baitoru_cdc_backfill_chunks_total", "table", "public.apps"))
	// A marker after everything; once the slot is confirmed past it, SNS
	// accepted every event before it (the connector confirms nothing
	// earlier), so the queue holds them all.
	testenv.MustExec(t, e.dsn, insertApps(rows+1, rows+1))
	var marker string
	if err := testenvQueryRow(e.dsn, `SELECT pg_current_wal_lsn()::text`, &marker); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for confirmed := false; !confirmed; {
		if err := testenvQueryRow(e.dsn, fmt.Sprintf(`SELECT coalesce(confirmed_flush_lsn >= '%s'::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = 'cdc'`, marker), &confirmed); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot was not confirmed past %s", marker)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var want int
	if err := testenvQueryRow(e.dsn, `SELECT count(*) FROM apps`, &want); err != nil {
		t.Fatal(err)
	}
	// Everything is in the queue: receive until it runs dry (a round of
	// several seconds brings nothing new).
	c, err := e.emu.CollectAll(context.Background(), e.queue, 5*time.Second, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Conflicts) > 0 {
		t.Errorf("events re-sent with another body: %v", c.Conflicts)
	}
	type ev struct {
		ID, Op, Answers string
		lsn             uint64
	}
	byKey := map[int64][]ev{}
	for id, body := range c.ByID {
		var m struct {
			Op   string `json:"op"`
			LSN  string `json:"lsn"`
			Data struct {
				ApplicationID int64           `json:"application_id"`
				Answers       json.RawMessage `json:"answers"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		var hi, lo uint64
		fmt.Sscanf(m.LSN, "%X/%X", &hi, &lo)
		byKey[m.Data.ApplicationID] = append(byKey[m.Data.ApplicationID], ev{ID: id, Op: m.Op, lsn: hi<<32 | lo, Answers: string(m.Data.Answers)})
	}
	final := map[int64]string{}
	conn, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rs, err := conn.Query(context.Background(), `SELECT application_id, answers::text FROM apps`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id int64
		var answers string
		if err := rs.Scan(&id, &answers); err != nil {
			t.Fatal(err)
		}
		var norm bytes.Buffer
		_ = json.Compact(&norm, []byte(answers))
		final[id] = norm.String()
	}
	rs.Close()
	if len(final) != want {
		t.Fatalf("read %d rows of %d", len(final), want)
	}
	ops := map[string]int{}
	for _, evs := range byKey {
		for _, e := range evs {
			ops[e.Op]++
		}
	}
	t.Logf("events by op: %v", ops)
	bReads := 0
	for id := int64(2251); id <= rows; id++ {
		for _, e := range byKey[id] {
			if e.Op == "read" {
				bReads++
				break
			}
		}
	}
	t.Logf("keys 2251-%d (B's chunks) with a read in the queue: %d", rows, bReads)
	reads, stale := 0, 0
	for id := int64(1); id <= rows; id++ {
		evs := byKey[id]
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].lsn < evs[j].lsn })
		last := ""
		read := false
		for _, e := range evs {
			if e.Op == "read" {
				read = true
				reads++
				if last != "" && e.Answers != last {
					stale++
					t.Errorf("application %d: read %s at %X carries %s after a live change to %s", id, e.ID, e.lsn, e.Answers, last)
				}
			}
			last = e.Answers
		}
		if !read && len(evs) == 0 {
			// A row changed inside a chunk's window is not read: its
			// live event stands in.
			t.Errorf("application %d never arrived (no read, no live change)", id)
		}
		if len(evs) > 0 && last != final[id] {
			var v struct{ V int }
			_ = json.Unmarshal([]byte(final[id]), &v)
			t.Errorf("application %d: the newest event holds %s, the table %s (update %d, during %s; events %+v)", id, last, final[id], v.V, updatedIn[v.V], evs)
		}
	}
	t.Logf("%d rows, %d live updates, %d distinct reads, %d messages (%d repeated ids)", rows, updates.Load(), reads, len(c.Bodies), c.Duplicates())
}
