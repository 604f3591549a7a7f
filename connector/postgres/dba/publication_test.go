package dba_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// One table per kind of replica identity. Every table has the columns
// id, a, b, c; key is the replica identity column used by filters.
const safetyDDL = `
CREATE TABLE t_pk (id int PRIMARY KEY, a int, b text, c int);
CREATE TABLE t_full (id int PRIMARY KEY, a int, b text, c int);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_nopk (id int, a int, b text, c int);
CREATE TABLE t_idx (id int, u int NOT NULL, a int, b text, c int);
CREATE UNIQUE INDEX t_idx_u ON t_idx (u);
ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_u;
CREATE TABLE t_nothing (id int PRIMARY KEY, a int, b text, c int);
ALTER TABLE t_nothing REPLICA IDENTITY NOTHING;`

var safetyTables = []struct{ name, key string }{
	{"public.t_pk", "id"}, {"public.t_full", "id"}, {"public.t_nopk", "id"}, {"public.t_idx", "u"}, {"public.t_nothing", "id"},
}

// writesSucceed runs INSERT, UPDATE (one row, every row, the key) and
// DELETE on every table, as Baitoru's application would.
func writesSucceed(ctx context.Context, conn *pgx.Conn, n int) error {
	for _, tb := range safetyTables {
		qt := dba.QuoteTable(tb.name)
		cols, vals := "id, a, b, c", "$1, $1, 'x', $1"
		if tb.name == "public.t_idx" {
			cols, vals = "id, u, a, b, c", "$1, $1, $1, 'x', $1"
		}
		for _, sql := range []string{
			"INSERT INTO " + qt + " (" + cols + ") VALUES (" + vals + ")",
			"UPDATE " + qt + " SET b = 'y', c = c + 1 WHERE id = $1",
			"UPDATE " + qt + " SET a = a + 1",
			"UPDATE " + qt + " SET " + tb.key + " = " + tb.key + " + 100000 WHERE id = $1",
			"DELETE FROM " + qt + " WHERE id = $1",
		} {
			args := []any{n}
			if !strings.Contains(sql, "$1") {
				args = nil
			}
			if _, err := conn.Exec(ctx, sql, args...); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	return nil
}

// pubString renders a publication deterministically, for comparisons.
func pubString(st *dba.PublicationState) string {
	if st == nil {
		return "none"
	}
	var names []string
	for n := range st.Tables {
		names = append(names, n)
	}
	slices.Sort(names)
	s := fmt.Sprintf("publish=%v truncate=%v", st.Operations(), st.Truncate)
	for _, n := range names {
		pt := st.Tables[n]
		s += fmt.Sprintf("; %s %v where=%s", n, pt.Columns, pt.Where)
	}
	return s
}

type shape struct {
	tables []*connector.Mapping
}

// mapping is a resolved table mapping, as package config makes it (cols
// nil: no column list).
func mapping(table string, ops, cols []string, where string) *connector.Mapping {
	m := &connector.Mapping{Table: table, Where: where}
	for _, s := range ops {
		op, err := connector.ParseOp(s)
		if err != nil {
			panic(err)
		}
		m.Ops = append(m.Ops, op)
	}
	for _, c := range cols {
		m.Columns = append(m.Columns, connector.MappedColumn{Column: c, Name: c})
	}
	return m
}

func (s shape) String() string {
	var parts []string
	for _, t := range s.tables {
		cols := "all"
		if len(t.Columns) > 0 {
			cols = strings.Join(t.ColumnNames(), ",")
		}
		var ops []string
		for _, op := range t.Ops {
			ops = append(ops, op.String())
		}
		p := fmt.Sprintf("%s[%s] cols=%s", t.Table, strings.Join(ops, ","), cols)
		if t.Where != "" {
			p += " where=" + t.Where
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " + ")
}

// TestSetupNeverBreaksWrites applies, one after the other on the same
// publication (so creation and every kind of ALTER are exercised), every
// mapping shape the config allows: each kind of replica identity; inserts
// only, updates, deletes, both; with and without a column list (with and
// without the key); with no filter, a filter on the key, a filter on
// another column; and tables mixing them. After every setup, accepted or
// refused, INSERT, UPDATE and DELETE on every table must still succeed. An
// accepted shape applied again must change nothing; a refused one must
// leave the publication as it was and say why and what to do.
func TestSetupNeverBreaksWrites(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, safetyDDL)
	conn := connect(t, dsn)

	var shapes []shape
	for _, tb := range safetyTables {
		for _, ops := range [][]string{{"insert"}, {"update"}, {"insert", "update"}, {"delete"}, {"insert", "update", "delete"}} {
			for _, cols := range [][]string{nil, {"a", "b"}, {tb.key, "a"}} {
				for _, where := range []string{"", tb.key + " > 0", "c > 0"} {
					shapes = append(shapes, shape{[]*connector.Mapping{mapping(tb.name, ops, cols, where)}})
				}
			}
		}
	}
	shapes = append(shapes,
		shape{[]*connector.Mapping{
			mapping("public.t_pk", []string{"insert"}, []string{"a"}, "c > 0"),
			mapping("public.t_idx", []string{"insert", "update"}, []string{"a"}, ""),
		}},
		shape{[]*connector.Mapping{
			mapping("public.t_full", []string{"insert"}, []string{"a"}, "c > 0"),
			mapping("public.t_pk", []string{"insert", "update", "delete"}, []string{"b"}, "id > 0"),
		}},
		shape{[]*connector.Mapping{
			mapping("public.t_nopk", []string{"insert"}, []string{"a"}, ""),
			mapping("public.t_pk", []string{"insert", "update"}, []string{"a"}, ""),
		}},
		shape{[]*connector.Mapping{
			mapping("public.t_nopk", []string{"insert"}, nil, "c > 0"),
			mapping("public.t_pk", []string{"insert"}, []string{"b"}, "a > 0 AND b <> 'z'"),
			mapping("public.t_nothing", []string{"insert"}, []string{"a"}, ""),
		}},
	)
	// Some outcomes stated explicitly, so that a planner refusing
	// everything (or nothing) fails.
	want := map[string]bool{
		"public.t_pk[insert] cols=a,b where=c > 0":                                    true,
		"public.t_pk[insert,update] cols=a,b":                                         true, // identity added to the list
		"public.t_pk[update] cols=a,b where=c > 0":                                    false,
		"public.t_pk[delete] cols=id,a where=id > 0":                                  true,
		"public.t_full[insert,update] cols=a,b where=c > 0":                           true, // no column list with FULL
		"public.t_full[delete] cols=all where=c > 0":                                  true,
		"public.t_nopk[insert] cols=a,b where=c > 0":                                  true,
		"public.t_nopk[update] cols=all":                                              false,
		"public.t_nothing[delete] cols=a,b":                                           false,
		"public.t_idx[insert,update,delete] cols=a,b where=u > 0":                     true,
		"public.t_idx[update] cols=all where=c > 0":                                   false,
		"public.t_nopk[insert] cols=a + public.t_pk[insert,update] cols=a":            false, // publish update reaches t_nopk too
		"public.t_pk[insert] cols=a where=c > 0 + public.t_idx[insert,update] cols=a": false,
	}
	accepted, refused := 0, 0
	for i, s := range shapes {
		before, err := dba.ReadPublication(ctx, conn, 150000, "safety")
		if err != nil {
			t.Fatal(err)
		}
		res, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "safety", Mappings: s.tables})
		var pe *dba.PlanError
		switch {
		case err == nil:
			accepted++
			again, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "safety", Mappings: s.tables})
			if err != nil || again.Action != dba.PublicationUnchanged || len(again.Statements) != 0 {
				t.Errorf("%s: second setup was not a no-op: %+v, %v", s, again, err)
			}
			if w, ok := want[s.String()]; ok && !w {
				t.Errorf("%s: accepted (%s), want refused", s, res.Action)
			}
		case errors.As(err, &pe):
			refused++
			if !strings.Contains(err.Error(), "fix: ") {
				t.Errorf("%s: refusal without a fix: %v", s, err)
			}
			after, rerr := dba.ReadPublication(ctx, conn, 150000, "safety")
			if rerr != nil {
				t.Fatal(rerr)
			}
			if pubString(before) != pubString(after) {
				t.Errorf("%s: refused, but the publication changed", s)
			}
			if w, ok := want[s.String()]; ok && w {
				t.Errorf("%s: refused, want accepted: %v", s, err)
			}
		default:
			t.Fatalf("%s: %v", s, err)
		}
		if err := writesSucceed(ctx, conn, i+1); err != nil {
			t.Fatalf("after setup of %s: a write fails: %v", s, err)
		}
	}
	for k := range want {
		found := slices.ContainsFunc(shapes, func(s shape) bool { return s.String() == k })
		if !found {
			t.Errorf("expected outcome for unknown shape %q", k)
		}
	}
	t.Logf("%d shapes: %d accepted, %d refused; writes succeeded after each", len(shapes), accepted, refused)
}

// TestSetupNamesAnotherPublication: when writes on a mapped table fail
// because of another publication of the database (here one that publishes
// updates of a table without replica identity), setup's refusal names that
// publication and gives a fix, not a pointer to reasons it does not show.
func TestSetupNamesAnotherPublication(t *testing.T) {
	integration(t)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE t_nopk (id int, a int, b text, c int);
		CREATE PUBLICATION reporting_pub FOR TABLE t_nopk`)
	conn := connect(t, dsn)
	ms := []*connector.Mapping{mapping("public.t_nopk", []string{"insert"}, nil, "")}
	_, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: "safety", Mappings: ms})
	var pe *dba.PlanError
	if !errors.As(err, &pe) || len(pe.Problems) == 0 {
		t.Fatalf("setup = %v, want a refusal", err)
	}
	for _, p := range pe.Problems {
		if !strings.Contains(p.Reason, `publication "reporting_pub"`) || strings.Contains(p.Reason, `"safety"`) ||
			strings.Contains(p.Fix, "see the reasons above") || !strings.Contains(p.Fix, "reporting_pub") {
			t.Errorf("problem %+v: want reporting_pub named as the cause, with a fix", p)
		}
	}
	t.Log(err)
}
