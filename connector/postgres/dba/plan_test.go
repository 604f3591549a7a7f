package dba

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// catalog builds table descriptions for planner unit tests.
func table(name string, ident byte, identity []string, cols ...string) *TableInfo {
	t := &TableInfo{Table: name, Exists: true, Kind: 'r', ReplicaIdentity: ident, Identity: identity, Owned: true}
	for i, c := range cols {
		gen := strings.HasSuffix(c, "*")
		t.Columns = append(t.Columns, ColumnInfo{Name: strings.TrimSuffix(c, "*"), Num: int16(i + 1), TypeOID: 25, TypeName: "text", Generated: gen})
	}
	switch {
	case ident == 'd' && len(identity) > 0:
		t.IdentityIndex = name[strings.IndexByte(name, '.')+1:] + "_pkey"
	case ident == 'i':
		t.IdentityIndex = name[strings.IndexByte(name, '.')+1:] + "_u_key"
	}
	return t
}

// mapping is a resolved table mapping, as package config makes it.
func mapping(name string, ops []string, cols []string, where string) *connector.Mapping {
	m := &connector.Mapping{Table: name, Where: where}
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

func tablesOf(ts ...*TableInfo) map[string]*TableInfo {
	m := map[string]*TableInfo{}
	for _, t := range ts {
		m[t.Table] = t
	}
	return m
}

// renderPlan is what the golden files hold: the statements and notes.
func renderPlan(p *Plan, mappings []*connector.Mapping, tables map[string]*TableInfo) string {
	var b strings.Builder
	for _, n := range p.Notes {
		b.WriteString("-- note: " + n + "\n")
	}
	for _, n := range IdentityNotes(mappings, tables) {
		b.WriteString("-- identity: " + n + "\n")
	}
	for _, st := range p.CreateStatements() {
		b.WriteString("-- " + st.Comment + "\n" + st.SQL + ";\n")
	}
	for _, n := range RoleNotes("cdc", "baitoru", p, nil) {
		b.WriteString("-- role: " + n + "\n")
	}
	return b.String()
}

// TestPlanPublication covers every mapping shape the config allows on
// PostgreSQL 15 and 14 (the column list / row filter branch), and the
// refusals, with their reasons and fixes.
func TestPlanPublication(t *testing.T) {
	apps := table("public.apps", 'd', []string{"id"}, "id", "company_id", "email", "status")
	full := table("public.full_t", 'f', nil, "id", "a", "b")
	nopk := table("public.nopk", 'd', nil, "a", "b")
	nothing := table("public.nothing", 'n', nil, "id", "a")
	byIndex := table("public.by_index", 'i', []string{"u"}, "id", "u", "a")
	weird := table("public.weird; drop", 'd', []string{"Id"}, "Id", `a"b`, "c")
	gen := table("public.gen", 'd', []string{"id"}, "id", "a", "a2*")
	part := table("public.part", 'd', []string{"id"}, "id")
	part.Kind = 'p'
	all := tablesOf(apps, full, nopk, nothing, byIndex, weird, gen, part)

	ins := []string{"insert"}
	iu := []string{"insert", "update"}
	iud := []string{"insert", "update", "delete"}
	tests := []struct {
		name    string
		server  int
		tables  []*connector.Mapping
		refused []string // substrings of the refusal; empty: planned
	}{
		{name: "insert_only_columns", server: 150004, tables: []*connector.Mapping{mapping("public.apps", ins, []string{"company_id", "status"}, "")}},
		{name: "insert_only_filter_any_column", server: 150004, tables: []*connector.Mapping{mapping("public.apps", ins, []string{"company_id"}, "status <> 'draft' AND email IS NOT NULL")}},
		{name: "update_adds_identity_to_column_list", server: 150004, tables: []*connector.Mapping{mapping("public.apps", iu, []string{"company_id", "status"}, "")}},
		{name: "update_filter_on_identity", server: 150004, tables: []*connector.Mapping{mapping("public.apps", iud, []string{"id", "status"}, "id > 100")}},
		{name: "update_full_identity_no_column_list", server: 150004, tables: []*connector.Mapping{mapping("public.full_t", iu, []string{"a"}, "b = 'x'")}},
		{name: "update_identity_index", server: 150004, tables: []*connector.Mapping{mapping("public.by_index", iud, []string{"a"}, "")}},
		{name: "no_columns_mapped", server: 150004, tables: []*connector.Mapping{mapping("public.apps", iud, nil, "")}},
		{name: "mixed_operations", server: 150004, tables: []*connector.Mapping{
			mapping("public.apps", ins, []string{"company_id"}, ""),
			mapping("public.by_index", iu, []string{"a"}, ""),
		}},
		{name: "weird_names_quoted", server: 150004, tables: []*connector.Mapping{mapping("public.weird; drop", iu, []string{`a"b`}, `"a""b" <> 'x;y'`)}},
		{name: "insert_only_no_identity", server: 150004, tables: []*connector.Mapping{mapping("public.nopk", ins, []string{"a"}, "b > 'm'")}},
		{name: "pg14_no_column_lists", server: 140009, tables: []*connector.Mapping{mapping("public.apps", iu, []string{"company_id"}, "")}},
		{name: "pg14_where_in_connector", server: 140009, tables: []*connector.Mapping{mapping("public.apps", iu, []string{"company_id"}, "status = 'open'")}},
		{
			name: "update_no_primary_key_refused", server: 150004,
			tables:  []*connector.Mapping{mapping("public.nopk", iu, []string{"a"}, "")},
			refused: []string{"no replica identity", "none (no primary key)", "REPLICA IDENTITY FULL", "map only insert"},
		},
		{
			name: "delete_identity_nothing_refused", server: 150004,
			tables:  []*connector.Mapping{mapping("public.nothing", []string{"delete"}, []string{"a"}, "")},
			refused: []string{"REPLICA IDENTITY NOTHING", "publishes delete"},
		},
		{
			// The publication publishes update for both tables: the
			// insert-only table needs a replica identity too.
			name: "insert_only_table_in_update_publication_refused", server: 150004,
			tables:  []*connector.Mapping{mapping("public.nopk", ins, []string{"a"}, ""), mapping("public.apps", iu, []string{"id"}, "")},
			refused: []string{"public.nopk: has no replica identity", "separate connector"},
		},
		{
			name: "missing_table_and_column_refused", server: 150004,
			tables:  []*connector.Mapping{mapping("public.nope", ins, []string{"a"}, ""), mapping("public.apps", ins, []string{"Company_ID"}, "")},
			refused: []string{"public.nope: table does not exist", `has no column "Company_ID"`},
		},
		{
			name: "generated_column_refused", server: 150004,
			tables:  []*connector.Mapping{mapping("public.gen", ins, []string{"a2"}, "")},
			refused: []string{"generated"},
		},
		{
			name: "partitioned_refused", server: 150004,
			tables:  []*connector.Mapping{mapping("public.part", ins, []string{"id"}, "")},
			refused: []string{"partitioned"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanPublication("cdc", tc.tables, tc.server, all)
			if len(tc.refused) > 0 {
				var pe *PlanError
				if !errors.As(err, &pe) || !errors.Is(err, ErrRefused) || !errors.Is(err, connector.ErrPermanent) {
					t.Fatalf("want a refusal (PlanError, ErrRefused, ErrPermanent), got plan %+v, err %v", p, err)
				}
				for _, s := range tc.refused {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("refusal lacks %q:\n%v", s, err)
					}
				}
				for _, pr := range pe.Problems {
					if pr.Fix == "" {
						t.Errorf("problem without a fix: %+v", pr)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "setup", tc.name, "plan.sql"), renderPlan(p, tc.tables, all))
		})
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestPlanColumnLists checks the column-list rules directly, without
// golden files.
func TestPlanColumnLists(t *testing.T) {
	apps := table("public.apps", 'd', []string{"id"}, "id", "company_id", "email")
	full := table("public.full_t", 'f', nil, "id", "a")
	tables := tablesOf(apps, full)
	plan := func(server int, ops []string, tb string, cols ...string) PlannedTable {
		t.Helper()
		p, err := PlanPublication("p", []*connector.Mapping{mapping(tb, ops, cols, "")}, server, tables)
		if err != nil {
			t.Fatal(err)
		}
		return p.Tables[0]
	}
	if got := plan(150000, []string{"insert"}, "public.apps", "company_id"); strings.Join(got.Columns, ",") != "company_id" || got.Added != nil {
		t.Errorf("insert only: %+v", got)
	}
	if got := plan(150000, []string{"insert", "delete"}, "public.apps", "company_id"); strings.Join(got.Columns, ",") != "company_id,id" || strings.Join(got.Added, ",") != "id" {
		t.Errorf("delete adds the identity: %+v", got)
	}
	if got := plan(150000, []string{"update"}, "public.full_t", "a"); got.Columns != nil {
		t.Errorf("FULL identity with update must have no column list: %+v", got)
	}
	if got := plan(140000, []string{"insert"}, "public.apps", "company_id"); got.Columns != nil {
		t.Errorf("PostgreSQL 14 has no column lists: %+v", got)
	}
}
