package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
)

// ---------------------------------------------------------------- item 7

// StreamingRun is one -rows-row transaction committed while a connector
// streams the slot, with source.streaming on or off (item 7).
type StreamingRun struct {
	Streaming bool `json:"streaming"`
	Run       int  `json:"run"`
	Rows      int  `json:"rows"`
	// SpillBytes and StreamBytes are the slot's pg_stat_replication_slots
	// counters after the run: what the walsender wrote to the server's
	// disk, and what it sent before the commit.
	SpillBytes  int64 `json:"spill_bytes"`
	SpillTxns   int64 `json:"spill_txns"`
	StreamBytes int64 `json:"stream_bytes"`
	StreamTxns  int64 `json:"stream_txns"`
	// CommitToLastSeconds is from the COMMIT's return to the last event
	// written by the connector (stdout: accepted).
	CommitToLastSeconds float64 `json:"commit_to_last_seconds"`
	PeakRSS             int64   `json:"peak_rss_bytes"` // VmHWM before shutdown
	CPUSeconds          float64 `json:"cpu_seconds"`
}

// streamingPhase is item 7: one Rows-row transaction committed while the
// connector streams, source.streaming off and on, Repeat times each,
// alternating which goes first.
func (b *bench) streamingPhase(ctx context.Context) error {
	if b.o.skipped(itemStreaming) {
		return nil
	}
	var errs []error
	for r := 1; r <= b.o.Repeat; r++ {
		modes := []bool{false, true}
		if r%2 == 0 {
			modes = []bool{true, false}
		}
		for _, on := range modes {
			if err := b.measureStreaming(ctx, on, r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (b *bench) measureStreaming(ctx context.Context, on bool, run int) error {
	mode := "off"
	if on {
		mode = "on"
	}
	slot := fmt.Sprintf("bench_streaming_%s_%d", mode, run)
	if err := b.createSlot(ctx, slot); err != nil {
		return err
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slot)
	cfg, err := b.connectorConfig("connector-"+slot, slot, "stdout", "", "", "")
	if err != nil {
		return err
	}
	counter := newLineCounter(b.o.Rows, false)
	env := []string{"BAITORU_CDC_SOURCE_STREAMING=" + strconv.FormatBool(on)}
	c, err := startProcess("connector-"+slot, b.logs, b.bin, []string{"run", "--config", cfg}, env, counter)
	if err != nil {
		return err
	}
	defer c.stop(15 * time.Second)
	if _, err := b.waitSlot(ctx, slot, 30*time.Second, c.aborted, func(active bool, _ pglogrepl.LSN) bool { return active }); err != nil {
		return fmt.Errorf("streaming %s: connector did not start: %w", mode, err)
	}
	w, err := b.insert(ctx, "streaming-"+mode, b.o.Rows, 1)
	if err != nil {
		return err
	}
	committed := w.committed
	timeout := timeoutFor(w.Rows, 2000)
	select {
	case <-counter.done:
	case <-c.Done():
		return c.exitErr()
	case <-time.After(timeout):
		return fmt.Errorf("streaming %s: %d of %d events after %s", mode, counter.count(), w.Rows, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	_, last := counter.times()
	if _, err := b.waitSlot(ctx, slot, 30*time.Second, c.aborted, func(_ bool, confirmed pglogrepl.LSN) bool { return w.done(confirmed) }); err != nil {
		return fmt.Errorf("streaming %s: every event written but not confirmed: %w", mode, err)
	}
	s := StreamingRun{Streaming: on, Run: run, Rows: counter.count(), CommitToLastSeconds: last.Sub(committed).Seconds(), PeakRSS: c.vmHWM()}
	if err := b.meta.QueryRow(ctx, `SELECT spill_bytes, spill_txns, stream_bytes, stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, slot).
		Scan(&s.SpillBytes, &s.SpillTxns, &s.StreamBytes, &s.StreamTxns); err != nil {
		return fmt.Errorf("streaming %s: slot statistics: %w", mode, err)
	}
	c.stop(15 * time.Second)
	_, cpu := c.usage()
	s.CPUSeconds = cpu.Seconds()
	b.res.Streaming = append(b.res.Streaming, s)
	b.logf("streaming %s run %d: %d events; spilled %s in %d tx, streamed %s in %d tx; commit → last event %.2fs; peak RSS %s, CPU %.1fs",
		mode, run, s.Rows, mib(s.SpillBytes), s.SpillTxns, mib(s.StreamBytes), s.StreamTxns, s.CommitToLastSeconds, mib(s.PeakRSS), s.CPUSeconds)
	if s.Rows != w.Rows {
		return fmt.Errorf("streaming %s: %d events for %d rows", mode, s.Rows, w.Rows)
	}
	return nil
}

// streamingFigures adds item 7's figures: per mode, the median commit →
// last event, the highest spill and stream bytes and peak RSS of its runs.
func (r *Results) streamingFigures(add func(Figure)) {
	for _, on := range []bool{false, true} {
		var lat []float64
		var spill, stream, peak int64
		var rows int
		for _, s := range r.Streaming {
			if s.Streaming != on {
				continue
			}
			lat = append(lat, s.CommitToLastSeconds)
			spill, stream, peak = max(spill, s.SpillBytes), max(stream, s.StreamBytes), max(peak, s.PeakRSS)
			rows = s.Rows
		}
		if len(lat) == 0 {
			continue
		}
		mode := "source.streaming: false"
		if on {
			mode = "source.streaming: true"
		}
		label := fmt.Sprintf("%s rows in 1 transaction, %s", count(rows), mode)
		add(Figure{Item: "7", Name: "commit → last event accepted, " + label, Value: median(lat), Unit: "s",
			Note: fmt.Sprintf("median of %d runs; walsender spilled %s, streamed %s", len(lat), mib(spill), mib(stream))})
		add(Figure{Item: "7", Name: "walsender spill to the server's disk, " + label, Value: float64(spill) / (1 << 20), Unit: "MiB",
			Note: "pg_stat_replication_slots.spill_bytes, the highest of its runs"})
		add(Figure{Item: "7", Name: "connector peak RSS, " + label, Value: float64(peak) / (1 << 20), Unit: "MiB",
			Target: fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), Met: met(float64(peak)/(1<<20) <= targetRSSMiB), Note: "the highest of its runs"})
	}
}
