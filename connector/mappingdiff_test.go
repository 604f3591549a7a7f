package connector

import (
	"slices"
	"testing"
)

// TestDiffMappings: what `plan` and a live reload report, one line per
// change a consumer of the events will see.
func TestDiffMappings(t *testing.T) {
	base := func() *Mapping {
		return &Mapping{Table: "public.job_postings", Ops: []Op{OpInsert, OpUpdate}, TypePrefix: "baitoru.job_postings",
			Columns:    []MappedColumn{{Column: "id", Name: "id"}, {Column: "title", Name: "title"}, {Column: "company_id", Name: "company_id"}},
			Attributes: []MappedAttribute{{Column: "company_id", Name: "company", Type: "Number"}},
			Key:        []string{"id"}}
	}
	changed := func(f func(m *Mapping)) *Mapping { m := base(); f(m); return m }
	for _, c := range []struct {
		name       string
		old, new   []*Mapping
		kind       TableChangeKind
		details    []string
		newColumns []string
	}{
		{name: "same", old: []*Mapping{base()}, new: []*Mapping{base()}},
		{name: "added", new: []*Mapping{base()}, kind: TableAdded,
			details:    []string{"operations: insert, update", "columns: + id", "columns: + title", "columns: + company_id"},
			newColumns: []string{"id", "title", "company_id"}},
		{name: "removed", old: []*Mapping{base()}, kind: TableRemoved},
		{name: "operations", old: []*Mapping{base()}, new: []*Mapping{changed(func(m *Mapping) { m.Ops = []Op{OpInsert, OpDelete} })},
			kind: TableChanged, details: []string{"operations: + delete", "operations: - update"}},
		{name: "columns", old: []*Mapping{base()}, new: []*Mapping{changed(func(m *Mapping) {
			m.Columns = []MappedColumn{{Column: "id", Name: "id"}, {Column: "title", Name: "name"}, {Column: "salary", Name: "salary"}}
		})}, kind: TableChanged,
			details:    []string{"columns: ~ title → title as name", "columns: + salary", "columns: - company_id"},
			newColumns: []string{"salary"}},
		{name: "column order", old: []*Mapping{base()}, new: []*Mapping{changed(func(m *Mapping) { slices.Reverse(m.Columns) })},
			kind: TableChanged, details: []string{"columns: order id, title, company_id → company_id, title, id"}},
		{name: "attributes, key, where", old: []*Mapping{base()}, new: []*Mapping{changed(func(m *Mapping) {
			m.Attributes = []MappedAttribute{{Name: "source", Type: "String", Value: "baitoru"}}
			m.Key = []string{"id", "company_id"}
			m.Where = "company_id <> 0"
		})}, kind: TableChanged,
			details: []string{`attributes: + source="baitoru" String`, "attributes: - " + attrText(base().Attributes[0]), "key: [id] → [id, company_id]", "where: (none) → company_id <> 0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := DiffMappings(c.old, c.new)
			if c.kind == 0 {
				if len(got) != 0 {
					t.Fatalf("changes %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d changes, want 1: %+v", len(got), got)
			}
			if g := got[0]; g.Kind != c.kind || !slices.Equal(g.Details, c.details) || !slices.Equal(g.NewColumns, c.newColumns) {
				t.Errorf("got kind %d details %q new columns %q\nwant kind %d details %q new columns %q", g.Kind, g.Details, g.NewColumns, c.kind, c.details, c.newColumns)
			}
		})
	}
}
