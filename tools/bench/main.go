// Command bench measures baitoru-cdc against the physical limit of the
// machine it runs on, in one run on a throwaway PostgreSQL and a
// throwaway fauxqs SNS/SQS emulator:
//
//  1. baseline: a bare pglogrepl reader of a slot (decode only) — the limit;
//  2. the connector (`baitoru-cdc run`, publisher stdout) over the same
//     workload → ratio to the baseline, peak RSS, CPU and heap profiles;
//  3. the connector publishing to the emulator → ratio to a bare
//     PublishBatch loop sending the same messages with the same concurrency;
//  4. latency at a steady insert rate: commit→SNS (queue receive) and
//     commit→Kobot 2xx (connector + sink + a local receiver);
//  5. peak RSS over one 1M-row transaction and over 10 × 100k;
//  6. sink throughput (deliveries/s to a local receiver);
//  7. one 1M-row transaction committed while the connector streams, with
//     source.streaming off and on: walsender spill bytes, commit → last
//     event, peak RSS;
//  8. events over 256 KiB through S3 (publisher.large_payloads, the
//     emulator's S3) against events of ~1 KiB, interleaved: events/s over a
//     backlog and commit → SNS accepted at a steady rate;
//  9. the sink as a Lambda function;
//  10. a backfill of -backfill-rows rows (publisher stdout) against COPY of
//     the mapped columns, interleaved; live commit → stdout latency at
//     -rate without and during a backfill; the connector's peak RSS.
//
// Usage:
//
//	go run ./tools/bench [-out bench-results] [-rows 1000000] [-skip latency,sink] ...
//
// It prints a table of figures, ratios and targets, and writes
// results.json, results.md and chart.svg to -out. `make bench` runs it at
// full size; its test runs it tiny. Nothing here asserts a time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Items that -skip accepts.
const (
	itemBaseline   = "baseline"   // 1
	itemDiscard    = "discard"    // 2
	itemEmulator   = "emulator"   // 3
	itemLatency    = "latency"    // 4
	itemRSS        = "rss"        // 5
	itemSink       = "sink"       // 6
	itemStreaming  = "streaming"  // 7
	itemClaimCheck = "claimcheck" // 8
	itemLambda     = "lambda"     // 9
	itemBackfill   = "backfill"   // 10
	itemProfile    = "profile"    // CPU and heap profiles of item 2
)

var allItems = []string{itemBaseline, itemDiscard, itemEmulator, itemLatency, itemRSS, itemSink, itemStreaming, itemClaimCheck, itemLambda, itemBackfill, itemProfile}

// options are the sizes and switches of one run.
type options struct {
	Out           string        `json:"-"`
	Rows          int           `json:"rows"`         // rows of the throughput and RSS workloads
	TxSize        int           `json:"tx_size"`      // rows per transaction of the main workload
	Repeat        int           `json:"repeat"`       // runs of each reader over each throughput workload (the best counts)
	RSSTxs        int           `json:"rss_txs"`      // the split workload: Rows in this many transactions
	PublishRows   int           `json:"publish_rows"` // rows of the emulator workload (item 3)
	Lanes         int           `json:"lanes"`        // connector publisher lanes = bare loop concurrency
	Companies     int           `json:"companies"`    // distinct company_id values (link keys)
	Rate          int           `json:"rate"`         // rows/s of the latency workload
	LatencyDur    time.Duration `json:"latency_duration"`
	LatencyTx     int           `json:"latency_tx_size"`             // rows per transaction at the steady rate
	SinkMessages  int           `json:"sink_messages"`               // messages pre-filled for the sink drain
	SinkConc      int           `json:"sink_concurrency"`            // sink.sqs.concurrency; 0: the sink's default
	Bin           string        `json:"-"`                           // prebuilt baitoru-cdc binary; built when empty
	Compare       string        `json:"compare,omitempty"`           // a second binary measured interleaved with Bin (connector → stdout, sink drains)
	Render        string        `json:"-"`                           // re-render this results.json instead of measuring
	DecodingMem   string        `json:"decoding_work_mem,omitempty"` // logical_decoding_work_mem of the source database; "": the server's (64MB)
	ClaimEvents   int           `json:"claim_events"`                // item 8: events of each size in the backlog
	ClaimRate     int           `json:"claim_rate"`                  // item 8: events/s of the steady part
	ClaimDuration time.Duration `json:"claim_duration"`              // item 8: duration of the steady part
	BackfillRows  int           `json:"backfill_rows"`               // item 10: rows of the backfilled table
	Skip          []string      `json:"skip"`

	skip map[string]bool
}

func (o *options) skipped(item string) bool { return o.skip[item] }

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.Out, "out", "bench-results", "directory for results.json, results.md, chart.svg, profiles and logs")
	fs.IntVar(&o.Rows, "rows", 1_000_000, "rows of the throughput workloads (in -tx-size transactions, in one transaction, in -rss-txs transactions)")
	fs.IntVar(&o.TxSize, "tx-size", 100, "rows per transaction of the main throughput workload")
	fs.IntVar(&o.Repeat, "repeat", 2, "runs of the bare reader and of the connector over each throughput workload, interleaved; the fastest run of each counts (a shared machine's load only ever slows a run down)")
	fs.IntVar(&o.RSSTxs, "rss-txs", 10, "number of transactions of the split RSS workload (-rows split evenly)")
	fs.IntVar(&o.PublishRows, "publish-rows", 30_000, "rows published to the emulator (item 3); the emulator handles ~1.3k messages/s")
	fs.IntVar(&o.Lanes, "lanes", 8, "connector publisher lanes, and the concurrency of the bare PublishBatch loop")
	fs.IntVar(&o.Companies, "companies", 50, "distinct company_id values in the workloads (one link each for the sink)")
	fs.IntVar(&o.Rate, "rate", 1000, "rows/s of the steady latency workload")
	fs.DurationVar(&o.LatencyDur, "latency-duration", 60*time.Second, "duration of each steady latency workload")
	fs.IntVar(&o.LatencyTx, "latency-tx-size", 10, "rows per transaction of the latency workload")
	fs.IntVar(&o.SinkMessages, "sink-messages", 20_000, "messages pre-filled into the queue for the sink throughput drain")
	fs.IntVar(&o.SinkConc, "sink-concurrency", 0, "sink.sqs.concurrency of the sink runs (0: the sink's default)")
	fs.StringVar(&o.Bin, "bin", "", "baitoru-cdc binary to measure (default: go build ./cmd/baitoru-cdc into -out)")
	fs.StringVar(&o.Compare, "compare", "", "another baitoru-cdc binary (e.g. the previous commit's) measured interleaved with -bin: a connector → stdout run after each connector run, and -repeat sink drains of each, alternating; results.md compares CPU per row and per message")
	fs.StringVar(&o.Render, "render", "", "measure nothing: re-render results.md, chart.svg and the table from this results.json into -out")
	fs.StringVar(&o.DecodingMem, "decoding-work-mem", "", "logical_decoding_work_mem of the source database (e.g. 64kB, to make a small transaction stream or spill); empty: the server's default, 64MB")
	fs.IntVar(&o.ClaimEvents, "claim-events", 300, "item 8: events of each size (~1 KiB, ~300 KiB) committed as a backlog, in 10-row transactions")
	fs.IntVar(&o.ClaimRate, "claim-rate", 10, "item 8: events/s of each size at the steady rate (one per transaction)")
	fs.DurationVar(&o.ClaimDuration, "claim-duration", 30*time.Second, "item 8: duration of each steady run")
	fs.IntVar(&o.BackfillRows, "backfill-rows", 1_000_000, "item 10: rows of the table backfilled (and read by COPY)")
	skip := fs.String("skip", "", "comma-separated items to skip: "+strings.Join(allItems, ","))
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(allItems, s) {
			return nil, fmt.Errorf("-skip: unknown item %q (want %s)", s, strings.Join(allItems, ","))
		}
		o.skip[s] = true
	}
	for s := range o.skip {
		o.Skip = append(o.Skip, s)
	}
	sort.Strings(o.Skip)
	switch {
	case o.Rows < 10 || o.TxSize < 1 || o.RSSTxs < 1 || o.RSSTxs > o.Rows:
		return nil, fmt.Errorf("-rows must be >= 10, -tx-size >= 1, 1 <= -rss-txs <= -rows")
	case o.Repeat < 1 || o.Repeat > 10:
		return nil, fmt.Errorf("-repeat must be between 1 and 10, got %d", o.Repeat)
	case o.PublishRows < 1 || o.Lanes < 1 || o.Companies < 1:
		return nil, fmt.Errorf("-publish-rows, -lanes and -companies must be >= 1")
	case o.Rate < 1 || o.LatencyTx < 1 || o.LatencyDur < time.Second:
		return nil, fmt.Errorf("-rate and -latency-tx-size must be >= 1, -latency-duration >= 1s")
	case o.SinkMessages < 1 || o.SinkConc < 0:
		return nil, fmt.Errorf("-sink-messages must be >= 1, -sink-concurrency >= 0")
	case o.BackfillRows < 1:
		return nil, fmt.Errorf("-backfill-rows must be >= 1")
	case o.ClaimEvents < 1 || o.ClaimRate < 1 || o.ClaimDuration < time.Second:
		return nil, fmt.Errorf("-claim-events and -claim-rate must be >= 1, -claim-duration >= 1s")
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func main() {
	// The bench re-executes itself as the baseline reader, so that the
	// reader's RSS and CPU are its own.
	if os.Getenv(roleEnv) == roleReader {
		os.Exit(readerMain())
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Render != "" {
		if err := render(o.Render, o.Out, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if len(res.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d item(s) failed; see %s\n", len(res.Errors), o.Out)
		os.Exit(1)
	}
}
