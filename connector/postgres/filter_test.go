package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestConnectorRowFilters: where: evaluated by the connector (as on
// PostgreSQL < 15, forced here on 15 with a publication without row
// filters) passes only matching rows and follows PostgreSQL 15's update
// rules: with the whole old row (REPLICA IDENTITY FULL) an update that
// leaves the filter arrives as a delete, one that enters it as an insert,
// one outside it is dropped; without the old row the new row decides.
// Where it cannot decide (a delete with only the key, an unchanged TOAST
// value) it keeps the change. The filter reads a non-key column while
// updates and deletes are published, which a publication could not do
// without blocking writes: every write still succeeds.
func TestConnectorRowFilters(t *testing.T) {
	integration(t)
	testConnectorRowFilters(t, testenv.PG(t))
}

// testConnectorRowFilters is TestConnectorRowFilters on pg's server. On a
// server with publication row filters the connector's evaluation is
// forced; before 15 it is what the connector does by itself, and setup
// (ApplyPublication) makes a publication without filters from the whole
// spec.
func testConnectorRowFilters(t *testing.T, pg *testenv.Postgres) {
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	native := pg.Version() >= postgres.FeatureByID(postgres.FeatureRowFilters).Since
	exec(t, dsn, `CREATE TABLE t_full (id int PRIMARY KEY, status text, n int);
		ALTER TABLE t_full REPLICA IDENTITY FULL;
		CREATE TABLE t_key (id int PRIMARY KEY, status text, big text);
		ALTER TABLE t_key ALTER COLUMN big SET STORAGE EXTERNAL`)
	conn := connect(t, dsn)
	// Every column published (no column list), filtered by the connector.
	iud := []connector.Op{connector.OpInsert, connector.OpUpdate, connector.OpDelete}
	ms := []*connector.Mapping{
		{Table: "public.t_full", Ops: iud, TypePrefix: "baitoru.t_full", Where: "status = 'open'"},
		{Table: "public.t_key", Ops: iud, TypePrefix: "baitoru.t_key", Where: "status = 'open'"},
	}
	unfiltered := []*connector.Mapping{{Table: "public.t_full", Ops: iud}, {Table: "public.t_key", Ops: iud}}
	pub := ms
	if native {
		pub = unfiltered
	}
	if _, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "cdc", Mappings: pub}); err != nil {
		t.Fatal(err)
	}
	if _, err := dba.EnsureSlot(ctx, conn, "cdc", false); err != nil {
		t.Fatal(err)
	}
	rec := startRecorded(t, dsn, ms, func(o *postgres.Options) { o.ConnectorRowFilters = native })
	big := strings.Repeat("0123456789abcdef", 1000) // 16 kB, stored out of line
	exec(t, dsn,
		`INSERT INTO t_full VALUES (1, 'open', 0), (2, 'closed', 0)`,
		`UPDATE t_full SET status = 'closed' WHERE id = 1`, // leaves: delete
		`UPDATE t_full SET status = 'open' WHERE id = 2`,   // enters: insert
		`UPDATE t_full SET n = 5 WHERE id = 2`,             // stays in: update
		`UPDATE t_full SET n = 6 WHERE id = 1`,             // stays out: dropped
		`DELETE FROM t_full WHERE id = 1`,                  // out: dropped
		`DELETE FROM t_full WHERE id = 2`,                  // in: delete
		`INSERT INTO t_key VALUES (1, 'open', 'x'), (2, 'closed', 'x'), (3, 'closed', '`+big+`')`,
		`UPDATE t_key SET status = 'closed' WHERE id = 1`, // new row out, no old row: dropped
		`DELETE FROM t_key WHERE id = 2`,                  // only the key: kept
		`UPDATE t_key SET status = 'shut' WHERE id = 3`,   // big unchanged (TOAST, not sent): kept
		`INSERT INTO t_key VALUES (100, 'open', 'last')`,
	)
	got := rec.waitFor(t, func(c seen) bool { return c.values["id"] == "100" })
	var trace []string
	for _, c := range got {
		trace = append(trace, fmt.Sprintf("%s %s %s", c.table, c.op, c.values["id"]))
	}
	want := []string{
		"public.t_full insert 1", "public.t_full delete 1", "public.t_full insert 2", "public.t_full update 2", "public.t_full delete 2",
		"public.t_key insert 1", "public.t_key delete 2", "public.t_key update 3", "public.t_key insert 100",
	}
	if strings.Join(trace, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the stream carried\n%s\nwant\n%s", strings.Join(trace, "\n"), strings.Join(want, "\n"))
	}
	rec.stop(t)

	// A filter PostgreSQL cannot evaluate stops the connector with the
	// table and the fix, without skipping anything.
	bad := []*connector.Mapping{{Table: "public.t_key", Ops: iud, TypePrefix: "baitoru.t_key", Where: "no_such_column > 0"}}
	rec = startRecorded(t, dsn, bad, func(o *postgres.Options) { o.ConnectorRowFilters = native })
	exec(t, dsn, `INSERT INTO t_key VALUES (200, 'open', 'x')`)
	err := <-rec.done
	if err == nil || !strings.Contains(err.Error(), "row filter of public.t_key") || !strings.Contains(err.Error(), "fix where:") {
		t.Fatalf("bad filter: %v", err)
	}
}
