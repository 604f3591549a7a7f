package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The bench runs its baseline reader by executing itself; under test,
	// itself is this test binary.
	if os.Getenv(roleEnv) == roleReader {
		os.Exit(readerMain())
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o *options)
	}{
		{name: "defaults", check: func(t *testing.T, o *options) {
			if o.Rows != 1_000_000 || o.TxSize != 100 || o.RSSTxs != 10 || o.Rate != 1000 || o.LatencyDur != time.Minute || o.Repeat != 2 {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "skip list", args: []string{"-skip", "sink, latency"}, check: func(t *testing.T, o *options) {
			if !o.skipped(itemSink) || !o.skipped(itemLatency) || o.skipped(itemBaseline) {
				t.Errorf("skip: %v", o.skip)
			}
			if strings.Join(o.Skip, ",") != "latency,sink" {
				t.Errorf("Skip = %v", o.Skip)
			}
		}},
		{name: "unknown skip item", args: []string{"-skip", "everything"}, wantErr: `unknown item "everything"`},
		{name: "rss-txs over rows", args: []string{"-rows", "100", "-rss-txs", "101"}, wantErr: "-rss-txs"},
		{name: "zero rate", args: []string{"-rate", "0"}, wantErr: "-rate"},
		{name: "zero repeat", args: []string{"-repeat", "0"}, wantErr: "-repeat must be between 1 and 10"},
		{name: "stray argument", args: []string{"now"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

// TestChartIsSVG renders the chart of a made-up result and of an empty one.
func TestChartIsSVG(t *testing.T) {
	full := newResults(&options{})
	full.Workloads = []*Workload{{Name: "main", Rows: 1000, Txs: 10}, {Name: "one-tx", Rows: 1000, Txs: 1}}
	full.Streams = []Stream{
		{Workload: "main", Reader: "baseline", Rows: 1000, RowsPerSec: 100000},
		{Workload: "main", Reader: "connector", Rows: 1000, RowsPerSec: 70000, PeakRSS: 20 << 20},
		{Workload: "one-tx", Reader: "connector", Run: 1, Rows: 1000, RowsPerSec: 70000, PeakRSS: 80 << 20},
		// A slower run: the ratio takes the fastest, the peak RSS the highest.
		{Workload: "one-tx", Reader: "connector", Run: 2, Rows: 1000, RowsPerSec: 35000, PeakRSS: 90 << 20},
	}
	full.Publish = &PublishResult{Ratio: 0.95, BarePerSec: 1000, ConnectorPerSec: 950}
	full.Latency = []Latency{{Path: "commit→SNS accepted", Short: "h", Rate: 1000, P50: 3, P95: 9, P99: 30},
		{Path: "commit→Kobot 2xx", Short: "r", Rate: 1000, P50: 20, P95: 40, P99: 60},
		{Path: "commit→SNS accepted (connector histogram)", Short: "c", Rate: 1000, P50: 3, P95: 9, P99: 64, Histogram: "x"}}
	full.summarise()
	for name, r := range map[string]*Results{"full": full, "empty": newResults(&options{})} {
		t.Run(name, func(t *testing.T) {
			svg := r.chart()
			checkXML(t, svg)
			if name == "full" {
				for _, want := range []string{"0.70×", "0.95×", "30.0 ms", "90.0 MiB", "stroke-dasharray"} {
					if !strings.Contains(svg, want) {
						t.Errorf("chart lacks %q", want)
					}
				}
			}
		})
	}
	met := map[string]string{}
	for _, f := range full.Figures {
		met[f.Item+" "+f.Name] = f.Met
	}
	for name, want := range map[string]string{
		"2 connector → stdout (discarded), 1,000 rows in 10 × 100-row transactions":      "NO",
		"3 connector → emulator (0 lanes)":                                               "yes",
		"4 commit→SNS accepted p99 at 1,000 rows/s (0-row tx, 0s)":                       "NO",
		"4 commit→Kobot 2xx p99 at 1,000 rows/s (0-row tx, 0s)":                          "yes",
		"5 connector peak RSS, 1,000 rows in 1 transaction":                              "NO",
		"4 commit→SNS accepted (connector histogram) p99 at 1,000 rows/s (0-row tx, 0s)": "",
	} {
		if got, ok := met[name]; !ok || got != want {
			t.Errorf("figure %q: met = %q (present %v), want %q; figures: %v", name, got, ok, want, met)
		}
	}
}

func checkXML(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
}

// TestBenchTiny runs every item of the bench at a tiny size: it must run
// and write its results. It checks no time: figures at this size mean
// nothing.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds baitoru-cdc, starts PostgreSQL and the SNS/SQS emulator")
	}
	out := t.TempDir()
	o, err := parseFlags([]string{"-out", out, "-rows", "2000", "-rss-txs", "4", "-publish-rows", "300",
		"-rate", "200", "-latency-duration", "2s", "-sink-messages", "200", "-companies", "5", "-decoding-work-mem", "64kB",
		"-claim-events", "10", "-claim-rate", "5", "-claim-duration", "1s", "-backfill-rows", "2000"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	res, err := run(ctx, o, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("items failed: %v\nlogs in %s", res.Errors, filepath.Join(out, "logs"))
	}
	if !strings.Contains(stdout.String(), "item  measure") {
		t.Errorf("no summary table on stdout:\n%s", stdout.String())
	}

	var got Results
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	for _, wl := range []string{"main", "one-tx", "split"} {
		for _, reader := range []string{"baseline", "connector"} {
			s := got.stream(wl, reader)
			if s == nil {
				t.Errorf("no %s stream over %s", reader, wl)
				continue
			}
			if rates, _ := got.runs(wl, reader); len(rates) != 2 {
				t.Errorf("%s over %s: %d runs, want 2 (-repeat's default)", reader, wl, len(rates))
			}
			if s.Rows != 2000 || s.RowsPerSec <= 0 || s.PeakRSS <= 0 || s.CPUSeconds <= 0 {
				t.Errorf("%s over %s: %+v", reader, wl, s)
			}
		}
	}
	// Item 7 at 64kB of logical_decoding_work_mem: the transaction spills
	// on the server without streaming, and streams with it.
	runs := map[bool]int{}
	for _, s := range got.Streaming {
		runs[s.Streaming]++
		// From the COMMIT's return: a streamed transaction's events can
		// reach stdout about as soon (a tiny workload, a loaded machine).
		if s.Rows != 2000 || s.PeakRSS <= 0 || s.CommitToLastSeconds == 0 || s.CommitToLastSeconds < -0.5 {
			t.Errorf("streaming run: %+v", s)
		}
		if s.Streaming && (s.StreamTxns == 0 || s.SpillBytes != 0) || !s.Streaming && (s.SpillTxns == 0 || s.StreamTxns != 0) {
			t.Errorf("streaming %v: spilled %d tx, streamed %d tx", s.Streaming, s.SpillTxns, s.StreamTxns)
		}
	}
	if runs[true] != 2 || runs[false] != 2 {
		t.Errorf("streaming runs: %v, want 2 of each (-repeat's default)", runs)
	}
	// Item 8: the large events went through S3, the small ones did not.
	claims := map[bool]int{}
	for _, c := range got.ClaimCheck {
		claims[c.Large]++
		if c.Events != 10 || c.PerSec <= 0 || c.Latency.Sent != 5 || c.Latency.Received != 5 || c.Latency.P99 < c.Latency.P50 || c.PeakRSS <= 0 {
			t.Errorf("claim-check run: %+v", c)
		}
		if c.Large && (c.StoredInS3 < 15 || c.EventBytes <= 256<<10) || !c.Large && (c.StoredInS3 != 0 || c.EventBytes > 2<<10) {
			t.Errorf("claim-check large=%v: %d stored in S3, %d bytes per event", c.Large, c.StoredInS3, c.EventBytes)
		}
	}
	if claims[true] != 2 || claims[false] != 2 {
		t.Errorf("claim-check runs: %v, want 2 of each (-repeat's default)", claims)
	}
	// Item 10: every row read by each backfill and each COPY; live events
	// measured without and during a backfill.
	if bf := got.Backfill; bf == nil {
		t.Error("no backfill results")
	} else {
		readers := map[string]int{}
		for _, r := range bf.Runs {
			readers[r.Reader]++
			if r.Rows != 2000 || r.RowsPerSec <= 0 || r.Reader == "backfill" && r.CPUSeconds <= 0 {
				t.Errorf("backfill item run: %+v", r)
			}
		}
		if readers["backfill"] != 2 || readers["copy"] != 2 {
			t.Errorf("backfill item runs: %v, want 2 of each (-repeat's default)", readers)
		}
		if bf.Without == nil || bf.During == nil || bf.Without.Sent == 0 || bf.Without.Received != bf.Without.Sent ||
			bf.During.Received == 0 || bf.During.P99 < bf.During.P50 || bf.PeakRSS <= 0 {
			t.Errorf("backfill item latency or RSS: without %+v, during %+v, peak RSS %d", bf.Without, bf.During, bf.PeakRSS)
		}
	}
	if p := got.Publish; p == nil || p.Messages != 300 || p.BareQueued != 300 || p.ConnectorQueued < 300 || p.Ratio <= 0 {
		t.Errorf("publish: %+v", p)
	} else {
		// Item 3: -repeat runs of each, interleaved, each to its own
		// queue; the fastest of each counts.
		var order []string
		best := map[string]float64{}
		for _, r := range p.Runs {
			order = append(order, r.Reader)
			best[r.Reader] = max(best[r.Reader], r.PerSec)
			if r.Seconds <= 0 || r.Reader == "bare" && r.Queued != 300 || r.Reader == "connector" && (r.Queued < 300 || r.CPU <= 0 || r.PeakRSS <= 0) {
				t.Errorf("publish run: %+v", r)
			}
		}
		if want := []string{"bare", "connector", "connector", "bare"}; !slices.Equal(order, want) {
			t.Errorf("publish runs in the order %v, want %v", order, want)
		}
		if best["bare"] != p.BarePerSec || best["connector"] != p.ConnectorPerSec {
			t.Errorf("publish: best runs %v, result bare %.0f connector %.0f", best, p.BarePerSec, p.ConnectorPerSec)
		}
	}
	paths := map[string]Latency{}
	for _, l := range got.Latency {
		paths[l.Path] = l
		// A histogram may also count events outside the window (a
		// connector or sink re-sending); the receivers count exactly.
		if l.Path == "emulator PublishBatch call (the emulator's share)" {
			// Per call, not per event: at least one call per 10 events.
			if l.Sent != 0 || l.Received < 40 || l.P99 < l.P50 || l.P50 <= 0 {
				t.Errorf("latency %s: %+v", l.Path, l)
			}
			continue
		}
		if l.Sent != 400 || l.P99 < l.P50 || l.P50 <= 0 || (l.Histogram == "" && l.Received != l.Sent) || l.Received < l.Sent {
			t.Errorf("latency %s: %+v", l.Path, l)
		}
	}
	for _, want := range []string{"commit→SNS accepted", "commit→SNS→SQS received", "commit→SNS accepted (connector histogram)",
		"commit→PublishBatch sent (connector's share)", "emulator PublishBatch call (the emulator's share)"} {
		if _, ok := paths[want]; !ok {
			t.Errorf("no %s latency (unavailable: %v)", want, got.Unavailable)
		}
	}
	if res.hasSinkResults() {
		for _, want := range []string{"commit→Kobot 2xx", "commit→Kobot 2xx (sink histogram)"} {
			if _, ok := paths[want]; !ok {
				t.Errorf("no %s latency (unavailable: %v)", want, got.Unavailable)
			}
		}
		if got.Sink == nil || got.Sink.Delivered != 200 {
			t.Errorf("sink: %+v", got.Sink)
		}
		// Item 9: -repeat (2) runs of each batch size through the
		// Runtime Interface Emulator, every message delivered.
		lambda := map[int]int{}
		for _, l := range got.Lambda {
			lambda[l.BatchSize]++
			if l.Delivered != l.Messages || l.Messages != 100 || l.Failures != 0 || l.CPUSeconds < 0 || l.Invocations != (100+l.BatchSize-1)/l.BatchSize {
				t.Errorf("lambda run: %+v", l)
			}
		}
		if lambda[10] != 2 || lambda[100] != 2 {
			t.Errorf("lambda runs by batch size: %v, want 2 of 10 and 2 of 100", lambda)
		}
	} else if got.Unavailable[itemSink] == "" {
		t.Error("no sink results and no reason")
	}
	profiled := map[string]bool{}
	for _, p := range got.Profiles {
		profiled[p.CPUFile] = len(p.CPUTop) > 0 && len(p.AllocTop) > 0
	}
	if !profiled["connector-main-cpu.pprof"] || !profiled["connector-one-tx-cpu.pprof"] || !profiled["connector-publish-cpu.pprof"] || (res.hasSinkResults() && !profiled["sink-cpu.pprof"]) {
		t.Errorf("profiles: %v (unavailable: %v)", profiled, got.Unavailable)
	}
	if len(got.Figures) < 8 {
		t.Errorf("%d figures in the summary: %+v", len(got.Figures), got.Figures)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| item | measure |") || !strings.Contains(string(md), "chart.svg") {
		t.Errorf("results.md lacks the table or the chart:\n%s", md)
	}
	svg, err := os.ReadFile(filepath.Join(out, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	checkXML(t, string(svg))
}

// TestComparison renders the -compare section: medians of the interleaved
// runs of each binary, per workload and for the sink drains.
func TestComparison(t *testing.T) {
	r := newResults(&options{Compare: "/tmp/old/baitoru-cdc"})
	r.Workloads = []*Workload{{Name: "main", Rows: 1000, Txs: 10}}
	for i, cpu := range []float64{0.010, 0.002, 0.003} { // 10, 2, 3 µs/row: the median is 3
		r.Streams = append(r.Streams, Stream{Workload: "main", Reader: "connector", Run: i + 1, Rows: 1000, RowsPerSec: float64(1000 * (i + 1)), CPUSeconds: cpu},
			Stream{Workload: "main", Reader: readerCompare, Run: i + 1, Rows: 1000, RowsPerSec: 500, CPUSeconds: 0.004})
	}
	r.SinkRuns = []SinkResult{{Binary: "sink", Delivered: 100, PerSec: 3000, CPUSeconds: 0.02}, {Binary: "sink", Delivered: 100, PerSec: 5000, CPUSeconds: 0.03},
		{Binary: readerCompare, Delivered: 100, PerSec: 2000, CPUSeconds: 0.04}}
	got := r.comparison()
	for _, want := range []string{
		"### Compared with /tmp/old/baitoru-cdc",
		"| connector → stdout, 1,000 rows in 10 × 100-row transactions | connector | 3 | 2,000 | 3.00 |",
		"| connector → stdout, 1,000 rows in 10 × 100-row transactions | compare | 3 | 500 | 4.00 |",
		"| sink drain | sink | 2 | 4,000 | 250.00 |",
		"| sink drain | compare | 1 | 2,000 | 400.00 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("comparison lacks %q:\n%s", want, got)
		}
	}
	if newResults(&options{}).comparison() != "" {
		t.Error("a comparison without -compare")
	}
}
