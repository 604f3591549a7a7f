package sns_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/sns"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/sns")

const (
	stdTopic  = "arn:aws:sns:us-east-1:000000000000:baitoru-events"
	fifoTopic = "arn:aws:sns:us-east-1:000000000000:baitoru-events.fifo"
	otherStd  = "arn:aws:sns:us-east-1:000000000000:other"
)

// event returns an event of exactly size bytes as SNS counts them: the
// body is padded around the attributes table/op/type.
func event(id, topic, key string, size int) *connector.Event {
	e := &connector.Event{
		ID: id, Table: "public.applications", Op: connector.OpInsert,
		Type: "baitoru.applications.insert", Topic: topic, Key: key,
		Attributes: []connector.Attribute{
			{Name: "table", Type: "String", Value: "public.applications"},
			{Name: "op", Type: "String", Value: "insert"},
			{Name: "type", Type: "String", Value: "baitoru.applications.insert"},
		},
	}
	head := fmt.Sprintf(`{"id":%q,"pad":"`, id)
	pad := size - e.Size() - len(head) - 2
	if pad < 0 {
		panic(fmt.Sprintf("event size %d too small", size))
	}
	e.Body = []byte(head + strings.Repeat("x", pad) + `"}`)
	if e.Size() != size {
		panic("event size arithmetic")
	}
	return e
}

func fastOpts(o sns.Options) sns.Options {
	if o.RetryInitial == 0 {
		o.RetryInitial = time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 10 * time.Millisecond
	}
	return o
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// idOf extracts the event id from a body built by event.
func idOf(t *testing.T, body string) string {
	var v struct{ ID string }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return v.ID
}

// TestSplit checks how events are grouped by topic and split into calls
// by entry count and total size, against splits worked out by hand.
func TestSplit(t *testing.T) {
	type call struct {
		topic string
		ids   string // event ids of the call, space separated
	}
	n := func(prefix string, from, to int) string {
		var s []string
		for i := from; i <= to; i++ {
			s = append(s, fmt.Sprintf("%s%d", prefix, i))
		}
		return strings.Join(s, " ")
	}
	cases := []struct {
		name   string
		events []*connector.Event
		want   []call
	}{
		{"ten small in one call", seq("e", stdTopic, 10, 300), []call{{stdTopic, n("e", 0, 9)}}},
		{"25 small in 10+10+5", seq("e", stdTopic, 25, 300), []call{
			{stdTopic, n("e", 0, 9)}, {stdTopic, n("e", 10, 19)}, {stdTopic, n("e", 20, 24)}}},
		{"three of 100000 bytes in 2+1", seq("e", stdTopic, 3, 100000), []call{
			{stdTopic, "e0 e1"}, {stdTopic, "e2"}}},
		{"six of 50000 bytes in 5+1 (bytes before count)", seq("e", stdTopic, 6, 50000), []call{
			{stdTopic, n("e", 0, 4)}, {stdTopic, "e5"}}},
		{"an event of exactly the limit goes alone", []*connector.Event{
			event("a", stdTopic, "", 262144), event("b", stdTopic, "", 300), event("c", stdTopic, "", 300)},
			[]call{{stdTopic, "a"}, {stdTopic, "b c"}}},
		{"two halves fill a call", []*connector.Event{
			event("a", stdTopic, "", 131072), event("b", stdTopic, "", 131072), event("c", stdTopic, "", 1000)},
			[]call{{stdTopic, "a b"}, {stdTopic, "c"}}},
		{"half and one byte more do not", []*connector.Event{
			event("a", stdTopic, "", 131072), event("b", stdTopic, "", 131073)},
			[]call{{stdTopic, "a"}, {stdTopic, "b"}}},
		{"large after small", append(seq("s", stdTopic, 5, 300), event("big", stdTopic, "", 262000)),
			[]call{{stdTopic, n("s", 0, 4)}, {stdTopic, "big"}}},
		{"topics interleaved: grouped, order kept", interleave(seq("a", stdTopic, 12, 300), seq("b", otherStd, 12, 300)),
			[]call{{stdTopic, n("a", 0, 9)}, {stdTopic, "a10 a11"}, {otherStd, n("b", 0, 9)}, {otherStd, "b10 b11"}}},
		{"empty topic is the default topic", append(seq("d", "", 3, 300), event("x", otherStd, "", 300), event("d3", stdTopic, "", 300)),
			[]call{{stdTopic, "d0 d1 d2 d3"}, {otherStd, "x"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSNS(t, nil)
			p := sns.New(f.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic}), nil)
			if err := p.Publish(ctxT(t, 10*time.Second), tc.events); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			var got []call
			for _, c := range f.Calls() {
				var ids []string
				for i, e := range c.Entries {
					if e.ID != fmt.Sprint(i) {
						t.Errorf("entry %d of a call has Id %q, want its index", i, e.ID)
					}
					ids = append(ids, idOf(t, e.Message))
				}
				got = append(got, call{c.Topic, strings.Join(ids, " ")})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("calls:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func seq(prefix, topic string, count, size int) []*connector.Event {
	var evs []*connector.Event
	for i := range count {
		evs = append(evs, event(fmt.Sprintf("%s%d", prefix, i), topic, "", size))
	}
	return evs
}

func interleave(a, b []*connector.Event) []*connector.Event {
	var out []*connector.Event
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// TestEntries checks the wire form of entries on FIFO and standard topics
// (group and deduplication ids, attributes), and keeps it in
// testdata/sns/entries/calls.json for review.
func TestEntries(t *testing.T) {
	f := newFakeSNS(t, nil)
	p := sns.New(f.client(t), fastOpts(sns.Options{}), nil)
	withAttr := event("0/16B3748-4", fifoTopic, "7", 300)
	withAttr.Attributes = append(withAttr.Attributes, connector.Attribute{Name: "company_id", Type: "Number", Value: "7"})
	longKey := strings.Repeat("k", 129)
	events := []*connector.Event{
		event("0/16B3748-3", fifoTopic, "7", 300),
		withAttr,
		event("0/16B3748-5", fifoTopic, "", 300), // unkeyed: group is the table
		event("0/16B3748-6", fifoTopic, "東京 1/2", 300), // not printable ASCII: hashed
		event("0/16B3748-7", fifoTopic, longKey, 300),  // too long: hashed
		event("0/16B3748-8", stdTopic, "7", 300),       // standard: no group, no dedup
	}
	if err := p.Publish(ctxT(t, 10*time.Second), events); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 2 || len(calls[0].Entries) != 5 || len(calls[1].Entries) != 1 {
		t.Fatalf("want a FIFO call of 5 and a standard call of 1, got %+v", calls)
	}
	wantGroups := []string{"7", "7", "public.applications", hashID("東京 1/2"), hashID(longKey)}
	for i, e := range calls[0].Entries {
		if e.GroupID != wantGroups[i] {
			t.Errorf("entry %d: MessageGroupId %q, want %q", i, e.GroupID, wantGroups[i])
		}
		if want := events[i].ID; e.DedupID != want {
			t.Errorf("entry %d: MessageDeduplicationId %q, want the event id %q", i, e.DedupID, want)
		}
		if e.Message != string(events[i].Body) {
			t.Errorf("entry %d: message is not the body", i)
		}
		wantAttrs := map[string][2]string{}
		for _, a := range events[i].Attributes {
			wantAttrs[a.Name] = [2]string{a.Type, a.Value}
		}
		if !reflect.DeepEqual(e.Attrs, wantAttrs) {
			t.Errorf("entry %d: attributes %v, want %v", i, e.Attrs, wantAttrs)
		}
	}
	if e := calls[1].Entries[0]; e.GroupID != "" || e.DedupID != "" {
		t.Errorf("standard topic entry has MessageGroupId %q, MessageDeduplicationId %q; want none", e.GroupID, e.DedupID)
	}

	// Golden: the form parameters, bodies elided.
	var golden []map[string]string
	for _, c := range calls {
		m := map[string]string{}
		for k, v := range c.Form {
			if strings.HasSuffix(k, ".Message") {
				v = []string{fmt.Sprintf("<%d bytes>", len(v[0]))}
			}
			m[k] = v[0]
		}
		golden = append(golden, m)
	}
	got, _ := json.MarshalIndent(golden, "", "  ")
	got = append(got, '\n')
	checkGolden(t, filepath.Join("..", "..", "testdata", "sns", "entries", "calls.json"), got)
}

// hashID is the documented replacement of a key SNS would refuse.
func hashID(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256-" + hex.EncodeToString(h[:])
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s:\ngot:\n%s", path, got)
	}
}

// TestRetryFailedEntries: entries failed in a 200 answer without sender
// fault, or throttled, are sent again, alone, in order.
func TestRetryFailedEntries(t *testing.T) {
	f := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
		switch n {
		case 1:
			return fakeAnswer{Fail: map[string]fakeFailure{
				"1": {Code: "InternalError"},
				"3": {Code: "Throttling", SenderFault: true},
				"4": {Code: "InternalError"},
			}}
		case 2:
			return fakeAnswer{Fail: map[string]fakeFailure{"2": {Code: "InternalError"}}}
		}
		return fakeAnswer{}
	})
	var retries atomic.Int64
	p := sns.New(f.client(t), fastOpts(sns.Options{Observer: observerFunc(func(topic, code string, n int) { retries.Add(int64(n)) })}), nil)
	events := seq("e", fifoTopic, 6, 200)
	if err := p.Publish(ctxT(t, 10*time.Second), events); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	calls := f.Calls()
	var got [][]string
	for _, c := range calls {
		var ids []string
		for i, e := range c.Entries {
			ids = append(ids, idOf(t, e.Message))
			if e.ID != fmt.Sprint(i) {
				t.Errorf("retried entry has Id %q, want %d", e.ID, i)
			}
			if e.DedupID != idOf(t, e.Message) {
				t.Errorf("retried entry has MessageDeduplicationId %q", e.DedupID)
			}
		}
		got = append(got, ids)
	}
	want := [][]string{{"e0", "e1", "e2", "e3", "e4", "e5"}, {"e1", "e3", "e4"}, {"e4"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if retries.Load() != 4 {
		t.Errorf("observer saw %d retried entries, want 4", retries.Load())
	}
}

type observerFunc func(topic, code string, entries int)

func (f observerFunc) Retried(topic, code string, entries int) { f(topic, code, entries) }

// TestSenderFaultPermanent: an entry failed by a sender fault stops Publish
// with ErrPermanent naming the event, without retrying.
func TestSenderFaultPermanent(t *testing.T) {
	f := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
		return fakeAnswer{Fail: map[string]fakeFailure{
			"1": {Code: "InternalError"},
			"2": {Code: "InvalidParameter", SenderFault: true},
		}}
	})
	p := sns.New(f.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic}), nil)
	events := []*connector.Event{event("0/A-1", "", "5", 300), event("0/A-2", "", "6", 300), event("0/A-3", "", "7", 300)}
	err := p.Publish(ctxT(t, 10*time.Second), events)
	if !errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("got %v, want ErrPermanent", err)
	}
	for _, s := range []string{"0/A-3", "public.applications", "(key 7)", "InvalidParameter", "injected InvalidParameter", stdTopic} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1 (no retry after a permanent failure)", n)
	}
}

// TestCallErrors: whole-call errors are retried (the whole call) or
// permanent, by kind.
func TestCallErrors(t *testing.T) {
	cases := []struct {
		name      string
		answer    fakeAnswer
		times     int // the first times calls get answer
		permanent bool
		hint      string
	}{
		{"throttling", fakeAnswer{Status: 400, Code: "Throttling", Message: "Rate exceeded"}, 3, false, ""},
		{"throttling exception", fakeAnswer{Status: 400, Code: "ThrottlingException"}, 1, false, ""},
		{"429 too many requests", fakeAnswer{Status: 429, Code: "TooManyRequests"}, 2, false, ""},
		{"KMS throttling", fakeAnswer{Status: 400, Code: "KMSThrottling"}, 1, false, ""},
		{"500 internal error", fakeAnswer{Status: 500, Code: "InternalError"}, 2, false, ""},
		{"503 unknown code", fakeAnswer{Status: 503, Code: "Unavailable"}, 1, false, ""},
		{"dropped connection", fakeAnswer{Drop: true}, 2, false, ""},
		{"hung call", fakeAnswer{Hang: true}, 1, false, ""},
		{"not found", fakeAnswer{Status: 404, Code: "NotFound", Message: "Topic does not exist"}, 1, true, "topic does not exist"},
		{"authorization", fakeAnswer{Status: 403, Code: "AuthorizationError", Message: "not authorized"}, 1, true, "sns:Publish"},
		{"invalid parameter", fakeAnswer{Status: 400, Code: "InvalidParameter", Message: "bad"}, 1, true, "mapping"},
		{"KMS disabled", fakeAnswer{Status: 400, Code: "KMSDisabled"}, 1, true, "KMS key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
				if n <= tc.times {
					return tc.answer
				}
				return fakeAnswer{}
			})
			p := sns.New(f.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic, CallTimeout: 300 * time.Millisecond}), nil)
			events := seq("e", "", 4, 300)
			err := p.Publish(ctxT(t, 20*time.Second), events)
			calls := f.Calls()
			if tc.permanent {
				if !errors.Is(err, connector.ErrPermanent) {
					t.Fatalf("got %v, want ErrPermanent", err)
				}
				if !strings.Contains(err.Error(), tc.hint) || !strings.Contains(err.Error(), tc.answer.Code) {
					t.Errorf("error %q lacks the code %s or the hint %q", err, tc.answer.Code, tc.hint)
				}
				if len(calls) != 1 {
					t.Errorf("%d calls, want 1", len(calls))
				}
				return
			}
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if len(calls) != tc.times+1 {
				t.Fatalf("%d calls, want %d", len(calls), tc.times+1)
			}
			for _, c := range calls {
				if len(c.Entries) != len(events) {
					t.Errorf("a call held %d entries, want the whole batch of %d", len(c.Entries), len(events))
				}
			}
		})
	}
}

// TestCancelStopsRetrying: with SNS throttling forever, Publish returns
// ctx's error once ctx ends, and makes no call after that.
func TestCancelStopsRetrying(t *testing.T) {
	f := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
		return fakeAnswer{Status: 400, Code: "Throttling"}
	})
	p := sns.New(f.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Publish(ctx, seq("e", "", 3, 300))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("got %v, want context.DeadlineExceeded and not permanent", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Publish returned %v after ctx ended", d)
	}
	n := len(f.Calls())
	if n < 3 {
		t.Errorf("only %d calls in 300ms of throttling with 1-10ms backoff", n)
	}
	// One request may have been on the wire when ctx ended and reach the
	// server late (on a loaded machine); a retry loop that went on would
	// keep calling.
	time.Sleep(100 * time.Millisecond)
	m := len(f.Calls())
	if m-n > 1 {
		t.Errorf("%d calls after Publish returned", m-n)
	}
	time.Sleep(200 * time.Millisecond)
	if k := len(f.Calls()); k != m {
		t.Errorf("calls went on after Publish returned: %d, then %d", m, k)
	}

	// Per-entry failures stop the same way.
	f2 := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
		return fakeAnswer{Fail: map[string]fakeFailure{"0": {Code: "InternalError"}}}
	})
	p2 := sns.New(f2.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic}), nil)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := p2.Publish(ctx2, seq("e", "", 3, 300)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("per-entry failures until ctx ends: got %v, want context.DeadlineExceeded", err)
	}
}

// TestOversize: an event over the limit fails the batch before anything
// is sent, with a message an operator can act on.
func TestOversize(t *testing.T) {
	cases := []struct {
		name   string
		events []*connector.Event
		want   string
	}{
		{"alone", []*connector.Event{event("0/16B3748-3", stdTopic, "7", 300123)},
			"event 0/16B3748-3 of public.applications (key 7) is 300123 bytes, over the SNS limit of 262144 bytes; drop large columns from the mapping"},
		{"after a small one, unkeyed", []*connector.Event{event("0/1-1", stdTopic, "", 300), event("0/1-2", stdTopic, "", 262145)},
			"event 0/1-2 of public.applications is 262145 bytes, over the SNS limit of 262144 bytes; drop large columns from the mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSNS(t, nil)
			p := sns.New(f.client(t), fastOpts(sns.Options{}), nil)
			err := p.Publish(ctxT(t, 10*time.Second), tc.events)
			if !errors.Is(err, connector.ErrPermanent) {
				t.Fatalf("got %v, want ErrPermanent", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n %q\ndoes not start with\n %q", err, tc.want)
			}
			if n := len(f.Calls()); n != 0 {
				t.Errorf("%d calls sent; want none", n)
			}
		})
	}
}

// TestNoTopic: an event without topic and no default is permanent.
func TestNoTopic(t *testing.T) {
	f := newFakeSNS(t, nil)
	p := sns.New(f.client(t), fastOpts(sns.Options{}), nil)
	err := p.Publish(ctxT(t, 10*time.Second), []*connector.Event{event("0/1-1", "", "", 300)})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "topic_arn") {
		t.Fatalf("got %v, want ErrPermanent mentioning topic_arn", err)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls sent; want none", n)
	}
}

// TestConcurrentPublish: lanes publish at once through one Publisher while
// SNS fails every entry's first attempt; every event is accepted exactly
// once.
func TestConcurrentPublish(t *testing.T) {
	var mu sync.Mutex
	tried := map[string]bool{}
	accepted := map[string]int{}
	f := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
		mu.Lock()
		defer mu.Unlock()
		fail := map[string]fakeFailure{}
		for _, e := range c.Entries {
			if !tried[e.Message] {
				tried[e.Message] = true
				fail[e.ID] = fakeFailure{Code: "InternalError"}
				continue
			}
			accepted[e.Message]++
		}
		return fakeAnswer{Fail: fail}
	})
	p := sns.New(f.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic}), nil)
	const lanes, batches = 6, 15
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	for l := range lanes {
		wg.Go(func() {
			for b := range batches {
				var evs []*connector.Event
				for i := range 10 {
					topic := ""
					if i%3 == 0 {
						topic = otherStd
					}
					evs = append(evs, event(fmt.Sprintf("%d/%d-%d", l, b, i), topic, "", 300+((l+b+i)%7)*20000))
				}
				if err := p.Publish(ctx, evs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(accepted) != lanes*batches*10 {
		t.Fatalf("%d events accepted, want %d", len(accepted), lanes*batches*10)
	}
	for m, n := range accepted {
		if n != 1 {
			t.Errorf("event %s accepted %d times", idOf(t, m), n)
		}
	}
}

// TestRetryLog: retries are logged at warn with topic, attempt and code,
// never with message bodies.
func TestRetryLog(t *testing.T) {
	f := newFakeSNS(t, func(n int, c fakeCall) fakeAnswer {
		switch n {
		case 1:
			return fakeAnswer{Status: 500, Code: "InternalError", Message: "boom"}
		case 2:
			return fakeAnswer{Fail: map[string]fakeFailure{"1": {Code: "Throttled", SenderFault: true}}}
		}
		return fakeAnswer{}
	})
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := sns.New(f.client(t), fastOpts(sns.Options{DefaultTopic: stdTopic}), log)
	if err := p.Publish(ctxT(t, 10*time.Second), seq("secret-body-", "", 3, 300)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 warn lines, got:\n%s", out)
	}
	for i, want := range [][]string{
		{"level=WARN", "topic=" + stdTopic, "attempt=1", "code=InternalError", "entries=3", "boom"},
		{"level=WARN", "topic=" + stdTopic, "attempt=2", "code=Throttled", "entries=1"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("log line %d lacks %q: %s", i+1, w, lines[i])
			}
		}
	}
	if strings.Contains(out, "secret-body-") || strings.Contains(out, "xxxx") {
		t.Errorf("log holds message bodies:\n%s", out)
	}
}

// TestCheckTopic asks GetTopicAttributes.
func TestCheckTopic(t *testing.T) {
	f := newFakeSNS(t, nil)
	f.topics[stdTopic] = map[string]string{"TopicArn": stdTopic}
	f.topics[fifoTopic] = map[string]string{"TopicArn": fifoTopic, "FifoTopic": "true"}
	p := sns.New(f.client(t), sns.Options{}, nil)
	ctx := ctxT(t, 10*time.Second)
	for arn, want := range map[string]bool{stdTopic: false, fifoTopic: true} {
		fifo, err := p.CheckTopic(ctx, arn)
		if err != nil || fifo != want {
			t.Errorf("CheckTopic(%s) = %v, %v; want %v, nil", arn, fifo, err, want)
		}
	}
	_, err := p.CheckTopic(ctx, otherStd)
	var te *sns.TopicError
	if !errors.Is(err, connector.ErrPermanent) || !errors.As(err, &te) || !strings.Contains(te.Problem, "does not exist") ||
		!strings.Contains(te.Fix, "sns:GetTopicAttributes") || strings.Contains(err.Error(), "permanent error") {
		t.Errorf("CheckTopic(missing) = %v; want a permanent TopicError saying it does not exist, with the fix", err)
	}
	// A FIFO topic whose ARN does not say so: the config would publish to
	// it without a message group.
	odd := "arn:aws:sns:us-east-1:000000000000:odd"
	f.topics[odd] = map[string]string{"TopicArn": odd, "FifoTopic": "true"}
	if _, err := p.CheckTopic(ctx, odd); !errors.Is(err, connector.ErrPermanent) || !errors.As(err, &te) ||
		te.Problem != "is a FIFO topic but the config treats it as a standard topic (ARN suffix .fifo)" {
		t.Errorf("CheckTopic(FIFO topic without .fifo) = %v", err)
	}
}

// TestVerifyTopics: topics that SNS does not answer for are tried again,
// each retry logged with the attempt and the next delay, within a bound;
// a missing topic is not retried.
func TestVerifyTopics(t *testing.T) {
	f := newFakeSNS(t, nil)
	f.topics[stdTopic] = map[string]string{"TopicArn": stdTopic}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	ctx := ctxT(t, 30*time.Second)
	p := sns.New(f.client(t), sns.Options{RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}, log)
	if err := p.VerifyTopics(ctx, []string{stdTopic}, time.Second); err != nil {
		t.Fatalf("VerifyTopics(existing) = %v", err)
	}
	start := time.Now()
	if err := p.VerifyTopics(ctx, []string{stdTopic, otherStd}, 10*time.Second); !errors.Is(err, connector.ErrPermanent) || time.Since(start) > 2*time.Second {
		t.Fatalf("VerifyTopics(missing) = %v after %s; want a permanent error at once", err, time.Since(start))
	}
	if strings.Contains(logBuf.String(), "retrying") {
		t.Fatalf("a missing topic was retried:\n%s", logBuf.String())
	}
	f.srv.Close() // nothing answers
	start = time.Now()
	err := p.VerifyTopics(ctx, []string{stdTopic}, 500*time.Millisecond)
	var te *sns.TopicError
	if !errors.As(err, &te) || !te.Retry || errors.Is(err, connector.ErrPermanent) || time.Since(start) > 5*time.Second {
		t.Fatalf("VerifyTopics(no answer) = %v after %s", err, time.Since(start))
	}
	var attempts []float64
	for _, line := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "sns topic not reachable; retrying" && m["retry_in"] != nil && m["topic"] == stdTopic {
			attempts = append(attempts, m["attempt"].(float64))
		}
	}
	if len(attempts) < 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Fatalf("retries logged with attempts %v:\n%s", attempts, logBuf.String())
	}
}
