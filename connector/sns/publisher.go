package sns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/cenkalti/backoff/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
)

// SNS limits.
const (
	// MaxBatchEntries is the most entries SNS takes in one PublishBatch call.
	MaxBatchEntries = 10
	// MaxBatchBytes is SNS's limit on the total payload of a PublishBatch
	// call (256 KiB), which also bounds every single message.
	MaxBatchBytes = 262144
)

// Options tune a Publisher. Zero values take the defaults.
type Options struct {
	// DefaultTopic is the topic ARN of events whose Topic is empty.
	DefaultTopic string
	// MaxBatchEntries is the most events per PublishBatch call (default and
	// maximum 10).
	MaxBatchEntries int
	// MaxBatchBytes bounds the total size of a PublishBatch call, counted as
	// SNS counts it (message bodies plus attribute names, types and values),
	// and so the size of any one event (default and usual maximum 262144;
	// raise it only for topics whose MaximumMessageSize was raised).
	MaxBatchBytes int
	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts: publisher.retry, resolved by package config (zero: retry
	// at once). The publisher applies no default of its own.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// CallTimeout bounds one PublishBatch attempt; a call that takes longer
	// is abandoned and retried (default 30s).
	CallTimeout time.Duration
	// Observer, when set, is told about retries (metrics); code is the
	// AWS error code, or "" for a network error or timeout.
	Observer connector.RetryObserver
}

func (o *Options) defaults() {
	if o.MaxBatchEntries <= 0 || o.MaxBatchEntries > MaxBatchEntries {
		o.MaxBatchEntries = MaxBatchEntries
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = MaxBatchBytes
	}
	if o.RetryMax < o.RetryInitial {
		o.RetryMax = o.RetryInitial
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
}

// Publisher publishes events to SNS topics with PublishBatch. It is a
// connector.Publisher: Publish returns nil only once SNS has accepted
// (returned a MessageId for) every event of the batch.
//
// Wire format of each event: the message is Event.Body; the message
// attributes are Event.Attributes as given (the mapper already puts table,
// op and type there). On FIFO topics (ARN ending in ".fifo"):
//   - MessageGroupId is Event.Key, or the table name when the mapping has
//     no key, so that all of an unkeyed table's events stay in order;
//   - MessageDeduplicationId is Event.ID unchanged ("0/16B3748-3": digits,
//     hex letters, '/' and '-' are all allowed characters), so a re-sent
//     event is dropped by SNS within its 5-minute deduplication window.
//
// A key (or id) that SNS would refuse, one longer than 128 characters or
// with characters outside printable ASCII (a space, non-ASCII text), is
// replaced by "sha256-" and the hex SHA-256 of it: still deterministic, so
// the same key always lands in the same message group.
//
// Publisher is safe for concurrent use; it keeps no state between calls.
type Publisher struct {
	api  API
	opts Options
	log  *slog.Logger
}

var _ connector.Publisher = (*Publisher)(nil)

// New returns a Publisher that publishes through client.
func New(client API, opts Options, log *slog.Logger) *Publisher {
	opts.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{api: client, opts: opts, log: log}
}

// Publish publishes events, grouped by topic, in PublishBatch calls of at
// most MaxBatchEntries events and MaxBatchBytes bytes. Events of one topic
// are sent in their order in events; topics one after the other.
//
// Before sending anything, Publish checks every event: one over
// MaxBatchBytes, or one with no topic, fails the whole call with an error
// wrapping connector.ErrPermanent and nothing is sent.
//
// Then it retries, until ctx ends, every call that failed with throttling,
// a 5xx answer, a network error or a timeout, and every entry SNS reported
// failed without a sender fault (or with a throttling code); only the
// failed entries are sent again. A sender fault on an entry or a 4xx answer
// (NotFound, AuthorizationError, InvalidParameter...) is permanent: Publish
// returns an error wrapping connector.ErrPermanent. When ctx ends first it
// returns an error wrapping ctx.Err(). On an error, some events may have
// been accepted already: the caller re-sends them, and subscribers see them
// twice (with the same event id).
//
// On FIFO topics, SNS keeps the order of a message group only if the
// failed entries of a call come after its accepted ones; should SNS accept
// an entry while failing an earlier one of the same group, the retried one
// arrives after it.
func (p *Publisher) Publish(ctx context.Context, events []*connector.Event) error {
	if len(events) == 0 {
		return nil
	}
	// Check first, so that a batch that cannot succeed sends nothing.
	for _, ev := range events {
		if p.topicOf(ev) == "" {
			return fmt.Errorf("event %s of %s: no topic: set sns.topic_arn or the table's topic_arn: %w", ev.ID, ev.Table, connector.ErrPermanent)
		}
		if n := ev.Size(); n > p.opts.MaxBatchBytes {
			return fmt.Errorf("event %s of %s%s is %d bytes, over the SNS limit of %d bytes; drop large columns from the mapping: %w",
				ev.ID, ev.Table, keyNote(ev), n, p.opts.MaxBatchBytes, connector.ErrPermanent)
		}
	}
	// Group by topic, keeping order within a topic. Batches hold few
	// topics, so a linear scan beats a map.
	type group struct {
		topic  string
		events []*connector.Event
	}
	var groups []group
	single := true
	for _, ev := range events {
		if p.topicOf(ev) != p.topicOf(events[0]) {
			single = false
			break
		}
	}
	if single {
		groups = []group{{p.topicOf(events[0]), events}}
	} else {
	next:
		for _, ev := range events {
			t := p.topicOf(ev)
			for i := range groups {
				if groups[i].topic == t {
					groups[i].events = append(groups[i].events, ev)
					continue next
				}
			}
			groups = append(groups, group{t, []*connector.Event{ev}})
		}
	}
	for _, g := range groups {
		if err := p.publishTopic(ctx, g.topic, g.events); err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) topicOf(ev *connector.Event) string {
	if ev.Topic != "" {
		return ev.Topic
	}
	return p.opts.DefaultTopic
}

// keyNote is " (key 7)", or "" for an unkeyed event.
func keyNote(ev *connector.Event) string {
	if ev.Key == "" {
		return ""
	}
	return " (key " + ev.Key + ")"
}

// publishTopic splits the events of one topic into calls.
func (p *Publisher) publishTopic(ctx context.Context, topic string, events []*connector.Event) error {
	fifo := strings.HasSuffix(topic, ".fifo")
	start, bytes := 0, 0
	for i, ev := range events {
		n := ev.Size()
		if i > start && (i-start == p.opts.MaxBatchEntries || bytes+n > p.opts.MaxBatchBytes) {
			if err := p.send(ctx, topic, fifo, events[start:i]); err != nil {
				return err
			}
			start, bytes = i, 0
		}
		bytes += n
	}
	return p.send(ctx, topic, fifo, events[start:])
}

// send publishes one call's events, retrying failed entries and calls.
func (p *Publisher) send(ctx context.Context, topic string, fifo bool, events []*connector.Event) error {
	pending := events
	entries := make([]types.PublishBatchRequestEntry, len(events))
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     p.opts.RetryInitial,
		RandomizationFactor: 0.3,
		Multiplier:          2,
		MaxInterval:         p.opts.RetryMax,
	}
	bo.Reset()
	for attempt := 1; ; attempt++ {
		for i, ev := range pending {
			entries[i] = p.entry(i, ev, fifo)
		}
		out, err := p.call(ctx, topic, entries[:len(pending)])
		var code string
		var retry []*connector.Event
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("publish to %s: %w", topic, ctx.Err())
			}
			code = awsclient.ErrorCode(err)
			if !awsclient.Retryable(err) {
				msg := fmt.Sprintf("publish to %s", topic)
				if h := hint(code); h != "" {
					msg += " (" + h + ")"
				}
				return fmt.Errorf("%s: %w: %w", msg, err, connector.ErrPermanent)
			}
			retry = pending
			p.log.Warn("sns publish failed; retrying", "topic", topic, "attempt", attempt, "entries", len(pending), "code", code, "error", err)
		default:
			if retry, code, err = p.failed(topic, pending, out); err != nil {
				return err
			}
			if len(retry) == 0 {
				return nil
			}
			p.log.Warn("sns rejected entries; retrying them", "topic", topic, "attempt", attempt, "entries", len(retry), "of", len(pending), "code", code)
		}
		if p.opts.Observer != nil {
			p.opts.Observer.Retried(topic, code, len(retry))
		}
		pending = retry
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("publish to %s: %d events not accepted: %w", topic, len(pending), ctx.Err())
		case <-t.C:
		}
	}
}

// call makes one PublishBatch attempt, bounded by CallTimeout.
func (p *Publisher) call(ctx context.Context, topic string, entries []types.PublishBatchRequestEntry) (*awssns.PublishBatchOutput, error) {
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.api.PublishBatch(cctx, &awssns.PublishBatchInput{
		TopicArn:                   aws.String(topic),
		PublishBatchRequestEntries: entries,
	})
	if err == nil && out == nil {
		err = errors.New("empty PublishBatch response")
	}
	return out, err
}

// failed sorts the entries of a 200 answer: it returns the events to send
// again (failed without sender fault, or throttled, or not reported at
// all) and the first failure code, or a permanent error for an entry
// failed by a sender fault.
func (p *Publisher) failed(topic string, pending []*connector.Event, out *awssns.PublishBatchOutput) ([]*connector.Event, string, error) {
	if len(out.Successful) == len(pending) && len(out.Failed) == 0 {
		return nil, "", nil
	}
	ok := make([]bool, len(pending))
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= 0 && i < len(pending) {
			ok[i] = true
		}
	}
	var code string
	for _, f := range out.Failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= len(pending) || ok[i] {
			continue
		}
		c := aws.ToString(f.Code)
		if f.SenderFault && !awsclient.Throttled(c) {
			ev := pending[i]
			msg := fmt.Sprintf("publish event %s of %s%s to %s: SNS refused it: %s: %s", ev.ID, ev.Table, keyNote(ev), topic, c, aws.ToString(f.Message))
			if h := hint(c); h != "" {
				msg += " (" + h + ")"
			}
			return nil, "", fmt.Errorf("%s: %w", msg, connector.ErrPermanent)
		}
		if code == "" {
			code = c
		}
	}
	var retry []*connector.Event
	for i, ev := range pending {
		if !ok[i] {
			retry = append(retry, ev)
		}
	}
	if code == "" && len(retry) > 0 {
		code = "NotReported"
	}
	return retry, code, nil
}

// entry builds the request entry of ev at position i of a call.
func (p *Publisher) entry(i int, ev *connector.Event, fifo bool) types.PublishBatchRequestEntry {
	e := types.PublishBatchRequestEntry{
		Id:      aws.String(strconv.Itoa(i)),
		Message: aws.String(string(ev.Body)),
	}
	if len(ev.Attributes) > 0 {
		e.MessageAttributes = make(map[string]types.MessageAttributeValue, len(ev.Attributes))
		for _, a := range ev.Attributes {
			e.MessageAttributes[a.Name] = types.MessageAttributeValue{
				DataType:    aws.String(a.Type),
				StringValue: aws.String(a.Value),
			}
		}
	}
	if fifo {
		group := ev.Key
		if group == "" {
			group = ev.Table
		}
		e.MessageGroupId = aws.String(fifoID(group))
		e.MessageDeduplicationId = aws.String(fifoID(ev.ID))
	}
	return e
}

// fifoID returns s when SNS accepts it as a MessageGroupId or
// MessageDeduplicationId, and otherwise "sha256-<hex digest of s>".
func fifoID(s string) string {
	if validFIFOID(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + hex.EncodeToString(sum[:])
}
