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

	// Messages found in each topic's subscribed queue afterwards.
	BareQueued      int `json:"bare_queued"`
	ConnectorQueued int `json:"connector_queued"`
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

func (b *bench) publishPhase(ctx context.Context) error {
	if b.o.skipped(itemEmulator) {
		return nil
	}
	if _, err := b.emulator(); err != nil {
		return err
	}
	slots := []string{"bench_sample_pub", "bench_conn_pub"}
	sample, connSlot := slots[0], slots[1]
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

	barePipe, err := b.newPipe(ctx, "bench-bare")
	if err != nil {
		return err
	}
	connPipe, err := b.newPipe(ctx, "bench-connector")
	if err != nil {
		return err
	}

	// The bare loop: same SDK client set-up as the connector's.
	client, err := csns.NewClient(ctx, b.emu.Region, b.emu.Endpoint, nil)
	if err != nil {
		return err
	}
	b.logf("bare PublishBatch loop: %d messages, %d workers", len(bodies), b.o.Lanes)
	emuBefore := b.emuCPU()
	took, err := bareLoop(ctx, client, barePipe.topic, bodies, b.o.Lanes)
	if err != nil {
		return fmt.Errorf("bare loop: %w", err)
	}
	res.BareEmulatorCPU = (b.emuCPU() - emuBefore).Seconds()
	res.BareSeconds = took.Seconds()
	res.BarePerSec = float64(len(bodies)) / took.Seconds()
	b.logf("bare loop: %.0f messages/s (emulator CPU %.1fs in %.1fs)", res.BarePerSec, res.BareEmulatorCPU, res.BareSeconds)

	// The connector over the same rows.
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cfg, err := b.connectorConfig("connector-publish", connSlot, "sns", connPipe.topic, "", metricsAddr)
	if err != nil {
		return err
	}
	c, err := startProcess("connector-publish", b.logs, b.bin, []string{"run", "--config", cfg}, envList(awsEnv()), nil)
	if err != nil {
		return err
	}
	defer c.stop(15 * time.Second)
	start, err := b.waitSlot(ctx, connSlot, 60*time.Second, c.aborted, func(active bool, _ pglogrepl.LSN) bool { return active })
	if err != nil {
		return err
	}
	emuBefore = b.emuCPU()
	end, err := b.waitSlot(ctx, connSlot, timeoutFor(w.Rows, 200), c.aborted, func(_ bool, confirmed pglogrepl.LSN) bool { return w.done(confirmed) })
	if err != nil {
		return err
	}
	res.ConnectorEmulatorCPU = (b.emuCPU() - emuBefore).Seconds()
	res.ConnectorPeakRSS = c.vmHWM()
	metricsURL := "http://" + metricsAddr + "/metrics"
	calls, err1 := scrapeSum(ctx, metricsURL, "baitoru_cdc_publish_batch_duration_seconds_count")
	events, err2 := scrapeSum(ctx, metricsURL, "baitoru_cdc_events_published_total")
	if err := errors.Join(err1, err2); err != nil {
		b.res.Unavailable["connector PublishBatch calls (metrics)"] = err.Error()
	} else if calls > 0 {
		res.ConnectorCalls = int(calls)
		res.ConnectorPerCall = events / calls
	}
	c.stop(15 * time.Second)
	_, cpu := c.usage()
	res.ConnectorCPU = cpu.Seconds()
	res.ConnectorSeconds = end.Sub(start).Seconds()
	res.ConnectorPerSec = float64(w.Rows) / res.ConnectorSeconds
	res.Ratio = res.ConnectorPerSec / res.BarePerSec
	b.logf("connector → emulator: %.0f messages/s (ratio %.2f), %.1f events per PublishBatch, peak RSS %s, CPU %.1fs, emulator CPU %.1fs in %.1fs",
		res.ConnectorPerSec, res.Ratio, res.ConnectorPerCall, mib(res.ConnectorPeakRSS), res.ConnectorCPU, res.ConnectorEmulatorCPU, res.ConnectorSeconds)

	// Both sets arrived in full?
	res.BareQueued, _ = b.waitQueued(ctx, barePipe.queueURL, len(bodies))
	res.ConnectorQueued, _ = b.waitQueued(ctx, connPipe.queueURL, w.Rows)
	if res.BareQueued != len(bodies) || res.ConnectorQueued < w.Rows {
		return fmt.Errorf("queued messages: bare %d of %d, connector %d of %d", res.BareQueued, len(bodies), res.ConnectorQueued, w.Rows)
	}
	if profiled {
		return b.profilePublish(ctx, w, "bench_prof_pub")
	}
	return nil
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
