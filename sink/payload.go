package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
)

// Reason codes of messages whose event is stored in S3 (see PayloadStore).
const (
	// CodeInvalidPointer: the body is an S3 pointer the sink cannot use
	// (malformed, or without its size attribute).
	CodeInvalidPointer = "invalid_pointer"
	// CodePayloadMissing: the object the pointer names does not exist.
	CodePayloadMissing = "payload_missing"
	// CodePayloadSize: the object's size differs from the size attribute.
	CodePayloadSize = "payload_size_mismatch"
)

// DefaultMaxPayloadBytes bounds an event read from S3 when
// ProcessorConfig.MaxPayloadBytes is 0.
const DefaultMaxPayloadBytes = 16 << 20

// Errors of a PayloadStore.
var (
	// ErrPayloadMissing: the bucket or the object does not exist. The
	// message goes to the DLQ.
	ErrPayloadMissing = errors.New("stored event not found")
	// ErrPayloadTooLarge: the object is over the limit Get was given. The
	// message goes to the DLQ.
	ErrPayloadTooLarge = errors.New("stored event too large")
)

// PayloadStore reads the events that a producer (the connector, or an AWS
// extended client) stored in S3 and replaced by a pointer in the message
// (the claim-check format of internal/s3pointer). The sink never deletes
// them: every subscriber of the topic reads the same object, and a
// lifecycle rule expires them.
type PayloadStore interface {
	// Get returns the object's content. It fails with an error wrapping
	// ErrPayloadMissing when the bucket or the object does not exist, and
	// ErrPayloadTooLarge when it is over max bytes; any other error is
	// retried by redelivery.
	Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
}

// MessageAttributes holds a queue message's attributes (their string
// values) that the sink reads: the size attribute of an S3 pointer.
type MessageAttributes map[string]string

// parseAll parses every message of a batch into its event, reading from S3
// (concurrently) the events of the messages that point there. For message
// i, either events[i] is set or results[i] says what to do with it.
func (p *Processor) parseAll(ctx context.Context, msgs []Message) (events []*Event, results []*Result) {
	events = make([]*Event, len(msgs))
	results = make([]*Result, len(msgs))
	set := func(i int, ev *Event, err error) {
		if err != nil {
			r := deadLetter(err)
			results[i] = &r
			return
		}
		events[i] = ev
	}
	var wg sync.WaitGroup
	for i, m := range msgs {
		if !s3pointer.IsPointer(m.Body) {
			ev, err := ParseMessage(m.Body)
			set(i, ev, err)
			continue
		}
		wg.Go(func() {
			body, res := p.fetch(ctx, m)
			if res != nil {
				results[i] = res
				return
			}
			ev, err := ParseStoredEvent(body)
			set(i, ev, err)
		})
	}
	wg.Wait()
	return events, results
}

// fetch reads the event a pointer message names and checks its size.
func (p *Processor) fetch(ctx context.Context, m Message) ([]byte, *Result) {
	dlq := func(code, format string, a ...any) *Result {
		return &Result{Action: DeadLetter, Result: ResultDLQ, Code: code, Reason: fmt.Sprintf(format, a...)}
	}
	ptr, err := s3pointer.Parse(m.Body)
	if err != nil {
		if !bytes.Contains(m.Body, []byte(s3pointer.Class)) && !bytes.Contains(m.Body, []byte(s3pointer.LegacyClass)) {
			return nil, dlq(CodeInvalidJSON, "message is a JSON array, neither an event nor an S3 pointer: %v", err)
		}
		return nil, dlq(CodeInvalidPointer, "%v", err)
	}
	v, ok := s3pointer.Size(func(name string) (string, bool) {
		v, ok := m.Attributes[name]
		return v, ok
	})
	if !ok {
		return nil, dlq(CodeInvalidPointer, "S3 pointer to %s without the %s message attribute: subscribe the queue to the topic with raw message delivery", ptr, s3pointer.SizeAttribute)
	}
	size, err := s3pointer.ParseSize(v)
	if err != nil {
		return nil, dlq(CodeInvalidPointer, "S3 pointer to %s: %v", ptr, err)
	}
	if p.c.Payloads == nil {
		return nil, dlq(CodeInvalidPointer, "S3 pointer to %s, but this sink reads no S3 (no payload store configured)", ptr)
	}
	limit := p.c.MaxPayloadBytes
	if size > limit {
		return nil, dlq(CodeTooLarge, "stored event %s is %d bytes, over sink.s3.max_event_bytes (%d)", ptr, size, limit)
	}
	body, err := p.c.Payloads.Get(ctx, ptr.Bucket, ptr.Key, limit)
	switch {
	case errors.Is(err, ErrPayloadMissing):
		return nil, dlq(CodePayloadMissing, "stored event %s not found (expired by the bucket's lifecycle rule, or deleted): %v", ptr, err)
	case errors.Is(err, ErrPayloadTooLarge):
		return nil, dlq(CodeTooLarge, "stored event %s is over sink.s3.max_event_bytes (%d)", ptr, limit)
	case err != nil:
		p.c.Metrics.PayloadErrors.Inc()
		p.c.Logger.Warn("cannot read a stored event from S3; the message is left for redelivery", "message_id", m.ID, "object", ptr.String(), "err", err)
		return nil, &Result{Action: Retry, Result: ResultRetry, Delay: p.redeliveryDelay(m.ReceiveCount),
			Reason: fmt.Sprintf("read stored event %s: %v", ptr, err)}
	case int64(len(body)) != size:
		return nil, dlq(CodePayloadSize, "stored event %s is %d bytes, the message's %s says %s", ptr, len(body), s3pointer.SizeAttribute, strconv.FormatInt(size, 10))
	}
	p.c.Metrics.PayloadsRead.Inc()
	return body, nil
}
