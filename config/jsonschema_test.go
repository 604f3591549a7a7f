package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/invopop/jsonschema"
	santhosh "github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// schemaFile is the JSON Schema of config.yaml that editors read (the
// shipped config's "# yaml-language-server: $schema=..." line names it).
const schemaFile = "../docs/config.schema.json"

// generateSchema reflects the Config structs into a JSON Schema: key names
// from the mapstructure tags, descriptions from the Go doc comments of this
// package, defaults from the defaults table (and the list defaults
// applyListDefaults applies), and the file format's own value forms
// (durations, byte sizes, integers written as strings).
func generateSchema(t *testing.T) []byte {
	t.Helper()
	r := &jsonschema.Reflector{
		FieldNameTag:               "mapstructure",
		RequiredFromJSONSchemaTags: true,
		Anonymous:                  true,
		DoNotReference:             true, // each use its own defaults (Backoff)
		Mapper:                     schemaOfType,
	}
	if err := r.AddGoComments("github.com/baitoru/baitoru-cdc/config", "."); err != nil {
		t.Fatal(err)
	}
	s := r.Reflect(&Config{})
	s.ID = "https://github.com/baitoru/baitoru-cdc/docs/config.schema.json"
	s.Title = "baitoru-cdc configuration (config.yaml)"
	s.Description = "Generated from the config package's structs by `make config-schema`; docs/config.md is the reference."
	for path, v := range defaults {
		p := schemaAt(t, s, strings.Split(path, "."))
		switch d := v.(type) {
		case time.Duration:
			p.Default = d.String()
		default:
			p.Default = d
		}
	}
	// Defaults that depend on the list item (applyListDefaults).
	schemaAt(t, s, []string{"tables", "[]", "operations"}).Default = []string{"insert"}
	schemaAt(t, s, []string{"tables", "[]", "attributes", "[]", "type"}).Default = "String"
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// The value forms of the file format (a new schema each time: the
// reflector writes each field's description and default into it).
func durationSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "string", Pattern: `^[-+]?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`, Description: `a duration: "500ms", "10s", "1m30s", "2h"`},
		{Type: "integer", Enum: []any{0}},
	}}
}

func byteSizeSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "integer", Minimum: json.Number("0")},
		{Type: "string", Pattern: `^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTt]i?)?[Bb]?\s*$`, Description: `a byte size: "64MiB", "1GB", "1.5GiB"`},
	}}
}

func intSchema() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "integer"},
		{Type: "string", Pattern: `^-?[0-9]+$`},
	}}
}

// schemaOfType gives the value forms the loader accepts for a Go type.
// The only int64 fields are byte sizes (their key ends in _bytes), and
// TestSchemaInt64AreByteSizes keeps it so.
func schemaOfType(t reflect.Type) *jsonschema.Schema {
	switch {
	case t == durationType:
		return durationSchema()
	case t.Kind() == reflect.Int64:
		return byteSizeSchema()
	case t.Kind() == reflect.Int:
		return intSchema()
	}
	return nil
}

// schemaAt follows a key path ("[]" for a list's items) through
// properties, items and $defs references.
func schemaAt(t *testing.T, root *jsonschema.Schema, path []string) *jsonschema.Schema {
	t.Helper()
	s := root
	deref := func() {
		for s.Ref != "" {
			name := strings.TrimPrefix(s.Ref, "#/$defs/")
			d, ok := root.Definitions[name]
			if !ok {
				t.Fatalf("schema: no definition %s", name)
			}
			s = d
		}
	}
	for _, k := range path {
		deref()
		if k == "[]" {
			s = s.Items
			continue
		}
		p, ok := s.Properties.Get(k)
		if !ok {
			t.Fatalf("schema: no key %s in path %s", k, strings.Join(path, "."))
		}
		s = p
	}
	deref()
	return s
}

// TestJSONSchemaUpToDate fails when docs/config.schema.json is not what the
// config structs generate: after changing a key or its comment, run
// `make config-schema` (go test ./config -run TestJSONSchemaUpToDate -update).
func TestJSONSchemaUpToDate(t *testing.T) {
	got := generateSchema(t)
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v; generate it with make config-schema", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/config.schema.json is stale: the config structs changed; regenerate it with make config-schema and commit it")
	}
}

// TestSchemaInt64AreByteSizes: schemaOfType maps every int64 to a byte
// size, which is right only while every int64 key is one.
func TestSchemaInt64AreByteSizes(t *testing.T) {
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for _, f := range fieldsOf(rt) {
			sf := rt.Field(f.index)
			switch {
			case f.typ != nil:
				walk(f.typ)
			case sf.Type.Kind() == reflect.Int64 && sf.Type != durationType && f.kind != kindBytes:
				t.Errorf("%s.%s is an int64 that is not a byte size; give schemaOfType a way to tell", rt.Name(), sf.Name)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
}

// compiledSchema compiles docs/config.schema.json with an independent
// validator.
func compiledSchema(t *testing.T) *santhosh.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := santhosh.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := santhosh.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlDoc reads a YAML file as the generic value a JSON Schema validator
// takes.
func yamlDoc(t *testing.T, file string) any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	// Through JSON, so that numbers and maps have the validator's types.
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := santhosh.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShippedConfigsMatchSchema validates the shipped configuration files
// and every valid example config against the schema with an independent
// validator, and checks that the schema refuses what the loader refuses
// for its shape (an unknown key, a wrong value type, an unknown
// operation): an editor then says what validate would.
func TestShippedConfigsMatchSchema(t *testing.T) {
	s := compiledSchema(t)
	files := []string{"../config.yaml", "../deploy/config.yaml"}
	more, _ := filepath.Glob("../testdata/config/*_ok*/config.yaml")
	files = append(files, more...)
	for _, f := range files {
		if err := s.Validate(yamlDoc(t, f)); err != nil {
			t.Errorf("%s does not match docs/config.schema.json: %v", f, err)
		}
	}
	for _, f := range []string{"../config.yaml", "../deploy/config.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(filepath.Dir(f), schemaFile)
		line := fmt.Sprintf("# yaml-language-server: $schema=%s\n", filepath.ToSlash(rel))
		if !strings.HasPrefix(string(data), line) && !strings.HasPrefix(string(data), strings.Replace(line, "=", "=./", 1)) {
			t.Errorf("%s does not start with %q: editors would not find the schema", f, strings.TrimSpace(line))
		}
	}
	bad := map[string]string{
		"unknown key":          "source:\n  dsnn: postgres://x@y/z\n",
		"unknown table key":    "tables:\n  - table: public.a\n    colums: []\n",
		"wrong type":           "publisher:\n  lanes: many\n",
		"bad duration":         "source:\n  status_interval: 10\n",
		"unknown operation":    "tables:\n  - table: public.a\n    operations: [upsert]\n    columns: [{column: id}]\n",
		"column without name":  "tables:\n  - table: public.a\n    columns: [{rename: x}]\n",
		"bad publisher kind":   "publisher:\n  kind: kafka\n",
		"bad attribute type":   "tables:\n  - table: public.a\n    columns: [{column: id}]\n    attributes: [{column: id, type: number}]\n",
		"boolean as string":    "source:\n  create: yes please\n",
		"link without a field": "sink:\n  links: [{table: public.a}]\n",
	}
	dir := t.TempDir()
	for name, text := range bad {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(yamlDoc(t, f)); err == nil {
			t.Errorf("%s: the schema accepts %q", name, text)
		}
	}
}
