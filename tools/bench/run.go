package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// bench holds the state of one run.
type bench struct {
	o    *options
	res  *Results
	out  string // absolute -out
	logs string // out/logs
	w    io.Writer

	bin, profBin string

	pg     *testenv.Postgres
	dsn    string    // source database
	meta   *pgx.Conn // queries on the source database (slots, positions)
	rowSeq int64     // last generated row number
	note   string    // SQL expression of the rows' answers.note (see rowNote)

	emu    *testenv.Emulator
	emuPID int // its process, for its CPU time

	hasSink bool
	sinkDSN string
	linksOK bool      // links for every company exist in the sink database
	rcv     *receiver // the local Kobot
	secret  string    // its signing secret
	bodies  [][]byte  // events captured from the connector (item 3)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run measures everything not skipped and writes the results. It returns an
// error only when nothing could be measured (no PostgreSQL, no build);
// failures of single items are in Results.Errors.
func run(ctx context.Context, o *options, w io.Writer) (*Results, error) {
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, out: out, logs: filepath.Join(out, "logs"), w: w, res: newResults(o)}
	if err := os.MkdirAll(b.logs, 0o755); err != nil {
		return nil, err
	}
	b.res.Machine = describeMachine()
	b.sample("start")
	defer b.cleanup()

	// Test credentials for the emulator, for the SDK clients of this
	// process; the children get them explicitly.
	for k, v := range awsEnv() {
		os.Setenv(k, v)
	}

	if err := b.prepareBinaries(ctx); err != nil {
		return nil, err
	}
	b.logf("starting PostgreSQL")
	b.pg, err = testenv.StartPostgres(testenv.PostgresOptions{Settings: pgSettings})
	if err != nil {
		return nil, err
	}
	if err := b.setupSource(ctx); err != nil {
		return nil, err
	}

	b.item(ctx, "throughput: 1M rows in 100-row transactions", b.throughputMain)
	b.item(ctx, "throughput and RSS: one big transaction / split", b.throughputRSS)
	b.item(ctx, "emulator publish", b.publishPhase)
	b.item(ctx, "latency", b.latencyPhase)
	b.item(ctx, "sink throughput", b.sinkPhase)
	b.item(ctx, "streaming: one big transaction, source.streaming off / on", b.streamingPhase)
	b.item(ctx, "claim-check: events over 256 KiB through S3 / events of 1 KiB", b.claimCheckPhase)
	b.item(ctx, "the sink as a Lambda function (Runtime Interface Emulator)", b.lambdaPhase)
	b.item(ctx, "backfill: a table read by a backfill / by COPY; live latency during a backfill", b.backfillPhase)

	b.sample("end")
	b.res.Seconds = time.Since(b.res.Started).Seconds()
	b.res.summarise()
	if err := b.res.write(b.out, w); err != nil {
		return b.res, err
	}
	return b.res, nil
}

// item runs one phase; an error is recorded, and the run goes on.
func (b *bench) item(ctx context.Context, name string, f func(context.Context) error) {
	if ctx.Err() != nil {
		return
	}
	b.logf("== %s", name)
	b.sample(name)
	if err := f(ctx); err != nil {
		b.logf("%s: %v", name, err)
		b.res.Errors[name] = err.Error()
	}
}

func (b *bench) sample(phase string) {
	b.res.Load = append(b.res.Load, loadSample(phase))
}

func (b *bench) cleanup() {
	if b.rcv != nil {
		b.rcv.close()
	}
	if b.meta != nil {
		b.meta.Close(context.Background())
	}
	if b.emu != nil {
		b.emu.Close()
	}
	if b.pg != nil {
		b.pg.Close()
	}
}

func (b *bench) prepareBinaries(ctx context.Context) error {
	binDir := filepath.Join(b.out, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	if b.o.Bin != "" {
		b.bin = b.o.Bin
		b.profBin = b.o.Bin
		b.res.Binary = b.o.Bin + " (given with -bin)"
	} else {
		b.logf("building ./cmd/baitoru-cdc")
		plain, prof, note, err := buildConnector(ctx, binDir)
		if err != nil {
			return err
		}
		b.bin, b.profBin = plain, prof
		b.res.Binary = "go build ./cmd/baitoru-cdc (" + runtime.Version() + ")"
		if note != "" {
			b.res.Notes = append(b.res.Notes, note)
		}
	}
	b.hasSink = hasCommand(ctx, b.bin, "sink")
	if !b.hasSink {
		b.res.Unavailable[itemSink] = "the baitoru-cdc binary has no sink command yet"
	}
	return nil
}

// emulator starts the SNS/SQS emulator on first use.
func (b *bench) emulator() (*testenv.Emulator, error) {
	if b.emu != nil {
		return b.emu, nil
	}
	b.logf("starting the SNS/SQS emulator")
	emu, err := testenv.StartEmulator(testenv.EmulatorOptions{InMemory: true})
	if err != nil {
		return nil, err
	}
	b.emu = emu
	b.emuPID = emulatorPID(emu.Port)
	return emu, nil
}

// emuCPU is the emulator's CPU time so far (0 if unknown).
func (b *bench) emuCPU() time.Duration {
	if b.emuPID == 0 {
		return 0
	}
	return procCPU(b.emuPID)
}

// awsEnv is what the AWS SDK of the children needs for the emulator.
func awsEnv() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_REGION":                "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}

func envList(m map[string]string) []string {
	var l []string
	for k, v := range m {
		l = append(l, k+"="+v)
	}
	return l
}

// ---------------------------------------------------------------- items 1, 2

// throughputMain is items 1 and 2 (and the profiles) on the main workload:
// Rows rows in TxSize-row transactions.
func (b *bench) throughputMain(ctx context.Context) error {
	if b.o.skipped(itemBaseline) && b.o.skipped(itemDiscard) && b.o.skipped(itemProfile) {
		return nil
	}
	txs := (b.o.Rows + b.o.TxSize - 1) / b.o.TxSize
	return b.throughput(ctx, "main", txs, !b.o.skipped(itemProfile))
}

// throughputRSS is item 5 (and items 1 and 2 on these workloads): Rows rows
// in one transaction, and in RSSTxs transactions.
func (b *bench) throughputRSS(ctx context.Context) error {
	if b.o.skipped(itemRSS) {
		return nil
	}
	// One big transaction is profiled too: it stresses the in-flight window
	// and the acknowledgement of one huge transaction.
	return errors.Join(
		b.throughput(ctx, "one-tx", 1, !b.o.skipped(itemProfile)),
		b.throughput(ctx, "split", b.o.RSSTxs, false))
}

// throughput inserts Rows rows in txs transactions as workload name, then
// streams them Repeat times with the bare reader and with the connector
// (and the -compare binary), interleaved (the order rotates from run to
// run, so that a change of the machine's load hits every reader alike),
// each run from a slot of its own created before the insert; then once more
// with the profiling connector when profiled.
func (b *bench) throughput(ctx context.Context, name string, txs int, profiled bool) error {
	var slots []string
	slot := func(kind string, run int) string {
		return fmt.Sprintf("bench_%s_%s_%d", kind, strings.ReplaceAll(name, "-", "_"), run)
	}
	baseline := !b.o.skipped(itemBaseline)
	discard := !b.o.skipped(itemDiscard) || name != "main" // items 5 are connector runs
	compare := discard && b.o.Compare != ""
	for r := 1; r <= b.o.Repeat; r++ {
		if baseline {
			slots = append(slots, slot("base", r))
		}
		if discard {
			slots = append(slots, slot("conn", r))
		}
		if compare {
			slots = append(slots, slot("cmp", r))
		}
	}
	if profiled {
		slots = append(slots, slot("prof", 1))
	}
	for _, s := range slots {
		if err := b.createSlot(ctx, s); err != nil {
			return err
		}
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slots...)
	w, err := b.insert(ctx, name, b.o.Rows, txs)
	if err != nil {
		return err
	}
	var errs []error
	for r := 1; r <= b.o.Repeat; r++ {
		steps := []func() error{}
		if baseline {
			steps = append(steps, func() error { return b.measureBaseline(ctx, w, slot("base", r), r) })
		}
		if discard {
			steps = append(steps, func() error {
				_, err := b.measureDiscard(ctx, w, slot("conn", r), connectorRun{run: r})
				return err
			})
		}
		if compare {
			steps = append(steps, func() error {
				_, err := b.measureDiscard(ctx, w, slot("cmp", r), connectorRun{bin: b.o.Compare, label: readerCompare, run: r})
				return err
			})
		}
		// A different order each run, so that a change of the machine's
		// load hits every reader alike.
		if len(steps) > 0 {
			k := (r - 1) % len(steps)
			steps = append(steps[k:], steps[:k]...)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		// Each finished slot is dropped at once: a slot left behind holds
		// WAL and catalog rows back for the next runs.
		b.dropSlots(context.WithoutCancel(ctx), slot("base", r), slot("conn", r), slot("cmp", r))
	}
	if profiled {
		if err := b.profile(ctx, w, slot("prof", 1)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Stream is one reader (baseline or connector) over one workload.
type Stream struct {
	Workload   string  `json:"workload"`
	Reader     string  `json:"reader"` // "baseline" or "connector"
	Run        int     `json:"run"`    // 1..Repeat
	Rows       int     `json:"rows"`
	Seconds    float64 `json:"seconds"` // first event to last event
	RowsPerSec float64 `json:"rows_per_sec"`
	// FromStartSeconds is from the start of streaming (START_REPLICATION;
	// for the connector: the slot seen active, polled every 5ms) to the
	// last event. It includes the walsender's work before the first event
	// reaches the reader, which for one big transaction is most of it:
	// pgoutput sends a transaction only once its commit was decoded.
	FromStartSeconds float64 `json:"from_start_seconds"`
	// ConfirmSeconds is from the first event until the slot's confirmed
	// position covered the workload (connector: status every 100ms).
	ConfirmSeconds float64 `json:"confirm_seconds,omitempty"`
	PeakRSS        int64   `json:"peak_rss_bytes"` // VmHWM (connector, before shutdown) or wait4 maxrss (baseline)
	MaxRSS         int64   `json:"maxrss_bytes"`   // wait4 maxrss, shutdown included
	CPUSeconds     float64 `json:"cpu_seconds"`    // user+system of the reader process over the run
	// WalsenderCPU is the CPU time of the walsender serving the reader:
	// close to FromStartSeconds means the stream is walsender-bound.
	WalsenderCPU float64 `json:"walsender_cpu_seconds"`
}

// measureBaseline runs the bare reader (item 1) over w from slot.
func (b *bench) measureBaseline(ctx context.Context, w *Workload, slot string, run int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var stdout strings.Builder
	watch := b.watchSlot(ctx, slot)
	defer watch.stop()
	c, err := startProcess("baseline-"+w.Name, b.logs, self, nil, []string{
		roleEnv + "=" + roleReader,
		readerDSN + "=" + b.dsn,
		readerSlot + "=" + slot,
		readerRows + "=" + fmt.Sprint(w.Rows),
		readerInterval + "=100ms",
	}, &stdout)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeoutFor(w.Rows, 5000))
	defer cancel()
	if err := c.wait(wctx); err != nil {
		c.stop(time.Second)
		return fmt.Errorf("baseline on %s: %w", w.Name, err)
	}
	var rep readerReport
	if err := jsonUnmarshalLine(stdout.String(), &rep); err != nil {
		return fmt.Errorf("baseline on %s: %w (%s)", w.Name, err, c.exitErr())
	}
	if rep.Error != "" {
		return fmt.Errorf("baseline on %s: %s", w.Name, rep.Error)
	}
	watch.stop()
	maxRSS, cpu := c.usage()
	s := Stream{Workload: w.Name, Reader: "baseline", Run: run, Rows: rep.Rows, WalsenderCPU: watch.walsenderCPU().Seconds(),
		Seconds: time.Duration(rep.LastNano - rep.FirstNano).Seconds(), FromStartSeconds: time.Duration(rep.LastNano - rep.StartNano).Seconds(),
		PeakRSS: maxRSS, MaxRSS: maxRSS, CPUSeconds: cpu.Seconds()}
	s.RowsPerSec = float64(s.Rows) / s.Seconds
	b.res.Streams = append(b.res.Streams, s)
	b.logf("baseline %s run %d: %d rows in %.2fs = %.0f rows/s (%.2fs from start), peak RSS %s, CPU %.1fs, walsender CPU %.1fs",
		w.Name, run, s.Rows, s.Seconds, s.RowsPerSec, s.FromStartSeconds, mib(s.PeakRSS), s.CPUSeconds, s.WalsenderCPU)
	return nil
}

// connectorRun varies measureDiscard.
type connectorRun struct {
	bin     string
	env     []string
	capture bool   // keep every output line (events) in memory
	label   string // stream label; "" = not recorded as a Stream
	run     int    // Stream.Run
}

// measureDiscard runs `baitoru-cdc run` with the stdout publisher over w
// from slot (item 2). Its stdout is a pipe read by a line counter in this
// process that throws the bytes away: writing to /dev/null would hide when
// the last event left the connector. The time is from the first line to the
// w.Rows-th. Then it waits until the slot confirmed the workload (the
// connector must acknowledge what it published), reads VmHWM, and stops it.
func (b *bench) measureDiscard(ctx context.Context, w *Workload, slot string, r connectorRun) ([][]byte, error) {
	if r.bin == "" {
		r.bin = b.bin
	}
	if r.label == "" && r.env == nil && !r.capture {
		r.label = "connector"
	}
	cfg, err := b.connectorConfig("connector-"+slot, slot, "stdout", "", "", "")
	if err != nil {
		return nil, err
	}
	counter := newLineCounter(w.Rows, r.capture)
	watch := b.watchSlot(ctx, slot)
	defer watch.stop()
	c, err := startProcess("connector-"+slot, b.logs, r.bin, []string{"run", "--config", cfg}, r.env, counter)
	if err != nil {
		return nil, err
	}
	defer c.stop(15 * time.Second)
	timeout := timeoutFor(w.Rows, 2000)
	select {
	case <-counter.done:
	case <-c.Done():
		return nil, c.exitErr()
	case <-time.After(timeout):
		return nil, fmt.Errorf("connector on %s: %d of %d events after %s", w.Name, counter.count(), w.Rows, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	confirmedAt, err := b.waitSlot(ctx, slot, 30*time.Second, c.aborted, func(_ bool, confirmed pglogrepl.LSN) bool { return w.done(confirmed) })
	if err != nil {
		return nil, fmt.Errorf("connector on %s: every event written but not confirmed: %w", w.Name, err)
	}
	hwm := c.vmHWM()
	c.stop(15 * time.Second)
	watch.stop()
	maxRSS, cpu := c.usage()
	first, last := counter.times()
	if r.label != "" {
		s := Stream{Workload: w.Name, Reader: r.label, Run: r.run, Rows: counter.count(), Seconds: last.Sub(first).Seconds(),
			ConfirmSeconds: confirmedAt.Sub(first).Seconds(), PeakRSS: hwm, MaxRSS: maxRSS, CPUSeconds: cpu.Seconds()}
		if t := watch.activeAt(); !t.IsZero() {
			s.FromStartSeconds = last.Sub(t).Seconds()
		}
		s.WalsenderCPU = watch.walsenderCPU().Seconds()
		s.RowsPerSec = float64(w.Rows) / s.Seconds
		b.res.Streams = append(b.res.Streams, s)
		b.logf("connector %s run %d: %d events in %.2fs = %.0f rows/s (%.2fs from start, confirmed after %.2fs), peak RSS %s, CPU %.1fs, walsender CPU %.1fs",
			w.Name, r.run, s.Rows, s.Seconds, s.RowsPerSec, s.FromStartSeconds, s.ConfirmSeconds, mib(s.PeakRSS), s.CPUSeconds, s.WalsenderCPU)
	}
	if counter.count() != w.Rows {
		return nil, fmt.Errorf("connector on %s: %d events for %d rows", w.Name, counter.count(), w.Rows)
	}
	return counter.lines, nil
}

// slotWatch follows a slot from its own connection: when a process starts
// streaming it (polled every 5ms), and the CPU time of the walsender
// serving it (sampled every 50ms), to show which side is the bottleneck.
type slotWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	seen   chan struct{} // closed once the slot was seen active
	at     time.Time
	cpu    atomic.Int64 // walsender CPU time, ns, last sample
}

func (b *bench) watchSlot(ctx context.Context, slot string) *slotWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &slotWatch{cancel: cancel, done: make(chan struct{}), seen: make(chan struct{})}
	go func() {
		defer close(w.done)
		conn, err := pgx.Connect(ctx, b.dsn)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		var pid *int32
		for ctx.Err() == nil {
			if err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid); err != nil {
				return
			}
			if pid != nil {
				w.at = time.Now()
				close(w.seen)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if pid == nil {
			return
		}
		for {
			if c := procCPU(int(*pid)); c > 0 {
				w.cpu.Store(int64(c))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// activeAt returns when the slot was first seen active (zero if never).
func (w *slotWatch) activeAt() time.Time {
	select {
	case <-w.seen:
		return w.at
	case <-w.done:
		select {
		case <-w.seen:
			return w.at
		default:
			return time.Time{}
		}
	}
}

// walsenderCPU is the walsender's CPU time at the last sample.
func (w *slotWatch) walsenderCPU() time.Duration { return time.Duration(w.cpu.Load()) }

func (w *slotWatch) stop() {
	w.cancel()
	<-w.done
}

// timeoutFor is a generous bound for processing rows at no less than
// minRate rows/s.
func timeoutFor(rows, minRate int) time.Duration {
	return 2*time.Minute + time.Duration(rows/minRate)*time.Second
}
