// Package lambda runs the sink's delivery core as an AWS Lambda handler for
// SQS event source mappings with ReportBatchItemFailures enabled.
package lambda

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

// chunk bounds the messages handed to the Processor at once (a Lambda
// batch can hold up to 10,000).
const chunk = 100

// Processor is the delivery core (sink.Processor).
type Processor interface {
	Process(ctx context.Context, msgs []sink.Message) ([]sink.Result, error)
}

// Handler handles SQS events. Safe for concurrent use.
type Handler struct {
	proc   Processor
	dlq    *sqs.DLQ
	logger *slog.Logger
}

// New returns a handler; dlq receives invalid and rejected messages.
func New(proc Processor, dlq *sqs.DLQ, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{proc: proc, dlq: dlq, logger: logger}
}

// Handle processes the records and reports the ones to retry as batch item
// failures: Lambda deletes the others. A message to retry (Kobot
// unreachable, 429/5xx) or that could not be processed at all stays in the
// queue, so its redrive policy moves it to the DLQ after maxReceiveCount. A
// message that is invalid or that Kobot rejected is sent to the DLQ with its
// reason and reported as done; if the DLQ refuses it, it is reported as a
// failure instead, so it is never lost. The error is always nil: failures
// are per message.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	fail := func(id string) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	for start := 0; start < len(ev.Records); start += chunk {
		recs := ev.Records[start:min(start+chunk, len(ev.Records))]
		msgs := make([]sink.Message, len(recs))
		for i, r := range recs {
			msgs[i] = sink.Message{ID: r.MessageId, Body: []byte(r.Body), ReceiveCount: sqs.ReceiveCount(r.Attributes),
				Attributes: attributes(r.MessageAttributes)}
		}
		results, err := h.proc.Process(ctx, msgs)
		if err != nil {
			h.logger.Error("batch left for redelivery", "messages", len(recs), "err", err)
			for _, r := range recs {
				fail(r.MessageId)
			}
			continue
		}
		var dead []sqs.DeadLetter
		var deadIDs []string
		for i, res := range results {
			switch res.Action {
			case sink.Retry:
				fail(recs[i].MessageId)
			case sink.DeadLetter:
				dead = append(dead, sqs.DeadLetter{Message: toSQS(recs[i]), Code: res.Code, Reason: res.Reason})
				deadIDs = append(deadIDs, recs[i].MessageId)
			}
		}
		if len(dead) > 0 {
			for i, ok := range h.dlq.Send(ctx, dead) {
				if !ok {
					h.logger.Error("DLQ refused a message; reported as failed", "message_id", deadIDs[i])
					fail(deadIDs[i])
				}
			}
		}
	}
	return resp, nil
}

// toSQS converts a Lambda record to the SDK's message type for the DLQ.
func toSQS(r events.SQSMessage) types.Message {
	m := types.Message{
		MessageId:     aws.String(r.MessageId),
		ReceiptHandle: aws.String(r.ReceiptHandle),
		Body:          aws.String(r.Body),
		Attributes:    r.Attributes,
	}
	if len(r.MessageAttributes) > 0 {
		m.MessageAttributes = make(map[string]types.MessageAttributeValue, len(r.MessageAttributes))
		for k, a := range r.MessageAttributes {
			m.MessageAttributes[k] = types.MessageAttributeValue{
				DataType:         aws.String(a.DataType),
				StringValue:      a.StringValue,
				BinaryValue:      a.BinaryValue,
				StringListValues: a.StringListValues,
				BinaryListValues: a.BinaryListValues,
			}
		}
	}
	return m
}

// attributes are the string values of a record's message attributes.
func attributes(attrs map[string]events.SQSMessageAttribute) sink.MessageAttributes {
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
