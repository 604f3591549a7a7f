package telemetry

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/sink"
)

// metricNames returns the names (and whether each is a histogram) of the
// connector's and the sink's metrics, from their descriptors.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	describe := func(c prom.Collector) {
		ch := make(chan *prom.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fq.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = false
			}
		}
	}
	m := New()
	m.AddTable("public.a")
	m.Retried("t", "x", 1)
	m.Published([]*connector.Event{{Table: "public.a", Op: connector.OpInsert}}, 0)
	// A running backfill's series exist while it runs.
	m.BackfillProgress(&connector.BackfillState{ID: "bf", Table: "public.a", Status: connector.BackfillRunning})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = mf.GetType().String() == "HISTOGRAM"
	}
	sm := sink.NewMetrics(nil)
	v := reflect.ValueOf(sm).Elem()
	for i := range v.NumField() {
		if c, ok := v.Field(i).Interface().(prom.Collector); ok {
			describe(c)
			if _, isHist := c.(prom.Histogram); isHist {
				names[fqOf(t, c)] = true
			}
		}
	}
	return names
}

func fqOf(t *testing.T, c prom.Collector) string {
	ch := make(chan *prom.Desc, 1)
	c.Describe(ch)
	m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch((<-ch).String())
	if m == nil {
		t.Fatal("no fqName")
	}
	return m[1]
}

// TestDocsNameRealMetrics checks that every baitoru_cdc_* name in the
// operations guide, the example alert rules and the README is a metric the
// connector or the sink exports (histogram series suffixes allowed), and
// that the guide lists every connector and sink metric.
func TestDocsNameRealMetrics(t *testing.T) {
	names := metricNames(t)
	if len(names) < 20 {
		t.Fatalf("only %d metric names found", len(names))
	}
	token := regexp.MustCompile(`baitoru_cdc_[a-z0-9_]*[a-z0-9]`)
	known := func(n string) bool {
		if _, ok := names[n]; ok {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suf); ok && names[base] {
				return true
			}
		}
		return false
	}
	for _, f := range []string{"../../docs/operations.md", "../../docs/prometheus-alerts.yml", "../../README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range token.FindAllString(string(b), -1) {
			if !known(n) {
				t.Errorf("%s names %s, which no component exports", f, n)
			}
		}
	}
	guide, _ := os.ReadFile("../../docs/operations.md")
	for n := range names {
		if strings.HasPrefix(n, "baitoru_cdc_") && !strings.Contains(string(guide), "`"+n) {
			t.Errorf("docs/operations.md does not list %s", n)
		}
	}
}

// alertProblems validates a Prometheus rule file the way Prometheus does
// when it loads one (rulefmt: structure, unknown fields, durations, PromQL,
// annotation templates), then checks our own conventions: every rule is an
// alert with a severity of page or ticket and a summary, names are unique,
// and every metric an expression selects is one that names knows (histogram
// series suffixes allowed) or Prometheus's own up.
func alertProblems(content []byte, names map[string]bool) []string {
	groups, errs := rulefmt.Parse(content, false)
	var problems []string
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	if len(errs) > 0 {
		return problems
	}
	known := func(n string) bool {
		if _, ok := names[n]; ok || n == "up" {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suf); ok && names[base] {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			switch {
			case name == "":
				problems = append(problems, fmt.Sprintf("group %s: recording rule %s: the file holds alerts only", g.Name, r.Record))
				continue
			case seen[name]:
				problems = append(problems, fmt.Sprintf("alert %s twice", name))
			}
			seen[name] = true
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				problems = append(problems, fmt.Sprintf("%s: severity %q, want page or ticket", name, s))
			}
			if r.Annotations["summary"] == "" {
				problems = append(problems, fmt.Sprintf("%s: no summary annotation", name))
			}
			expr, err := parser.ParseExpr(r.Expr)
			if err != nil { // rulefmt parsed it already
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && !known(vs.Name) {
					problems = append(problems, fmt.Sprintf("%s: no component exports %s", name, vs.Name))
				}
				return nil
			})
		}
	}
	if len(seen) == 0 {
		problems = append(problems, "no alerts")
	}
	return problems
}

// TestAlertRulesFile checks the example alert rules: Prometheus would load
// them, and they select only metrics that exist (alertProblems).
func TestAlertRulesFile(t *testing.T) {
	b, err := os.ReadFile("../../docs/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range alertProblems(b, metricNames(t)) {
		t.Errorf("docs/prometheus-alerts.yml: %s", p)
	}
	// The operations guide names only alerts the file has.
	groups, errs := rulefmt.Parse(b, false)
	if len(errs) > 0 {
		return
	}
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
		}
	}
	guide, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`\bBaitoruCDC[A-Za-z]+`).FindAllString(string(guide), -1)
	if len(named) < 5 {
		t.Errorf("docs/operations.md names only %d alerts", len(named))
	}
	for _, a := range named {
		if !alerts[a] {
			t.Errorf("docs/operations.md names the alert %s, which docs/prometheus-alerts.yml does not have", a)
		}
	}
}

// TestAlertProblems checks that alertProblems catches each kind of mistake.
func TestAlertProblems(t *testing.T) {
	names := metricNames(t)
	const ok = `{alert: A, expr: 'baitoru_cdc_inflight_events > 0', labels: {severity: page}, annotations: {summary: s}}`
	file := func(rules ...string) []byte {
		return []byte("groups:\n  - name: g\n    rules:\n      - " + strings.Join(rules, "\n      - ") + "\n")
	}
	for _, c := range []struct {
		name  string
		file  []byte
		wants string // a substring of the problems; "" for none
	}{
		{"valid", file(ok, `{alert: B, expr: 'histogram_quantile(0.99, sum by (le) (rate(baitoru_cdc_commit_to_publish_seconds_bucket[5m]))) > 1 or up == 0', for: 5m, labels: {severity: ticket}, annotations: {summary: "{{ $value | humanize }}"}}`), ""},
		{"promql syntax", file(`{alert: A, expr: 'rate(baitoru_cdc_inflight_events[5m]', labels: {severity: page}, annotations: {summary: s}}`), "unclosed left parenthesis"},
		{"unknown function", file(`{alert: A, expr: 'ratez(baitoru_cdc_inflight_events[5m])', labels: {severity: page}, annotations: {summary: s}}`), "unknown function"},
		{"unknown metric", file(`{alert: A, expr: 'baitoru_cdc_inflight_event > 0', labels: {severity: page}, annotations: {summary: s}}`), "no component exports baitoru_cdc_inflight_event"},
		{"suffix of a counter", file(`{alert: A, expr: 'baitoru_cdc_changes_read_total_count > 0', labels: {severity: page}, annotations: {summary: s}}`), "no component exports baitoru_cdc_changes_read_total_count"},
		{"unknown field", file(`{alert: A, expr: 'up == 0', fore: 5m, labels: {severity: page}, annotations: {summary: s}}`), "field fore not found"},
		{"bad duration", file(`{alert: A, expr: 'up == 0', for: 5 minutes, labels: {severity: page}, annotations: {summary: s}}`), `unknown unit " minutes"`},
		{"bad template", file(`{alert: A, expr: 'up == 0', labels: {severity: page}, annotations: {summary: "{{ $value | humanise }}"}}`), "humanise"},
		{"no severity", file(`{alert: A, expr: 'up == 0', annotations: {summary: s}}`), `severity "", want page or ticket`},
		{"no summary", file(`{alert: A, expr: 'up == 0', labels: {severity: page}}`), "no summary"},
		{"twice", file(ok, ok), "alert A twice"},
		{"recording rule", file(`{record: 'x:y', expr: 'up'}`), "alerts only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			problems := alertProblems(c.file, names)
			all := strings.Join(problems, "\n")
			switch {
			case c.wants == "" && len(problems) > 0:
				t.Errorf("problems in a valid file:\n%s", all)
			case c.wants != "" && !strings.Contains(all, c.wants):
				t.Errorf("problems %q, want one containing %q", problems, c.wants)
			}
		})
	}
}

// TestOperationsGuideLogMessages checks that every log message and
// attribute the operations guide's "Logs" section lists (the first cell of
// its tables, in backquotes; ending in "…" for the start of a longer one)
// is a string literal somewhere in the non-test Go sources, so the guide
// cannot name a message nobody logs.
func TestOperationsGuideLogMessages(t *testing.T) {
	guide, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, logs, ok := strings.Cut(string(guide), "\n## Logs\n")
	if !ok {
		t.Fatal("docs/operations.md has no ## Logs section")
	}
	logs, _, _ = strings.Cut(logs, "\n## ")
	var src strings.Builder
	root := "../.."
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "tools" || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	quoted := regexp.MustCompile("`([^`]+)`")
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range quoted.FindAllStringSubmatch(first, -1) {
			n++
			lit := `"` + m[1] + `"`
			if prefix, ok := strings.CutSuffix(m[1], "…"); ok { // the start of a longer message
				lit = `"` + prefix
			}
			if !strings.Contains(code, lit) {
				t.Errorf("docs/operations.md lists the log message or attribute %q, which no Go source logs", m[1])
			}
		}
	}
	if n < 15 {
		t.Errorf("only %d messages and attributes found in the Logs section", n)
	}
}
