package sink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Fakes for a unit test of the Processor's decisions; the integration tests
// in sink_test.go run it against PostgreSQL, the emulator and HTTP.

type fakeLog struct {
	mu        sync.Mutex
	delivered map[DeliveryKey]bool
	busy      map[DeliveryKey]bool // claimed by another receive
	rows      []Delivery
	failWrite bool
	leases    []time.Duration // of each Claim
}

func (f *fakeLog) Claim(_ context.Context, keys []DeliveryKey, lease time.Duration) (map[DeliveryKey]ClaimState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases = append(f.leases, lease)
	out := map[DeliveryKey]ClaimState{}
	for _, k := range keys {
		switch {
		case f.delivered[k]:
			out[k] = ClaimDelivered
		case f.busy[k]:
			out[k] = ClaimBusy
		default:
			out[k] = ClaimOwned
		}
	}
	return out, nil
}

func (f *fakeLog) RecordDeliveries(_ context.Context, ds []Delivery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWrite {
		return errors.New("database down")
	}
	seen := map[DeliveryKey]bool{}
	for _, d := range ds {
		k := DeliveryKey{d.EventID, d.LinkID}
		if seen[k] {
			return errors.New("ON CONFLICT DO UPDATE command cannot affect row a second time")
		}
		seen[k] = true
		if d.Status == DeliveryDelivered {
			f.delivered[k] = true
		}
	}
	f.rows = append(f.rows, ds...)
	return nil
}

type fakePusher struct {
	mu     sync.Mutex
	calls  []PushRequest
	answer func(PushRequest) PushResult
}

func (f *fakePusher) Push(_ context.Context, r PushRequest) PushResult {
	f.mu.Lock()
	f.calls = append(f.calls, r)
	f.mu.Unlock()
	return f.answer(r)
}

func newTestProcessor(t *testing.T, answer func(PushRequest) PushResult) (*Processor, *fakeLog, *fakePusher) {
	t.Helper()
	rules := NewRules([]LinkRule{{Table: "public.applications", Field: "company_id"}})
	cache := NewLinkCache(nil)
	cache.SetAll([]Link{
		{ID: 1, Account: "a", Key: "7", Status: StatusActive},
		{ID: 2, Account: "b", Key: "7", Status: StatusActive},
		{ID: 3, Account: "c", Key: "8", Status: StatusActive},
	})
	log := &fakeLog{delivered: map[DeliveryKey]bool{}}
	snd := &fakePusher{answer: answer}
	p, err := NewProcessor(ProcessorConfig{Rules: rules, Links: cache, Log: log, Pusher: snd, RedeliveryBase: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p, log, snd
}

func msg(id, eventID, company string, receives int) Message {
	return Message{ID: id, ReceiveCount: receives, Body: []byte(`{"specversion":"1.0","id":"` + eventID +
		`","source":"s","type":"baitoru.applications.insert","table":"public.applications","data":{"company_id":` + company + `}}`)}
}

func ok(PushRequest) PushResult {
	return PushResult{PushAttempt: PushAttempt{Class: PushDelivered, Status: 204}, Attempts: 1}
}

func TestProcessDecisions(t *testing.T) {
	p, log, snd := newTestProcessor(t, func(r PushRequest) PushResult {
		switch r.Account {
		case "c": // key 8
			if r.EventID == "e-retry-after" {
				return PushResult{PushAttempt: PushAttempt{Class: PushRetryable, Status: 429, RetryAfter: 2 * time.Minute, Err: errors.New("429")}, Attempts: 1}
			}
			return PushResult{PushAttempt: PushAttempt{Class: PushRetryable, Status: 503, Err: errors.New("503")}, Attempts: 3}
		}
		if r.EventID == "e-rejected" {
			return PushResult{PushAttempt: PushAttempt{Class: PushRejected, Status: 400, Err: errors.New("kobot answered 400")}, Attempts: 1}
		}
		return ok(r)
	})
	res, err := p.Process(t.Context(), []Message{
		msg("m1", "e-1", "7", 1),
		msg("m2", "e-1", "7", 1), // the same event twice in one batch
		msg("m3", "e-unlinked", "99", 1),
		msg("m4", "e-retry", "8", 3),
		msg("m5", "e-rejected", "7", 1),
		{ID: "m6", Body: []byte("garbage")},
		msg("m7", "e-retry-after", "8", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Action: Delete, Result: ResultDelivered},
		{Action: Delete, Result: ResultDuplicate},
		{Action: Delete, Result: ResultUnlinked},
		{Action: Retry, Result: ResultRetry, Delay: 120 * time.Second}, // 30 s · 2^(3-1)
		{Action: DeadLetter, Result: ResultDLQ, Code: CodeKobotRejected},
		{Action: DeadLetter, Result: ResultDLQ, Code: CodeInvalidJSON},
		{Action: Retry, Result: ResultRetry, Delay: 2 * time.Minute}, // Retry-After beats 30 s
	}
	for i, w := range want {
		g := res[i]
		if g.Action != w.Action || g.Result != w.Result || g.Code != w.Code || g.Delay != w.Delay {
			t.Errorf("message %d: got %+v, want %+v", i+1, g, w)
		}
	}
	// e-1 pushed once per link despite two copies; e-rejected to both links.
	n := map[string]int{}
	for _, c := range snd.calls {
		n[c.EventID+"/"+c.Account]++
	}
	if n["e-1/a"] != 1 || n["e-1/b"] != 1 || n["e-rejected/a"] != 1 || n["e-rejected/b"] != 1 || n["e-retry/c"] != 1 {
		t.Fatalf("pushes %v", n)
	}
	if len(log.rows) != 6 {
		t.Fatalf("delivery log rows %+v", log.rows)
	}

	// Redelivery of e-1: nothing pushed, deleted as a duplicate.
	before := len(snd.calls)
	res, _ = p.Process(t.Context(), []Message{msg("m1", "e-1", "7", 2)})
	if res[0].Result != ResultDuplicate || len(snd.calls) != before {
		t.Fatalf("redelivery: %+v, %d new pushes", res[0], len(snd.calls)-before)
	}
}

// TestProcessBusyPairWaits: a pair claimed by another receive (a duplicate
// message on another consumer) is not pushed; the message is left for
// redelivery, and the pairs this receive owns are pushed and recorded.
func TestProcessBusyPairWaits(t *testing.T) {
	p, log, snd := newTestProcessor(t, ok)
	log.busy = map[DeliveryKey]bool{{"e-1", 2}: true}
	res, err := p.Process(t.Context(), []Message{msg("m1", "e-1", "7", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Action != Retry || res[0].Result != ResultRetry || res[0].Delay != 30*time.Second {
		t.Fatalf("got %+v, want a retry after the redelivery delay", res[0])
	}
	if len(snd.calls) != 1 || snd.calls[0].Account != "a" {
		t.Fatalf("pushes %+v, want only account a's", snd.calls)
	}
	// Redelivered once the other receive delivered it: a duplicate.
	log.busy = nil
	log.delivered[DeliveryKey{"e-1", 2}] = true
	res, _ = p.Process(t.Context(), []Message{msg("m1", "e-1", "7", 2)})
	if res[0].Result != ResultDuplicate || len(snd.calls) != 1 {
		t.Fatalf("redelivery: %+v, %d pushes in all", res[0], len(snd.calls))
	}
}

func TestProcessFailuresOfItsDependencies(t *testing.T) {
	p, log, _ := newTestProcessor(t, ok)
	// A failed delivery-log write does not undo pushes that happened.
	log.failWrite = true
	res, err := p.Process(t.Context(), []Message{msg("m1", "e-1", "7", 1)})
	if err != nil || res[0].Action != Delete {
		t.Fatalf("with a failing log write: %+v, %v", res, err)
	}
	// Links that cannot be trusted stop the whole batch.
	p.c.Links.(*LinkCache).Unsync()
	if _, err := p.Process(t.Context(), []Message{msg("m1", "e-2", "7", 1)}); !errors.Is(err, ErrLinksNotSynced) {
		t.Fatalf("unsynced links: %v", err)
	}
}

func TestRedeliveryDelay(t *testing.T) {
	p := &Processor{c: ProcessorConfig{RedeliveryBase: 30 * time.Second}}
	for receives, want := range map[int]time.Duration{
		0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 5: 8 * time.Minute, 6: 15 * time.Minute, 100: 15 * time.Minute,
	} {
		if got := p.redeliveryDelay(receives); got != want {
			t.Errorf("receive %d: %s, want %s", receives, got, want)
		}
	}
	if (&Processor{}).redeliveryDelay(3) != 0 {
		t.Error("no base must leave the queue's visibility timeout")
	}
}

// TestProcessClaimOutlastsRounds: a batch with more pushes than Parallel
// pushes them in rounds, and its claims last a lease per round, so that no
// duplicate receive can claim a pair this batch has yet to push.
func TestProcessClaimOutlastsRounds(t *testing.T) {
	tests := []struct {
		parallel, events int // each event of company 7 has 2 links
		rounds           int
	}{
		{parallel: 32, events: 10, rounds: 1},
		{parallel: 32, events: 16, rounds: 1},
		{parallel: 32, events: 17, rounds: 2},
		{parallel: 4, events: 5, rounds: 3},
	}
	for _, tt := range tests {
		p, log, _ := newTestProcessor(t, ok)
		p.c.Parallel = tt.parallel
		var msgs []Message
		for i := range tt.events {
			msgs = append(msgs, msg("m", "e"+string(rune('a'+i)), "7", 1))
		}
		if _, err := p.Process(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		want := time.Duration(tt.rounds) * p.c.ClaimLease
		if len(log.leases) != 1 || log.leases[0] != want {
			t.Errorf("parallel %d, %d pushes: claim leases %v, want one of %v", tt.parallel, 2*tt.events, log.leases, want)
		}
	}
}
