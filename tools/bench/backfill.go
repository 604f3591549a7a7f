package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/child"
)

// ---------------------------------------------------------------- item 10

// mappedColumnsSQL are the columns mappingYAML publishes, in its order:
// what the COPY baseline reads.
const mappedColumnsSQL = "application_id, company_id, posting_id, status, source, answers, applied_at"

// BackfillRun is one read of the -backfill-rows rows of the table: by a
// backfill of the running connector (stdout publisher), or by COPY.
type BackfillRun struct {
	Reader     string  `json:"reader"` // "backfill" or "copy"
	Run        int     `json:"run"`
	Rows       int     `json:"rows"`
	Seconds    float64 `json:"seconds"` // backfill: start requested → last read event; copy: the COPY
	RowsPerSec float64 `json:"rows_per_sec"`
	// CPUSeconds is the connector's CPU time over the backfill (its
	// process, before and after), 0 for COPY.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// BackfillResult is item 10.
type BackfillResult struct {
	Rows int           `json:"rows"`
	Runs []BackfillRun `json:"runs"`
	// Latency is commit → event written on stdout of live inserts at the
	// steady rate, without a backfill and while one runs.
	Without *Latency `json:"without_backfill,omitempty"`
	During  *Latency `json:"during_backfill,omitempty"`
	PeakRSS int64    `json:"peak_rss_bytes"` // the connector's VmHWM over every run
}

// liveWriter is the connector's stdout during item 10: it counts the read
// events and notes, for each live event, its commit time and when it
// arrived.
type liveWriter struct {
	mu      sync.Mutex
	partial []byte
	reads   int
	want    int // reads that make done (0: never)
	lastAt  time.Time
	done    chan struct{}
	commits []time.Time
	arrived []time.Time
	bad     int
}

func (w *liveWriter) expect(want int) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads, w.want, w.done = 0, want, make(chan struct{})
	return w.done
}

func (w *liveWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	rest := p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			w.partial = append(w.partial, rest...)
			break
		}
		line := rest[:i]
		if len(w.partial) > 0 {
			line = append(w.partial, line...)
			w.partial = nil
		}
		rest = rest[i+1:]
		if bytes.Contains(line, []byte(`"op":"read"`)) {
			w.reads++
			if w.want > 0 && w.reads == w.want {
				w.lastAt = now
				close(w.done)
			}
			continue
		}
		var ev struct {
			Time string `json:"time"`
		}
		t, err := time.Time{}, json.Unmarshal(line, &ev)
		if err == nil {
			t, err = time.Parse(time.RFC3339Nano, ev.Time)
		}
		if err != nil {
			w.bad++
			continue
		}
		w.commits = append(w.commits, t)
		w.arrived = append(w.arrived, now)
	}
	return len(p), nil
}

func (w *liveWriter) readCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reads
}

// live returns the commit → arrival of the live events committed in
// [from, to), and how many live events arrived in all.
func (w *liveWriter) live(from, to time.Time) ([]time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d []time.Duration
	for i, c := range w.commits {
		if !c.Before(from) && c.Before(to) {
			d = append(d, w.arrived[i].Sub(c))
		}
	}
	return d, len(w.commits)
}

// backfillPhase is item 10: -backfill-rows rows of public.applications
// read by a backfill of the connector (publisher stdout, discarded) and by
// COPY of the mapped columns, -repeat times each, interleaved; then the
// commit → stdout latency of live inserts at -rate without and during a
// backfill, on the same connector.
func (b *bench) backfillPhase(ctx context.Context) error {
	if b.o.skipped(itemBackfill) {
		return nil
	}
	// What setup creates for backfills (the bench's role is a superuser:
	// no grants needed).
	if _, err := dba.ApplyBackfill(ctx, b.meta, dba.BackfillObjects{Schema: postgres.Schema, Publication: publication + "_backfill"}, false); err != nil {
		return fmt.Errorf("backfill objects: %w", err)
	}
	// Exactly the rows of this item in the table (earlier items' rows
	// went through their slots already; TRUNCATE is not published).
	if _, err := b.meta.Exec(ctx, "TRUNCATE public.applications"); err != nil {
		return err
	}
	rows := b.o.BackfillRows
	if _, err := b.insert(ctx, "backfill-table", rows, max(1, rows/1000)); err != nil {
		return err
	}
	if _, err := b.meta.Exec(ctx, "VACUUM ANALYZE public.applications"); err != nil {
		return err
	}
	const slot = "bench_backfill"
	if err := b.createSlot(ctx, slot); err != nil {
		return err
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slot)
	cfg, err := b.connectorConfig("connector-"+slot, slot, "stdout", "", "", "")
	if err != nil {
		return err
	}
	out := &liveWriter{}
	c, err := startProcess("connector-"+slot, b.logs, b.bin, []string{"run", "--config", cfg}, nil, out)
	if err != nil {
		return err
	}
	defer c.stop(15 * time.Second)
	abort := func() error {
		if c.Exited() {
			return c.exitErr()
		}
		return nil
	}
	if _, err := b.waitSlot(ctx, slot, 30*time.Second, abort, func(active bool, _ pglogrepl.LSN) bool { return active }); err != nil {
		return fmt.Errorf("backfill: connector did not start: %w", err)
	}
	res := &BackfillResult{Rows: rows}
	b.res.Backfill = res
	n := 0
	backfill := func() (BackfillRun, error) {
		n++
		id := fmt.Sprintf("bench-%d", n)
		done := out.expect(rows)
		cpu0 := procCPU(c.Pid())
		start := time.Now()
		cmdDone, err := b.startBackfill(ctx, cfg, id)
		if err != nil {
			return BackfillRun{}, err
		}
		timeout := timeoutFor(rows, 2000)
		select {
		case <-done:
		case err := <-cmdDone:
			// The command ended (the backfill is over): the events may
			// still be on their way.
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				return BackfillRun{}, fmt.Errorf("backfill %s: command ended (%v) with %d of %d read events", id, err, out.readCount(), rows)
			}
			cmdDone = nil
		case <-c.Done():
			return BackfillRun{}, c.exitErr()
		case <-time.After(timeout):
			return BackfillRun{}, fmt.Errorf("backfill %s: %d of %d read events after %s", id, out.readCount(), rows, timeout)
		case <-ctx.Done():
			return BackfillRun{}, ctx.Err()
		}
		out.mu.Lock()
		last := out.lastAt
		out.mu.Unlock()
		cpu := procCPU(c.Pid()) - cpu0
		if cmdDone != nil {
			if err := <-cmdDone; err != nil {
				return BackfillRun{}, err
			}
		}
		s := last.Sub(start).Seconds()
		return BackfillRun{Reader: "backfill", Rows: rows, Seconds: s, RowsPerSec: float64(rows) / s, CPUSeconds: cpu.Seconds()}, nil
	}
	var errs []error
	for r := 1; r <= b.o.Repeat; r++ {
		order := []string{"backfill", "copy"}
		if r%2 == 0 {
			order = []string{"copy", "backfill"}
		}
		for _, reader := range order {
			var run BackfillRun
			var err error
			if reader == "copy" {
				run, err = b.copyRows(ctx)
			} else {
				run, err = backfill()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s run %d: %w", reader, r, err))
				continue
			}
			run.Run = r
			res.Runs = append(res.Runs, run)
			b.logf("backfill item, %s run %d: %d rows in %.2fs, %.0f rows/s, connector CPU %.2fs", reader, r, run.Rows, run.Seconds, run.RowsPerSec, run.CPUSeconds)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// Live latency at the steady rate, without a backfill, then during one.
	without, err := b.liveLatency(ctx, out, nil)
	if err != nil {
		return err
	}
	res.Without = without
	during, err := b.liveLatency(ctx, out, func() (func() (time.Time, error), error) {
		done := out.expect(rows)
		n++
		cmdDone, err := b.startBackfill(ctx, cfg, fmt.Sprintf("bench-%d", n))
		if err != nil {
			return nil, err
		}
		return func() (time.Time, error) {
			select {
			case <-done:
			case <-time.After(timeoutFor(rows, 2000)):
				return time.Time{}, fmt.Errorf("backfill during the latency run: %d of %d read events", out.readCount(), rows)
			}
			if err := <-cmdDone; err != nil {
				return time.Time{}, err
			}
			out.mu.Lock()
			defer out.mu.Unlock()
			return out.lastAt, nil
		}, nil
	})
	if err != nil {
		return err
	}
	res.During = during
	res.PeakRSS = c.vmHWM()
	b.logf("backfill item: live commit → stdout p99 %.1f ms without a backfill, %.1f ms during one (%d events); peak RSS %s",
		without.P99, during.P99, during.Received, mib(res.PeakRSS))
	if out.bad > 0 {
		return fmt.Errorf("backfill: %d unreadable lines on the connector's stdout", out.bad)
	}
	return nil
}

// startBackfill runs `baitoru-cdc backfill start --wait` for the whole
// table; its error arrives on the channel when it ends.
func (b *bench) startBackfill(ctx context.Context, cfg, id string) (chan error, error) {
	cmd := exec.CommandContext(ctx, b.bin, "backfill", "start", "--config", cfg, "--table", "public.applications", "--id", id, "--wait")
	cmd.Env = child.Env()
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("backfill start %s: %w\n%s", id, err, strings.TrimSpace(outBuf.String()))
		}
		ch <- err
	}()
	return ch, nil
}

// copyRows is the baseline: COPY of the mapped columns of every row to
// the bench, discarded.
func (b *bench) copyRows(ctx context.Context) (BackfillRun, error) {
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return BackfillRun{}, err
	}
	defer conn.Close(context.Background())
	start := time.Now()
	tag, err := conn.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT "+mappedColumnsSQL+" FROM public.applications) TO STDOUT")
	if err != nil {
		return BackfillRun{}, fmt.Errorf("copy: %w", err)
	}
	s := time.Since(start).Seconds()
	rows := int(tag.RowsAffected())
	return BackfillRun{Reader: "copy", Rows: rows, Seconds: s, RowsPerSec: float64(rows) / s}, nil
}

// liveLatency commits -rate rows/s in -latency-tx-size transactions for
// -latency-duration and measures commit → event on the connector's stdout.
// With during set, it starts a backfill a tenth into the run (during
// returns a function that waits for its end) and counts only the live
// events committed while it ran.
func (b *bench) liveLatency(ctx context.Context, out *liveWriter, during func() (func() (time.Time, error), error)) (*Latency, error) {
	out.mu.Lock()
	before := len(out.commits)
	out.mu.Unlock()
	l := &Latency{Path: "commit→stdout written", Short: "stdout", Method: "the event's time (commit) → its line on the connector's stdout",
		Rate: b.o.Rate, TxSize: b.o.LatencyTx, Seconds: b.o.LatencyDur.Seconds()}
	type result struct {
		rows  int
		delay float64
		err   error
	}
	ins := make(chan result, 1)
	go func() {
		rows, delay, err := b.steadyInsert(ctx, b.o.Rate, b.o.LatencyTx, b.o.LatencyDur)
		ins <- result{rows, delay, err}
	}()
	from, to := time.Now(), time.Time{}
	var wait func() (time.Time, error)
	if during != nil {
		select {
		case <-time.After(b.o.LatencyDur / 10):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		from = time.Now()
		var err error
		if wait, err = during(); err != nil {
			return nil, err
		}
	}
	r := <-ins
	if r.err != nil {
		return nil, r.err
	}
	if wait != nil {
		var err error
		if to, err = wait(); err != nil {
			return nil, err
		}
	}
	// Every live event of the run arrived.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, total := out.live(time.Time{}, time.Time{})
		if total-before >= r.rows || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if to.IsZero() {
		to = time.Now()
	}
	d, total := out.live(from, to)
	if total-before < r.rows {
		return nil, fmt.Errorf("live latency: %d of %d live events on stdout", total-before, r.rows)
	}
	l.Sent, l.InsertDelayP99 = r.rows, r.delay
	l.Received = len(d)
	l.fromDurations(d)
	return l, nil
}

// backfillFigures adds item 10's figures.
func (r *Results) backfillFigures(add func(Figure)) {
	bf := r.Backfill
	if bf == nil {
		return
	}
	best := map[string]BackfillRun{}
	var cpuPerRow []float64
	copies := 0
	for _, run := range bf.Runs {
		if run.Reader == "copy" {
			copies++
		}
		if run.RowsPerSec > best[run.Reader].RowsPerSec {
			best[run.Reader] = run
		}
		if run.Reader == "backfill" && run.Rows > 0 {
			cpuPerRow = append(cpuPerRow, run.CPUSeconds*1e6/float64(run.Rows))
		}
	}
	label := count(bf.Rows) + " rows of public.applications, 7 mapped columns"
	cp, ok := best["copy"]
	if ok {
		add(Figure{Item: "10", Name: "baseline: COPY (SELECT <mapped columns> …) TO STDOUT, " + label, Value: cp.RowsPerSec, Unit: "rows/s",
			Note: fmt.Sprintf("best of %d runs, interleaved with the backfills", copies)})
	}
	if bfr, ok2 := best["backfill"]; ok2 {
		f := Figure{Item: "10", Name: "backfill → stdout (discarded), " + label, Value: bfr.RowsPerSec, Unit: "rows/s",
			Target: fmt.Sprintf("≥ %.1f× COPY", targetBackfillRatio),
			Note:   fmt.Sprintf("best of %d runs, start requested → last read event; connector CPU %.1f µs/row (median)", len(cpuPerRow), median(cpuPerRow))}
		if ok {
			ratio := bfr.RowsPerSec / cp.RowsPerSec
			f.Ratio = fmt.Sprintf("%.2f× COPY", ratio)
			f.Met = met(ratio >= targetBackfillRatio)
		}
		add(f)
		add(Figure{Item: "10", Name: "connector CPU per backfilled row", Value: median(cpuPerRow), Unit: "µs/row",
			Note: "its process's CPU time over the backfill, median of the runs"})
	}
	if bf.Without != nil && bf.During != nil {
		lbl := fmt.Sprintf("at %s rows/s (%d-row tx)", count(bf.Without.Rate), bf.Without.TxSize)
		add(Figure{Item: "10", Name: "live commit→stdout p99 " + lbl + ", no backfill", Value: bf.Without.P99, Unit: "ms",
			Note: fmt.Sprintf("%d events; p50 %.1f ms", bf.Without.Received, bf.Without.P50)})
		f := Figure{Item: "10", Name: "live commit→stdout p99 " + lbl + ", while a backfill runs", Value: bf.During.P99, Unit: "ms",
			Target: fmt.Sprintf("≤ %.0f× without", targetBackfillLatency),
			Note:   fmt.Sprintf("%d events committed while the backfill ran; p50 %.1f ms", bf.During.Received, bf.During.P50)}
		if bf.Without.P99 > 0 {
			ratio := bf.During.P99 / bf.Without.P99
			f.Ratio = fmt.Sprintf("%.2f× without", ratio)
			f.Met = met(ratio <= targetBackfillLatency && bf.During.Received > 0)
		}
		add(f)
	}
	if bf.PeakRSS > 0 {
		v := float64(bf.PeakRSS) / (1 << 20)
		add(Figure{Item: "10", Name: "connector peak RSS, backfills of " + label, Value: v, Unit: "MiB",
			Target: fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), Met: met(v <= targetRSSMiB), Note: "VmHWM of the one connector over every run"})
	}
}
