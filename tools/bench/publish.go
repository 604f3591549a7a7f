package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pglogrepl"

	csns "github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// PublishResult is item 3: the connector publishing to the emulator, and
// a bare PublishBatch loop sending the same messages the same way.
type PublishResult struct {
	Messages    int `json:"messages"`
	Concurrency int `json:"concurrency"` // bare loop workers = connector lanes
	AvgBytes    int `json:"avg_message_bytes"`

	BareSeconds float64 `json:"bare_seconds"`
	BarePerSec  float64 `json:"bare_per_sec"`

	// Connector time: from the slot turning active (the connector started
	// streaming) until its confirmed position covered the workload.
	ConnectorSeconds float64 `json:"connector_seconds"`
	ConnectorPerSec  float64 `json:"connector_per_sec"`
	ConnectorPeakRSS int64   `json:"connector_peak_rss_bytes"`
	ConnectorCPU     float64 `json:"connector_cpu_seconds"`

	Ratio float64 `json:"ratio"`

	// CPU time the emulator (Node) used during each run: about its wall
	// time means the emulator was the bottleneck.
	BareEmulatorCPU      float64 `json:"bare_emulator_cpu_seconds"`
	ConnectorEmulatorCPU float64 `json:"connector_emulator_cpu_seconds"`

	// From the connector's metrics: PublishBatch calls and events per call
	// (the bare loop always sends 10).
	ConnectorCalls   int     `json:"connector_calls,omitempty"`
	ConnectorPerCall float64 `json:"connector_events_per_call,omitempty"`

	// Messages found in each topic's subscribed queue afterwards (the
	// fewest of any run).
	BareQueued      int `json:"bare_queued"`
	ConnectorQueued int `json:"connector_queued"`

	// Runs: -repeat of each, interleaved (bare first in odd rounds, the
	// connector first in even ones), each to a topic and queue of its own;
	// the fields above are the fastest run of each.
	Runs []PublishRun `json:"runs"`
}

// PublishRun is one run of item 3.
type PublishRun struct {
	Reader      string  `json:"reader"` // "bare" or "connector"
	Round       int     `json:"round"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"per_sec"`
	EmulatorCPU float64 `json:"emulator_cpu_seconds"`
	Queued      int     `json:"queued"`
	// CPU: the connector's process CPU time; for a bare run, the bench's
	// own (it sends nothing else then).
	CPU float64 `json:"cpu_seconds"`
	// Connector runs only.
	PeakRSS int64   `json:"peak_rss_bytes,omitempty"`
	Calls   int     `json:"calls,omitempty"`
	PerCall float64 `json:"events_per_call,omitempty"`
}

// pipe is a topic with one raw-delivery queue subscribed.
type pipe struct {
	topic, queueURL, queueARN string
}

func (b *bench) newPipe(ctx context.Context, name string) (pipe, error) {
	var p pipe
	var err error
	if p.topic, err = b.emu.CreateTopic(ctx, name); err != nil {
		return p, err
	}
	if p.queueURL, p.queueARN, err = b.emu.CreateQueue(ctx, name, testenv.QueueOptions{VisibilityTimeout: 30 * time.Second}); err != nil {
		return p, err
	}
	return p, b.emu.Subscribe(ctx, p.topic, p.queueARN, true)
}

// publishPhase is item 3: the events of one workload, captured, are sent
// by a bare PublishBatch loop and by the connector (from a slot of its own
// per run), -repeat times each, interleaved.
func (b *bench) publishPhase(ctx context.Context) error {
	if b.o.skipped(itemEmulator) {
		return nil
	}
	if _, err := b.emulator(); err != nil {
		return err
	}
	sample := "bench_sample_pub"
	slots := []string{sample}
	for r := 1; r <= b.o.Repeat; r++ {
		slots = append(slots, fmt.Sprintf("bench_conn_pub_%d", r))
	}
	profiled := !b.o.skipped(itemProfile) && b.profBin != ""
	if profiled {
		slots = append(slots, "bench_prof_pub")
	}
	for _, s := range slots {
		if err := b.createSlot(ctx, s); err != nil {
			return err
		}
	}
	defer b.dropSlots(context.WithoutCancel(ctx), slots...)
	w, err := b.insert(ctx, "publish", b.o.PublishRows, (b.o.PublishRows+b.o.TxSize-1)/b.o.TxSize)
	if err != nil {
		return err
	}
	// The exact messages the connector publishes, for the bare loop.
	bodies, err := b.measureDiscard(ctx, w, sample, connectorRun{capture: true})
	if err != nil {
		return fmt.Errorf("capture events: %w", err)
	}
	b.bodies = bodies
	res := &PublishResult{Messages: len(bodies), Concurrency: b.o.Lanes}
	total := 0
	for _, body := range bodies {
		total += len(body)
	}
	res.AvgBytes = total / len(bodies)
	b.res.Publish = res

	// The bare loop: same SDK client set-up as the connector's.
	client, err := csns.NewClient(ctx, b.emu.Region, b.emu.Endpoint, nil)
	if err != nil {
		return err
	}
	// The emulator (Node) runs its first messages slower than the next
	// ones, until its compiler has warmed up: one untimed bare run first,
	// so that the first timed run is not the slowest for that reason.
	if _, err := b.publishBare(ctx, client, bodies, 0); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	for r := 1; r <= b.o.Repeat; r++ {
		order := []string{"bare", "connector"}
		if r%2 == 0 {
			order[0], order[1] = order[1], order[0]
		}
		for _, reader := range order {
			var run PublishRun
			if reader == "bare" {
				run, err = b.publishBare(ctx, client, bodies, r)
			} else {
				run, err = b.publishConnector(ctx, w, slots[r], r)
			}
			if err != nil {
				return err
			}
			res.Runs = append(res.Runs, run)
		}
	}
	res.BareQueued, res.ConnectorQueued = -1, -1
	for _, run := range res.Runs {
		if run.Reader == "bare" {
			if run.PerSec > res.BarePerSec {
				res.BareSeconds, res.BarePerSec, res.BareEmulatorCPU = run.Seconds, run.PerSec, run.EmulatorCPU
			}
			if res.BareQueued < 0 || run.Queued < res.BareQueued {
				res.BareQueued = run.Queued
			}
			continue
		}
		if run.PerSec > res.ConnectorPerSec {
			res.ConnectorSeconds, res.ConnectorPerSec, res.ConnectorEmulatorCPU = run.Seconds, run.PerSec, run.EmulatorCPU
			res.ConnectorCPU, res.ConnectorPeakRSS, res.ConnectorCalls, res.ConnectorPerCall = run.CPU, run.PeakRSS, run.Calls, run.PerCall
		}
		if res.ConnectorQueued < 0 || run.Queued < res.ConnectorQueued {
			res.ConnectorQueued = run.Queued
		}
	}
	res.Ratio = res.ConnectorPerSec / res.BarePerSec
	b.logf("emulator publish: best of %d runs each: bare loop %.0f messages/s, connector %.0f messages/s (ratio %.2f)", b.o.Repeat, res.BarePerSec, res.ConnectorPerSec, res.Ratio)
	if profiled {
		return b.profilePublish(ctx, w, "bench_prof_pub")
	}
	return nil
}

// publishBare sends bodies with the bare loop to a topic and queue of its
// own, and checks that the queue received them all.
func (b *bench) publishBare(ctx context.Context, client *awssns.Client, bodies [][]byte, round int) (PublishRun, error) {
	run := PublishRun{Reader: "bare", Round: round}
	p, err := b.newPipe(ctx, fmt.Sprintf("bench-bare-%d", round))
	if err != nil {
		return run, err
	}
	defer b.dropPipe(ctx, p)
	emuBefore, cpuBefore := b.emuCPU(), selfCPU()
	took, err := bareLoop(ctx, client, p.topic, bodies, b.o.Lanes)
	if err != nil {
		return run, fmt.Errorf("bare loop: %w", err)
	}
	run.EmulatorCPU = (b.emuCPU() - emuBefore).Seconds()
	run.CPU = (selfCPU() - cpuBefore).Seconds()
	run.Seconds = took.Seconds()
	run.PerSec = float64(len(bodies)) / took.Seconds()
	what := fmt.Sprintf("run %d", round)
	if round == 0 {
		what = "warm-up (not counted)"
	}
	b.logf("bare loop %s: %.0f messages/s, the bench's CPU %.1fs (%.0f µs/message), emulator CPU %.1fs in %.1fs",
		what, run.PerSec, run.CPU, run.CPU*1e6/float64(len(bodies)), run.EmulatorCPU, run.Seconds)
	if run.Queued, _ = b.waitQueued(ctx, p.queueURL, len(bodies)); run.Queued != len(bodies) {
		return run, fmt.Errorf("bare loop run %d: %d of %d messages queued", round, run.Queued, len(bodies))
	}
	return run, nil
}

// publishConnector runs the connector over w from slot, publishing to a
// topic and queue of their own, until the slot confirmed the workload, and
// checks that the queue received every event.
func (b *bench) publishConnector(ctx context.Context, w *Workload, slot string, round int) (PublishRun, error) {
	run := PublishRun{Reader: "connector", Round: round}
	p, err := b.newPipe(ctx, fmt.Sprintf("bench-connector-%d", round))
	if err != nil {
		return run, err
	}
	defer b.dropPipe(ctx, p)
	metricsAddr, err := freeAddr()
	if err != nil {
		return run, err
	}
	name := fmt.Sprintf("connector-publish-%d", round)
	cfg, err := b.connectorConfig(name, slot, "sns", p.topic, "", metricsAddr)
	if err != nil {
		return run, err
	}
	c, err := startProcess(name, b.logs, b.bin, []string{"run", "--config", cfg}, envList(awsEnv()), nil)
	if err != nil {
		return run, err
	}
	defer c.stop(15 * time.Second)
	start, err := b.waitSlot(ctx, slot, 60*time.Second, c.aborted, func(active bool, _ pglogrepl.LSN) bool { return active })
	if err != nil {
		return run, err
	}
	emuBefore := b.emuCPU()
	end, err := b.waitSlot(ctx, slot, timeoutFor(w.Rows, 200), c.aborted, func(_ bool, confirmed pglogrepl.LSN) bool { return w.done(confirmed) })
	if err != nil {
		return run, err
	}
	run.EmulatorCPU = (b.emuCPU() - emuBefore).Seconds()
	run.PeakRSS = c.vmHWM()
	metricsURL := "http://" + metricsAddr + "/metrics"
	calls, err1 := scrapeSum(ctx, metricsURL, "baitoru_cdc_publish_batch_duration_seconds_count")
	events, err2 := scrapeSum(ctx, metricsURL, "baitoru_cdc_events_published_total")
	if err := errors.Join(err1, err2); err != nil {
		b.res.Unavailable["connector PublishBatch calls (metrics)"] = err.Error()
	} else if calls > 0 {
		run.Calls = int(calls)
		run.PerCall = events / calls
	}
	c.stop(15 * time.Second)
	_, cpu := c.usage()
	run.CPU = cpu.Seconds()
	run.Seconds = end.Sub(start).Seconds()
	run.PerSec = float64(w.Rows) / run.Seconds
	b.logf("connector → emulator run %d: %.0f messages/s, %.1f events per PublishBatch, peak RSS %s, CPU %.1fs (%.0f µs/message), emulator CPU %.1fs in %.1fs",
		round, run.PerSec, run.PerCall, mib(run.PeakRSS), run.CPU, run.CPU*1e6/float64(w.Rows), run.EmulatorCPU, run.Seconds)
	if run.Queued, _ = b.waitQueued(ctx, p.queueURL, w.Rows); run.Queued < w.Rows {
		return run, fmt.Errorf("connector run %d: %d of %d events queued", round, run.Queued, w.Rows)
	}
	return run, nil
}

// dropPipe deletes p's queue and topic once a run was counted, so that
// the emulator does not carry one run's messages into the next.
func (b *bench) dropPipe(ctx context.Context, p pipe) {
	ctx = context.WithoutCancel(ctx)
	if _, err := b.emu.SQS().DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(p.queueURL)}); err != nil {
		b.logf("delete queue %s: %v", p.queueURL, err)
	}
	if _, err := b.emu.SNS().DeleteTopic(ctx, &awssns.DeleteTopicInput{TopicArn: aws.String(p.topic)}); err != nil {
		b.logf("delete topic %s: %v", p.topic, err)
	}
}

// profilePublish runs the profiling connector over w once more, publishing
// to a topic of its own, until the slot confirmed it (not the measured
// run: profiling costs a few percent). Files are named connector-publish-*.
func (b *bench) profilePublish(ctx context.Context, w *Workload, slot string) error {
	pp, err := b.newPipe(ctx, "bench-profiled")
	if err != nil {
		return err
	}
	cfg, err := b.connectorConfig("connector-publish-profiled", slot, "sns", pp.topic, "", "")
	if err != nil {
		return err
	}
	env, cpu, heap := b.profileEnv("connector-publish")
	c, err := startProcess("connector-publish-profiled", b.logs, b.profBin, []string{"run", "--config", cfg}, append(envList(awsEnv()), env...), nil)
	if err != nil {
		return err
	}
	defer c.stop(15 * time.Second)
	if _, err := b.waitSlot(ctx, slot, timeoutFor(w.Rows, 200), c.aborted, func(_ bool, confirmed pglogrepl.LSN) bool { return w.done(confirmed) }); err != nil {
		return fmt.Errorf("profiled connector → emulator: %w", err)
	}
	c.stop(15 * time.Second)
	p, err := b.readProfiles(ctx, "connector-publish", cpu, heap)
	if p != nil {
		p.Workload = b.res.workloadLabel(w.Name) + ", publisher sns (emulator)"
		b.res.Profiles = append(b.res.Profiles, p)
	}
	return err
}

// bareLoop publishes bodies to topic in PublishBatch calls of 10 entries
// from conc workers, with the attributes the connector sends, and returns
// the time from the first call to the last answer.
func bareLoop(ctx context.Context, client *awssns.Client, topic string, bodies [][]byte, conc int) (time.Duration, error) {
	var batches [][]snstypes.PublishBatchRequestEntry
	for i := 0; i < len(bodies); i += csns.MaxBatchEntries {
		var entries []snstypes.PublishBatchRequestEntry
		for j := i; j < min(i+csns.MaxBatchEntries, len(bodies)); j++ {
			attrs, err := eventAttributes(bodies[j])
			if err != nil {
				return 0, err
			}
			entries = append(entries, snstypes.PublishBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j - i)), Message: aws.String(string(bodies[j])), MessageAttributes: attrs,
			})
		}
		batches = append(batches, entries)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(batches) || ctx.Err() != nil {
					return
				}
				out, err := client.PublishBatch(ctx, &awssns.PublishBatchInput{TopicArn: aws.String(topic), PublishBatchRequestEntries: batches[i]})
				if err == nil && len(out.Failed) > 0 {
					err = fmt.Errorf("%d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errc)
	return took, <-errc
}

// eventAttributes are the SNS message attributes the connector sends with
// an event of the bench mapping: table, op, type, company_id (Number) and
// status.
func eventAttributes(body []byte) (map[string]snstypes.MessageAttributeValue, error) {
	var ev struct {
		Type, Table, Op string
		Data            struct {
			CompanyID json.Number `json:"company_id"`
			Status    string      `json:"status"`
		}
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("captured event: %w", err)
	}
	s := func(v string) snstypes.MessageAttributeValue {
		return snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return map[string]snstypes.MessageAttributeValue{
		"table": s(ev.Table), "op": s(ev.Op), "type": s(ev.Type), "status": s(ev.Data.Status),
		"company_id": {DataType: aws.String("Number"), StringValue: aws.String(ev.Data.CompanyID.String())},
	}, nil
}

// waitQueued waits (up to 60s) until the queue holds want messages, and
// returns how many it holds.
func (b *bench) waitQueued(ctx context.Context, queueURL string, want int) (int, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := b.emu.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(queueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
		})
		if err != nil {
			return 0, err
		}
		n := atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]) +
			atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
		if n >= want || time.Now().After(deadline) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var errNoSink = errors.New("the baitoru-cdc binary has no sink command yet")
