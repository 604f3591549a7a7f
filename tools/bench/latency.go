package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pglogrepl"
)

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Latency is one path of item 4 at a steady insert rate.
type Latency struct {
	Path     string  `json:"path"`   // e.g. "commit→SNS accepted", "commit→Kobot 2xx"
	Short    string  `json:"short"`  // how it was measured, in a few words (chart labels)
	Method   string  `json:"method"` // how the end time is taken
	Rate     int     `json:"rate_rows_per_sec"`
	TxSize   int     `json:"tx_size"`
	Seconds  float64 `json:"seconds"`
	Sent     int     `json:"rows_committed"`
	Received int     `json:"events_received"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Mean     float64 `json:"mean_ms"`
	// Histogram is set when the figures are estimated from a Prometheus
	// histogram of the measured process (bucket interpolation); Bucket
	// says how coarse the p99 is.
	Histogram string `json:"histogram,omitempty"`
	Bucket    string `json:"p99_bucket,omitempty"`
	// InsertDelayP99 is the 99th percentile of how late the steady
	// inserter started a transaction (ms): large means the database (or
	// the machine) could not keep the rate.
	InsertDelayP99 float64 `json:"insert_delay_p99_ms,omitempty"`
}

// fromHistogram fills l's percentiles from h (seconds).
func (l *Latency) fromHistogram(name string, h histogram) {
	l.Histogram = name
	l.Received = int(h.total())
	ms := func(v float64) float64 { return math.Round(v*1e4) / 10 }
	l.P50, l.P95, l.P99 = ms(h.quantile(0.50)), ms(h.quantile(0.95)), ms(h.quantile(0.99))
	l.Bucket = h.bucketBounds(h.quantile(0.99))
}

// recorder collects, per distinct event id, the time from the event's
// commit (its "time" field) to when the bench saw it.
type recorder struct {
	mu          sync.Mutex
	want        int
	done        chan struct{}
	seen        map[string]bool
	lat         []time.Duration
	first, last time.Time
	dups        int
	bad         int // unparseable or badly signed
}

func newRecorder(want int) *recorder {
	r := &recorder{seen: map[string]bool{}, done: make(chan struct{})}
	r.expect(want)
	return r
}

// expect sets how many distinct events make the recorder done (0: never).
func (r *recorder) expect(want int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want = want
	if want > 0 && len(r.seen) >= want {
		select {
		case <-r.done:
		default:
			close(r.done)
		}
	}
}

// add records event body seen at now; id overrides the body's id when set.
func (r *recorder) add(body []byte, id string, now time.Time) {
	var ev struct {
		ID   string `json:"id"`
		Time string `json:"time"`
	}
	err := json.Unmarshal(body, &ev)
	if id == "" {
		id = ev.ID
	}
	var t time.Time
	if err == nil {
		t, err = time.Parse(time.RFC3339Nano, ev.Time)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || id == "" {
		r.bad++
		return
	}
	if r.seen[id] {
		r.dups++
		return
	}
	r.seen[id] = true
	r.lat = append(r.lat, now.Sub(t))
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	if r.want > 0 && len(r.seen) == r.want {
		close(r.done)
	}
}

func (r *recorder) badOne() {
	r.mu.Lock()
	r.bad++
	r.mu.Unlock()
}

func (r *recorder) badCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// fill sets l's percentiles from what was recorded.
func (r *recorder) fill(l *Latency) {
	r.mu.Lock()
	d := slices.Clone(r.lat)
	r.mu.Unlock()
	l.Received = len(d)
	l.fromDurations(d)
}

// fromDurations sets l's percentiles, max and mean from d (which it sorts).
func (l *Latency) fromDurations(d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/1e3) / 1e3 }
	pct := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		return ms(d[max(0, min(i, len(d)-1))])
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	l.P50, l.P95, l.P99, l.Max = pct(0.50), pct(0.95), pct(0.99), ms(d[len(d)-1])
	l.Mean = ms(sum / time.Duration(len(d)))
}

func (b *bench) latencyPhase(ctx context.Context) error {
	if b.o.skipped(itemLatency) {
		return nil
	}
	if _, err := b.emulator(); err != nil {
		return err
	}
	var errs []error
	if err := b.latencySNS(ctx); err != nil {
		errs = append(errs, fmt.Errorf("commit→SNS: %w", err))
	}
	if !b.hasSink {
		b.res.Unavailable["latency commit→Kobot"] = errNoSink.Error()
	} else if err := b.latencyKobot(ctx); err != nil {
		errs = append(errs, fmt.Errorf("commit→Kobot: %w", err))
	}
	return errors.Join(errs...)
}

// startStreamingConnector starts `baitoru-cdc run` publishing to topic
// (at endpoint; "" is the emulator) from a new slot, serving /metrics on
// metricsAddr when set, and waits until it streams.
func (b *bench) startStreamingConnector(ctx context.Context, name, slot, topic, endpoint, metricsAddr string) (*proc, error) {
	if err := b.createSlot(ctx, slot); err != nil {
		return nil, err
	}
	cfg, err := b.connectorConfig(name, slot, "sns", topic, endpoint, metricsAddr)
	if err != nil {
		return nil, err
	}
	c, err := startProcess(name, b.logs, b.bin, []string{"run", "--config", cfg}, envList(awsEnv()), nil)
	if err != nil {
		return nil, err
	}
	_, err = b.waitSlot(ctx, slot, 60*time.Second, c.aborted, func(active bool, _ pglogrepl.LSN) bool { return active })
	if err != nil {
		c.stop(5 * time.Second)
		return nil, err
	}
	return c, nil
}

// waitRecorders waits until every recorder is done, up to timeout.
func waitRecorders(ctx context.Context, timeout time.Duration, recs ...*recorder) error {
	deadline := time.After(timeout)
	for _, r := range recs {
		select {
		case <-r.done:
		case <-deadline:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// latencySNS measures commit → SNS accepted, exactly per event: the
// connector publishes through snsProxy, which notes when the emulator's
// answer to each PublishBatch call was complete. In the same run it also
// measures commit → the event received from an SQS queue subscribed to the
// topic (raw delivery; an upper bound that adds the emulator's fan-out and
// a receive), and reads the connector's own histogram
// baitoru_cdc_commit_to_publish_seconds as a cross-check (its buckets
// double, so its percentiles are coarse).
func (b *bench) latencySNS(ctx context.Context) error {
	p, err := b.newPipe(ctx, "bench-latency")
	if err != nil {
		return err
	}
	proxy, err := startSNSProxy(b.emu.Endpoint)
	if err != nil {
		return err
	}
	defer proxy.close()
	accepted, sent := newRecorder(0), newRecorder(0)
	proxy.setRecorders(accepted, sent)
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	slot := "bench_lat_sns"
	c, err := b.startStreamingConnector(ctx, "connector-latency-sns", slot, p.topic, proxy.url, metricsAddr)
	if err != nil {
		return err
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slot)
	defer c.stop(15 * time.Second)
	metricsURL := "http://" + metricsAddr + "/metrics"
	before, histErr := scrapeHistogram(ctx, metricsURL, histCommitToPublish)

	received := newRecorder(0)
	pctx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { b.pollQueue(pctx, p.queueURL, received) })
	}
	defer func() { stopPoll(); wg.Wait() }()

	run := Latency{Rate: b.o.Rate, TxSize: b.o.LatencyTx, Seconds: b.o.LatencyDur.Seconds()}
	b.logf("commit→SNS: %d rows/s for %s", b.o.Rate, b.o.LatencyDur)
	run.Sent, run.InsertDelayP99, err = b.steadyInsert(ctx, b.o.Rate, b.o.LatencyTx, b.o.LatencyDur)
	if err != nil {
		return err
	}
	accepted.expect(run.Sent)
	sent.expect(run.Sent)
	received.expect(run.Sent)
	if err := waitRecorders(ctx, 60*time.Second, accepted, sent, received); err != nil {
		return err
	}

	l := run
	l.Path, l.Short = "commit→SNS accepted", "PublishBatch answered"
	l.Method = "commit timestamp → the emulator's PublishBatch answer listing the event as Successful, timed per event by a pass-through proxy between the connector and the emulator"
	accepted.fill(&l)
	b.res.Latency = append(b.res.Latency, l)
	b.logf("commit→SNS accepted: %d of %d events in %d PublishBatch calls, p50 %.1fms p95 %.1fms p99 %.1fms max %.1fms",
		l.Received, l.Sent, proxy.calls.Load(), l.P50, l.P95, l.P99, l.Max)

	// Where the time goes: until the connector sent the call, and the
	// emulator's answer time per call.
	ls := run
	ls.Path, ls.Short = "commit→PublishBatch sent (connector's share)", "PublishBatch sent"
	ls.Method = "commit timestamp → the PublishBatch request carrying the event (first attempt) reached the proxy: walsender, decoding, mapping, batching"
	sent.fill(&ls)
	b.res.Latency = append(b.res.Latency, ls)
	lc := run
	lc.Path, lc.Short = "emulator PublishBatch call (the emulator's share)", "emulator call"
	lc.Method = "per PublishBatch call: request received by the proxy → the emulator's answer complete (emulator work plus one loopback round trip)"
	lc.fromDurations(proxy.callTimes())
	lc.Sent, lc.Received = 0, int(proxy.calls.Load()) // calls, not events
	b.res.Latency = append(b.res.Latency, lc)
	b.logf("  of which commit→sent p50 %.1fms p99 %.1fms; emulator call p50 %.1fms p99 %.1fms", ls.P50, ls.P99, lc.P50, lc.P99)

	q := run
	q.Path, q.Short = "commit→SNS→SQS received", "received from SQS"
	q.Method = "commit timestamp → message received from a raw-delivery SQS queue subscribed to the topic (4 long-pollers, receive + delete): an upper bound of the above"
	received.fill(&q)
	b.res.Latency = append(b.res.Latency, q)
	b.logf("commit→SNS→SQS received: %d of %d events, p50 %.1fms p95 %.1fms p99 %.1fms max %.1fms", q.Received, q.Sent, q.P50, q.P95, q.P99, q.Max)

	if histErr == nil {
		var after histogram
		if after, histErr = scrapeCaughtUp(ctx, metricsURL, histCommitToPublish, before, l.Received); histErr == nil {
			hl := run
			hl.Path, hl.Short = "commit→SNS accepted (connector histogram)", "connector histogram"
			hl.Method = "the connector's histogram " + histCommitToPublish + " (commit timestamp → PublishBatch answered), percentiles interpolated in its doubling buckets: a coarse cross-check"
			hl.fromHistogram(histCommitToPublish, after.minus(before))
			b.res.Latency = append(b.res.Latency, hl)
			b.logf("commit→SNS accepted (histogram): %d events, p50 %.1fms p95 %.1fms p99 %.1fms (p99 bucket %s)", hl.Received, hl.P50, hl.P95, hl.P99, hl.Bucket)
		}
	}
	if histErr != nil {
		b.res.Unavailable["latency commit→SNS accepted (connector histogram)"] = histErr.Error()
	}
	switch {
	case c.Exited():
		return c.exitErr()
	case accepted.badCount() > 0 || proxy.errs.Load() > 0:
		return fmt.Errorf("proxy: %d unparseable events, %d calls not forwarded or not parsed", accepted.badCount(), proxy.errs.Load())
	case l.Received < l.Sent:
		return fmt.Errorf("%d of %d events accepted", l.Received, l.Sent)
	case q.Received < q.Sent:
		return fmt.Errorf("%d of %d events received from the queue", q.Received, q.Sent)
	}
	return nil
}

// scrapeCaughtUp scrapes histogram name until it counted want
// observations more than before, or 10 s passed: a process observes an
// event a moment after the receivers of the bench saw it.
func scrapeCaughtUp(ctx context.Context, url, name string, before histogram, want int) (histogram, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := scrapeHistogram(ctx, url, name)
		if err != nil || h.minus(before).total() >= float64(want) || time.Now().After(deadline) {
			return h, err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return h, ctx.Err()
		}
	}
}

// Histograms scraped from the measured processes.
const (
	histCommitToPublish  = "baitoru_cdc_commit_to_publish_seconds"
	histCommitToDelivery = "baitoru_cdc_sink_commit_to_delivery_seconds"
)

// pollQueue receives from the queue until ctx ends, recording every
// message when it arrives, then deleting it: a queue left to grow makes the
// emulator slower with every message it holds.
func (b *bench) pollQueue(ctx context.Context, queueURL string, rec *recorder) {
	for ctx.Err() == nil {
		out, err := b.emu.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 2,
		})
		now := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		if len(out.Messages) == 0 {
			continue
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			rec.add([]byte(aws.ToString(m.Body)), "", now)
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		_, _ = b.emu.SQS().DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
	}
}

// latencyKobot measures commit → a 2xx from the local Kobot receiver
// through the connector, SNS, SQS and the sink.
func (b *bench) latencyKobot(ctx context.Context) error {
	p, err := b.newPipe(ctx, "bench-kobot")
	if err != nil {
		return err
	}
	dlqURL, _, err := b.emu.CreateQueue(ctx, "bench-kobot-dlq", testenvQueue())
	if err != nil {
		return err
	}
	rcv, err := b.receiver()
	if err != nil {
		return err
	}
	s, err := b.startSink(ctx, "sink-latency", p.queueURL, dlqURL, rcv.url, "")
	if err != nil {
		return err
	}
	defer s.stop(15 * time.Second)
	if err := b.ensureLinks(ctx, s); err != nil {
		return err
	}
	slot := "bench_lat_kobot"
	c, err := b.startStreamingConnector(ctx, "connector-latency-kobot", slot, p.topic, "", "")
	if err != nil {
		return err
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slot)
	defer c.stop(15 * time.Second)

	metricsURL := s.api + "/metrics"
	before, histErr := scrapeHistogram(ctx, metricsURL, histCommitToDelivery)
	rec := newRecorder(0)
	rcv.setRecorder(rec)
	l := Latency{Path: "commit→Kobot 2xx", Short: "at the receiver", Method: "commit timestamp → request received by a local Kobot receiver (signature verified, 200), via connector, emulator SNS→SQS, sink",
		Rate: b.o.Rate, TxSize: b.o.LatencyTx, Seconds: b.o.LatencyDur.Seconds()}
	b.logf("commit→Kobot: %d rows/s for %s", b.o.Rate, b.o.LatencyDur)
	var delay float64
	l.Sent, delay, err = b.steadyInsert(ctx, b.o.Rate, b.o.LatencyTx, b.o.LatencyDur)
	if err != nil {
		return err
	}
	l.InsertDelayP99 = delay
	rec.expect(l.Sent)
	select {
	case <-rec.done:
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	rec.fill(&l)
	b.res.Latency = append(b.res.Latency, l)
	if histErr == nil {
		// The sink observes a delivery after Kobot's answer, when its
		// batch is decided: wait for the histogram to catch up with the
		// receiver before reading it.
		var after histogram
		if after, histErr = scrapeCaughtUp(ctx, metricsURL, histCommitToDelivery, before, l.Received); histErr == nil {
			hl := Latency{Path: "commit→Kobot 2xx (sink histogram)", Short: "sink histogram", Method: "the sink's histogram " + histCommitToDelivery + " (commit timestamp → Kobot's 2xx), percentiles interpolated in its buckets: a coarse cross-check",
				Rate: l.Rate, TxSize: l.TxSize, Seconds: l.Seconds, Sent: l.Sent, InsertDelayP99: delay}
			hl.fromHistogram(histCommitToDelivery, after.minus(before))
			b.res.Latency = append(b.res.Latency, hl)
		}
	}
	if histErr != nil {
		b.res.Unavailable["latency commit→Kobot (sink histogram)"] = histErr.Error()
	}
	b.logf("commit→Kobot: %d of %d events, p50 %.1fms p95 %.1fms p99 %.1fms max %.1fms", l.Received, l.Sent, l.P50, l.P95, l.P99, l.Max)
	switch {
	case c.Exited():
		return c.exitErr()
	case s.Exited():
		return s.exitErr()
	case rec.badCount() > 0:
		return fmt.Errorf("%d requests with a bad signature or body", rec.badCount())
	case l.Received < l.Sent:
		return fmt.Errorf("%d of %d events delivered", l.Received, l.Sent)
	}
	return nil
}
