package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestMappedTableLeavesPublication: a mapped table dropped from the
// publication (by hand, or by DROP COLUMN … CASCADE of a published column)
// is noticed by the running connector within its status interval: an error
// naming the table and the position from which its changes are missing,
// repeated; /readyz not ready saying why; the metric at 1; the gap recorded
// in the database; the other table keeps streaming. A restart still reports
// it; once the table is back the gap is closed with its end.
// on_table_loss: stop exits 1 instead.
func TestMappedTableLeavesPublication(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, appsDDL)
	testenv.MustExec(t, dsn, `CREATE TABLE public.jobs (job_id bigint PRIMARY KEY, title text, note text)`)
	write := func(onLoss string) string {
		path := filepath.Join(t.TempDir(), "config.yaml")
		cfg := fmt.Sprintf(`
source:
  dsn: %s
  slot: cdc
  publication: cdc
  status_interval: 200ms
  on_table_loss: %s
  reconnect: {initial: 100ms, max: 500ms}
publisher:
  kind: stdout
metrics:
  listen: "127.0.0.1:0"
log:
  level: info
  format: json
  status_interval: 1s
tables:
  - table: public.apps
    columns:
      - column: application_id
      - column: company_id
  - table: public.jobs
    columns:
      - column: job_id
      - column: note
`, dsn, onLoss)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfgPath := write("continue")
	const lostMsg = "a mapped table is not in the publication: PostgreSQL leaves its changes out of the stream and they are NOT published"
	p := startProc(t, "run", "--config", cfgPath)
	base := "http://" + logAttr(t, p, "serving /metrics, /healthz, /readyz", "addr")
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	testenv.MustExec(t, dsn, "INSERT INTO apps (application_id, company_id) VALUES (1, 1)")
	p.waitLog(t, `"application_id":1,`, 30*time.Second)

	testenv.MustExec(t, dsn, "ALTER PUBLICATION cdc DROP TABLE apps")
	p.waitLog(t, regexp.QuoteMeta(lostMsg), 30*time.Second)
	testenv.MustExec(t, dsn, "INSERT INTO apps (application_id, company_id) VALUES (2, 2)")
	testenv.MustExec(t, dsn, "INSERT INTO jobs (job_id, note) VALUES (10, 'still streaming')")
	p.waitLog(t, `"job_id":10,`, 30*time.Second)
	eventually(t, 30*time.Second, "the error repeated", func() string {
		if n := len(logLines(p, lostMsg)); n < 2 {
			return fmt.Sprintf("%d error lines", n)
		}
		return ""
	})
	first := logLines(p, lostMsg)[0]
	if first["level"] != "ERROR" || first["table"] != "public.apps" || first["missing_from_lsn"] == nil || first["missing_from_time"] == nil ||
		!strings.Contains(fmt.Sprint(first["recover"]), "baitoru-cdc setup") || !strings.Contains(fmt.Sprint(first["recover"]), "backfill") {
		t.Fatalf("error line %v", first)
	}
	code, r := readyz(t, base)
	if code != http.StatusServiceUnavailable || !strings.Contains(r.Checks["publication"], "public.apps: not in publication cdc since ") {
		t.Fatalf("/readyz = %d %+v", code, r)
	}
	if v := sample(scrape(t, base+"/metrics"), telemetry.TableUnpublished, "table", "public.apps", "kind", "table"); v != 1 {
		t.Fatalf("%s{public.apps} = %v", telemetry.TableUnpublished, v)
	}
	if v := sample(scrape(t, base+"/metrics"), telemetry.TableUnpublished, "table", "public.jobs", "kind", "table"); v != 0 {
		t.Fatalf("%s{public.jobs} = %v", telemetry.TableUnpublished, v)
	}
	if strings.Contains(p.output(), `"application_id":2,`) {
		t.Fatal("the row inserted while the table was out of the publication was published: the test does not test a loss")
	}
	var open int
	var from string
	if err := pgQueryRow(context.Background(), dsn, `SELECT count(*), min(from_lsn::text) FROM baitoru_cdc.gaps
		WHERE slot = 'cdc' AND table_name = 'public.apps' AND to_lsn IS NULL`, &open, &from); err != nil || open != 1 || from != first["missing_from_lsn"] {
		t.Fatalf("open gaps: %d from %s (%v); the log says from %v", open, from, err, first["missing_from_lsn"])
	}

	// check shows it, with the fix.
	rep, _ := checkJSON(t, "--config", cfgPath)
	if rows := rowsWith(rep, "gap public.apps"); len(rows) != 1 || rows[0].Status != dba.CheckFail ||
		!strings.Contains(rows[0].Observed, "not in publication cdc since "+from) || !strings.Contains(rows[0].Fix, "backfill") {
		t.Fatalf("check's gap rows: %+v", rows)
	}

	// A restart (or the standby) still reports it, before setup puts the
	// table back (run does, source.create: true), then closes the gap.
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.wait(t, 30*time.Second)
	p2 := startProc(t, "run", "--config", cfgPath)
	p2.waitLog(t, regexp.QuoteMeta(lostMsg), 30*time.Second)
	p2.waitLog(t, regexp.QuoteMeta("a mapped table is in the publication again"), 30*time.Second)
	var to *string
	if err := pgQueryRow(context.Background(), dsn, `SELECT to_lsn::text FROM baitoru_cdc.gaps WHERE slot = 'cdc' AND table_name = 'public.apps'`, &to); err != nil || to == nil {
		t.Fatalf("gap not closed: %v %v", to, err)
	}
	testenv.MustExec(t, dsn, "INSERT INTO apps (application_id, company_id) VALUES (3, 3)")
	p2.waitLog(t, `"application_id":3,`, 30*time.Second)
	rep, _ = checkJSON(t, "--config", cfgPath)
	if rows := rowsWith(rep, "gap public.apps"); len(rows) != 1 || rows[0].Status != dba.CheckWarn ||
		!strings.Contains(rows[0].Observed, "changes from "+from+" ") || !strings.Contains(rows[0].Fix, "DELETE FROM baitoru_cdc.gaps WHERE id = ") {
		t.Fatalf("check's gap rows once the table is back: %+v", rows)
	}
	_ = p2.cmd.Process.Signal(os.Interrupt)
	_ = p2.wait(t, 30*time.Second)

	// DROP COLUMN … CASCADE of a published column takes the table out of
	// the publication too; on_table_loss: stop exits 1 naming it.
	p3 := startProc(t, "run", "--config", write("stop"))
	p3.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	testenv.MustExec(t, dsn, "ALTER TABLE jobs DROP COLUMN note CASCADE")
	err := p3.wait(t, 60*time.Second)
	out := p3.output()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code := exitCodeOf(err); code != 1 || !strings.Contains(lines[len(lines)-1], "stopped (source.on_table_loss: stop): public.jobs: not in publication cdc since ") ||
		!strings.Contains(out, `"table":"public.jobs"`) {
		t.Fatalf("on_table_loss: stop: exit %d:\n%s", code, out)
	}
}
