package deploy_test

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/sink"
)

// registered returns every metric the connector and the sink register,
// with its label names ("le" for histograms), read from the registries the
// code builds.
func registered(t *testing.T) map[string][]string {
	t.Helper()
	metrics := map[string][]string{}
	m := telemetry.New()
	m.AddTable("public.a")
	m.Retried("t", "x", 1)
	m.Published([]*connector.Event{{Table: "public.a", Op: connector.OpInsert}}, 0)
	// A running backfill's series exist while it runs.
	m.BackfillProgress(&connector.BackfillState{ID: "bf", Table: "public.a", Status: connector.BackfillRunning})
	// The registry holds the Go, process and build_info collectors too.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		var labels []string
		if len(mf.GetMetric()) > 0 {
			for _, l := range mf.GetMetric()[0].GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		if mf.GetType().String() == "HISTOGRAM" {
			labels = append(labels, "le")
		}
		metrics[mf.GetName()] = labels
	}
	// The sink's vectors have no series before their first use: read
	// their descriptors.
	desc := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	v := reflect.ValueOf(sink.NewMetrics(nil)).Elem()
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prom.Collector)
		if !ok {
			continue
		}
		ch := make(chan *prom.Desc, 8)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			mm := desc.FindStringSubmatch(d.String())
			if mm == nil {
				t.Fatalf("cannot read descriptor %s", d)
			}
			var labels []string
			if mm[2] != "" {
				labels = strings.Split(mm[2], ",")
			}
			if _, isHist := c.(prom.Histogram); isHist {
				labels = append(labels, "le")
			}
			metrics[mm[1]] = labels
		}
	}
	return metrics
}

// TestDashboardQueriesRealMetrics parses every query of the Grafana
// dashboard as PromQL and checks each metric it selects against the
// metrics the code registers (histogram series suffixes allowed), and each
// label it matches or groups by against that metric's labels.
func TestDashboardQueriesRealMetrics(t *testing.T) {
	metrics := registered(t)
	b, err := os.ReadFile("grafana/baitoru-cdc.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, bool) {
		if l, ok := metrics[name]; ok {
			return l, true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				if l, ok := metrics[base]; ok && slices.Contains(l, "le") {
					if suf != "_bucket" {
						l = slices.DeleteFunc(slices.Clone(l), func(s string) bool { return s == "le" })
					}
					return l, true
				}
			}
		}
		return nil, false
	}
	seen := map[string]bool{}
	queries := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			queries++
			expr, err := parser.ParseExpr(target.Expr)
			if err != nil {
				t.Errorf("panel %q: %q: %v", p.Title, target.Expr, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
				switch n := n.(type) {
				case *parser.VectorSelector:
					labels, ok := lookup(n.Name)
					if !ok {
						t.Errorf("panel %q queries %s, which no component registers", p.Title, n.Name)
						return nil
					}
					seen[n.Name] = true
					for _, m := range n.LabelMatchers {
						if m.Name != "__name__" && !slices.Contains(labels, m.Name) {
							t.Errorf("panel %q: %s has no label %q (it has %v)", p.Title, n.Name, m.Name, labels)
						}
					}
				case *parser.AggregateExpr:
					var selected []*parser.VectorSelector
					parser.Inspect(n.Expr, func(m parser.Node, _ []parser.Node) error {
						if vs, ok := m.(*parser.VectorSelector); ok {
							selected = append(selected, vs)
						}
						return nil
					})
					for _, g := range n.Grouping {
						for _, vs := range selected {
							if labels, ok := lookup(vs.Name); ok && !slices.Contains(labels, g) {
								t.Errorf("panel %q groups %s by %q, a label it does not have (%v)", p.Title, vs.Name, g, labels)
							}
						}
					}
				}
				return nil
			})
		}
	}
	// What the dashboard is for: slot lag, events per table, the two
	// latencies, deliveries by result (the DLQ among them).
	for _, want := range []string{telemetry.SlotRetainedWALBytes, telemetry.EventsPublished, telemetry.CommitToPublish + "_bucket",
		"baitoru_cdc_sink_commit_to_delivery_seconds_bucket", "baitoru_cdc_sink_deliveries_total"} {
		if !seen[want] {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
	if queries < 10 {
		t.Fatalf("only %d queries", queries)
	}
}
