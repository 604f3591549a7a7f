// Package sink is the downstream half of baitoru-cdc: it takes CloudEvents
// from an SQS queue, finds the Kobot accounts linked to each event's link key
// (e.g. the company id), and pushes the event to Kobot, signed.
//
// The package holds the domain: event parsing (ParseMessage), link rules and
// the in-memory link cache, the delivery core (Processor), the links API
// (API), link histories (Histories; history.go says why they travel
// through Baitoru's database), the metrics, and the ports the adapters
// implement (LinkSource, LinkStore, DeliveryLog, Pusher, HistoryLog,
// BackfillRequester). The adapters live in sub-packages and import this
// one, never the reverse: postgres (links, delivery log, link histories,
// migrations, LISTEN/NOTIFY), sqs (the consumer and the DLQ), kobot (signed
// pushes), requester (backfill requests in Baitoru's database), lambda (the
// AWS Lambda handler); service wires them from the configuration.
package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Delivery log statuses.
const (
	DeliveryDelivered = "delivered" // Kobot answered 2xx
	DeliveryRetry     = "retry"     // retryable failure; the message is redelivered
	DeliveryRejected  = "rejected"  // Kobot rejected it (4xx); the message went to the DLQ
)

// maxRedeliveryDelay caps the exponential redelivery delay.
const maxRedeliveryDelay = 15 * time.Minute

// defaultParallel is the default bound of concurrent pushes within one
// batch (ProcessorConfig.Parallel).
const defaultParallel = 32

// dbTimeout bounds each delivery-log query of a batch.
const dbTimeout = 10 * time.Second

// Message is one queue message handed to Process.
type Message struct {
	ID           string // queue message id (for logs)
	Body         []byte
	ReceiveCount int // how many times the queue has handed it out, 1 on the first
	// Attributes are the message attributes' string values; the sink
	// reads the size attribute of an S3 pointer body (see PayloadStore).
	Attributes MessageAttributes
}

// Action is what the transport must do with a processed message.
type Action int

const (
	// Delete the message: delivered, already delivered, or unlinked.
	Delete Action = iota
	// Retry: leave the message (do not delete); make it visible again after
	// Result.Delay when that is set. The queue's redrive policy moves it to
	// the DLQ after maxReceiveCount receives.
	Retry
	// DeadLetter: send the message to the DLQ with Result.Code and
	// Result.Reason as attributes, then delete it. If the DLQ cannot take
	// it, leave it (redrive moves it later).
	DeadLetter
)

func (a Action) String() string {
	switch a {
	case Delete:
		return "delete"
	case Retry:
		return "retry"
	default:
		return "dead-letter"
	}
}

// Result is the outcome of one message.
type Result struct {
	Action Action
	Result string        // metric result: ResultDelivered, ResultUnlinked, ...
	Code   string        // DeadLetter: a Code* reason code
	Reason string        // DeadLetter: why; Retry: the last error
	Delay  time.Duration // Retry: keep the message invisible this long; 0: queue default
}

// LinkSource returns the active links of link keys; keys without links are
// absent from the map. LinkCache answers from memory; postgres.Store with one
// query (used by Lambda, whose process may sleep between invocations).
type LinkSource interface {
	ActiveLinks(ctx context.Context, keys []string) (map[string][]Link, error)
}

// DeliveryKey names one push: an event to a link.
type DeliveryKey struct {
	EventID string
	LinkID  int64
}

// Delivery is one row of the delivery log: the outcome of pushing an event
// to a link during one receive of its message.
type Delivery struct {
	EventID     string
	LinkID      int64
	Status      string // DeliveryDelivered, DeliveryRetry or DeliveryRejected
	Attempts    int    // attempts made during this receive (the log adds them up)
	HTTPStatus  int    // last HTTP status; 0 if none
	LastError   string
	Latency     time.Duration
	DeliveredAt time.Time // zero unless delivered
}

// ClaimState is what DeliveryLog.Claim found for one (event, link) pair.
type ClaimState int

const (
	// ClaimOwned: the caller holds the claim and pushes the pair.
	ClaimOwned ClaimState = iota
	// ClaimDelivered: Kobot already answered 2xx for the pair; skip it.
	ClaimDelivered
	// ClaimBusy: another receive (a duplicate message on another consumer
	// or sink) holds a live claim and is pushing the pair now; leave the
	// message for redelivery, by which time the pair is delivered.
	ClaimBusy
)

// DeliveryLog remembers which pushes succeeded, so that a redelivered or
// re-sent message is not pushed again to a link that already answered 2xx,
// and serialises concurrent receives of the same event.
type DeliveryLog interface {
	// Claim claims the pushes of keys for lease and returns each pair's
	// state. Safe for concurrent use by any number of processes: of
	// concurrent claims of one pair, one gets ClaimOwned. A claim ends
	// when RecordDeliveries records the pair's outcome, or when the lease
	// runs out (a sink that died).
	Claim(ctx context.Context, keys []DeliveryKey, lease time.Duration) (map[DeliveryKey]ClaimState, error)
	// RecordDeliveries writes a batch of outcomes (one statement).
	RecordDeliveries(ctx context.Context, ds []Delivery) error
}

// ProcessorConfig holds a Processor's parts.
type ProcessorConfig struct {
	Rules   *Rules
	Links   LinkSource
	Log     DeliveryLog
	Pusher  Pusher
	Metrics *Metrics
	Logger  *slog.Logger
	// RedeliveryBase is the delay before the first redelivery of a message
	// whose pushes failed retryably (normally the queue's visibility
	// timeout); it doubles with each receive up to 15 minutes. A longer
	// Retry-After from Kobot wins. 0 leaves the queue's visibility timeout.
	RedeliveryBase time.Duration
	// ClaimLease is how long a claim on a push lasts (DeliveryLog.Claim):
	// longer than a push can take (ClaimLeaseFor), so that a duplicate
	// receive waits for its outcome instead of pushing too. Default 1m.
	ClaimLease time.Duration
	// Parallel bounds concurrent pushes within one batch (default
	// 32).
	Parallel int
	// Payloads reads the events of messages that point at S3 (nil: such
	// a message goes to the DLQ). MaxPayloadBytes bounds them (default
	// DefaultMaxPayloadBytes); a larger one goes to the DLQ.
	Payloads        PayloadStore
	MaxPayloadBytes int64
	// HistoryPrefix is sink.history.id_prefix: a read event whose backfill
	// id has it (HistoryLink) is the history of one link and goes to that
	// link only. Empty: every event goes to every active link of its key.
	HistoryPrefix string
}

// Processor is the delivery core shared by the SQS consumer and the Lambda
// handler. Safe for concurrent use: each consumer calls Process with its own
// batch.
type Processor struct {
	c        ProcessorConfig
	now      func() time.Time
	problems *problemLog
}

// NewProcessor returns a processor; Rules, Links, Log and Pusher are required.
func NewProcessor(c ProcessorConfig) (*Processor, error) {
	if c.Rules == nil || c.Links == nil || c.Log == nil || c.Pusher == nil {
		return nil, errors.New("processor: rules, links, log and pusher are required")
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ClaimLease <= 0 {
		c.ClaimLease = time.Minute
	}
	if c.Parallel <= 0 {
		c.Parallel = defaultParallel
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	return &Processor{c: c, now: time.Now, problems: newProblemLog(c.Logger, time.Now)}, nil
}

// pending is one event of a batch that has links.
type pending struct {
	ev    *Event
	key   string
	links []Link // the links the event goes to
	pairs []*push
}

type push struct {
	link Link
	dup  bool // already delivered before this receive
	busy bool // being pushed by another receive right now
	res  PushResult
	end  time.Time // when the last attempt ended
}

// Process handles a batch (normally ≤ 10 messages) and returns one Result
// per message, in order. It looks the links up (LinkSource), skips pushes
// the delivery log says succeeded, pushes the rest concurrently, writes the
// delivery log with one statement, and decides each message's Action.
//
// It returns an error, and no results, only when the batch cannot be handled
// at all (links not synchronised, delivery log unreachable); the caller then
// leaves every message for redelivery. Cancelling ctx stops in-process
// retries, but pushes under way finish and their outcome is recorded, so a
// shutdown can wait for Process to return.
func (p *Processor) Process(ctx context.Context, msgs []Message) ([]Result, error) {
	results := make([]Result, len(msgs))
	events := make([]*pending, len(msgs))
	primary := make(map[string]int, len(msgs)) // event id → first message index
	dupOf := make([]int, len(msgs))
	var keys []string
	seenKey := map[string]bool{}
	parsed, done := p.parseAll(ctx, msgs)
	for i := range msgs {
		dupOf[i] = -1
		if done[i] != nil {
			results[i] = *done[i]
			continue
		}
		ev := parsed[i]
		key, err := p.c.Rules.Key(ev)
		if err != nil {
			results[i] = deadLetter(err)
			continue
		}
		if j, ok := primary[ev.ID]; ok {
			dupOf[i] = j
			continue
		}
		primary[ev.ID] = i
		events[i] = &pending{ev: ev, key: key}
		if !seenKey[key] {
			seenKey[key] = true
			keys = append(keys, key)
		}
	}

	byKey, err := p.c.Links.ActiveLinks(ctx, keys)
	if err != nil {
		p.c.Metrics.BatchErrors.Inc()
		return nil, fmt.Errorf("look up links: %w", err)
	}
	var pairs []DeliveryKey
	for i, pe := range events {
		if pe == nil {
			continue
		}
		pe.links = p.linksOf(pe.ev, byKey[pe.key])
		if len(pe.links) == 0 {
			results[i] = Result{Action: Delete, Result: ResultUnlinked}
			events[i] = nil
			continue
		}
		for _, l := range pe.links {
			pairs = append(pairs, DeliveryKey{pe.ev.ID, l.ID})
		}
	}
	var claims map[DeliveryKey]ClaimState
	if len(pairs) > 0 {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
		// A batch with more pushes than Parallel pushes them in rounds:
		// the claims must outlast the last round, or a duplicate receive
		// could claim and push a pair this one has yet to push.
		rounds := (len(pairs) + p.c.Parallel - 1) / p.c.Parallel
		claims, err = p.c.Log.Claim(dctx, pairs, time.Duration(rounds)*p.c.ClaimLease)
		cancel()
		if err != nil {
			p.c.Metrics.BatchErrors.Inc()
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
	}

	// Push every (event, link) pair not yet delivered, concurrently.
	sem := make(chan struct{}, p.c.Parallel)
	var wg sync.WaitGroup
	for _, pe := range events {
		if pe == nil {
			continue
		}
		for _, l := range pe.links {
			st, ok := claims[DeliveryKey{pe.ev.ID, l.ID}]
			if !ok {
				st = ClaimBusy // not answered for: do not push
			}
			ps := &push{link: l, dup: st == ClaimDelivered, busy: st == ClaimBusy}
			pe.pairs = append(pe.pairs, ps)
			if ps.dup || ps.busy {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ps.res = p.c.Pusher.Push(ctx, PushRequest{EventID: pe.ev.ID, Account: l.Account, Event: pe.ev.Body})
				ps.end = p.now()
			})
		}
	}
	wg.Wait()

	var log []Delivery
	for i, pe := range events {
		if pe == nil {
			continue
		}
		results[i] = p.decide(pe, msgs[i], &log)
	}
	if len(log) > 0 {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
		if err := p.c.Log.RecordDeliveries(dctx, log); err != nil {
			// The pushes happened; only the redelivery dedup of this
			// batch is weakened (Kobot still dedups by webhook-id).
			p.c.Metrics.DeliveryLogErrors.Inc()
			p.c.Logger.Error("write delivery log", "err", err, "rows", len(log))
		}
		cancel()
	}
	for i, j := range dupOf {
		if j >= 0 {
			results[i] = results[j]
			if results[i].Action == Delete {
				results[i].Result = ResultDuplicate
			}
		}
	}
	for i, r := range results {
		p.c.Metrics.Deliveries.WithLabelValues(r.Result).Inc()
		if r.Action == DeadLetter {
			p.c.Logger.Warn("message to the DLQ", "message_id", msgs[i].ID, "code", r.Code, "reason", r.Reason)
		}
	}
	return results, nil
}

// linksOf returns the links ev goes to among the active links of its key:
// all of them, except for a link's history (a read event of a backfill
// that link's start requested), which goes to that link only.
func (p *Processor) linksOf(ev *Event, links []Link) []Link {
	if ev.Backfill == "" {
		return links
	}
	id, ok := HistoryLink(p.c.HistoryPrefix, ev.Backfill)
	if !ok {
		return links
	}
	for _, l := range links {
		if l.ID == id {
			return []Link{l}
		}
	}
	return nil
}

// decide turns the pushes of one event into its message's Result and
// delivery-log rows.
func (p *Processor) decide(pe *pending, m Message, log *[]Delivery) Result {
	var retry, rejected, busy *push
	delivered := false
	for _, ps := range pe.pairs {
		if ps.dup {
			continue
		}
		if ps.busy {
			busy = ps
			continue
		}
		r := ps.res
		d := Delivery{
			EventID:    pe.ev.ID,
			LinkID:     ps.link.ID,
			Attempts:   r.Attempts,
			HTTPStatus: r.Status,
			Latency:    r.Latency,
		}
		if r.Err != nil {
			d.LastError = clipString(r.Err.Error())
		}
		switch r.Class {
		case PushDelivered:
			d.Status, d.DeliveredAt = DeliveryDelivered, ps.end
			delivered = true
			p.problems.delivered()
			p.c.Metrics.DeliveryLatency.Observe(r.Latency.Seconds())
			if !pe.ev.Time.IsZero() {
				p.c.Metrics.CommitToDelivery.Observe(ps.end.Sub(pe.ev.Time).Seconds())
			}
		case PushRetryable:
			d.Status = DeliveryRetry
			p.problems.failure(r, pe.ev.ID, ps.link.ID)
			if retry == nil || r.RetryAfter > retry.res.RetryAfter {
				retry = ps
			}
		default:
			d.Status = DeliveryRejected
			p.problems.failure(r, pe.ev.ID, ps.link.ID)
			if rejected == nil {
				rejected = ps
			}
		}
		*log = append(*log, d)
	}
	switch {
	case retry != nil:
		delay := p.redeliveryDelay(m.ReceiveCount)
		delay = max(delay, retry.res.RetryAfter)
		return Result{Action: Retry, Result: ResultRetry, Delay: delay,
			Reason: fmt.Sprintf("link %d: %v", retry.link.ID, retry.res.Err)}
	case busy != nil:
		// Another receive is pushing this event to that link; once it
		// recorded the outcome, the redelivered message finds it.
		return Result{Action: Retry, Result: ResultRetry, Delay: p.redeliveryDelay(m.ReceiveCount),
			Reason: fmt.Sprintf("link %d: event %s is being pushed by another receive", busy.link.ID, pe.ev.ID)}
	case rejected != nil:
		return Result{Action: DeadLetter, Result: ResultDLQ, Code: CodeKobotRejected,
			Reason: fmt.Sprintf("kobot rejected event %s for link %d (account %s): %v",
				pe.ev.ID, rejected.link.ID, clipString(rejected.link.Account), rejected.res.Err)}
	case delivered:
		return Result{Action: Delete, Result: ResultDelivered}
	default:
		return Result{Action: Delete, Result: ResultDuplicate}
	}
}

// ClaimLeaseFor is the claim lease for a Kobot client that makes attempts
// pushes of at most timeout each with at most retryMax between them: the
// longest a push can take plus a margin for the delivery log write.
func ClaimLeaseFor(attempts int, timeout, retryMax time.Duration) time.Duration {
	return time.Duration(max(attempts, 1))*(timeout+retryMax) + 10*time.Second
}

// redeliveryDelay is base·2^(receives-1), capped.
func (p *Processor) redeliveryDelay(receives int) time.Duration {
	base := p.c.RedeliveryBase
	if base <= 0 {
		return 0
	}
	d := base << min(max(receives-1, 0), 20)
	if d <= 0 || d > maxRedeliveryDelay {
		d = max(maxRedeliveryDelay, base)
	}
	return d
}

func deadLetter(err error) Result {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return Result{Action: DeadLetter, Result: ResultDLQ, Code: ie.Code, Reason: ie.Reason}
	}
	return Result{Action: DeadLetter, Result: ResultDLQ, Code: CodeInvalidJSON, Reason: err.Error()}
}

// SortDeliveries orders rows by key so concurrent batch writes take row
// locks in the same order.
func SortDeliveries(ds []Delivery) {
	slices.SortFunc(ds, func(a, b Delivery) int {
		return cmp.Or(cmp.Compare(a.EventID, b.EventID), cmp.Compare(a.LinkID, b.LinkID))
	})
}
