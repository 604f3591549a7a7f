package config

import (
	"reflect"
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
