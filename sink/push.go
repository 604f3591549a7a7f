package sink

import (
	"context"
	"time"
)

// Pusher is the sink's push port: it pushes one event to one Kobot account,
// retrying in process as configured, and says how it ended. The Processor
// calls Push concurrently, so implementations must be safe for concurrent
// use. The first attempt is always made; once ctx ends no further attempt
// starts, but an attempt under way finishes, so a shutdown does not cut a
// push in half. kobot.Client implements it.
type Pusher interface {
	Push(ctx context.Context, r PushRequest) PushResult
}

// PushRequest is one push: one event to one Kobot account.
type PushRequest struct {
	EventID string // the stable event id, by which Kobot drops duplicates
	Account string // the Kobot account, added to the payload
	Event   []byte // the CloudEvent JSON object as published
}

// PushClass is how a push attempt ended.
type PushClass int

const (
	// PushDelivered: Kobot answered 2xx.
	PushDelivered PushClass = iota
	// PushRetryable: 408, 429, 5xx, timeout or connection error.
	PushRetryable
	// PushRejected: any other answer; retrying cannot help.
	PushRejected
)

func (c PushClass) String() string {
	switch c {
	case PushDelivered:
		return "delivered"
	case PushRetryable:
		return "retryable"
	default:
		return "rejected"
	}
}

// PushAttempt is the outcome of one attempt.
type PushAttempt struct {
	Class      PushClass
	Status     int           // HTTP status; 0 when no response arrived
	RetryAfter time.Duration // from a Retry-After header on 429/503; 0 if absent
	Err        error         // transport error, or a description of a non-2xx answer
	Problem    PushProblem   // what went wrong, when Class is not PushDelivered
	Duration   time.Duration
}

// PushResult is the outcome of Push: its last attempt plus bookkeeping.
type PushResult struct {
	PushAttempt
	Attempts int
	// Latency is from the start of the first attempt to the end of the last.
	Latency time.Duration
}

// PushObserver is told about every push attempt, retries included (the
// sink's Metrics count Kobot's answers by class). Pushers call it
// concurrently; it must be fast.
type PushObserver interface {
	Attempted(a PushAttempt)
}
