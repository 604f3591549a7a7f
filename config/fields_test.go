package config

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEveryFieldHasAKey guards TestDocCoversEveryKey: that test walks the
// fields with a mapstructure tag, so a field added without one would be
// neither loaded nor documented, and nothing would notice. Every exported
// field of the configuration structs must be a key (or say "-").
func TestEveryFieldHasAKey(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, ok := f.Tag.Lookup("mapstructure")
			if !ok || tag == "" {
				t.Errorf("%s.%s (%s) has no mapstructure tag: it is not a key of the file, and docs/config.md is not checked for it", typ.Name(), f.Name, path)
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
				walk(ft, path+"."+tag)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	if len(seen) < 10 {
		t.Fatalf("walked only %d structs", len(seen))
	}
}

// docRows returns the rows of docs/config.md's key tables, by key path:
// the cells after the key (type, default, then environment or meaning).
func docRows(t *testing.T) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.TrimPrefix(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		key := strings.Trim(cells[0], "`")
		if _, dup := rows[key]; dup {
			t.Errorf("docs/config.md: two rows for `%s`", key)
		}
		rows[key] = cells[1:]
	}
	return rows
}

// docType is how docs/config.md's type column starts for a kind of key.
var docType = map[kind]string{
	kindString: "string", kindBool: "boolean", kindInt: "integer", kindBytes: "byte size",
	kindDuration: "duration", kindStrings: "list of strings", kindStruct: "mapping", kindStructs: "list",
}

// docDefault is a default value as docs/config.md writes it.
func docDefault(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return v.String()
	case int64: // byte sizes
		for _, u := range []struct {
			name string
			size int64
		}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
			if v >= u.size && v%u.size == 0 {
				return strconv.FormatInt(v/u.size, 10) + u.name
			}
		}
		return strconv.FormatInt(v, 10)
	default:
		return fmt.Sprint(v)
	}
}

// TestDocRowsMatchFields checks each key's row of docs/config.md against
// the configuration structs: there is exactly one row per key (a top-level
// section may have a heading instead) and no row
// for a key that does not exist; its type column matches the field's
// type; its default column shows the default Load applies; the row of a
// key that can be overridden names its environment variable.
func TestDocRowsMatchFields(t *testing.T) {
	rows := docRows(t)
	keys := map[string]kind{}
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for _, f := range fieldsOf(typ) {
			p := join(prefix, f.name)
			keys[p] = f.kind
			switch f.kind {
			case kindStruct:
				walk(f.typ, p)
			case kindStructs:
				walk(f.typ, p+"[]")
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	env := map[string]string{}
	for _, l := range envLeaves() {
		env[l.path] = l.env
	}
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for p, k := range keys {
		cells, ok := rows[p]
		if !ok && !strings.Contains(p, ".") && strings.Contains(string(doc), "\n## `"+p+"`") {
			continue // a section of the file, documented by its own heading
		}
		if !ok {
			t.Errorf("docs/config.md has no row | `%s` | …", p)
			continue
		}
		if len(cells) < 3 {
			t.Errorf("docs/config.md: row of `%s` has %d cells, want type, default and more", p, len(cells))
			continue
		}
		if want := docType[k]; !strings.HasPrefix(cells[0], want) || (k == kindStructs && strings.HasPrefix(cells[0], "list of strings")) {
			t.Errorf("docs/config.md: the type of `%s` is documented as %q, want %q: the field is %s", p, cells[0], want, k.expected())
		}
		if d, ok := defaults[p]; ok && !strings.Contains(cells[1], docDefault(d)) {
			t.Errorf("docs/config.md: default of `%s` is documented as %q, but Load applies %s", p, cells[1], docDefault(d))
		}
		if e, ok := env[p]; ok && !strings.Contains(cells[2], "`"+e+"`") {
			t.Errorf("docs/config.md: row of `%s` does not name its environment variable %s", p, e)
		}
	}
	for p := range rows {
		if _, ok := keys[p]; !ok && !strings.HasPrefix(p, "$") {
			t.Errorf("docs/config.md documents `%s`, which is not a key of the configuration structs", p)
		}
	}
}
