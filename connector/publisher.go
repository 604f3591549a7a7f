package connector

import "context"

// Publisher delivers batches of events to their destination (SNS, stdout).
//
// The Pipeline calls Publish from several lanes concurrently, so
// implementations must be safe for concurrent use. A batch holds at most
// MaxBatch events (see Pipeline options) and may mix topics.
//
// Publish returns nil only when every event of the batch was accepted by the
// destination: the Pipeline then counts them as acknowledged, and PostgreSQL
// may be told to forget them. Publish retries what retrying can fix
// (throttling, 5xx, per-entry failures) itself, until ctx ends; it returns an
// error wrapping ErrPermanent for what it cannot (an event over the size
// limit, an invalid topic) and ctx.Err() when ctx ended first.
type Publisher interface {
	Publish(ctx context.Context, events []*Event) error
}

// RetryObserver is told when a Publisher sends events again after a
// retryable failure; the connector's metrics implement it. Publishers call
// it from Publish, concurrently, so it must be fast and safe for concurrent
// use.
type RetryObserver interface {
	// Retried is called before an attempt is repeated: entries events of a
	// call to topic are sent again because of code (the destination's
	// error code, e.g. an AWS error code, or "" for a network error or
	// timeout).
	Retried(topic, code string, entries int)
}
