package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// keyPaths lists every key of the file format, list items written "[]":
// "source.dsn", "tables[].columns[].rename", ...
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for _, f := range fieldsOf(t) {
		p := join(prefix, f.name)
		switch f.kind {
		case kindStruct:
			out = append(out, p)
			out = append(out, keyPaths(f.typ, p)...)
		case kindStructs:
			out = append(out, p)
			out = append(out, keyPaths(f.typ, p+"[]")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// TestDocCoversEveryKey checks docs/config.md names every key, in
// backquotes, and every environment override of a scalar key.
func TestDocCoversEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	paths := keyPaths(reflect.TypeOf(Config{}), "")
	if len(paths) < 60 {
		t.Fatalf("only %d key paths found; the reflection walk is broken", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(text, "`"+p+"`") {
			t.Errorf("docs/config.md does not document `%s`", p)
		}
	}
	for _, l := range envLeaves() {
		if !strings.Contains(text, l.env) {
			t.Errorf("docs/config.md does not name %s", l.env)
		}
	}
	for k := range defaults {
		if !strings.Contains(text, "`"+k+"`") {
			t.Errorf("docs/config.md does not document the default of `%s`", k)
		}
	}
}
