package sns_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recordingAPI counts the PublishBatch calls that reach the emulator and
// keeps their answers.
type recordingAPI struct {
	sns.API
	mu   sync.Mutex
	ins  []*awssns.PublishBatchInput
	outs []*awssns.PublishBatchOutput
}

func (r *recordingAPI) PublishBatch(ctx context.Context, in *awssns.PublishBatchInput, optFns ...func(*awssns.Options)) (*awssns.PublishBatchOutput, error) {
	out, err := r.API.PublishBatch(ctx, in, optFns...)
	r.mu.Lock()
	r.ins = append(r.ins, in)
	r.outs = append(r.outs, out)
	r.mu.Unlock()
	return out, err
}

func (r *recordingAPI) calls() ([]*awssns.PublishBatchInput, []*awssns.PublishBatchOutput) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*awssns.PublishBatchInput(nil), r.ins...), append([]*awssns.PublishBatchOutput(nil), r.outs...)
}

var nameSeq atomic.Int64

// pipe creates a topic and a raw-delivery queue subscribed to it, with
// unique names (FIFO when fifo), and a Publisher whose SDK client comes
// from sns.NewClient.
func pipe(t *testing.T, fifo bool, opts sns.Options) (emu *testenv.Emulator, p *sns.Publisher, api *recordingAPI, topicARN, queueURL string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (fauxqs emulator)")
	}
	emu = testenv.Emu(t)
	ctx := ctxT(t, 30*time.Second)
	name := fmt.Sprintf("sns-test-%d-%d", os.Getpid(), nameSeq.Add(1))
	if fifo {
		name += ".fifo"
	}
	topicARN, err := emu.CreateTopic(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	queueURL, queueARN, err := emu.CreateQueue(ctx, name, testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Subscribe(ctx, topicARN, queueARN, true); err != nil {
		t.Fatal(err)
	}
	api = &recordingAPI{API: newTestClient(t, emu.Endpoint)}
	opts.DefaultTopic = topicARN
	opts.RetryInitial, opts.RetryMax = 10*time.Millisecond, 100*time.Millisecond
	p = sns.New(api, opts, nil)
	return emu, p, api, topicARN, queueURL
}

// received is a message as the test compares it.
type received struct {
	Body  string
	Attrs map[string][2]string
}

func toReceived(ms []sqstypes.Message) []received {
	var out []received
	for _, m := range ms {
		r := received{Body: aws.ToString(m.Body), Attrs: map[string][2]string{}}
		for k, v := range m.MessageAttributes {
			r.Attrs[k] = [2]string{aws.ToString(v.DataType), aws.ToString(v.StringValue)}
		}
		out = append(out, r)
	}
	return out
}

func wantReceived(evs []*connector.Event) []received {
	var out []received
	for _, e := range evs {
		r := received{Body: string(e.Body), Attrs: map[string][2]string{}}
		for _, a := range e.Attributes {
			r.Attrs[a.Name] = [2]string{a.Type, a.Value}
		}
		out = append(out, r)
	}
	return out
}

func sortByBody(r []received) {
	sort.Slice(r, func(i, j int) bool { return r[i].Body < r[j].Body })
}

// TestEmulatorStandardRaw: a raw-delivery queue on a standard topic
// receives exactly the published bodies and attributes, nothing more.
func TestEmulatorStandardRaw(t *testing.T) {
	emu, p, _, _, queueURL := pipe(t, false, sns.Options{})
	ctx := ctxT(t, 60*time.Second)
	var evs []*connector.Event
	for i := range 3 {
		e := event(fmt.Sprintf("0/16B3748-%d", i+1), "", fmt.Sprint(40+i), 500)
		e.Attributes = append(e.Attributes, connector.Attribute{Name: "company_id", Type: "Number", Value: fmt.Sprint(7 + i)})
		evs = append(evs, e)
	}
	evs[2].Body = []byte(`{"id":"0/16B3748-3","data":{"name":"日本語 \"quoted\" & <tag>","n":1.5e3}}`)
	if err := p.Publish(ctx, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ms, err := emu.ReceiveAll(ctx, queueURL, 0, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, want := toReceived(ms), wantReceived(evs)
	sortByBody(got)
	sortByBody(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("queue received\n %+v\nwant\n %+v", got, want)
	}
}

// TestEmulatorBatchOfTen: ten events are one PublishBatch call, which the
// emulator accepts whole.
func TestEmulatorBatchOfTen(t *testing.T) {
	emu, p, api, _, queueURL := pipe(t, false, sns.Options{})
	ctx := ctxT(t, 60*time.Second)
	evs := seq("0/AA-", "", 10, 2000)
	if err := p.Publish(ctx, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ins, outs := api.calls()
	if len(ins) != 1 || len(ins[0].PublishBatchRequestEntries) != 10 {
		t.Fatalf("%d calls; want one call of 10 entries", len(ins))
	}
	if len(outs[0].Successful) != 10 || len(outs[0].Failed) != 0 {
		t.Fatalf("emulator accepted %d and failed %d entries: %+v", len(outs[0].Successful), len(outs[0].Failed), outs[0].Failed)
	}
	ms, err := emu.ReceiveAll(ctx, queueURL, 10, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, want := toReceived(ms), wantReceived(evs)
	sortByBody(got)
	sortByBody(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("queue received %d messages, want the 10 published", len(got))
	}
}

// TestEmulatorFIFO: FIFO topic to FIFO queue. Publishing the same events
// twice delivers each once (deduplication by event id, '/' included), and
// each message group keeps its order.
func TestEmulatorFIFO(t *testing.T) {
	// At most 9 entries per call: fauxqs 2.4.1 handles the entries of a
	// PublishBatch in the order their form keys appear, and the SDK sorts
	// the keys as strings, so member.10 is delivered before member.2 (real
	// SNS orders by member index). With 10 entries a group's order breaks
	// in the emulator only.
	emu, p, _, _, queueURL := pipe(t, true, sns.Options{MaxBatchEntries: 9})
	ctx := ctxT(t, 60*time.Second)
	var evs []*connector.Event
	for i := range 12 {
		key := []string{"1", "2", "東京 3"}[i%3] // the third group id is hashed
		evs = append(evs, event(fmt.Sprintf("0/16B3748-%d", i+1), "", key, 400))
	}
	if err := p.Publish(ctx, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// The re-send after a crash: same events, other batch boundaries.
	if err := p.Publish(ctx, evs[:5]); err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	if err := p.Publish(ctx, evs[5:]); err != nil {
		t.Fatalf("third Publish: %v", err)
	}
	ms, err := emu.ReceiveAll(ctx, queueURL, 0, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(evs) {
		t.Fatalf("queue received %d messages, want %d (each event once)", len(ms), len(evs))
	}
	byID := map[string]*connector.Event{}
	for _, e := range evs {
		byID[e.ID] = e
	}
	seen := map[string]bool{}
	last := map[string]int{} // group -> index of its last message
	for _, m := range ms {
		id := idOf(t, aws.ToString(m.Body))
		e := byID[id]
		if e == nil || seen[id] {
			t.Fatalf("unexpected or repeated message %s", id)
		}
		seen[id] = true
		if got := m.Attributes["MessageDeduplicationId"]; got != id {
			t.Errorf("message %s: MessageDeduplicationId %q, want the event id", id, got)
		}
		group := m.Attributes["MessageGroupId"]
		wantGroup := e.Key
		if strings.Contains(e.Key, " ") {
			wantGroup = hashID(e.Key)
		}
		if group != wantGroup {
			t.Errorf("message %s: MessageGroupId %q, want %q", id, group, wantGroup)
		}
		var n int
		fmt.Sscanf(id, "0/16B3748-%d", &n)
		if n <= last[group] {
			t.Errorf("group %s: message %d after %d: order lost", group, n, last[group])
		}
		last[group] = n
	}
}

// TestEmulatorSizeLimit: an event of 262,145 bytes is refused by the
// Publisher before anything reaches the emulator; one of exactly 262,144
// bytes (counted as the emulator and SNS count) is accepted and delivered.
func TestEmulatorSizeLimit(t *testing.T) {
	emu, p, api, _, queueURL := pipe(t, false, sns.Options{})
	ctx := ctxT(t, 60*time.Second)
	over := event("0/BIG-1", "", "7", 262145)
	err := p.Publish(ctx, []*connector.Event{over})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "is 262145 bytes, over the SNS limit of 262144 bytes") {
		t.Fatalf("got %v, want our ErrPermanent size error", err)
	}
	if ins, _ := api.calls(); len(ins) != 0 {
		t.Fatalf("%d calls reached the emulator; want none", len(ins))
	}
	exact := event("0/BIG-2", "", "7", 262144)
	if err := p.Publish(ctx, []*connector.Event{exact}); err != nil {
		t.Fatalf("Publish of exactly 262144 bytes: %v", err)
	}
	ms, err := emu.ReceiveAll(ctx, queueURL, 0, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || aws.ToString(ms[0].Body) != string(exact.Body) {
		t.Fatalf("queue received %d messages; want only the 262144-byte one", len(ms))
	}
}

// TestEmulatorCheckTopic: CheckTopic tells standard from FIFO topics and
// reports a missing one as permanent.
func TestEmulatorCheckTopic(t *testing.T) {
	_, p, _, std, _ := pipe(t, false, sns.Options{})
	emu := testenv.Emu(t)
	ctx := ctxT(t, 30*time.Second)
	fifo, err := emu.CreateTopic(ctx, fmt.Sprintf("check-%d-%d.fifo", os.Getpid(), nameSeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	for arn, want := range map[string]bool{std: false, fifo: true} {
		got, err := p.CheckTopic(ctx, arn)
		if err != nil || got != want {
			t.Errorf("CheckTopic(%s) = %v, %v; want %v, nil", arn, got, err, want)
		}
	}
	missing := std[:strings.LastIndex(std, ":")+1] + "no-such-topic-" + fmt.Sprint(nameSeq.Add(1))
	if _, err := p.CheckTopic(ctx, missing); !errors.Is(err, connector.ErrPermanent) {
		t.Errorf("CheckTopic(missing) = %v; want ErrPermanent", err)
	}
	// Publishing to it is permanent too.
	err = p.Publish(ctx, []*connector.Event{event("0/1-1", missing, "", 300)})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Publish to a missing topic = %v; want ErrPermanent with a hint", err)
	}
}
