package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// Targets of the benchmark (docs/benchmarks.md).
const (
	targetDiscardRatio = 0.8  // connector→discard ≥ 0.8× the bare reader
	targetPublishRatio = 0.9  // connector→emulator ≥ 0.9× the bare PublishBatch loop
	targetSNSP99       = 25.0 // ms, commit→SNS p99 at 1k rows/s
	targetKobotP99     = 100.0
	targetRSSMiB       = 64.0 // peak RSS over the 1M-row transaction
	// Item 10: backfill ≥ 0.5× COPY of the mapped columns; live p99
	// during a backfill ≤ 2× without.
	targetBackfillRatio   = 0.5
	targetBackfillLatency = 2.0
	targetSinkPerSec      = 5000.0
	targetSinkCPUUS       = 100.0 // sink CPU µs per delivered message
)

// Results is everything one run measured; results.json is its JSON.
type Results struct {
	Started    time.Time       `json:"started"`
	Seconds    float64         `json:"seconds"`
	Machine    Machine         `json:"machine"`
	Options    *options        `json:"options"`
	Binary     string          `json:"binary"`
	Workloads  []*Workload     `json:"workloads"`
	Streams    []Stream        `json:"streams"`
	Publish    *PublishResult  `json:"publish,omitempty"`
	Latency    []Latency       `json:"latency,omitempty"`
	Sink       *SinkResult     `json:"sink,omitempty"`
	Streaming  []StreamingRun  `json:"streaming,omitempty"`
	ClaimCheck []ClaimRun      `json:"claim_check,omitempty"`
	SinkRuns   []SinkResult    `json:"sink_runs,omitempty"` // -compare drains
	Lambda     []LambdaRun     `json:"lambda,omitempty"`    // item 9
	Backfill   *BackfillResult `json:"backfill,omitempty"`  // item 10
	Profiles   []*Profiles     `json:"profiles,omitempty"`
	Figures    []Figure        `json:"figures"`
	// Unavailable lists what could not be measured and why (not failures:
	// e.g. a command that does not exist yet).
	Unavailable map[string]string `json:"unavailable,omitempty"`
	// Errors lists the items that failed.
	Errors map[string]string `json:"errors,omitempty"`
	Notes  []string          `json:"notes,omitempty"`
	Load   []LoadSample      `json:"load"`
}

func newResults(o *options) *Results {
	return &Results{Started: time.Now().UTC(), Options: o, Unavailable: map[string]string{}, Errors: map[string]string{}}
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemoryMiB  int64  `json:"memory_mib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	PostgreSQL string `json:"postgresql"`
	Emulator   string `json:"emulator"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == "MemTotal" {
				var kb int64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
				m.MemoryMiB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "tools", "emulator", "node_modules", "fauxqs", "package.json")); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(b, &p) == nil {
			m.Emulator = "fauxqs " + p.Version + " (Node, in-memory)"
		}
	}
	return m
}

// LoadSample is the load average when a phase started: other work on the
// machine skews every figure.
type LoadSample struct {
	Phase string `json:"phase"`
	At    string `json:"at"`
	Load1 string `json:"load1"`
	Load5 string `json:"load5"`
}

func loadSample(phase string) LoadSample {
	s := LoadSample{Phase: phase, At: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			s.Load1, s.Load5 = f[0], f[1]
		}
	}
	return s
}

// Figure is one row of the summary table.
type Figure struct {
	Item   string  `json:"item"` // issue item number
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Ratio  string  `json:"ratio,omitempty"`  // e.g. "0.83× baseline"
	Target string  `json:"target,omitempty"` // e.g. "≥ 0.8× baseline"
	Met    string  `json:"met,omitempty"`    // "yes", "NO" or ""
	Note   string  `json:"note,omitempty"`
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// stream returns the fastest run of reader over workload, or nil.
func (r *Results) stream(workload, reader string) *Stream {
	var best *Stream
	for i := range r.Streams {
		s := &r.Streams[i]
		if s.Workload == workload && s.Reader == reader && (best == nil || s.RowsPerSec > best.RowsPerSec) {
			best = s
		}
	}
	return best
}

// runs returns the rows/s of every run of reader over workload, in run
// order, and the highest peak RSS among them.
func (r *Results) runs(workload, reader string) (rates []string, peakRSS int64) {
	for _, s := range r.Streams {
		if s.Workload == workload && s.Reader == reader {
			rates = append(rates, count(int(s.RowsPerSec)))
			peakRSS = max(peakRSS, s.PeakRSS)
		}
	}
	return rates, peakRSS
}

func (r *Results) workloadLabel(name string) string {
	for _, w := range r.Workloads {
		if w.Name == name {
			if w.Txs == 1 {
				return fmt.Sprintf("%s rows in 1 transaction", count(w.Rows))
			}
			return fmt.Sprintf("%s rows in %s × %s-row transactions", count(w.Rows), count(w.Txs), count(w.Rows/w.Txs))
		}
	}
	return name
}

// summarise builds the summary table from the measurements.
func (r *Results) summarise() {
	r.Figures = nil
	add := func(f Figure) { r.Figures = append(r.Figures, f) }
	for _, wl := range []string{"main", "one-tx", "split"} {
		base, conn := r.stream(wl, "baseline"), r.stream(wl, "connector")
		label := r.workloadLabel(wl)
		if base != nil {
			rates, _ := r.runs(wl, "baseline")
			f := Figure{Item: "1", Name: "baseline: bare pglogrepl reader, " + label, Value: base.RowsPerSec, Unit: "rows/s",
				Note: fmt.Sprintf("best of %d runs (%s rows/s); peak RSS %s, CPU %.1fs", len(rates), strings.Join(rates, ", "), mib(base.PeakRSS), base.CPUSeconds)}
			if wl == "main" {
				f.Target = "the limit (issue: 123–132k rows/s in 18–20 MB)"
			}
			add(f)
		}
		if conn != nil {
			rates, _ := r.runs(wl, "connector")
			f := Figure{Item: "2", Name: "connector → stdout (discarded), " + label, Value: conn.RowsPerSec, Unit: "rows/s",
				Target: fmt.Sprintf("≥ %.1f× baseline", targetDiscardRatio),
				Note: fmt.Sprintf("best of %d runs (%s rows/s); peak RSS %s, CPU %.1fs, confirmed after %.2fs",
					len(rates), strings.Join(rates, ", "), mib(conn.PeakRSS), conn.CPUSeconds, conn.ConfirmSeconds)}
			if base != nil {
				ratio := conn.RowsPerSec / base.RowsPerSec
				f.Ratio = fmt.Sprintf("%.2f× baseline", ratio)
				f.Met = met(ratio >= targetDiscardRatio)
				// CPU per row does not depend on what else the machine
				// runs: a second view of the same ratio.
				if conn.CPUSeconds > 0 && base.CPUSeconds > 0 {
					f.Note += fmt.Sprintf("; CPU per row %.2f× the baseline's", (conn.CPUSeconds/float64(conn.Rows))/(base.CPUSeconds/float64(base.Rows)))
				}
			}
			add(f)
		}
	}
	if p := r.Publish; p != nil && p.BarePerSec > 0 {
		add(Figure{Item: "3", Name: fmt.Sprintf("bare PublishBatch loop → emulator (%d workers, 10/call)", p.Concurrency),
			Value: p.BarePerSec, Unit: "msgs/s", Note: fmt.Sprintf("%s messages of %d bytes on average", count(p.Messages), p.AvgBytes)})
		if p.ConnectorPerSec > 0 {
			add(Figure{Item: "3", Name: fmt.Sprintf("connector → emulator (%d lanes)", p.Concurrency), Value: p.ConnectorPerSec, Unit: "msgs/s",
				Ratio: fmt.Sprintf("%.2f× bare loop", p.Ratio), Target: fmt.Sprintf("≥ %.1f× bare loop", targetPublishRatio),
				Met: met(p.Ratio >= targetPublishRatio), Note: fmt.Sprintf("peak RSS %s, CPU %.1fs", mib(p.ConnectorPeakRSS), p.ConnectorCPU)})
		}
	}
	for _, l := range r.Latency {
		target := latencyTarget(l.Path)
		note := fmt.Sprintf("p50 %.1f, p95 %.1f, max %.1f ms; %d of %d events", l.P50, l.P95, l.Max, l.Received, l.Sent)
		switch {
		case l.Histogram != "":
			note = fmt.Sprintf("p50 %.1f, p95 %.1f ms; p99 in the %s bucket; %d events observed", l.P50, l.P95, l.Bucket, l.Received)
		case l.Sent == 0:
			note = fmt.Sprintf("p50 %.1f, p95 %.1f, max %.1f ms; %d calls", l.P50, l.P95, l.Max, l.Received)
		}
		if l.InsertDelayP99 > 0 {
			note += fmt.Sprintf("; inserter p99 start delay %.1f ms", l.InsertDelayP99)
		}
		f := Figure{Item: "4", Name: fmt.Sprintf("%s p99 at %s rows/s (%d-row tx, %.0fs)", l.Path, count(l.Rate), l.TxSize, l.Seconds),
			Value: l.P99, Unit: "ms", Note: note}
		// Histograms only cross-check: their doubling buckets cannot
		// decide a target; the per-event measurements do.
		if l.Histogram == "" && target > 0 {
			f.Target, f.Met = fmt.Sprintf("≤ %.0f ms", target), met(l.P99 <= target && l.Received >= l.Sent)
		}
		add(f)
	}
	for _, wl := range []string{"one-tx", "split", "main"} {
		conn := r.stream(wl, "connector")
		if conn == nil || (wl == "main" && r.stream("one-tx", "connector") == nil) {
			continue
		}
		_, peak := r.runs(wl, "connector")
		f := Figure{Item: "5", Name: "connector peak RSS, " + r.workloadLabel(wl), Value: float64(peak) / (1 << 20), Unit: "MiB", Note: "the highest of its runs"}
		if wl == "one-tx" {
			f.Target = fmt.Sprintf("≤ %.0f MiB", targetRSSMiB)
			f.Met = met(f.Value <= targetRSSMiB)
		}
		add(f)
	}
	r.streamingFigures(add)
	r.claimFigures(add)
	r.backfillFigures(add)
	if s := r.Sink; s != nil {
		add(Figure{Item: "6", Name: "sink: pre-filled queue → local Kobot receiver", Value: s.PerSec, Unit: "deliveries/s",
			Target: fmt.Sprintf("≥ %s/s", count(int(targetSinkPerSec))), Met: met(s.PerSec >= targetSinkPerSec && s.Delivered >= s.Messages),
			Note: fmt.Sprintf("%d of %d delivered; %s; peak RSS %s", s.Delivered, s.Messages, s.Concurrency, mib(s.PeakRSS))})
		cpu := s.CPUSeconds * 1e6 / float64(max(s.Delivered, 1))
		add(Figure{Item: "6", Name: "sink CPU per delivered message (process CPU time / deliveries)", Value: cpu, Unit: "µs",
			Target: fmt.Sprintf("≤ %.0f µs", targetSinkCPUUS), Met: met(cpu <= targetSinkCPUUS && s.Delivered >= s.Messages),
			Note: "the emulator and the receiver are other processes, outside this figure"})
	}
	for _, size := range lambdaBatches {
		var rates, cpus []float64
		for _, l := range r.Lambda {
			if l.BatchSize == size {
				rates, cpus = append(rates, l.PerSec), append(cpus, l.CPUPerMsgUS)
			}
		}
		if len(rates) > 0 {
			add(Figure{Item: "9", Name: fmt.Sprintf("sink as a Lambda function (Runtime Interface Emulator), batches of %d", size), Value: median(rates), Unit: "deliveries/s",
				Note: fmt.Sprintf("median of %d runs; function CPU %.0f µs/message (median); one function instance", len(rates), median(cpus))})
		}
	}
}

// hasSinkResults reports whether the sink could be measured (the binary
// has the sink command).
func (r *Results) hasSinkResults() bool { return r.Unavailable[itemSink] == "" }

// render rewrites the outputs of an earlier run from its results.json.
func render(from, dir string, w io.Writer) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	if r.Options == nil {
		r.Options = &options{}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.summarise()
	return r.write(dir, w)
}

// latencyTarget is the p99 target of a latency path; 0 for the parts of a
// path (its breakdown), which have none.
func latencyTarget(path string) float64 {
	switch path {
	case "commit→Kobot 2xx", "commit→Kobot 2xx (sink histogram)":
		return targetKobotP99
	case "commit→SNS accepted", "commit→SNS→SQS received", "commit→SNS accepted (connector histogram)":
		return targetSNSP99
	}
	return 0
}

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func formatValue(v float64, unit string) string {
	switch {
	case unit == "ms" || unit == "MiB":
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%s %s", count(int(v+0.5)), unit)
	}
}

// write prints the summary table to w and writes results.json, results.md
// and chart.svg into dir.
func (r *Results) write(dir string, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "item\tmeasure\tvalue\tratio\ttarget\tmet")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Item, f.Name, formatValue(f.Value, f.Unit), f.Ratio, f.Target, f.Met)
	}
	tw.Flush()
	for _, k := range sortedKeys(r.Unavailable) {
		fmt.Fprintf(w, "not measured: %s: %s\n", k, r.Unavailable[k])
	}
	for _, k := range sortedKeys(r.Errors) {
		fmt.Fprintf(w, "FAILED: %s: %s\n", k, firstLine(r.Errors[k]))
	}
	fmt.Fprintf(w, "results: %s\n", filepath.Join(dir, "results.md"))

	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(r.chart()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// markdown renders the results as a Markdown section (docs/benchmarks.md
// embeds one).
func (r *Results) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	p("## Run of %s (%.0f s)\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Seconds)
	p("Machine: %d CPUs (%s), %s MiB RAM, %s; PostgreSQL %s; %s; %s. Binary: %s.\n\n",
		m.CPUs, m.CPUModel, count(int(m.MemoryMiB)), m.Kernel, m.PostgreSQL, m.Emulator, m.Go, r.Binary)
	o := r.Options
	p("Options: repeat %d, rows %s, tx-size %d, rss-txs %d, publish-rows %s, lanes %d, companies %d, rate %s rows/s, latency-duration %s, latency-tx-size %d, sink-messages %s",
		o.Repeat, count(o.Rows), o.TxSize, o.RSSTxs, count(o.PublishRows), o.Lanes, o.Companies, count(o.Rate), o.LatencyDur, o.LatencyTx, count(o.SinkMessages))
	if len(o.Skip) > 0 {
		p(", skipped: %s", strings.Join(o.Skip, ", "))
	}
	p(".\n\n")
	var loads []string
	for _, l := range r.Load {
		loads = append(loads, fmt.Sprintf("%s %s", l.Phase, l.Load1))
	}
	p("Load average (1 min) when each phase started: %s.\n\n", strings.Join(loads, "; "))

	p("| item | measure | value | ratio | target | met |\n|---|---|---:|---|---|---|\n")
	for _, f := range r.Figures {
		p("| %s | %s | %s | %s | %s | %s |\n", f.Item, f.Name, formatValue(f.Value, f.Unit), f.Ratio, f.Target, f.Met)
	}
	p("\n")
	if len(r.Unavailable) > 0 || len(r.Errors) > 0 {
		for _, k := range sortedKeys(r.Unavailable) {
			p("- not measured: **%s**: %s\n", k, r.Unavailable[k])
		}
		for _, k := range sortedKeys(r.Errors) {
			p("- FAILED: **%s**: `%s`\n", k, firstLine(r.Errors[k]))
		}
		p("\n")
	}
	p("![throughput ratios and latency percentiles](chart.svg)\n\n")

	p("### Streams (items 1, 2, 5)\n\nrows/s is from the first event to the last; \"from start\" counts from START_REPLICATION instead, so it includes the walsender decoding a transaction before its first row is sent (all of it, for one big transaction).\n\n")
	p("| workload | reader | run | rows | seconds | rows/s | rows/s from start | confirmed after | peak RSS | CPU s | CPU µs/row | walsender CPU s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Streams {
		conf := ""
		if s.ConfirmSeconds > 0 {
			conf = fmt.Sprintf("%.2f s", s.ConfirmSeconds)
		}
		fromStart := ""
		if s.FromStartSeconds > 0 {
			fromStart = count(int(float64(s.Rows) / s.FromStartSeconds))
		}
		p("| %s | %s | %d | %s | %.2f | %s | %s | %s | %s | %.1f | %.1f | %.1f |\n", r.workloadLabel(s.Workload), s.Reader, s.Run, count(s.Rows), s.Seconds,
			count(int(s.RowsPerSec)), fromStart, conf, mib(s.PeakRSS), s.CPUSeconds, s.CPUSeconds*1e6/float64(max(s.Rows, 1)), s.WalsenderCPU)
	}
	p("\n| workload | rows | transactions | WAL | insert time |\n|---|---:|---:|---:|---:|\n")
	for _, w := range r.Workloads {
		p("| %s | %s | %s | %s | %.1f s |\n", w.Name, count(w.Rows), count(w.Txs), mib(w.WALBytes), w.InsertSeconds)
	}
	if pr := r.Publish; pr != nil {
		p("\n### Publishing to the emulator (item 3)\n\n%s messages (%d bytes on average, 5 attributes), %d concurrent PublishBatch calls of 10.\n",
			count(pr.Messages), pr.AvgBytes, pr.Concurrency)
		p("The fastest run of each counts: bare loop %.2f s = %s msgs/s, the emulator busy %.1f CPU-s of it; connector %.2f s = %s msgs/s (ratio %.2f), the emulator busy %.1f CPU-s of it, %s PublishBatch calls of %.1f events on average; queued afterwards (fewest of any run): bare %d, connector %d.\n",
			pr.BareSeconds, count(int(pr.BarePerSec)), pr.BareEmulatorCPU, pr.ConnectorSeconds, count(int(pr.ConnectorPerSec)), pr.Ratio, pr.ConnectorEmulatorCPU,
			count(pr.ConnectorCalls), pr.ConnectorPerCall, pr.BareQueued, pr.ConnectorQueued)
		p("\nAfter one untimed bare run (the emulator's warm-up), in the order run; the sender's CPU is the connector's process, or for the bare loop the bench's own.\n")
		p("\n| round | sender | s | msgs/s | emulator CPU-s | sender CPU-s | µs/message | peak RSS |\n|---:|---|---:|---:|---:|---:|---:|---:|\n")
		for _, run := range pr.Runs {
			rss := ""
			if run.Reader == "connector" {
				rss = mib(run.PeakRSS)
			}
			p("| %d | %s | %.2f | %s | %.1f | %.2f | %.0f | %s |\n", run.Round, run.Reader, run.Seconds, count(int(run.PerSec)), run.EmulatorCPU,
				run.CPU, run.CPU*1e6/float64(max(pr.Messages, 1)), rss)
		}
	}
	if len(r.Latency) > 0 {
		p("\n### Latency (item 4)\n\n| path | rate | rows | observed | p50 | p95 | p99 | max | mean | inserter p99 delay |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range r.Latency {
			mx, mean := fmt.Sprintf("%.1f ms", l.Max), fmt.Sprintf("%.1f ms", l.Mean)
			if l.Histogram != "" {
				mx, mean = "", ""
			}
			p("| %s | %s rows/s in %d-row tx for %.0f s | %s | %s | %.1f ms | %.1f ms | %.1f ms | %s | %s | %.1f ms |\n",
				l.Path, count(l.Rate), l.TxSize, l.Seconds, count(l.Sent), count(l.Received), l.P50, l.P95, l.P99, mx, mean, l.InsertDelayP99)
		}
		for _, l := range r.Latency {
			p("\n- %s: %s.", l.Path, l.Method)
		}
		p("\n")
	}
	if s := r.Sink; s != nil {
		p("\n### Sink (item 6)\n\n%s of %s messages delivered in %.2f s (first to last delivery) = %s deliveries/s; %.2f s from process start; %s; peak RSS %s, CPU %.1f s; the emulator busy %.1f CPU-s meanwhile.\n",
			count(s.Delivered), count(s.Messages), s.Seconds, count(int(s.PerSec)), s.FromStart, s.Concurrency, mib(s.PeakRSS), s.CPUSeconds, s.EmulatorCPU)
	}
	if len(r.Streaming) > 0 {
		p("\n### Streaming of a large transaction (item 7)\n\nThe transaction is committed while the connector streams the slot (`logical_decoding_work_mem` 64MB, the server's default); commit → last event is from the COMMIT's return to the connector's last event on stdout.\n\n")
		p("| source.streaming | run | rows | spilled (server disk) | spilled tx | streamed | streamed tx | commit → last event | peak RSS | CPU s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.Streaming {
			p("| %v | %d | %s | %s | %d | %s | %d | %.2f s | %s | %.1f |\n", s.Streaming, s.Run, count(s.Rows), mib(s.SpillBytes), s.SpillTxns,
				mib(s.StreamBytes), s.StreamTxns, s.CommitToLastSeconds, mib(s.PeakRSS), s.CPUSeconds)
		}
	}
	if len(r.ClaimCheck) > 0 {
		p("\n### Events over 256 KiB through S3 (item 8)\n\nOne connector configuration (`publisher.large_payloads` set, the emulator's S3) for both sizes, runs interleaved: a backlog committed in 10-row transactions while the connector is stopped, read from the slot turning active until its confirmed position covered it (events/s, the connector's CPU meanwhile); then one event per transaction at a steady rate, timed per event from its commit to the emulator's PublishBatch answer (an event over SNS's limit: after its PutObject) by a pass-through proxy.\n\n")
		p("| events | run | bytes per event | backlog events | events/s | CPU ms per event | stored in S3 | PutObject p99 | steady rate | commit→SNS p50 | p99 | max | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.ClaimCheck {
			p("| %s | %d | %s | %s | %s | %.2f | %s | %.1f ms | %d/s | %.1f ms | %.1f ms | %.1f ms | %s |\n", claimLabel(c.Large), c.Run, count(c.EventBytes), count(c.Events),
				count(int(c.PerSec)), c.CPUSeconds/float64(max(c.Events, 1))*1e3, count(c.StoredInS3), c.PutP99, c.Latency.Rate, c.Latency.P50, c.Latency.P99, c.Latency.Max, mib(c.PeakRSS))
		}
	}
	if len(r.Lambda) > 0 {
		p("\n### The sink as a Lambda function (item 9)\n\nThe Lambda bootstrap built from this tree, under the AWS Lambda Runtime Interface Emulator (one function instance), invoked one SQS event after another; the same receiver, links and sink database as item 6. deliveries/s is from the first invocation to the last answer; CPU is the function process's own, not the emulator's. The cold start was taken by a warm-up invocation before these runs.\n\n")
		p("| batch size | run | messages | invocations | seconds | deliveries/s | function CPU s | CPU µs/message | batch item failures |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range r.Lambda {
			p("| %d | %d | %s | %d | %.2f | %s | %.2f | %.0f | %d |\n", l.BatchSize, l.Run, count(l.Messages), l.Invocations, l.Seconds, count(int(l.PerSec)), l.CPUSeconds, l.CPUPerMsgUS, l.Failures)
		}
	}
	p("%s", r.comparison())
	for _, pf := range r.Profiles {
		p("\n### %s profiles (%s; a separate run, not the measured one)\n\nFiles: %s, %s (`go tool pprof -top <binary> <file>`; full listings in %s-*.txt).\n\nCPU:\n\n```\n%s\n```\n\nAllocated bytes (alloc_space):\n\n```\n%s\n```\n\nAllocated objects (alloc_objects):\n\n```\n%s\n```\n",
			pf.Process, pf.Workload, pf.CPUFile, pf.HeapFile, pf.Process, strings.Join(pf.CPUTop, "\n"), strings.Join(pf.AllocTop, "\n"), strings.Join(pf.ObjectTop, "\n"))
	}
	if len(r.Notes) > 0 {
		p("\nNotes:\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

// readerCompare labels the runs of the -compare binary.
const readerCompare = "compare"

// comparison is the section of results.md comparing the measured binary
// with the -compare one: medians over the interleaved runs.
func (r *Results) comparison() string {
	if r.Options == nil || r.Options.Compare == "" {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Compared with %s (interleaved runs, medians)\n\n", r.Options.Compare)
	b.WriteString("| what | binary | runs | rows or messages/s | CPU µs per row or message |\n|---|---|---:|---:|---:|\n")
	row := func(what, bin string, rates, cpus []float64) {
		if len(rates) == 0 {
			return
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.2f |\n", what, bin, len(rates), count(int(median(rates))), median(cpus))
	}
	for _, w := range r.Workloads {
		for _, reader := range []string{"connector", readerCompare} {
			var rates, cpus []float64
			for _, s := range r.Streams {
				if s.Workload == w.Name && s.Reader == reader {
					rates = append(rates, s.RowsPerSec)
					cpus = append(cpus, s.CPUSeconds*1e6/float64(max(s.Rows, 1)))
				}
			}
			row("connector → stdout, "+r.workloadLabel(w.Name), reader, rates, cpus)
		}
	}
	for _, bin := range []string{"sink", readerCompare} {
		var rates, cpus []float64
		for _, s := range r.SinkRuns {
			if s.Binary == bin {
				rates = append(rates, s.PerSec)
				cpus = append(cpus, s.CPUSeconds*1e6/float64(max(s.Delivered, 1)))
			}
		}
		row("sink drain", bin, rates, cpus)
	}
	return b.String()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
