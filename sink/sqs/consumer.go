// Package sqs consumes the sink's SQS queue: competing long-polling
// consumers that hand batches to the sink's Processor, then delete, retry
// or dead-letter each message as it decided.
package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cenkalti/backoff/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
	"github.com/baitoru/baitoru-cdc/internal/logging"
	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
	"github.com/baitoru/baitoru-cdc/sink"
)

// Client is the part of the SQS API the consumer uses (*sqs.Client).
type Client interface {
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
	SendMessageBatch(ctx context.Context, in *awssqs.SendMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *awssqs.ChangeMessageVisibilityBatchInput, opts ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
}

var _ Client = (*awssqs.Client)(nil)

// NewClient builds an SQS client for c: its region and endpoint override,
// credentials from the default AWS chain, the SDK's standard retries for
// the calls the consumer makes once (awsclient.SDKRetries says why), and
// an idle connection for each call the consumer makes at once (IdleConns).
// The SDK's own log lines go to log at debug level (nil: nowhere).
func NewClient(ctx context.Context, c config.SinkSQS, log *slog.Logger) (*awssqs.Client, error) {
	return awsclient.SQS(ctx, awsclient.Options{
		Region: c.Region, Endpoint: c.Endpoint, RegionKey: "sink.sqs.region", EndpointKey: "sink.sqs.endpoint",
		Retries: awsclient.SDKRetries, Logger: log, IdleConns: IdleConns(c.Concurrency),
	})
}

// IdleConns is the number of SQS connections a consumer of concurrency
// keeps open: one per receiver and one per processor (its deletes, dead
// letters and visibility changes run while it processes the next batch),
// and one for /readyz.
func IdleConns(concurrency int) int {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	return 2*concurrency + 1
}

// Processor decides what happens to each message of a batch (sink.Processor).
type Processor interface {
	Process(ctx context.Context, msgs []sink.Message) ([]sink.Result, error)
}

// Defaults for zero config values.
const (
	DefaultConcurrency = 4
	DefaultBatchSize   = 10
)

// DLQ message attributes added by the sink.
const (
	AttrReason          = "reason"
	AttrReasonCode      = "reason_code"
	AttrSourceMessageID = "source_message_id"
)

// actionTimeout bounds the delete, dead-letter and visibility calls made
// after a batch was processed (they run even during shutdown).
const actionTimeout = 30 * time.Second

// Consumer runs competing long-polling receivers on one queue. Run it once.
type Consumer struct {
	client      Client
	proc        Processor
	dlq         *DLQ
	logger      *slog.Logger
	queueURL    string
	concurrency int
	batchSize   int32
	waitTime    int32
	visibility  int32
	// receiving summarises failed receives of every worker.
	receiving *logging.Streak
}

// New returns a consumer of cfg.QueueURL. A zero concurrency or batch size
// takes the default (4 consumers, batches of 10); a zero wait time is short
// polling (config.Load defaults it to 20 s); a zero visibility timeout is
// the queue's own.
func New(client Client, cfg config.SinkSQS, proc Processor, logger *slog.Logger) (*Consumer, error) {
	if cfg.QueueURL == "" {
		return nil, errors.New("sink.sqs.queue_url is empty")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		client:      client,
		proc:        proc,
		dlq:         NewDLQ(client, cfg.DLQURL),
		logger:      logger,
		queueURL:    cfg.QueueURL,
		concurrency: cfg.Concurrency,
		batchSize:   int32(cfg.BatchSize),
		waitTime:    int32(cfg.WaitTime / time.Second),
		visibility:  int32(cfg.VisibilityTimeout / time.Second),
		receiving:   &logging.Streak{Log: logger, Failing: "receive from SQS failing; retrying", Recovered: "receive from SQS recovered"},
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	if c.batchSize <= 0 || c.batchSize > 10 {
		c.batchSize = DefaultBatchSize
	}
	c.waitTime = min(max(c.waitTime, 0), 20)
	return c, nil
}

// Run receives and processes messages until ctx ends, then stops receiving,
// lets every batch in hand finish (pushes under way complete, their messages
// are deleted or dead-lettered), and returns nil.
//
// Receiving overlaps processing: concurrency receivers each hand the batch
// they received to one of concurrency processors, and start their next
// receive once a processor took it; a processor takes the batch handed to
// it together with those already waiting (up to mergeBatches in all) and
// processes them in one Process call, hands their deletes (and dead
// letters, visibility changes) to a goroutine and takes the next batch
// while they run. So at most (mergeBatches + 1) × concurrency batches are
// in hand (those in the processors, one waiting in each receiver), plus
// one call's deletes per processor; a batch waits at most one call's
// processing for its processor, and the delivery log keeps a message that
// outlived its visibility timeout meanwhile from being pushed twice.
//
// Receive errors (queue unreachable) are retried with backoff and never end
// Run; they are logged summarised (logging.Streak): one warn line when they
// start, one every 30 s while they go on, one info line when receiving
// works again.
func (c *Consumer) Run(ctx context.Context) error {
	batches := make(chan []types.Message)
	var receivers, processors sync.WaitGroup
	for range c.concurrency {
		receivers.Go(func() { c.receive(ctx, batches) })
	}
	for i := range c.concurrency {
		processors.Go(func() { c.process(ctx, i, batches) })
	}
	receivers.Wait()
	close(batches) // processors finish the batches handed over, then return
	processors.Wait()
	return nil
}

// Waits between failed receives: doubling from receiveRetryInitial to
// receiveRetryMax, back to the start after a receive succeeds.
const (
	receiveRetryInitial = 100 * time.Millisecond
	receiveRetryMax     = 10 * time.Second
)

// receive receives batches and hands each to a processor until ctx ends. A
// batch received is always handed over (processors take batches until the
// channel closes), so none is left unprocessed at shutdown.
func (c *Consumer) receive(ctx context.Context, batches chan<- []types.Message) {
	failWait := &backoff.ExponentialBackOff{
		InitialInterval: receiveRetryInitial,
		Multiplier:      2,
		MaxInterval:     receiveRetryMax,
	}
	failWait.Reset()
	for ctx.Err() == nil {
		began := time.Now()
		out, err := c.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:              aws.String(c.queueURL),
			MaxNumberOfMessages:   c.batchSize,
			WaitTimeSeconds:       c.waitTime,
			VisibilityTimeout:     c.visibility,
			MessageAttributeNames: []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount,
				types.MessageSystemAttributeNameMessageGroupId,
			},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.receiving.Fail(err, "queue", c.queueURL)
			sleep(ctx, failWait.NextBackOff())
			continue
		}
		c.receiving.OK(began)
		failWait.Reset()
		if len(out.Messages) == 0 {
			if c.waitTime == 0 { // short polling: do not spin
				sleep(ctx, 200*time.Millisecond)
			}
			continue
		}
		batches <- out.Messages
	}
}

// process processes the batches handed over until the channel closes. The
// actions of a batch (deletes, dead letters, visibility changes) run while
// the next batch is processed; process waits for them before it starts the
// actions of the next batch, and before it returns.
func (c *Consumer) process(ctx context.Context, worker int, batches <-chan []types.Message) {
	acted := make(chan struct{})
	close(acted) // no actions in flight yet
	defer func() { <-acted }()
	for first := range batches {
		msgs := withWaiting(first, batches)
		results, err := c.proc.Process(ctx, toSink(msgs))
		if err != nil {
			c.logger.Error("batch left for redelivery", "worker", worker, "messages", len(msgs), "err", err)
			sleep(ctx, time.Second)
			continue
		}
		<-acted
		acted = make(chan struct{})
		go func(done chan<- struct{}) {
			defer close(done)
			c.act(ctx, msgs, results)
		}(acted)
	}
}

// mergeBatches is how many received batches a processor hands to one
// Process call at most: those already waiting when it takes one. Process
// claims and records a call's pushes with one delivery-log statement each
// whatever its size, so merging saves those round trips; with batches of 10
// and the processor's 32 parallel pushes, 3 batches still push in one round.
const mergeBatches = 3

// withWaiting returns first followed by the messages of the batches
// already waiting in batches (receivers blocked handing them over), up to
// mergeBatches batches in all; it never waits for one.
func withWaiting(first []types.Message, batches <-chan []types.Message) []types.Message {
	msgs := first
	for range mergeBatches - 1 {
		select {
		case more, ok := <-batches:
			if !ok {
				return msgs
			}
			msgs = append(msgs, more...) // the receiver handed first over: its array is ours
		default:
			return msgs
		}
	}
	return msgs
}

// toSink converts received messages to the Processor's.
func toSink(msgs []types.Message) []sink.Message {
	in := make([]sink.Message, len(msgs))
	for i, m := range msgs {
		in[i] = sink.Message{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), ReceiveCount: ReceiveCount(m.Attributes),
			Attributes: Attributes(m.MessageAttributes)}
	}
	return in
}

// act carries out the Processor's decisions on a batch: deletes, dead
// letters (then deletes) and visibility changes. Its calls run even when
// ctx has ended, bounded by actionTimeout.
func (c *Consumer) act(ctx context.Context, msgs []types.Message, results []sink.Result) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), actionTimeout)
	defer cancel()
	var del []types.Message
	var dead []DeadLetter
	var retry []retryEntry
	for i, r := range results {
		switch r.Action {
		case sink.Delete:
			del = append(del, msgs[i])
		case sink.DeadLetter:
			dead = append(dead, DeadLetter{Message: msgs[i], Code: r.Code, Reason: r.Reason})
		case sink.Retry:
			if r.Delay > 0 {
				retry = append(retry, retryEntry{msgs[i], r.Delay})
			}
		}
	}
	if len(dead) > 0 {
		sent := c.dlq.Send(actx, dead)
		for i, ok := range sent {
			if ok {
				del = append(del, dead[i].Message)
			} else {
				c.logger.Error("DLQ refused a message; left for redrive", "message_id", aws.ToString(dead[i].MessageId))
			}
		}
	}
	c.delete(actx, del)
	c.changeVisibility(actx, retry)
}

// maxBatchEntries is SQS's limit of entries per batch call.
const maxBatchEntries = 10

// delete deletes msgs, in calls of at most 10.
func (c *Consumer) delete(ctx context.Context, msgs []types.Message) {
	for chunk := range slices.Chunk(msgs, maxBatchEntries) {
		c.deleteBatch(ctx, chunk)
	}
}

func (c *Consumer) deleteBatch(ctx context.Context, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	out, err := c.client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(c.queueURL), Entries: entries})
	if err != nil {
		// The messages come back after the visibility timeout; the
		// delivery log keeps them from being pushed twice.
		c.logger.Error("delete messages", "messages", len(msgs), "err", err)
		return
	}
	for _, f := range out.Failed {
		c.logger.Error("delete message", "id", aws.ToString(f.Id), "code", aws.ToString(f.Code), "err", aws.ToString(f.Message))
	}
}

type retryEntry struct {
	msg   types.Message
	delay time.Duration
}

// changeVisibility delays the redelivery of rs, in calls of at most 10.
func (c *Consumer) changeVisibility(ctx context.Context, rs []retryEntry) {
	for chunk := range slices.Chunk(rs, maxBatchEntries) {
		c.changeVisibilityBatch(ctx, chunk)
	}
}

func (c *Consumer) changeVisibilityBatch(ctx context.Context, rs []retryEntry) {
	if len(rs) == 0 {
		return
	}
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(rs))
	for i, r := range rs {
		secs := int32(min((r.delay+time.Second-1)/time.Second, 43200))
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), ReceiptHandle: r.msg.ReceiptHandle, VisibilityTimeout: secs,
		}
	}
	out, err := c.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(c.queueURL), Entries: entries})
	if err != nil {
		c.logger.Warn("delay redelivery", "messages", len(rs), "err", err)
		return
	}
	for _, f := range out.Failed {
		c.logger.Warn("delay redelivery", "id", aws.ToString(f.Id), "code", aws.ToString(f.Code), "err", aws.ToString(f.Message))
	}
}

// Ping checks that the queue is reachable (for /readyz).
func (c *Consumer) Ping(ctx context.Context) error {
	_, err := c.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(c.queueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("queue unreachable: %w", err)
	}
	return nil
}

// WaitReachable returns once the queue answers (Ping), retrying with
// backoff while it does not; the failures are logged summarised, with
// attrs, as "sink not ready: SQS queue not reachable; retrying". It returns
// an error, without retrying, when no AWS credentials are found (nothing
// changes that but a restart with credentials), and ctx's error when ctx
// ends first.
func (c *Consumer) WaitReachable(ctx context.Context, attrs ...any) error {
	wait := &backoff.ExponentialBackOff{InitialInterval: receiveRetryInitial, Multiplier: 2, MaxInterval: receiveRetryMax}
	wait.Reset()
	streak := &logging.Streak{Log: c.logger, Failing: "sink not ready: SQS queue not reachable; retrying"}
	for {
		err := c.Ping(ctx)
		var ce *awsclient.CredentialsError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ce):
			return fmt.Errorf("sqs queue %s: %w", c.queueURL, ce)
		}
		streak.Fail(err, append([]any{"queue", c.queueURL}, attrs...)...)
		sleep(ctx, wait.NextBackOff())
	}
}

// ReceiveCount reads ApproximateReceiveCount from system attributes (1 if absent).
func ReceiveCount(attrs map[string]string) int {
	n, err := strconv.Atoi(attrs[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// DeadLetter is a message to move to the DLQ and why.
type DeadLetter struct {
	types.Message
	Code   string
	Reason string
}

// DLQ sends messages to the dead-letter queue with the reason as message
// attributes (reason, reason_code, source_message_id), keeping the body and
// as many original attributes as SQS's limit of 10 allows (see
// deadLetterAttributes): an S3 pointer keeps its size attribute, so that
// the message redriven from the DLQ is read as it was first. Safe for
// concurrent use.
type DLQ struct {
	client Client
	url    string
}

// NewDLQ returns the DLQ at url (empty: every Send fails, so messages stay
// for the queue's redrive policy).
func NewDLQ(client Client, url string) *DLQ { return &DLQ{client: client, url: url} }

// Send sends any number of messages (in batches of at most 10 messages and
// 900 KiB) and reports which were accepted; only those may be deleted from
// the source queue.
func (d *DLQ) Send(ctx context.Context, msgs []DeadLetter) []bool {
	ok := make([]bool, len(msgs))
	if d.url == "" {
		return ok
	}
	fifo := strings.HasSuffix(d.url, ".fifo")
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		attrs := deadLetterAttributes(m)
		size := len(aws.ToString(m.Body))
		for k, v := range attrs {
			size += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
		}
		e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: m.Body, MessageAttributes: attrs}
		if fifo {
			g := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
			if g == "" {
				g = "dlq"
			}
			e.MessageGroupId = aws.String(g)
			e.MessageDeduplicationId = m.MessageId
		}
		entries[i], sizes[i] = e, size
	}
	const maxBatchBytes = 900 << 10
	for start := 0; start < len(entries); {
		end, total := start, 0
		for end < len(entries) && end-start < 10 && (end == start || total+sizes[end] <= maxBatchBytes) {
			total += sizes[end]
			end++
		}
		out, err := d.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(d.url), Entries: entries[start:end]})
		if err == nil {
			for _, s := range out.Successful {
				if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= start && i < end {
					ok[i] = true
				}
			}
		}
		start = end
	}
	return ok
}

// maxAttributes is SQS's limit of message attributes per message.
const maxAttributes = 10

// deadLetterAttributes returns the attributes of m's copy in the DLQ: the
// size attributes of an S3 pointer first (ExtendedPayloadSize, or the
// legacy SQSLargePayloadSize: without them a redriven pointer could not be
// read), then reason, reason_code and source_message_id, then m's other
// attributes by name while SQS's limit of 10 allows. The reason names the
// original attributes that did not fit, so that none is dropped silently.
func deadLetterAttributes(m DeadLetter) map[string]types.MessageAttributeValue {
	attrs := make(map[string]types.MessageAttributeValue, maxAttributes)
	for _, k := range []string{s3pointer.SizeAttribute, s3pointer.LegacySizeAttribute} {
		if v, ok := m.MessageAttributes[k]; ok {
			attrs[k] = v
		}
	}
	own := []string{AttrReason, AttrReasonCode, AttrSourceMessageID}
	rest := make([]string, 0, len(m.MessageAttributes))
	for k := range m.MessageAttributes {
		if _, kept := attrs[k]; !kept && !slices.Contains(own, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	room := max(maxAttributes-len(attrs)-len(own), 0)
	kept, dropped := rest[:min(room, len(rest))], rest[min(room, len(rest)):]
	for _, k := range kept {
		attrs[k] = m.MessageAttributes[k]
	}
	reason := m.Reason
	if len(dropped) > 0 {
		reason += " (message attributes not kept, SQS allows 10: " + strings.Join(dropped, ", ") + ")"
	}
	str := func(s string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
	}
	attrs[AttrReason] = str(attrText(reason, 1000))
	attrs[AttrReasonCode] = str(attrText(m.Code, 100))
	attrs[AttrSourceMessageID] = str(attrText(aws.ToString(m.MessageId), 200))
	return attrs
}

// attrText makes s a valid SQS attribute value: at most n bytes, only the
// characters SQS accepts, never empty.
func attrText(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0xd800 && r <= 0xdfff) || r == 0xfffe || r == 0xffff {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Attributes are the string values of a message's attributes (nil when it
// has none), as sink.Message carries them.
func Attributes(attrs map[string]types.MessageAttributeValue) sink.MessageAttributes {
	if len(attrs) == 0 {
		return nil
	}
	out := make(sink.MessageAttributes, len(attrs))
	for k, v := range attrs {
		if v.StringValue != nil {
			out[k] = *v.StringValue
		}
	}
	return out
}
