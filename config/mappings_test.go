package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// TestMappings: a loaded table and the same table written in code resolve
// to the same mapping, with every default applied once, by config.
func TestMappings(t *testing.T) {
	want := []*connector.Mapping{{
		Table:      "public.applications",
		Ops:        []connector.Op{connector.OpInsert},
		TypePrefix: "baitoru.applications",
		Columns:    []connector.MappedColumn{{Column: "application_id", Name: "application_id"}, {Column: "company_id", Name: "company"}},
		Attributes: []connector.MappedAttribute{{Column: "company_id", Name: "company", Type: "String"}},
		Where:      "status = 'applied'",
	}}
	cfg := mustLoad(t, writeConfig(t, minimal+"    where: \" status = 'applied' \"\n"))
	if got := cfg.Mappings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Mappings() = %+v\nwant %+v", got[0], want[0])
	}
	got, err := CompileTables([]Table{{
		Table:      "public.applications",
		Columns:    []Column{{Column: "application_id"}, {Column: "company_id", Rename: "company"}},
		Attributes: []Attribute{{Column: "company_id"}},
		Where:      "status = 'applied'",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CompileTables = %+v\nwant %+v", got[0], want[0])
	}
}

// TestCompileTablesValidates: a table written in code is checked by the
// same rules as the file's, and named by its key path.
func TestCompileTablesValidates(t *testing.T) {
	tests := []struct {
		table Table
		want  string
	}{
		{Table{Table: "public.t", Operations: []string{"insert", "upsert"}, Columns: []Column{{Column: "id"}}},
			`tables[0].operations[1]: "upsert" is not an operation`},
		{Table{Table: "t", Columns: []Column{{Column: "id"}}}, `tables[0].table: "t" is not schema-qualified`},
		{Table{Table: "public.t", Columns: []Column{{Column: "id"}}, Key: []string{"gone"}}, `tables[0].key[0]: "gone" is not a published column`},
		{Table{Table: "public.t", Columns: []Column{{Column: "id"}}, Where: "true); DROP TABLE x; --"}, `tables[0].where: must be one SQL boolean expression`},
	}
	for _, tc := range tests {
		_, err := CompileTables([]Table{tc.table})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CompileTables(%+v) = %v, want %q", tc.table, err, tc.want)
		}
	}
}

// TestDefaultsWithoutFile: the defaults an empty file gives, as code gets them.
func TestDefaultsWithoutFile(t *testing.T) {
	d := Defaults()
	empty, ps := read(writeConfig(t, "{}\n"), func(string) (string, bool) { return "", false })
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	empty.File, empty.meta = "", d.meta
	if !reflect.DeepEqual(d, empty) {
		t.Errorf("Defaults() = %+v\nwant what an empty file gives: %+v", d, empty)
	}
	if d.Publisher.Retry.Max == 0 || d.Source.StatusInterval == 0 || d.Publisher.Lanes == 0 {
		t.Errorf("defaults missing: %+v", d)
	}
}
