package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
)

// ---------------------------------------------------------------- item 8

// ClaimRun is one run of item 8: events of one size through a connector
// with publisher.large_payloads set, first a backlog (events/s), then a
// steady rate (commit → SNS accepted). Events over SNS's limit go through
// S3 (the emulator's), the others straight to SNS: the same connector
// configuration for both sizes, interleaved run by run.
type ClaimRun struct {
	Large bool `json:"large"` // events over 256 KiB (through S3), else ~1 KiB
	Run   int  `json:"run"`
	// EventBytes is the average size of the events (the SNS message, or
	// the object stored in S3).
	EventBytes int `json:"event_bytes"`
	// The backlog: Events committed while the connector was stopped, then
	// read from the slot turning active until its confirmed position
	// covered them.
	Events     int     `json:"events"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"events_per_sec"`
	CPUSeconds float64 `json:"cpu_seconds"` // the connector's, over the backlog
	// StoredInS3 counts the PutObject calls of events (backlog and steady).
	StoredInS3 int     `json:"stored_in_s3"`
	PutP99     float64 `json:"put_p99_ms,omitempty"`
	// Latency at the steady rate, commit → SNS accepted, per event.
	Latency Latency `json:"latency"`
	PeakRSS int64   `json:"peak_rss_bytes"`
}

// Item 8's event sizes: the note of each row is its md5 hex string (32
// bytes) repeated this many times. A repeated string is cheap to insert,
// so that the database keeps the steady rate; PostgreSQL compresses it in
// the WAL, and the connector decodes the whole value.
const (
	smallNoteMD5s = 18    // ~1 KiB events
	largeNoteMD5s = 9_600 // ~300 KiB events, over SNS's 256 KiB
)

func noteSQL(md5s int) string {
	return fmt.Sprintf("repeat(md5(g::text), %d)", md5s)
}

// claimCheckPhase is item 8: ClaimEvents events of ~1 KiB and of ~300 KiB,
// Repeat times each, alternating which goes first.
func (b *bench) claimCheckPhase(ctx context.Context) error {
	if b.o.skipped(itemClaimCheck) {
		return nil
	}
	if _, err := b.emulator(); err != nil {
		return err
	}
	defer func() { b.note = "" }()
	var errs []error
	for r := 1; r <= b.o.Repeat; r++ {
		sizes := []bool{false, true}
		if r%2 == 0 {
			sizes = []bool{true, false}
		}
		for _, large := range sizes {
			if err := b.measureClaim(ctx, large, r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (b *bench) measureClaim(ctx context.Context, large bool, run int) error {
	size, md5s := "small", smallNoteMD5s
	if large {
		size, md5s = "large", largeNoteMD5s
	}
	name := fmt.Sprintf("claim_%s_%d", size, run)
	b.note = noteSQL(md5s)
	slot := "bench_" + name
	if err := b.createSlot(ctx, slot); err != nil {
		return err
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slot)
	topic, err := b.emu.CreateTopic(ctx, "bench-"+name)
	if err != nil {
		return err
	}
	bucket := fmt.Sprintf("bench-claim-%s-%d", size, run)
	if err := b.emu.CreateBucket(ctx, bucket); err != nil {
		return err
	}
	w, err := b.insert(ctx, name, b.o.ClaimEvents, (b.o.ClaimEvents+9)/10)
	if err != nil {
		return err
	}

	proxy, err := startSNSProxy(b.emu.Endpoint)
	if err != nil {
		return err
	}
	defer proxy.close()
	cfg, err := b.connectorConfig("connector-"+name, slot, "sns", topic, proxy.url, "")
	if err != nil {
		return err
	}
	env := envList(awsEnv())
	env = append(env, "BAITORU_CDC_PUBLISHER_LARGE_PAYLOADS_BUCKET="+bucket,
		"BAITORU_CDC_S3_ENDPOINT="+proxy.url, "BAITORU_CDC_S3_REGION="+b.emu.Region)
	c, err := startProcess("connector-"+name, b.logs, b.bin, []string{"run", "--config", cfg}, env, nil)
	if err != nil {
		return err
	}
	defer c.stop(15 * time.Second)
	start, err := b.waitSlot(ctx, slot, 60*time.Second, c.aborted, func(active bool, _ pglogrepl.LSN) bool { return active })
	if err != nil {
		return fmt.Errorf("%s: connector did not start: %w", name, err)
	}
	cpu0 := procCPU(c.Pid())
	end, err := b.waitSlot(ctx, slot, timeoutFor(w.Rows, 20), c.aborted, func(_ bool, confirmed pglogrepl.LSN) bool { return w.done(confirmed) })
	if err != nil {
		return fmt.Errorf("%s: backlog: %w", name, err)
	}
	res := ClaimRun{Large: large, Run: run, Events: w.Rows, Seconds: end.Sub(start).Seconds(), CPUSeconds: (procCPU(c.Pid()) - cpu0).Seconds()}
	res.PerSec = float64(res.Events) / res.Seconds
	backlog := proxy.accepted.Load().count()

	// The steady rate, one event per transaction.
	accepted := newRecorder(0)
	proxy.setRecorders(accepted, newRecorder(0))
	l := Latency{Path: "commit→SNS accepted, " + claimLabel(large), Short: "PublishBatch answered", Rate: b.o.ClaimRate, TxSize: 1, Seconds: b.o.ClaimDuration.Seconds(),
		Method: "commit timestamp → the emulator's PublishBatch answer listing the event (or its S3 pointer, after the PutObject) as Successful, timed per event by a pass-through proxy"}
	l.Sent, l.InsertDelayP99, err = b.steadyInsert(ctx, b.o.ClaimRate, 1, b.o.ClaimDuration)
	if err != nil {
		return err
	}
	accepted.expect(l.Sent)
	if err := waitRecorders(ctx, 60*time.Second, accepted); err != nil {
		return err
	}
	accepted.fill(&l)
	res.Latency = l
	res.PeakRSS = c.vmHWM()
	c.stop(15 * time.Second)

	puts, stored := proxy.putTimes()
	res.StoredInS3 = len(puts)
	if len(puts) > 0 {
		var pl Latency
		pl.fromDurations(puts)
		res.PutP99 = pl.P99
		res.EventBytes = int(stored / int64(len(puts)))
	} else {
		res.EventBytes = proxy.avgMessageBytes()
	}
	b.res.ClaimCheck = append(b.res.ClaimCheck, res)
	b.logf("claim-check %s run %d: %d events of %s: %.0f events/s (CPU %.2fs), %d stored in S3 (PutObject p99 %.1fms); at %d/s commit→SNS accepted p50 %.1fms p99 %.1fms; peak RSS %s",
		size, run, res.Events, strconv.Itoa(res.EventBytes)+" B", res.PerSec, res.CPUSeconds, res.StoredInS3, res.PutP99, b.o.ClaimRate, l.P50, l.P99, mib(res.PeakRSS))
	total := w.Rows + l.Sent
	switch {
	case backlog < w.Rows:
		return fmt.Errorf("%s: %d of %d backlog events accepted", name, backlog, w.Rows)
	case l.Received < l.Sent:
		return fmt.Errorf("%s: %d of %d events accepted at the steady rate", name, l.Received, l.Sent)
	case proxy.errs.Load() > 0:
		return fmt.Errorf("%s: %d calls not forwarded or not parsed by the proxy", name, proxy.errs.Load())
	case large && res.StoredInS3 < total:
		return fmt.Errorf("%s: %d of %d events stored in S3", name, res.StoredInS3, total)
	case !large && res.StoredInS3 != 0:
		return fmt.Errorf("%s: %d small events stored in S3", name, res.StoredInS3)
	}
	return nil
}

func claimLabel(large bool) string {
	if large {
		return "events over 256 KiB (through S3)"
	}
	return "events of ~1 KiB"
}

// claimFigures adds item 8's figures: per size, the best events/s and the
// median p99 of its runs, and the large events' ratios to the small ones.
func (r *Results) claimFigures(add func(Figure)) {
	type agg struct {
		perSec, p99, cpu []float64
		bytes            int
	}
	var by [2]agg
	for _, c := range r.ClaimCheck {
		a := &by[btoi(c.Large)]
		a.perSec = append(a.perSec, c.PerSec)
		a.p99 = append(a.p99, c.Latency.P99)
		a.cpu = append(a.cpu, c.CPUSeconds/float64(c.Events)*1e3)
		a.bytes = c.EventBytes
	}
	small, large := by[0], by[1]
	for i, a := range by {
		if len(a.perSec) == 0 {
			continue
		}
		label := claimLabel(i == 1)
		f := Figure{Item: "8", Name: "connector → emulator, " + label, Value: slices.Max(a.perSec), Unit: "events/s",
			Note: fmt.Sprintf("best of %d runs; %s B per event; CPU %.2f ms per event (median)", len(a.perSec), count(a.bytes), median(a.cpu))}
		if i == 1 && len(small.perSec) > 0 {
			f.Ratio = fmt.Sprintf("%.2f× ~1 KiB", slices.Max(large.perSec)/slices.Max(small.perSec))
		}
		add(f)
		lf := Figure{Item: "8", Name: "commit→SNS accepted p99, " + label, Value: median(a.p99), Unit: "ms",
			Note: fmt.Sprintf("median of %d runs at %d events/s", len(a.p99), r.Options.ClaimRate)}
		if i == 1 && len(small.p99) > 0 && median(small.p99) > 0 {
			lf.Ratio = fmt.Sprintf("%.2f× ~1 KiB", median(large.p99)/median(small.p99))
		}
		add(lf)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
