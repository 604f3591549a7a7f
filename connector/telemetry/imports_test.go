package telemetry

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNoAdapter keeps telemetry an observer of the domain: it learns
// what happens through the connector's Observer and RetryObserver
// interfaces and small interfaces of its own, never by importing an adapter
// (postgres, sns, stdout), so an adapter can change without it.
func TestImportsNoAdapter(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	const connector = "github.com/baitoru/baitoru-cdc/connector"
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, connector+"/") {
				t.Errorf("%s imports %s: observe through a connector interface instead", name, path)
			}
		}
	}
}
