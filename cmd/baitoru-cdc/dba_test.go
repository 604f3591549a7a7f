package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/s3"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// cliResult is what a command printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the DBA commands in-process, as main does: same flags, same
// exit codes, stdout and stderr captured apart.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	root := &cobra.Command{Use: "baitoru-cdc", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(setupCmd(), checkCmd(), teardownCmd(), backfillCmd())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	res := cliResult{code: 0}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.code
		if ee.msg != "" {
			errb.WriteString(ee.msg + "\n")
		}
	case err != nil:
		res.code = 1
		errb.WriteString("baitoru-cdc: " + err.Error() + "\n")
	}
	res.stdout, res.stderr = out.String(), errb.String()
	return res
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// checkJSON runs check --json and decodes the document.
func checkJSON(t *testing.T, args ...string) (checkReport, cliResult) {
	t.Helper()
	res := runCLI(t, append([]string{"check", "--json"}, args...)...)
	var rep checkReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("check --json printed no JSON document: %v\n%s", err, res)
	}
	if rep.ExitCode != res.code {
		t.Fatalf("check --json: exit_code %d in the document, process exit %d", rep.ExitCode, res.code)
	}
	return rep, res
}

// rowsWith returns the checks whose name starts with prefix.
func rowsWith(rep checkReport, prefix string) []dba.CheckResult {
	var out []dba.CheckResult
	for _, r := range rep.Checks {
		if strings.HasPrefix(r.Check, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func notOK(rep checkReport) []dba.CheckResult {
	var out []dba.CheckResult
	for _, r := range rep.Checks {
		if r.Status != dba.CheckOK {
			out = append(out, r)
		}
	}
	return out
}

const dbaDDL = appsDDL + `
CREATE TABLE public.postings (
	posting_id bigint PRIMARY KEY,
	title text NOT NULL,
	published boolean NOT NULL DEFAULT false
);`

// dbaBucket stores dbaConfig's large events.
const dbaBucket = "baitoru-cdc-dba"

// dbaConfig writes a config mapping apps (insert, update; three columns,
// plus extra) and postings (insert; a row filter on its key), whose large
// events go to dbaBucket in the emulator.
func dbaConfig(t *testing.T, path, dsn, topic string, emu *testenv.Emulator, extra ...string) {
	t.Helper()
	if err := emu.CreateBucket(context.Background(), dbaBucket); err != nil {
		t.Fatal(err)
	}
	cols := append([]string{"application_id", "company_id", "answers"}, extra...)
	var b strings.Builder
	for _, c := range cols {
		b.WriteString("      - column: " + c + "\n")
	}
	cfg := fmt.Sprintf(`
source:
  dsn: %s
  slot: cdc
  publication: cdc
  create: false
sns:
  region: %s
  endpoint: %s
  topic_arn: %s
s3:
  region: %[2]s
  endpoint: %[3]s
publisher:
  large_payloads:
    bucket: %[5]s
tables:
  - table: public.apps
    operations: [insert, update]
    key: [company_id]
    columns:
%[6]s
  - table: public.postings
    operations: [insert]
    where: "posting_id > 0"
    columns:
      - column: posting_id
      - column: title
`, dsn, emu.Region, emu.Endpoint, topic, dbaBucket, b.String())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// roleStatements are the role and grant statements setup prints as
// comments ("--   CREATE ROLE ...", "--   GRANT ...").
func roleStatements(script string) []string {
	var out []string
	for _, line := range strings.Split(script, "\n") {
		s := strings.TrimPrefix(line, "--   ")
		if s != line && (strings.HasPrefix(s, "CREATE ROLE ") || strings.HasPrefix(s, "GRANT ")) {
			out = append(out, s)
		}
	}
	return out
}

// publicationState renders the publication and slot from the catalogs.
func publicationState(t *testing.T, dsn string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(context.Background(), `
		SELECT coalesce((SELECT format('%s %s %s %s', pubinsert, pubupdate, pubdelete, pubtruncate) FROM pg_publication WHERE pubname = 'cdc'), 'no publication')
		    || ' | ' || coalesce((SELECT string_agg(format('%s.%s %s %s', schemaname, tablename, attnames, rowfilter), '; ' ORDER BY tablename)
		                          FROM pg_publication_tables WHERE pubname = 'cdc'), '')
		    || ' | ' || coalesce((SELECT format('%s %s', plugin, confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'cdc'), 'no slot')`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSetupCheckTeardown walks the DBA's path on a fresh database: setup
// --dry-run (prints the SQL, changes nothing), setup, the role created
// exactly as setup's comments say, check → every row ✓ (exit 0), a second
// setup changes nothing and says so, check as a superuser → warning (exit
// 2), drift by hand and in the config → ✗ rows with the fix (exit 1, in the
// table and in --json), a hand-made publication that would block UPDATEs →
// ✗, setup aligns it, teardown refuses without --yes and while the slot is
// streamed, then drops everything.
func TestSetupCheckTeardown(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()
	pg := testenv.OwnPG(t, testenv.PostgresOptions{Settings: map[string]string{"max_slot_wal_keep_size": "256MB"}})
	admin := pg.NewDatabase(t)
	testenv.MustExec(t, admin, dbaDDL)
	pc, err := pgconn.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	// The connector's own role: not a superuser.
	roleDSN := strings.Replace(admin, "postgres://postgres@", "postgres://cdc@", 1)
	emu := testenv.Emu(t)
	topic, err := emu.CreateTopic(ctx, fmt.Sprintf("dba-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, cfg2 := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "config2.yaml")
	dbaConfig(t, cfg, roleDSN, topic, emu)
	dbaConfig(t, cfg2, roleDSN, topic, emu, "applied_at")

	// Dry run: the SQL, with a comment above each statement; nothing changes.
	dry := runCLI(t, "setup", "--config", cfg, "--dsn", admin, "--dry-run")
	if dry.code != 0 {
		t.Fatalf("setup --dry-run: %s", dry)
	}
	for _, want := range []string{
		`CREATE PUBLICATION "cdc" FOR TABLE`,
		`"public"."apps" ("application_id", "company_id", "answers")`,
		`"public"."postings" ("posting_id", "title") WHERE (posting_id > 0)`,
		`WITH (publish = 'insert, update')`,
		`SELECT pg_create_logical_replication_slot('cdc', 'pgoutput');`,
		`--   CREATE ROLE "cdc" WITH LOGIN REPLICATION;`,
		`--   GRANT SELECT ("application_id", "company_id", "answers") ON "public"."apps" TO "cdc";`,
		"-- Dry run: checked in a transaction that was rolled back; nothing was changed.",
		// The connector's records: schema, tables and the role's grants.
		`CREATE SCHEMA "baitoru_cdc";`,
		`CREATE TABLE "baitoru_cdc".gaps (`,
		`CREATE TABLE "baitoru_cdc".publication_state (`,
		`GRANT USAGE ON SCHEMA "baitoru_cdc" TO "cdc";`,
		`GRANT SELECT, INSERT, UPDATE ON "baitoru_cdc"."gaps" TO "cdc";`,
		`GRANT SELECT, INSERT, UPDATE ON "baitoru_cdc"."publication_state" TO "cdc";`,
		`CREATE PUBLICATION "cdc_backfill" FOR TABLE "baitoru_cdc"."backfill_requests" WITH (publish = 'insert');`,
		`--   GRANT SELECT, INSERT, UPDATE ON "baitoru_cdc"."backfills" TO "cdc";`,
		`--   GRANT SELECT, INSERT (backfill_id, action, table_name, filter, key_field, key_value, slot) ON "baitoru_cdc"."backfill_requests" TO "baitoru_cdc_requester";`,
	} {
		if !strings.Contains(dry.stdout, want) {
			t.Errorf("setup --dry-run: no %q in:\n%s", want, dry.stdout)
		}
	}
	lines := strings.Split(dry.stdout, "\n")
	for i, l := range lines {
		if regexp.MustCompile(`^(CREATE|ALTER|SELECT) `).MatchString(l) && (i == 0 || !strings.HasPrefix(lines[i-1], "-- ")) {
			t.Errorf("statement without a one-line comment above it: %q", l)
		}
	}
	for _, want := range []string{"setup: connected to database " + pc.Database, "setup: publication cdc: would be created", "setup: slot cdc: would be created", "nothing was changed"} {
		if !strings.Contains(dry.stderr, want) {
			t.Errorf("setup --dry-run progress: no %q in:\n%s", want, dry.stderr)
		}
	}
	if got := publicationState(t, admin); got != "no publication |  | no slot" || schemaExists(t, admin) {
		t.Fatalf("setup --dry-run changed the database: %s (schema baitoru_cdc: %v)", got, schemaExists(t, admin))
	}

	// Setup, then the role exactly as its comments say, then setup again
	// (it grants the role what it needs on its records).
	res := runCLI(t, "setup", "--config", cfg, "--dsn", admin)
	if res.code != 0 || !strings.Contains(res.stdout, "-- setup: done: publication cdc created; the connector's records in schema baitoru_cdc set up; slot cdc created at ") ||
		!strings.Contains(res.stdout, "-- not run: role cdc does not exist; run setup again once it does:\n-- GRANT USAGE ON SCHEMA \"baitoru_cdc\" TO \"cdc\";") ||
		!strings.Contains(res.stderr, "records: role cdc does not exist: its grants were not run") || !schemaExists(t, admin) {
		t.Fatalf("setup: %s", res)
	}
	for _, want := range []string{"publication cdc: created", "slot cdc: creating; this waits", "slot cdc: created at", "done; next: baitoru-cdc check"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("setup progress: no %q in:\n%s", want, res.stderr)
		}
	}
	// Before the role exists, check (run by the DBA) says so, with the fix.
	rep, res := checkJSON(t, "--config", cfg, "--dsn", admin)
	if r := rowsWith(rep, "role cdc"); res.code != checkCritical || len(r) != 1 || r[0].Status != dba.CheckFail ||
		!strings.Contains(r[0].Observed, "does not exist") || !strings.Contains(r[0].Fix, `CREATE ROLE "cdc" WITH LOGIN REPLICATION`) {
		t.Fatalf("check before the role exists: %+v\n%s", r, res)
	}
	// The DBA types only what the comments say setup does not do itself:
	// the role and its grants outside schema baitoru_cdc (records and
	// backfill grants are setup's, once the role exists).
	var roles []string
	for _, s := range roleStatements(dry.stdout) {
		if !strings.Contains(s, `"baitoru_cdc"`) {
			roles = append(roles, s)
		}
	}
	if len(roles) < 4 {
		t.Fatalf("setup printed %d role statements: %q", len(roles), roles)
	}
	for _, s := range roles {
		testenv.MustExec(t, admin, s)
	}
	res = runCLI(t, "setup", "--config", cfg, "--dsn", admin)
	if res.code != 0 || !strings.Contains(res.stdout, "\nGRANT SELECT, INSERT, UPDATE ON \"baitoru_cdc\".\"gaps\" TO \"cdc\";\n") ||
		!strings.Contains(res.stdout, "\nGRANT SELECT, INSERT, UPDATE ON \"baitoru_cdc\".\"backfills\" TO \"cdc\";\n") ||
		!strings.Contains(res.stdout, "-- setup: done: grants to cdc on the connector's records in schema baitoru_cdc run; grants to cdc on the backfill's tables in schema baitoru_cdc run.") {
		t.Fatalf("setup once the role exists: %s", res)
	}

	// check as the connector's role: every row ✓.
	rep, res = checkJSON(t, "--config", cfg)
	if res.code != 0 || rep.Status != "ok" || len(notOK(rep)) > 0 {
		t.Fatalf("check after setup: not all ok: %+v\n%s", notOK(rep), res)
	}
	// The connector's role may request a backfill and read its progress
	// with no GRANT but the ones the comments told the DBA to type.
	if res := runCLI(t, "backfill", "start", "--config", cfg, "--table", "public.apps", "--id", "bf-grants", "--wait=false"); res.code != 0 {
		t.Fatalf("backfill start as the connector's role after setup: %s", res)
	}
	if res := runCLI(t, "backfill", "status", "--config", cfg, "bf-grants"); res.code != 0 || !strings.Contains(res.stdout, "backfill bf-grants: public.apps") {
		t.Fatalf("backfill status as the connector's role: %s", res)
	}
	for _, name := range []string{"server version", "wal_level", "replication slots", "wal senders", "role cdc",
		"table public.apps", "table public.postings", "replica identity public.apps", "publication cdc",
		"publication matches config", "writes", "grants", "slot cdc", "slot wal_status", "slot retained WAL",
		"slot confirmed-flush lag", "max_slot_wal_keep_size", "records baitoru_cdc", "sns topic", "s3 bucket " + dbaBucket,
		"backfill schema baitoru_cdc", "backfill publication cdc_backfill", "backfill grants"} {
		if len(rowsWith(rep, name)) == 0 {
			t.Errorf("check has no row %q: %+v", name, rep.Checks)
		}
	}
	if _, err := emu.GetObject(ctx, dbaBucket, "baitoru-cdc/cdc/"+s3.ProbeKey); err != nil {
		t.Errorf("check's s3 bucket row is ok but wrote no probe object: %v", err)
	}
	// Without large_payloads, the mapped jsonb and text columns can make an
	// event over SNS's limit, which would stop the connector: a warning
	// per table naming them, and the fix.
	cfgNoS3 := filepath.Join(dir, "config-no-s3.yaml")
	y, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noS3 := regexp.MustCompile(`(?s)\npublisher:\n  large_payloads:\n    bucket: \S+\n`).ReplaceAllString(string(y), "\n")
	if noS3 == string(y) {
		t.Fatal("dbaConfig's large_payloads not found")
	}
	if err := os.WriteFile(cfgNoS3, []byte(noS3), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, res = checkJSON(t, "--config", cfgNoS3)
	large := map[string]string{"large rows public.apps": "answers (jsonb)", "large rows public.postings": "title (text)"}
	if bad := notOK(rep); res.code != checkWarning || len(bad) != len(large) {
		t.Fatalf("check without large_payloads: want exit 1 and %d warnings: %+v\n%s", len(large), bad, res)
	}
	for _, r := range notOK(rep) {
		if col, ok := large[r.Check]; !ok || r.Status != dba.CheckWarn || !strings.Contains(r.Observed, col) || strings.Contains(r.Observed, "application_id") ||
			!strings.Contains(r.Observed, "262144") || !strings.Contains(r.Fix, "large_payloads") {
			t.Errorf("check without large_payloads: row %+v; want a warning naming %q", r, col)
		}
	}
	if len(rowsWith(rep, "s3 bucket")) != 0 {
		t.Errorf("check without large_payloads has an s3 bucket row: %+v", rowsWith(rep, "s3 bucket"))
	}
	// The same with source.create: true (the default): the role may not
	// create the publication, but it exists and matches, so all is ok.
	cfgCreate := filepath.Join(dir, "config-create.yaml")
	y, err = os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgCreate, []byte(strings.Replace(string(y), "  create: false\n", "  create: true\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, res = checkJSON(t, "--config", cfgCreate)
	if p := rowsWith(rep, "privileges"); res.code != checkOK || len(p) != 1 || p[0].Status != dba.CheckOK || !strings.Contains(p[0].Observed, "run changes nothing") {
		t.Fatalf("check with source.create: true after setup: want exit 0 and privileges ok: %+v\n%s", p, res)
	}
	// A check that cannot run is UNKNOWN (3), not a warning.
	if res := runCLI(t, "check", "--config", filepath.Join(dir, "missing.yaml")); res.code != checkUnknown {
		t.Errorf("check with a missing config: %s; want exit 3", res)
	}
	if res := runCLI(t, "check", "--config", cfg, "--no-such-flag"); res.code != checkUnknown || !strings.Contains(res.stderr, "unknown flag") {
		t.Errorf("check with a bad flag: %s; want exit 3", res)
	}
	table := runCLI(t, "check", "--config", cfg)
	if table.code != 0 || !strings.Contains(table.stdout, "✓ wal_level") || strings.Contains(table.stdout, "✗") || !strings.Contains(table.stdout, "check: all good") {
		t.Fatalf("check table: %s", table)
	}

	// A second setup changes nothing, and says so.
	before := publicationState(t, admin)
	res = runCLI(t, "setup", "--config", cfg, "--dsn", admin)
	if res.code != 0 || !strings.Contains(res.stdout, "-- setup: nothing to do: publication cdc and slot cdc already match the config.") ||
		!strings.Contains(res.stderr, "setup: nothing changed") || strings.Contains(res.stdout, "BEGIN;") {
		t.Fatalf("second setup: %s", res)
	}
	if after := publicationState(t, admin); after != before {
		t.Fatalf("second setup changed the database:\n%s\n%s", before, after)
	}

	// Run by the DBA (--dsn), check still checks the connector's role.
	if rep, res = checkJSON(t, "--config", cfg, "--dsn", admin); res.code != 0 || len(rowsWith(rep, "role cdc")) != 1 {
		t.Fatalf("check run by the DBA: %+v\n%s", notOK(rep), res)
	}
	// A connector configured to run as a superuser works, but that is a
	// warning: exit 1 (WARNING).
	cfgSuper := filepath.Join(dir, "config-super.yaml")
	dbaConfig(t, cfgSuper, admin, topic, emu)
	rep, res = checkJSON(t, "--config", cfgSuper)
	if res.code != checkWarning || rep.Status != "warn" {
		t.Fatalf("check as superuser: want exit 1: %s", res)
	}
	if bad := notOK(rep); len(bad) != 1 || bad[0].Check != "role postgres" || bad[0].Fix == "" {
		t.Fatalf("check as superuser: want one warning (role) with a fix: %+v", bad)
	}
	table = runCLI(t, "check", "--config", cfgSuper)
	if table.code != checkWarning || !strings.Contains(table.stdout, "! role postgres") || !strings.Contains(table.stdout, "warnings only") || !strings.Contains(table.stdout, "exit 1 (WARNING)") {
		t.Fatalf("check table as superuser: %s", table)
	}

	// Drift: a table removed by hand, a column added to the config.
	testenv.MustExec(t, admin, `ALTER PUBLICATION cdc DROP TABLE postings`)
	rep, res = checkJSON(t, "--config", cfg2)
	if res.code != checkCritical || rep.Status != "fail" {
		t.Fatalf("check with drift: want exit 2: %s", res)
	}
	drift := rowsWith(rep, "publication drift")
	var sawMissing, sawColumn bool
	for _, d := range drift {
		if d.Status != dba.CheckFail || !strings.Contains(d.Fix, "baitoru-cdc setup --config "+cfg2) || !strings.Contains(d.Fix, `ALTER PUBLICATION "cdc" SET TABLE`) {
			t.Errorf("drift row without the fix: %+v", d)
		}
		sawMissing = sawMissing || strings.Contains(d.Observed, "public.postings: not in the publication")
		sawColumn = sawColumn || strings.Contains(d.Observed, "public.apps: column list (application_id, company_id, answers, applied_at)")
	}
	if !sawMissing || !sawColumn {
		t.Fatalf("drift rows %+v; want the removed table and the added column", drift)
	}
	// The role may not read the added column: the fix is the exact grant.
	if g := rowsWith(rep, "grants"); len(g) != 1 || g[0].Status != dba.CheckWarn || !strings.Contains(g[0].Fix, `GRANT SELECT ("applied_at") ON "public"."apps" TO "cdc"`) {
		t.Errorf("grants row: %+v", g)
	}
	table = runCLI(t, "check", "--config", cfg2)
	if table.code != checkCritical || !strings.Contains(table.stdout, "✗ publication drift") || !strings.Contains(table.stdout, "fix: baitoru-cdc setup") || !strings.Contains(table.stdout, "exit 2 (CRITICAL)") {
		t.Fatalf("check table with drift: %s", table)
	}

	// A publication made by hand that would make every UPDATE of postings
	// fail (row filter outside the replica identity, updates published).
	testenv.MustExec(t, admin, `ALTER PUBLICATION cdc SET TABLE apps (application_id, company_id, answers), postings (posting_id, title) WHERE (title <> '')`)
	rep, _ = checkJSON(t, "--config", cfgSuper)
	writes := rowsWith(rep, "writes on public.postings")
	if len(writes) == 0 || writes[0].Status != dba.CheckFail || !strings.Contains(writes[0].Observed, "title") || !strings.Contains(writes[0].Fix, "publish only insert") {
		t.Fatalf("check did not flag the publication that blocks UPDATE: %+v", rep.Checks)
	}
	if err := testenv.Exec(ctx, admin, `INSERT INTO postings VALUES (1, 't'); UPDATE postings SET published = true`); err == nil || !strings.Contains(err.Error(), "cannot update table") {
		t.Fatalf("the hand-made publication should block UPDATE (what check flags): %v", err)
	}

	// setup aligns the publication with config2; check is all ✓ again.
	res = runCLI(t, "setup", "--config", cfg2, "--dsn", admin)
	if res.code != 0 || !strings.Contains(res.stdout, "ALTER PUBLICATION") || !strings.Contains(res.stdout, "publication cdc altered") {
		t.Fatalf("setup after drift: %s", res)
	}
	for _, s := range roleStatements(res.stdout) {
		if !strings.HasPrefix(s, "CREATE ROLE") {
			testenv.MustExec(t, admin, s)
		}
	}
	testenv.MustExec(t, admin, `UPDATE postings SET published = true`)
	if rep, res = checkJSON(t, "--config", cfg2); res.code != 0 {
		t.Fatalf("check after aligning setup: %+v\n%s", notOK(rep), res)
	}

	// teardown: refused without --yes; refused while streamed.
	res = runCLI(t, "teardown", "--config", cfg, "--dsn", admin)
	if res.code != 1 || !strings.Contains(res.stderr, "refusing without --yes") || publicationState(t, admin) == "no publication |  | no slot" {
		t.Fatalf("teardown without --yes: %s", res)
	}
	// The role as setup describes it can stream the slot and write the
	// heartbeat (pg_logical_emit_message).
	testenv.MustExec(t, roleDSN, `SELECT pg_logical_emit_message(false, 'baitoru-cdc.heartbeat', 'x')`)
	repl, err := pgconn.Connect(ctx, roleDSN+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	if err := pglogrepl.StartReplication(ctx, repl, "cdc", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'cdc'"}}); err != nil {
		t.Fatal(err)
	}
	waitSlotActive(t, admin, true)
	// check shows who streams the slot.
	rep, _ = checkJSON(t, "--config", cfg2)
	if r := rowsWith(rep, "slot cdc"); len(r) != 1 || r[0].Status != dba.CheckOK || !regexp.MustCompile(`active \(streamed by pid \d+\)`).MatchString(r[0].Observed) {
		t.Fatalf("check while streamed: %+v", r)
	}
	// A retained-WAL threshold below what the slot keeps: a warning.
	cfgLag := filepath.Join(dir, "config-lag.yaml")
	dbaConfig(t, cfgLag, roleDSN, topic, emu, "applied_at")
	lagYAML, err := os.ReadFile(cfgLag)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgLag, []byte(strings.Replace(string(lagYAML), "  create: false\n", "  create: false\n  max_lag_bytes: 1\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, res = checkJSON(t, "--config", cfgLag)
	if r := rowsWith(rep, "slot retained WAL"); res.code != checkWarning || len(r) != 1 || r[0].Status != dba.CheckWarn || !strings.Contains(r[0].Observed, "source.max_lag_bytes 1 B") || r[0].Fix == "" {
		t.Fatalf("check with max_lag_bytes 1: %+v\n%s", r, res)
	}
	before = publicationState(t, admin)
	res = runCLI(t, "teardown", "--config", cfg, "--dsn", admin, "--yes")
	if res.code != 1 || !strings.Contains(res.stderr, "refused, nothing dropped") || !strings.Contains(res.stderr, "streamed by pid") {
		t.Fatalf("teardown of an active slot: %s", res)
	}
	if after := publicationState(t, admin); after != before {
		t.Fatalf("refused teardown dropped something: %s", after)
	}
	repl.Close(ctx)
	waitSlotActive(t, admin, false)

	// The role may write its records (what run does with source.create: false).
	testenv.MustExec(t, roleDSN, `INSERT INTO baitoru_cdc.gaps (slot, publication, table_name, from_lsn, reason) VALUES ('cdc', 'cdc', 'public.apps', '0/1', 'test');
		UPDATE baitoru_cdc.gaps SET to_lsn = '0/2' WHERE slot = 'cdc';
		INSERT INTO baitoru_cdc.publication_state VALUES ('cdc', 'cdc', 'public.apps', 'table', 'published', '0/1', now())
			ON CONFLICT (slot, table_name, kind) DO UPDATE SET seen_lsn = excluded.seen_lsn`)
	// teardown --yes drops everything and says so (the gaps it deletes
	// too); nothing is left.
	res = runCLI(t, "teardown", "--config", cfg, "--dsn", admin, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "dropped replication slot cdc (it had confirmed up to ") || !strings.Contains(res.stdout, "dropped publication cdc") ||
		!regexp.MustCompile(`deleted gap \d+ of public.apps \(test\) from 0/1 to 0/2: if its changes were not re-sent`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "dropped the connector's records (baitoru_cdc.gaps, baitoru_cdc.publication_state)\ndropped schema baitoru_cdc\n") {
		t.Fatalf("teardown: %s", res)
	}
	if got := publicationState(t, admin); got != "no publication |  | no slot" || schemaExists(t, admin) {
		t.Fatalf("after teardown: %s (schema baitoru_cdc: %v)", got, schemaExists(t, admin))
	}
	var left int
	if err := testenvQueryRow(admin, `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'baitoru_cdc') + (SELECT count(*) FROM pg_publication WHERE pubname = 'cdc_backfill')`, &left); err != nil || left != 0 ||
		!strings.Contains(res.stdout, "dropped publication cdc_backfill (backfill requests)") || !strings.Contains(res.stdout, "dropped the backfill tables") {
		t.Fatalf("teardown left backfill objects (%d, %v): %s", left, err, res)
	}
	if res = runCLI(t, "teardown", "--config", cfg, "--dsn", admin, "--yes"); res.code != 0 || !strings.Contains(res.stdout, "nothing to drop") {
		t.Fatalf("second teardown: %s", res)
	}
	// docs/dba.md: removing the role.
	testenv.MustExec(t, admin, `DROP OWNED BY cdc; DROP ROLE cdc`)
}

// schemaExists reports whether the connector's schema exists.
func schemaExists(t *testing.T, dsn string) bool {
	t.Helper()
	var ok bool
	if err := testenvQueryRow(dsn, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'baitoru_cdc')`, &ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func waitSlotActive(t *testing.T, dsn string, active bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got bool
		err := testenvQueryRow(dsn, `SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = 'cdc'), false)`, &got)
		if err != nil {
			t.Fatal(err)
		}
		if got == active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot cdc active=%v after 10s, want %v", got, active)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testenvQueryRow(dsn, sql string, dest ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// TestCheckWALLevelReplica: on a server with wal_level=replica, check
// reports ✗ with the fix (exit 1), setup refuses before changing anything,
// and setup --dry-run still prints the SQL, noting the level.
func TestCheckWALLevelReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{Settings: map[string]string{"wal_level": "replica"}})
	dsn := pg.NewDatabase(t)
	testenv.MustExec(t, dsn, appsDDL)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
source: {dsn: "%s", slot: cdc, publication: cdc, create: false}
publisher: {kind: stdout}
tables:
  - table: public.apps
    columns: [{column: application_id}, {column: company_id}]
`, dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, res := checkJSON(t, "--config", cfg)
	wl := rowsWith(rep, "wal_level")
	if res.code != checkCritical || len(wl) != 1 || wl[0].Status != dba.CheckFail || !strings.Contains(wl[0].Observed, "replica") ||
		!strings.Contains(wl[0].Fix, "ALTER SYSTEM SET wal_level = logical") || !strings.Contains(wl[0].Fix, "restart") {
		t.Fatalf("check on wal_level=replica: %+v\n%s", wl, res)
	}
	if k := rowsWith(rep, "max_slot_wal_keep_size"); len(k) != 1 || k[0].Status != dba.CheckWarn || !strings.Contains(k[0].Observed, "-1 (unlimited)") ||
		!strings.Contains(k[0].Fix, "ALTER SYSTEM SET max_slot_wal_keep_size") {
		t.Errorf("check with max_slot_wal_keep_size unset: %+v", k)
	}
	table := runCLI(t, "check", "--config", cfg)
	if !regexp.MustCompile(`(?m)^✗ wal_level +replica`).MatchString(table.stdout) {
		t.Fatalf("check table: %s", table)
	}
	res = runCLI(t, "setup", "--config", cfg)
	if res.code != 1 || !strings.Contains(res.stderr, "wal_level is replica") || !strings.Contains(res.stderr, "nothing was changed") {
		t.Fatalf("setup on wal_level=replica: %s", res)
	}
	if got := publicationState(t, dsn); got != "no publication |  | no slot" {
		t.Fatalf("refused setup changed the database: %s", got)
	}
	res = runCLI(t, "setup", "--config", cfg, "--dry-run")
	if res.code != 0 || !strings.Contains(res.stdout, "CREATE PUBLICATION") || !strings.Contains(res.stdout, "wal_level is replica: the slot below cannot be created") {
		t.Fatalf("setup --dry-run on wal_level=replica: %s", res)
	}
}

// TestCheckSNSTopics: the SNS rows of check: a standard and a FIFO topic
// are reachable and what their ARN says; a missing topic is ✗ with a fix.
func TestCheckSNSTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	emu := testenv.Emu(t)
	base := fmt.Sprintf("dba-sns-%d", time.Now().UnixNano())
	std, err := emu.CreateTopic(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	fifo, err := emu.CreateTopic(ctx, base+".fifo")
	if err != nil {
		t.Fatal(err)
	}
	missing := std + "-missing"
	cfg := &config.Config{SNS: config.SNS{Region: emu.Region, Endpoint: emu.Endpoint, TopicARN: std},
		Tables: []config.Table{{Table: "public.a"}, {Table: "public.b", TopicARN: fifo}, {Table: "public.c", TopicARN: missing}}}
	rows := snsChecks(ctx, cfg)
	want := map[string]struct {
		status dba.CheckStatus
		text   string
	}{
		std:     {dba.CheckOK, "reachable, standard topic"},
		fifo:    {dba.CheckOK, "reachable, FIFO topic"},
		missing: {dba.CheckFail, "does not exist"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d sns rows, want %d: %+v", len(rows), len(want), rows)
	}
	for _, r := range rows {
		var arn string
		for a := range want {
			if strings.HasPrefix(r.Observed, a+":") || strings.Contains(r.Observed, a+" ") || (strings.HasPrefix(r.Observed, "not reachable") && strings.Contains(r.Observed, a)) {
				if len(a) > len(arn) {
					arn = a
				}
			}
		}
		w, ok := want[arn]
		if !ok || r.Status != w.status || !strings.Contains(r.Observed, w.text) || (r.Status == dba.CheckFail && !strings.Contains(r.Fix, "sns:GetTopicAttributes")) {
			t.Errorf("sns row %+v; want %+v for %s", r, w, arn)
		}
	}
	if got := checkExitCode(rows); got != checkCritical {
		t.Errorf("exit code %d, want %d", got, checkCritical)
	}
}

// TestCheckS3Buckets: the S3 rows of check, one per large_payloads bucket
// and prefix: an existing bucket is writable (the probe object is there); a
// missing one is ✗ naming it, with the fix.
func TestCheckS3Buckets(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	emu := testenv.Emu(t)
	bucket := fmt.Sprintf("dba-s3-%d", time.Now().UnixNano())
	if err := emu.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	missing := bucket + "-missing"
	lp := func(b, prefix string) config.LargePayloads {
		return config.LargePayloads{Bucket: b, Prefix: prefix, Threshold: config.MaxThreshold}
	}
	cfg := &config.Config{Publisher: config.Publisher{Kind: "sns"}, S3: config.S3{Region: emu.Region, Endpoint: emu.Endpoint},
		Tables: []config.Table{
			{Table: "public.a", LargePayloads: lp(bucket, "a/")},
			{Table: "public.b", LargePayloads: lp(bucket, "a/")}, // same place: one row
			{Table: "public.c", LargePayloads: lp(missing, "c/")},
			{Table: "public.d"},
		}}
	rows := s3Checks(ctx, cfg)
	if len(rows) != 2 {
		t.Fatalf("%d s3 rows, want 2: %+v", len(rows), rows)
	}
	if r := rows[0]; r.Check != "s3 bucket "+bucket || r.Status != dba.CheckOK || !strings.Contains(r.Observed, "s3://"+bucket+"/a/: reachable, writable") {
		t.Errorf("row of an existing bucket: %+v", r)
	}
	if _, err := emu.GetObject(ctx, bucket, "a/"+s3.ProbeKey); err != nil {
		t.Errorf("no probe object after check: %v", err)
	}
	if r := rows[1]; r.Check != "s3 bucket "+missing || r.Status != dba.CheckFail || !strings.Contains(r.Observed, "s3://"+missing+"/c/: not writable") ||
		!strings.Contains(r.Fix, "the bucket does not exist") {
		t.Errorf("row of a missing bucket: %+v", r)
	}
	if got := checkExitCode(rows); got != checkCritical {
		t.Errorf("exit code %d, want %d", got, checkCritical)
	}
	cfg.Publisher.Kind = "stdout"
	if rows := s3Checks(ctx, cfg); len(rows) != 0 {
		t.Errorf("publisher.kind stdout: s3 rows %+v", rows)
	}
}

// TestRunStopsOnInvalidatedSlot: a slot the server invalidates (a small
// max_slot_wal_keep_size and WAL written past it while the connector is
// frozen with SIGSTOP, so it confirms nothing) makes the running connector
// exit non-zero with the LSN from which rows may be missing and how to
// recover; starting run again on the lost slot does the same, check
// reports it ✗ with the fix, and no new slot is ever created.
func TestRunStopsOnInvalidatedSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	dsn := pg.NewDatabase(t)
	testenv.MustExec(t, dsn, appsDDL)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
source: {dsn: "%s", slot: cdc, publication: cdc, create: true, status_interval: 100ms, reconnect: {initial: 100ms, max: 1s}}
publisher: {kind: stdout}
tables:
  - table: public.apps
    columns: [{column: application_id}, {column: company_id}]
`, dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, "setup", "--config", cfg); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	running := startProc(t, "run", "--config", cfg)
	running.waitLog(t, `msg=streaming`, 30*time.Second)
	testenv.MustExec(t, dsn, insertApps(1, 5))
	running.waitLog(t, `"application_id":5`, 30*time.Second)
	if err := running.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	// Write past max_slot_wal_keep_size: a few WAL segments, then a
	// checkpoint, which invalidates the slot (terminating its walsender).
	deadline := time.Now().Add(30 * time.Second)
	for i := 1; ; i++ {
		testenv.MustExec(t, dsn, insertApps(i*10, i*10+9)+`; SELECT pg_switch_wal()`)
		testenv.MustExec(t, dsn, insertApps(i*10+5000, i*10+5009)+`; SELECT pg_switch_wal(); CHECKPOINT`)
		var status string
		if err := testenvQueryRow(dsn, `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'cdc'`, &status); err != nil {
			t.Fatal(err)
		}
		if status == "lost" {
			t.Logf("slot invalidated after %d rounds", i)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not invalidated after 30s (wal_status %s)", status)
		}
	}
	var confirmed string
	if err := testenvQueryRow(dsn, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'`, &confirmed); err != nil {
		t.Fatal(err)
	}
	want := []string{"invalidated", "Changes committed after " + confirmed, "may be missing", "teardown", "setup",
		"backfill the mapped rows committed since " + confirmed, "docs/dba.md"}
	if err := running.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := running.wait(t, 60*time.Second); err == nil {
		t.Fatalf("run exited 0 after its slot was invalidated:\n%s", running.output())
	}
	for _, w := range want {
		if !strings.Contains(running.output(), w) {
			t.Errorf("running connector's output lacks %q:\n%s", w, running.output())
		}
	}

	rep, _ := checkJSON(t, "--config", cfg)
	ws := rowsWith(rep, "slot wal_status")
	if len(ws) != 1 || ws[0].Status != dba.CheckFail || !strings.Contains(ws[0].Observed, "lost") || !strings.Contains(ws[0].Fix, "teardown --yes") || !strings.Contains(ws[0].Fix, "backfill") {
		t.Fatalf("check on a lost slot: %+v", rep.Checks)
	}

	p := startProc(t, "run", "--config", cfg)
	if err := p.wait(t, 60*time.Second); err == nil {
		t.Fatalf("run exited 0 on an invalidated slot:\n%s", p.output())
	}
	for _, w := range want {
		if !strings.Contains(p.output(), w) {
			t.Errorf("run on the lost slot: output lacks %q:\n%s", w, p.output())
		}
	}
	var slots []string
	if err := testenvQueryRow(dsn, `SELECT array(SELECT slot_name || ':' || coalesce(wal_status, '') FROM pg_replication_slots)`, &slots); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slots, []string{"cdc:lost"}) {
		t.Fatalf("slots after run: %v; want only the lost one, untouched", slots)
	}
}
