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

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

const (
	msgChangesLost = "the publication leaves out changes of a mapped table: PostgreSQL drops them from the stream and they are NOT published"
	msgChangesBack = "the publication carries the mapped changes of a table again; those in between were NOT published: re-send them (backfill), then delete the gap from baitoru_cdc.gaps"
	msgTableLost   = "a mapped table is not in the publication: PostgreSQL leaves its changes out of the stream and they are NOT published"
	msgTableBack   = "a mapped table is in the publication again; its changes in between were NOT published: re-send them (backfill), then delete the gap from baitoru_cdc.gaps"
	msgSkipped     = "changes of a mapped table arrive without mapped columns (the publication's column list left them out): they are NOT published; the gap is recorded"
)

// driftConfig writes a config streaming to stdout: dk_apps (insert, update;
// three columns) and dk_jobs (insert; a row filter).
func driftConfig(t *testing.T, dsn string, create bool, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`
source:
  dsn: %s
  slot: cdc
  publication: cdc
  create: %v
  status_interval: 200ms
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
  - table: public.dk_apps
    operations: [insert, update]
    columns:
      - column: app_id
      - column: company_id
      - column: note
  - table: public.dk_jobs
    where: "job_id > 0"
    columns:
      - column: job_id
      - column: title
%s`, dsn, create, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const driftDDL = `
CREATE TABLE public.dk_apps (app_id bigint PRIMARY KEY, company_id bigint NOT NULL, note text, secret text);
CREATE TABLE public.dk_jobs (job_id bigint PRIMARY KEY, title text);
CREATE TABLE public.dk_other (id bigint PRIMARY KEY);`

// currentLSN is the server's WAL position.
func currentLSN(t *testing.T, dsn string) uint64 {
	t.Helper()
	var s string
	if err := pgQueryRow(context.Background(), dsn, `SELECT pg_current_wal_lsn()::text`, &s); err != nil {
		t.Fatal(err)
	}
	return parseLSN(t, s)
}

// gapRow is a row of baitoru_cdc.gaps.
type gapRow struct {
	id       int64
	from, to uint64 // to 0: open
}

func gapOf(t *testing.T, dsn, table, kind string) []gapRow {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT id, from_lsn::text, coalesce(to_lsn::text, '0/0') FROM baitoru_cdc.gaps
		WHERE slot = 'cdc' AND table_name = $1 AND kind = $2 ORDER BY id`, table, kind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []gapRow
	for rows.Next() {
		var g gapRow
		var from, to string
		if err := rows.Scan(&g.id, &from, &to); err != nil {
			t.Fatal(err)
		}
		g.from, g.to = parseLSN(t, from), parseLSN(t, to)
		out = append(out, g)
	}
	return out
}

// covers asserts that exactly one closed gap of table and kind spans the
// positions [before, after] between which the lost changes committed.
func covers(t *testing.T, dsn, table, kind string, before, after uint64) {
	t.Helper()
	gs := gapOf(t, dsn, table, kind)
	if len(gs) != 1 || gs[0].from > before || gs[0].to < after {
		t.Fatalf("gaps of %s (%s): %+v; want one from at most %X to at least %X", table, kind, gs, before, after)
	}
}

// TestPublicationDriftLosesChanges: drift of the publication other than a
// table leaving it, made while the connector streams as a non-superuser
// role with source.create: false (its records set up by the DBA's setup):
// an operation no longer published, a row filter changed, a column list
// that drops a mapped column. Each is an ERROR naming the table and what is
// lost, repeated; /readyz not ready; the metric's series of that kind at 1;
// a gap recorded that spans the changes written meanwhile (which are not
// published, the others keep streaming); setup repairs it and the gap is
// closed. A column list change in the same transaction as a write is
// covered too (the stream asks the record before it skips). Drift that
// loses nothing (an unmapped table, an operation no mapping uses) is a
// warning and leaves /readyz ready.
func TestPublicationDriftLosesChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	admin := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, admin, driftDDL)
	// The connector's role, as setup's comments say, created before setup
	// (setup then grants it what it needs on its records).
	testenv.MustExec(t, admin, `DO $$ BEGIN CREATE ROLE cdc_drift WITH LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
	roleDSN := strings.Replace(admin, "postgres://postgres@", "postgres://cdc_drift@", 1)
	cfgPath := driftConfig(t, roleDSN, false, "")
	// The role's grants from the script's comments: those on the mapped
	// tables before setup, those on what setup creates in schema
	// baitoru_cdc after it (the other roles' grants are not needed here).
	dry := runCLI(t, "setup", "--config", cfgPath, "--dsn", admin, "--dry-run")
	var later []string
	for _, s := range roleStatements(dry.stdout) {
		switch {
		case strings.HasPrefix(s, "CREATE ROLE"), !strings.HasSuffix(s, `TO "cdc_drift";`):
		case strings.Contains(s, `"baitoru_cdc"`):
			later = append(later, s)
		default:
			testenv.MustExec(t, admin, s)
		}
	}
	if res := runCLI(t, "setup", "--config", cfgPath, "--dsn", admin); res.code != 0 || !strings.Contains(res.stdout, `GRANT SELECT, INSERT, UPDATE ON "baitoru_cdc"."gaps" TO "cdc_drift";`) {
		t.Fatalf("setup: %s", res)
	}
	for _, s := range later {
		testenv.MustExec(t, admin, s)
	}
	repair := func() {
		t.Helper()
		if res := runCLI(t, "setup", "--config", cfgPath, "--dsn", admin); res.code != 0 || !strings.Contains(res.stdout, "ALTER PUBLICATION") {
			t.Fatalf("setup (repair): %s", res)
		}
	}

	p := startProc(t, "run", "--config", cfgPath)
	base := "http://" + logAttr(t, p, "serving /metrics, /healthz, /readyz", "addr")
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	testenv.MustExec(t, admin, "INSERT INTO dk_apps VALUES (1, 1, 'a', 's')")
	p.waitLog(t, `"data":\{"app_id":1,`, 30*time.Second)
	lost := func(kind string) float64 {
		return sample(scrape(t, base+"/metrics"), telemetry.TableUnpublished, "table", "public.dk_apps", "kind", kind)
	}
	waitLost := func(table, kind string, n int) map[string]any {
		t.Helper()
		var line map[string]any
		eventually(t, 30*time.Second, fmt.Sprintf("error %d about %s (%s)", n, table, kind), func() string {
			var got []map[string]any
			for _, l := range logLines(p, msgChangesLost) {
				if l["table"] == table && l["kind"] == kind {
					got = append(got, l)
				}
			}
			if len(got) < n {
				return fmt.Sprintf("%d lines", len(got))
			}
			line = got[0]
			return ""
		})
		return line
	}

	// 1. Updates no longer published: the table still streams inserts.
	testenv.MustExec(t, admin, `ALTER PUBLICATION cdc SET (publish = 'insert')`)
	first := waitLost("public.dk_apps", "update", 1)
	if first["level"] != "ERROR" || first["what"] != "publication cdc does not publish updates" || first["missing_from_lsn"] == nil ||
		!strings.Contains(fmt.Sprint(first["recover"]), "baitoru-cdc setup") {
		t.Fatalf("error line %v", first)
	}
	code, r := readyz(t, base)
	if code != http.StatusServiceUnavailable || !strings.Contains(r.Checks["publication"], "public.dk_apps: publication cdc does not publish updates since ") {
		t.Fatalf("/readyz = %d %+v", code, r)
	}
	if v := lost("update"); v != 1 {
		t.Fatalf("%s{public.dk_apps,update} = %v", telemetry.TableUnpublished, v)
	}
	before := currentLSN(t, admin)
	testenv.MustExec(t, admin, "UPDATE dk_apps SET note = 'lost update' WHERE app_id = 1")
	testenv.MustExec(t, admin, "INSERT INTO dk_apps VALUES (2, 1, 'b', 's')")
	p.waitLog(t, `"data":\{"app_id":2,`, 30*time.Second)
	after := currentLSN(t, admin)
	waitLost("public.dk_apps", "update", 2) // repeated
	repair()
	p.waitLog(t, regexp.QuoteMeta(msgChangesBack), 30*time.Second)
	covers(t, admin, "public.dk_apps", "update", before, after)
	testenv.MustExec(t, admin, "UPDATE dk_apps SET note = 'seen' WHERE app_id = 1")
	p.waitLog(t, `"note":"seen"`, 30*time.Second)
	if strings.Contains(p.output(), "lost update") {
		t.Fatal("the update made while updates were not published was published: the test does not test a loss")
	}
	eventually(t, 10*time.Second, "the metric back to 0", func() string {
		if v := lost("update"); v != 0 {
			return fmt.Sprint(v)
		}
		return ""
	})

	// 2. A row filter changed by hand: rows it leaves out are lost.
	testenv.MustExec(t, admin, `ALTER PUBLICATION cdc SET TABLE dk_apps (app_id, company_id, note), dk_jobs (job_id, title) WHERE (job_id > 100)`)
	if l := waitLost("public.dk_jobs", "row filter", 1); !strings.Contains(fmt.Sprint(l["what"]), "filters its rows with (job_id > 100) instead of where: (job_id > 0)") {
		t.Fatalf("row filter error: %v", l)
	}
	before = currentLSN(t, admin)
	testenv.MustExec(t, admin, "INSERT INTO dk_jobs VALUES (5, 'lost job')")
	testenv.MustExec(t, admin, "INSERT INTO dk_jobs VALUES (500, 'kept job')")
	p.waitLog(t, `"title":"kept job"`, 30*time.Second)
	after = currentLSN(t, admin)
	repair()
	p.waitLog(t, regexp.QuoteMeta(msgChangesBack)+`.*"kind":"row filter"`, 30*time.Second)
	covers(t, admin, "public.dk_jobs", "row filter", before, after)

	// 3. A column list without a mapped column: the table's changes arrive
	// without it and are skipped (the gap covers them); other tables keep
	// streaming. The first one is written in the same transaction as the
	// change of the list, before the watch can have seen it.
	before = currentLSN(t, admin)
	testenv.MustExec(t, admin, `BEGIN;
		ALTER PUBLICATION cdc SET TABLE dk_apps (app_id, company_id), dk_jobs (job_id, title) WHERE (job_id > 0);
		INSERT INTO dk_apps VALUES (3, 1, 'lost insert', 's');
		COMMIT`)
	p.waitLog(t, regexp.QuoteMeta(msgSkipped), 30*time.Second)
	waitLost("public.dk_apps", "columns", 1)
	testenv.MustExec(t, admin, "INSERT INTO dk_apps VALUES (4, 1, 'lost insert', 's')")
	testenv.MustExec(t, admin, "INSERT INTO dk_jobs VALUES (6, 'still streaming')")
	p.waitLog(t, `"title":"still streaming"`, 30*time.Second)
	after = currentLSN(t, admin)
	repair()
	p.waitLog(t, regexp.QuoteMeta(msgChangesBack)+`.*"kind":"columns"`, 30*time.Second)
	covers(t, admin, "public.dk_apps", "columns", before, after)
	testenv.MustExec(t, admin, "INSERT INTO dk_apps VALUES (5, 1, 'published again', 's')")
	p.waitLog(t, `"note":"published again"`, 30*time.Second)
	if strings.Contains(p.output(), "lost insert") || strings.Contains(p.output(), "lost job") {
		t.Fatal("a change the publication left out was published: the test does not test a loss")
	}

	// 4. Drift that loses nothing: a warning, /readyz ready.
	testenv.MustExec(t, admin, `ALTER PUBLICATION cdc ADD TABLE dk_other`)
	testenv.MustExec(t, admin, `ALTER PUBLICATION cdc SET (publish = 'insert, update, delete')`)
	p.waitLog(t, regexp.QuoteMeta("a table in the publication is not mapped")+`.*"table":"public.dk_other"`, 30*time.Second)
	p.waitLog(t, regexp.QuoteMeta("the publication publishes operations no mapping uses")+`.*"operations":"delete"`, 30*time.Second)
	if code, r := readyz(t, base); code != http.StatusOK {
		t.Fatalf("/readyz with drift that loses nothing = %d %+v", code, r)
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("run: %v", err)
	}

	// check lists the three gaps, closed (warnings), with the way to
	// recover; the connector's role read them.
	rep, _ := checkJSON(t, "--config", cfgPath)
	gaps := rowsWith(rep, "gap public.dk_")
	if len(gaps) != 3 {
		t.Fatalf("check's gap rows: %+v", gaps)
	}
	for _, g := range gaps {
		if g.Status != dba.CheckWarn || !regexp.MustCompile(regexp.QuoteMeta("re-send them: baitoru-cdc backfill start --config "+cfgPath)+` --gap (\d+); then DELETE FROM baitoru_cdc.gaps WHERE id = (\d+)$`).MatchString(g.Fix) {
			t.Errorf("gap row %+v", g)
		}
	}
}

// TestLossWhileNoConnectorRan: a mapped table dropped from the publication
// while no connector runs. The connector that starts next compares the
// publication with what the last one wrote down and records the gap from
// the position at which the table was last seen published (before the
// drop), not just a warning; then run (source.create: true) puts it back
// and the gap is closed. A table newly mapped that the publication lacks
// (a config change, source.create: false) is a warning at start, and a
// gap from the slot's position once the connector prepared and it is
// still missing.
func TestLossWhileNoConnectorRan(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, driftDDL)
	cfgPath := driftConfig(t, dsn, true, "")
	p := startProc(t, "run", "--config", cfgPath)
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	testenv.MustExec(t, dsn, "INSERT INTO dk_apps VALUES (1, 1, 'a', 's')")
	p.waitLog(t, `"data":\{"app_id":1,`, 30*time.Second)
	var seen int
	eventually(t, 10*time.Second, "the publication state written down", func() string {
		if err := pgQueryRow(context.Background(), dsn, `SELECT count(*) FROM baitoru_cdc.publication_state WHERE slot = 'cdc'`, &seen); err != nil || seen == 0 {
			return fmt.Sprintf("%d rows (%v)", seen, err)
		}
		return ""
	})
	_ = p.cmd.Process.Signal(os.Interrupt)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("run: %v", err)
	}

	before := currentLSN(t, dsn)
	testenv.MustExec(t, dsn, "ALTER PUBLICATION cdc DROP TABLE dk_apps")
	testenv.MustExec(t, dsn, "INSERT INTO dk_apps VALUES (2, 1, 'lost while down', 's')")
	after := currentLSN(t, dsn)

	p = startProc(t, "run", "--config", cfgPath)
	p.waitLog(t, regexp.QuoteMeta(msgTableLost), 30*time.Second)
	p.waitLog(t, regexp.QuoteMeta(msgTableBack), 30*time.Second)
	l := logLines(p, msgTableLost)[0]
	if from := parseLSN(t, fmt.Sprint(l["missing_from_lsn"])); from > before || l["missing_from_time"] == nil || l["gap_id"] == nil {
		t.Fatalf("the gap starts at %v, after the drop at %X (or lacks its time, id): %v", l["missing_from_lsn"], before, l)
	}
	if strings.Contains(p.output(), "a mapped table is not in the publication at start") {
		t.Fatal("a loss the record explains is only a warning")
	}
	covers(t, dsn, "public.dk_apps", "table", before, after)
	testenv.MustExec(t, dsn, "INSERT INTO dk_apps VALUES (3, 1, 'b', 's')")
	p.waitLog(t, `"data":\{"app_id":3,`, 30*time.Second)
	if strings.Contains(p.output(), "lost while down") {
		t.Fatal("the row written while the table was out of the publication was published: the test does not test a loss")
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("run: %v", err)
	}

	// A newly mapped table the publication lacks, source.create: false.
	cfgNew := driftConfig(t, dsn, false, `  - table: public.dk_other
    columns:
      - column: id
`)
	// The connector's last confirmation is the slot's once its walsender
	// has ended (it may still be reading it when the connector exits).
	waitSlotActive(t, dsn, false)
	confirmed := ""
	if err := pgQueryRow(context.Background(), dsn, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'`, &confirmed); err != nil {
		t.Fatal(err)
	}
	p = startProc(t, "run", "--config", cfgNew)
	p.waitLog(t, regexp.QuoteMeta("a mapped table is not in the publication at start")+`.*"table":"public.dk_other"`, 30*time.Second)
	p.waitLog(t, regexp.QuoteMeta(msgTableLost)+`.*"table":"public.dk_other"`, 30*time.Second)
	var gl map[string]any
	for _, l := range logLines(p, msgTableLost) {
		if l["table"] == "public.dk_other" {
			gl = l
		}
	}
	if gl["missing_from_lsn"] != confirmed {
		t.Fatalf("the new table's gap starts at %v, want the slot's confirmed position %s", gl["missing_from_lsn"], confirmed)
	}
	if gs := gapOf(t, dsn, "public.dk_other", "table"); len(gs) != 1 || gs[0].to != 0 {
		t.Fatalf("gaps of the newly mapped table: %+v", gs)
	}
}

// TestRecordsMigration: the gap table of an earlier version
// (public.baitoru_cdc_gaps) is moved into the connector's schema by setup,
// with its rows (kind table), shown in the dry run; when both exist the
// rows are copied and the old table dropped. check warns while the old one
// is there.
func TestRecordsMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	const legacyDDL = `CREATE TABLE public.baitoru_cdc_gaps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot        text        NOT NULL,
    publication text        NOT NULL,
    table_name  text        NOT NULL,
    from_lsn    pg_lsn      NOT NULL,
    from_time   timestamptz,
    to_lsn      pg_lsn,
    to_time     timestamptz,
    reason      text        NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.baitoru_cdc_gaps (slot, publication, table_name, from_lsn, to_lsn, reason) VALUES ('cdc', 'cdc', 'public.dk_apps', '0/10', '0/20', 'not in publication cdc');`
	for _, both := range []bool{false, true} {
		t.Run(map[bool]string{false: "move", true: "copy"}[both], func(t *testing.T) {
			dsn := testenv.PG(t).NewDatabase(t)
			testenv.MustExec(t, dsn, driftDDL)
			cfgPath := driftConfig(t, dsn, false, "")
			if both {
				// Set up by this version, then the old table appears
				// (an earlier connector still running somewhere).
				if res := runCLI(t, "setup", "--config", cfgPath); res.code != 0 {
					t.Fatalf("setup: %s", res)
				}
			}
			testenv.MustExec(t, dsn, legacyDDL)
			rep, _ := checkJSON(t, "--config", cfgPath)
			if r := rowsWith(rep, "records baitoru_cdc"); len(r) != 1 || r[0].Status != dba.CheckWarn || !strings.Contains(r[0].Observed, "public.baitoru_cdc_gaps") || !strings.Contains(r[0].Fix, "baitoru-cdc setup") {
				t.Fatalf("check with the old table: %+v", r)
			}
			want := "ALTER TABLE public.baitoru_cdc_gaps SET SCHEMA \"baitoru_cdc\";"
			if both {
				want = "DROP TABLE public.baitoru_cdc_gaps;"
			}
			dry := runCLI(t, "setup", "--config", cfgPath, "--dry-run")
			if dry.code != 0 || !strings.Contains(dry.stdout, want) || !strings.Contains(dry.stderr, "would be moved into baitoru_cdc.gaps") {
				t.Fatalf("setup --dry-run: %s", dry)
			}
			res := runCLI(t, "setup", "--config", cfgPath)
			if res.code != 0 || !strings.Contains(res.stdout, want) {
				t.Fatalf("setup: %s", res)
			}
			var legacy bool
			var kind, to string
			if err := pgQueryRow(context.Background(), dsn, `SELECT to_regclass('public.baitoru_cdc_gaps') IS NOT NULL,
				(SELECT kind FROM baitoru_cdc.gaps WHERE from_lsn = '0/10'), (SELECT to_lsn::text FROM baitoru_cdc.gaps WHERE from_lsn = '0/10')`, &legacy, &kind, &to); err != nil || legacy || kind != "table" || to != "0/20" {
				t.Fatalf("after setup: old table %v, moved row kind %q to %q (%v)", legacy, kind, to, err)
			}
			rep, _ = checkJSON(t, "--config", cfgPath)
			if r := rowsWith(rep, "records baitoru_cdc"); len(r) != 1 || r[0].Status != dba.CheckOK {
				t.Fatalf("check after the move: %+v", r)
			}
			if g := rowsWith(rep, "gap public.dk_apps"); len(g) != 1 || !strings.Contains(g[0].Observed, "changes from 0/10 to 0/20 were not published") {
				t.Fatalf("the moved gap in check: %+v", g)
			}
		})
	}
}

// TestStandbyReportsRecordedLoss: a second connector of the same slot (a
// standby waiting for it) reports the loss the streaming one recorded, the
// same gap from the same position, and its /readyz names it; it records
// nothing itself. Once setup puts the table back and the streaming one
// closed the gap, the standby says so too and its publication check is ok.
func TestStandbyReportsRecordedLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, driftDDL)
	cfgPath := driftConfig(t, dsn, true, "")
	active := startProc(t, "run", "--config", cfgPath)
	active.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	standby := startProc(t, "run", "--config", cfgPath)
	base := "http://" + logAttr(t, standby, "serving /metrics, /healthz, /readyz", "addr")
	standby.waitLog(t, regexp.QuoteMeta("waiting for the replication slot"), 30*time.Second)

	testenv.MustExec(t, dsn, "ALTER PUBLICATION cdc DROP TABLE dk_apps")
	active.waitLog(t, regexp.QuoteMeta(msgTableLost), 30*time.Second)
	standby.waitLog(t, regexp.QuoteMeta(msgTableLost), 30*time.Second)
	a, s := logLines(active, msgTableLost)[0], logLines(standby, msgTableLost)[0]
	if s["level"] != "ERROR" || s["table"] != "public.dk_apps" || s["gap_id"] == nil ||
		fmt.Sprint(s["gap_id"]) != fmt.Sprint(a["gap_id"]) || s["missing_from_lsn"] != a["missing_from_lsn"] {
		t.Fatalf("the standby reports %v; the streaming connector %v", s, a)
	}
	if _, r := readyz(t, base); !strings.Contains(r.Checks["publication"], "public.dk_apps: not in publication cdc since ") {
		t.Fatalf("the standby's /readyz: %+v", r)
	}
	if gs := gapOf(t, dsn, "public.dk_apps", "table"); len(gs) != 1 || gs[0].to != 0 {
		t.Fatalf("gaps: %+v; want the one open gap of the streaming connector", gs)
	}

	if res := runCLI(t, "setup", "--config", cfgPath); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	active.waitLog(t, regexp.QuoteMeta(msgTableBack), 30*time.Second)
	standby.waitLog(t, regexp.QuoteMeta(msgTableBack), 30*time.Second)
	if l := logLines(standby, msgTableBack)[0]; l["missing_to_lsn"] == nil || l["missing_to_lsn"] == "0/0" {
		t.Fatalf("the standby's report of the table back lacks the gap's end: %v", l)
	}
	eventually(t, 10*time.Second, "the standby's publication check ok", func() string {
		if _, r := readyz(t, base); r.Checks["publication"] != "ok" {
			return r.Checks["publication"]
		}
		return ""
	})
}
