package prometheus

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

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

// TestAlertRulesFile checks the example rules parse as a Prometheus rule
// file: groups of rules, each with an alert name, an expression and a
// severity.
func TestAlertRulesFile(t *testing.T) {
	b, err := os.ReadFile("../../docs/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("group %s: incomplete rule %+v", g.Name, r)
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if seen[r.Alert] {
				t.Errorf("alert %s twice", r.Alert)
			}
			seen[r.Alert] = true
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %s", r.Alert, r.Expr)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d rules", n)
	}
}
