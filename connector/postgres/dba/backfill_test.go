package dba_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func checkRow(rows []dba.CheckResult, name string) *dba.CheckResult {
	for i := range rows {
		if rows[i].Check == name {
			return &rows[i]
		}
	}
	return nil
}

// TestBackfillObjects walks what online backfill keeps in the source
// database: a dry run changes nothing; ApplyBackfill creates the schema,
// the two tables and the requests' publication, and a second call runs
// nothing; once the connector role exists, ApplyBackfill grants it what
// BackfillRoleNotes says (once), and it passes
// check; a requester role made as RequesterNotes says may request and read
// progress and nothing else; a table of another shape is refused and left
// alone; teardown keeps the tables while another connector's publication
// uses them, and drops everything otherwise.
func TestBackfillObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	admin := testenv.PG(t).NewDatabase(t)
	conn := connect(t, admin)
	suffix := strings.TrimPrefix(conn.Config().Database, "test_")
	role, requester := "bfc_"+suffix, "bfr_"+suffix
	o := dba.BackfillObjects{Schema: "baitoru_cdc", Publication: "cdc_backfill", Role: role}
	const setup = "baitoru-cdc setup --config c.yaml"

	rows, err := dba.CheckBackfill(ctx, conn, o, setup)
	if err != nil {
		t.Fatal(err)
	}
	if r := checkRow(rows, "backfill schema baitoru_cdc"); r == nil || r.Status != dba.CheckWarn || !strings.Contains(r.Fix, setup) {
		t.Fatalf("check before setup: %+v", rows)
	}

	dry, err := dba.ApplyBackfill(ctx, conn, o, true)
	if err != nil {
		t.Fatal(err)
	}
	var sqls []string
	for _, s := range dry.Statements {
		if s.Comment == "" {
			t.Errorf("statement without comment: %s", s.SQL)
		}
		sqls = append(sqls, s.SQL)
	}
	all := strings.Join(sqls, ";\n")
	for _, want := range []string{`CREATE SCHEMA IF NOT EXISTS "baitoru_cdc"`, `CREATE TABLE "baitoru_cdc".backfill_requests`, `CREATE TABLE "baitoru_cdc".backfills`,
		`CREATE PUBLICATION "cdc_backfill" FOR TABLE "baitoru_cdc"."backfill_requests" WITH (publish = 'insert')`} {
		if !strings.Contains(all, want) {
			t.Errorf("dry run: no %q in\n%s", want, all)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'baitoru_cdc'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("dry run created the schema: %d %v", n, err)
	}

	res, err := dba.ApplyBackfill(ctx, conn, o, false)
	if err != nil || len(res.Statements) != 4 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if res, err = dba.ApplyBackfill(ctx, conn, o, false); err != nil || len(res.Statements) != 0 {
		t.Fatalf("second apply ran %+v %v", res, err)
	}

	// The connector's role, as setup's comments describe it.
	testenv.MustExec(t, admin, `CREATE ROLE `+role+` WITH LOGIN REPLICATION`)
	t.Cleanup(func() { _ = testenv.Exec(ctx, admin, `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	rows, err = dba.CheckBackfill(ctx, conn, o, setup)
	if err != nil {
		t.Fatal(err)
	}
	if r := checkRow(rows, "backfill grants"); r == nil || r.Status != dba.CheckWarn || !strings.Contains(r.Fix, `GRANT SELECT, INSERT, UPDATE ON "baitoru_cdc"."backfills" TO "`+role+`"`) {
		t.Fatalf("grants row before the grants: %+v", r)
	}
	// setup run again once the role exists grants what BackfillRoleNotes
	// lists (check's fix says so), and only once.
	res, err = dba.ApplyBackfill(ctx, conn, o, false)
	if err != nil {
		t.Fatal(err)
	}
	var granted []string
	for _, s := range res.Statements {
		granted = append(granted, s.SQL+";")
	}
	if notes := dba.BackfillRoleNotes(o, role); strings.Join(granted, "\n") != strings.Join(notes, "\n") {
		t.Errorf("apply once the role exists ran\n%s\nwant the role notes\n%s", strings.Join(granted, "\n"), strings.Join(notes, "\n"))
	}
	if res, err = dba.ApplyBackfill(ctx, conn, o, false); err != nil || len(res.Statements) != 0 {
		t.Fatalf("apply after the grants ran %+v %v", res, err)
	}
	rows, err = dba.CheckBackfill(ctx, conn, o, setup)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Status != dba.CheckOK {
			t.Errorf("check after setup: %+v", r)
		}
	}
	for _, name := range []string{"backfill schema baitoru_cdc", "backfill publication cdc_backfill", "backfill grants"} {
		if checkRow(rows, name) == nil {
			t.Errorf("no check row %q in %+v", name, rows)
		}
	}

	// The requester role: request and read, nothing else.
	testenv.MustExec(t, admin, `CREATE ROLE `+requester+` WITH LOGIN`)
	t.Cleanup(func() { _ = testenv.Exec(ctx, admin, `DROP OWNED BY `+requester+`; DROP ROLE `+requester) })
	for _, s := range dba.RequesterNotes(o, conn.Config().Database) {
		if strings.HasPrefix(s, "CREATE ROLE") {
			continue
		}
		s = strings.ReplaceAll(s, `"baitoru_cdc_requester"`, requester)
		testenv.MustExec(t, admin, s)
	}
	reqDSN := strings.Replace(admin, "postgres://postgres@", "postgres://"+requester+"@", 1)
	testenv.MustExec(t, reqDSN, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bf-1', 'start', 'public.t')`)
	var by string
	if err := testenvQueryRow(reqDSN, `SELECT requested_by FROM baitoru_cdc.backfill_requests WHERE backfill_id = 'bf-1'`, &by); err != nil || by != requester {
		t.Fatalf("requested_by %q %v", by, err)
	}
	for _, forbidden := range []string{
		`INSERT INTO baitoru_cdc.backfills (backfill_id, slot, table_name, status) VALUES ('x', 's', 'public.t', 'running')`,
		`UPDATE baitoru_cdc.backfill_requests SET table_name = 'public.u'`,
		`DELETE FROM baitoru_cdc.backfill_requests`,
		`INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name, requested_by) VALUES ('bf-2', 'start', 'public.t', 'someone else')`,
		`SELECT pg_catalog.pg_create_logical_replication_slot('x', 'pgoutput')`,
	} {
		err := testenv.Exec(ctx, reqDSN, forbidden)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("requester may %s: %v", forbidden, err)
		}
	}
	if err := testenv.Exec(ctx, reqDSN, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bad id; drop', 'start', 'public.t')`); err == nil || !strings.Contains(err.Error(), "check constraint") {
		t.Errorf("a malformed backfill id was accepted: %v", err)
	}

	// Another connector's publication uses the requests table: teardown
	// keeps the tables and deletes only this slot's state.
	testenv.MustExec(t, admin, `CREATE PUBLICATION other_backfill FOR TABLE baitoru_cdc.backfill_requests WITH (publish = 'insert');
		INSERT INTO baitoru_cdc.backfills (backfill_id, slot, table_name, status) VALUES ('a', 'cdc', 'public.t', 'done'), ('b', 'other', 'public.t', 'done')`)
	td, err := dba.TeardownBackfill(ctx, conn, o, "cdc")
	if err != nil || !td.Publication || td.Tables || td.Deleted != 1 || strings.Join(td.Kept, ",") != "other_backfill" {
		t.Fatalf("teardown with another connector: %+v %v", td, err)
	}
	testenv.MustExec(t, admin, `DROP PUBLICATION other_backfill`)
	td, err = dba.TeardownBackfill(ctx, conn, o, "cdc")
	if err != nil || td.Publication || !td.Tables {
		t.Fatalf("teardown: %+v %v", td, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'baitoru_cdc'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema left after teardown: %d %v", n, err)
	}

	// A table of another shape in the way: refused, untouched.
	testenv.MustExec(t, admin, `CREATE SCHEMA baitoru_cdc; CREATE TABLE baitoru_cdc.backfills (id int)`)
	_, err = dba.ApplyBackfill(ctx, conn, o, false)
	var pe *dba.PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "baitoru_cdc.backfills: exists without column backfill_id text") {
		t.Fatalf("apply over a foreign table: %v", err)
	}
	rows, err = dba.CheckBackfill(ctx, conn, o, setup)
	if err != nil {
		t.Fatal(err)
	}
	if r := checkRow(rows, "backfill table baitoru_cdc.backfills"); r == nil || r.Status != dba.CheckWarn {
		t.Fatalf("check with a foreign table: %+v", rows)
	}
}

func testenvQueryRow(dsn, sql string, dest ...any) error {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(context.Background(), sql).Scan(dest...)
}
