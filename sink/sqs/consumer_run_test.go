package sqs

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countingClient is the emulator's SQS client, counting what the consumer
// has in hand: messages received and not yet deleted.
type countingClient struct {
	Client
	mu       sync.Mutex
	receives int // non-empty receives
	inHand   int
	peak     int
	deleted  map[string]bool   // message bodies
	bodies   map[string]string // receipt handle → body
}

func (c *countingClient) ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	out, err := c.Client.ReceiveMessage(ctx, in, opts...)
	if err == nil && len(out.Messages) > 0 {
		c.mu.Lock()
		c.receives++
		c.inHand += len(out.Messages)
		c.peak = max(c.peak, c.inHand)
		for _, m := range out.Messages {
			c.bodies[aws.ToString(m.ReceiptHandle)] = aws.ToString(m.Body)
		}
		c.mu.Unlock()
	}
	return out, err
}

func (c *countingClient) DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error) {
	if len(in.Entries) > 10 {
		return nil, fmt.Errorf("DeleteMessageBatch with %d entries: SQS takes at most 10", len(in.Entries))
	}
	out, err := c.Client.DeleteMessageBatch(ctx, in, opts...)
	if err == nil {
		c.mu.Lock()
		for _, e := range in.Entries {
			c.inHand--
			c.deleted[c.bodies[aws.ToString(e.ReceiptHandle)]] = true
		}
		c.mu.Unlock()
	}
	return out, err
}

func (c *countingClient) snapshot() (receives, inHand, peak, deleted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.receives, c.inHand, c.peak, len(c.deleted)
}

// gatedProcessor deletes every message, each call waiting for a release.
type gatedProcessor struct {
	calls   chan int      // the size of each call, when it starts
	release chan struct{} // one per call
}

func (p *gatedProcessor) Process(ctx context.Context, msgs []sink.Message) ([]sink.Result, error) {
	p.calls <- len(msgs)
	<-p.release
	return make([]sink.Result, len(msgs)), nil // zero Result: Delete
}

// TestConsumerReceivesWhileProcessing: receiving goes on while batches are
// processed, at most (mergeBatches + 1) × concurrency batches are in hand
// (those in the processors, one waiting in each receiver), each Process
// call gets at most mergeBatches receives' batches, and a shutdown
// processes and deletes every batch already received.
func TestConsumerReceivesWhileProcessing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	emu := testenv.Emu(t)
	queue, _, err := emu.CreateQueue(ctx, "consumer-overlap-"+strconv.FormatInt(time.Now().UnixNano(), 36), testenv.QueueOptions{VisibilityTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const total = 120
	for i := 0; i < total; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < i+10; j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String("m" + strconv.Itoa(j))})
		}
		if _, err := emu.SQS().SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(queue), Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	const conc = 3
	client := &countingClient{Client: emu.SQS(), deleted: map[string]bool{}, bodies: map[string]string{}}
	proc := &gatedProcessor{calls: make(chan int, 100), release: make(chan struct{}, 100)}
	c, err := New(client, config.SinkSQS{QueueURL: queue, Concurrency: conc, BatchSize: 10, WaitTime: time.Second}, proc, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = c.Run(runCtx); close(done) }()

	// Every processor holds one to mergeBatches batches, every receiver
	// one more: between 2 × conc and (mergeBatches + 1) × conc receives,
	// and no further one while nothing is released.
	for range conc {
		select {
		case n := <-proc.calls:
			if n > mergeBatches*10 {
				t.Errorf("a Process call got %d messages, want at most %d receives' (≤ %d)", n, mergeBatches, mergeBatches*10)
			}
		case <-ctx.Done():
			t.Fatal("processors did not start")
		}
	}
	waitFor(t, ctx, func() bool { r, _, _, _ := client.snapshot(); return r >= 2*conc })
	time.Sleep(300 * time.Millisecond)
	settled, _, _, _ := client.snapshot()
	time.Sleep(300 * time.Millisecond)
	if r, _, _, _ := client.snapshot(); r != settled || r > (mergeBatches+1)*conc {
		t.Fatalf("%d then %d receives with %d processors busy, want no more than %d ((mergeBatches + 1) × concurrency), then none", settled, r, conc, (mergeBatches+1)*conc)
	}
	// Let everything through, then stop while receiving goes on.
	var sizes []int
	var sizesMu sync.Mutex
	go func() {
		for n := range proc.calls {
			sizesMu.Lock()
			sizes = append(sizes, n)
			sizesMu.Unlock()
			proc.release <- struct{}{}
		}
	}()
	for range conc {
		proc.release <- struct{}{}
	}
	waitFor(t, ctx, func() bool { _, _, _, d := client.snapshot(); return d >= total/2 })
	stop()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Run did not return after the context ended")
	}
	_, inHand, peak, deleted := client.snapshot()
	if inHand != 0 {
		t.Errorf("Run returned with %d received messages not deleted", inHand)
	}
	if limit := (mergeBatches+1)*conc*10 + conc*mergeBatches*10; peak > limit {
		t.Errorf("%d messages in hand at once, want at most %d ((mergeBatches + 1) × concurrency batches, plus one call's being deleted per processor)", peak, limit)
	}
	if deleted < total/2 {
		t.Errorf("%d messages deleted, want at least %d", deleted, total/2)
	}
	sizesMu.Lock()
	defer sizesMu.Unlock()
	for _, n := range sizes {
		if n > mergeBatches*10 {
			t.Errorf("a Process call got %d messages, want at most %d receives' (≤ %d)", n, mergeBatches, mergeBatches*10)
		}
	}
}

func waitFor(t *testing.T, ctx context.Context, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatal("timed out")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
