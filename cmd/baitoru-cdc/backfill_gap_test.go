package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestBackfillGap: backfill start --gap fills a gap the connector recorded
// (a closed one: the table left the publication and came back). It
// requests the backfill gap-<id> of the gap's table, every row (the stream
// does not tell which rows changed in the span), idempotently; an open gap,
// a gap of lost deletes and an unknown id are refused with the fix. check
// shows the gap being filled while the request waits, and filled (✓, with
// the rows re-sent) once the real connector ran it: every row of the table
// arrived as a read event.
func TestBackfillGap(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := newE2E(t, testenv.PG(t))
	const rows = 300
	// Rows that exist before the slot: only a backfill sends them.
	testenv.MustExec(t, e.dsn, insertApps(1, rows))
	if res := runCLI(t, "setup", "--config", e.config); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	var closed, open, deletes int64
	for _, g := range []struct {
		id             *int64
		kind, to, what string
	}{
		{&closed, "table", "'0/20'", "the table left the publication"},
		{&open, "columns", "NULL", "a mapped column left the column list"},
		{&deletes, "delete", "'0/30'", "deletes were not published"},
	} {
		if err := testenvQueryRow(e.dsn, fmt.Sprintf(`INSERT INTO baitoru_cdc.gaps (slot, publication, table_name, kind, from_lsn, from_time, to_lsn, to_time, reason)
			VALUES ('cdc', 'cdc', 'public.apps', '%s', '0/10', '2026-12-01 09:00:00+09', %s::pg_lsn, now(), '%s') RETURNING id`, g.kind, g.to, g.what), g.id); err != nil {
			t.Fatal(err)
		}
	}
	gapID := fmt.Sprintf("gap-%d", closed)
	for _, c := range []struct {
		args []string
		code int
		out  []string
	}{
		{[]string{"--gap", fmt.Sprint(closed), "--wait=false"}, 0, []string{
			fmt.Sprintf("gap %d of public.apps: the table left the publication, changes from 0/10 (2026-12-01T00:00:00Z) to 0/20", closed),
			"Every row of the table the mapping publishes is re-sent",
			`--where "updated_at >= '2026-12-01 00:00:00Z'"`,
			"backfill " + gapID + " requested: public.apps (every row)"}},
		{[]string{"--gap", fmt.Sprint(closed), "--wait=false"}, 0, []string{"backfill " + gapID + " was already requested"}},
		{[]string{"--gap", fmt.Sprint(open), "--wait=false"}, 1, []string{fmt.Sprintf("gap %d of public.apps is still open", open), "align the publication first"}},
		{[]string{"--gap", fmt.Sprint(deletes), "--wait=false"}, 1, []string{"lost deletes, which a backfill cannot re-send", fmt.Sprintf("DELETE FROM baitoru_cdc.gaps WHERE id = %d", deletes)}},
		{[]string{"--gap", "999", "--wait=false"}, 1, []string{"gap 999 of slot cdc: no such gap"}},
		{[]string{"--gap", fmt.Sprint(closed), "--table", "public.apps"}, 2, []string{"give --gap or --table, not both"}},
		{[]string{"--gap", fmt.Sprint(closed), "--id", "x"}, 2, []string{"give --gap or --id, not both"}},
	} {
		res := runCLI(t, append([]string{"backfill", "start", "--config", e.config}, c.args...)...)
		for _, want := range c.out {
			if res.code != c.code || !strings.Contains(res.stdout+res.stderr, want) {
				t.Errorf("start %s: exit %d, want %d with %q: %s", strings.Join(c.args, " "), res.code, c.code, want, res)
			}
		}
	}
	var n int
	if err := testenvQueryRow(e.dsn, `SELECT count(*) FROM baitoru_cdc.backfill_requests WHERE action = 'start'`, &n); err != nil || n != 1 {
		t.Fatalf("start requests: %d %v (want the one of gap %d)", n, err, closed)
	}
	gapRow := func(want dba.CheckStatus, substr string) {
		t.Helper()
		rep, _ := checkJSON(t, "--config", e.config)
		for _, r := range rowsWith(rep, "gap public.apps") {
			if strings.Contains(r.Observed, fmt.Sprintf("(gap %d)", closed)) {
				if r.Status != want || !strings.Contains(r.Observed+" "+r.Fix, substr) {
					t.Errorf("check's row of gap %d: %+v, want %s with %q", closed, r, want, substr)
				}
				return
			}
		}
		t.Errorf("check lists no row of gap %d: %+v", closed, rowsWith(rep, "gap"))
	}
	gapRow(dba.CheckWarn, "being filled: backfill "+gapID+" requested")

	// The connector runs it; start --gap follows it to the end.
	p := startProc(t, "run", "--config", e.config)
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	res := runCLI(t, "backfill", "start", "--config", e.config, "--gap", fmt.Sprint(closed))
	if res.code != 0 || !strings.Contains(res.stdout, "done") {
		t.Fatalf("start --gap (following): %s", res)
	}
	c, err := e.emu.Collect(context.Background(), e.queue, rows, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	read := map[int64]bool{}
	for _, body := range c.ByID {
		var ev struct {
			Op       string `json:"op"`
			Backfill string `json:"backfill"`
			Data     struct {
				ApplicationID int64 `json:"application_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Op != "read" || ev.Backfill != gapID {
			t.Errorf("event %s: op %s backfill %q, want read of %s", body, ev.Op, ev.Backfill, gapID)
		}
		read[ev.Data.ApplicationID] = true
	}
	for a := int64(1); a <= rows; a++ {
		if !read[a] {
			t.Errorf("application %d was not re-sent", a)
		}
	}
	gapRow(dba.CheckOK, fmt.Sprintf("filled: backfill %s re-sent %d rows", gapID, rows))
}
