package s3_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/s3"
	"github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// awsEnv makes the default AWS chain find the emulator's test credentials
// and nothing else.
func awsEnv(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": dir + "/config", "AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

// event builds an event of public.job_postings whose SNS size (body plus
// attributes, connector.Event.Size) is exactly size bytes; its data's
// description repeats fill (a multibyte character makes the body longer in
// bytes than in characters).
func event(id, key string, size int, fill string) *connector.Event {
	e := &connector.Event{
		ID: id, Table: "public.job_postings", Op: connector.OpInsert, Type: "baitoru.job_postings.insert", Key: key,
		Attributes: []connector.Attribute{
			{Name: "table", Type: "String", Value: "public.job_postings"},
			{Name: "op", Type: "String", Value: "insert"},
			{Name: "type", Type: "String", Value: "baitoru.job_postings.insert"},
			{Name: "company_id", Type: "Number", Value: "7"},
		},
	}
	head := fmt.Sprintf(`{"specversion":"1.0","id":%q,"data":{"description":"`, id)
	pad := size - e.Size() - len(head) - 3
	var b strings.Builder
	b.WriteString(head)
	for b.Len()+len(fill) <= len(head)+pad {
		b.WriteString(fill)
	}
	b.WriteString(strings.Repeat("x", len(head)+pad-b.Len()))
	b.WriteString(`"}}`)
	e.Body = []byte(b.String())
	if e.Size() != size {
		panic(fmt.Sprintf("built %d bytes, want %d", e.Size(), size))
	}
	return e
}

var nameSeq atomic.Int64

// rig is a bucket, a topic with a raw-delivery queue, and a ClaimCheck in
// front of an SNS publisher, through clients built as the connector
// builds them.
type rig struct {
	emu           *testenv.Emulator
	bucket        string
	queueURL      string
	store         *s3.Store
	api           *flakyAPI
	pub           *connector.ClaimCheck
	retries       *retries
	offloads      *offloads
	topicARN      string
	threshold     int
	largePayloads connector.LargePayloads
}

func newRig(t *testing.T, fifo bool) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (fauxqs emulator)")
	}
	awsEnv(t)
	r := &rig{emu: testenv.Emu(t), retries: &retries{}, offloads: &offloads{}}
	ctx := ctxT(t, 30*time.Second)
	n := nameSeq.Add(1)
	name := fmt.Sprintf("s3-test-%d-%d", os.Getpid(), n)
	r.bucket = fmt.Sprintf("large-%d-%d", os.Getpid(), n)
	if err := r.emu.CreateBucket(ctx, r.bucket); err != nil {
		t.Fatal(err)
	}
	if fifo {
		name += ".fifo"
	}
	var err error
	if r.topicARN, err = r.emu.CreateTopic(ctx, name); err != nil {
		t.Fatal(err)
	}
	var queueARN string
	if r.queueURL, queueARN, err = r.emu.CreateQueue(ctx, name, testenv.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.emu.Subscribe(ctx, r.topicARN, queueARN, true); err != nil {
		t.Fatal(err)
	}
	s3c, err := s3.NewClient(ctx, "us-east-1", r.emu.Endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.api = &flakyAPI{API: s3c}
	r.store = s3.New(r.api, s3.Options{RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Observer: r.retries}, nil)
	snsc, err := sns.NewClient(ctx, "us-east-1", r.emu.Endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := sns.New(snsc, sns.Options{DefaultTopic: r.topicARN, RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}, nil)
	r.largePayloads = connector.LargePayloads{Bucket: r.bucket, Prefix: "baitoru-cdc/baitoru_cdc/", Threshold: 262144}
	r.pub = connector.NewClaimCheck(p, r.store, []*connector.Mapping{{Table: "public.job_postings", LargePayloads: &r.largePayloads}}, r.offloads)
	return r
}

// flakyAPI fails the next n PutObject calls with code before they reach
// S3, and counts the calls.
type flakyAPI struct {
	s3.API
	mu    sync.Mutex
	fail  int
	code  string
	calls int
	keys  []string
}

func (f *flakyAPI) failNext(n int, code string) {
	f.mu.Lock()
	f.fail, f.code = n, code
	f.mu.Unlock()
}

func (f *flakyAPI) PutObject(ctx context.Context, in *awss3.PutObjectInput, o ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	f.mu.Lock()
	f.calls++
	f.keys = append(f.keys, aws.ToString(in.Key))
	fail := f.fail > 0
	if fail {
		f.fail--
	}
	code := f.code
	f.mu.Unlock()
	if fail {
		return nil, &smithy.GenericAPIError{Code: code, Message: "injected by the test", Fault: smithy.FaultServer}
	}
	return f.API.PutObject(ctx, in, o...)
}

type retries struct {
	mu    sync.Mutex
	calls []string
}

func (r *retries) Retried(topic, code string, entries int) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("%s %s %d", topic, code, entries))
	r.mu.Unlock()
}

type offloads struct {
	mu    sync.Mutex
	bytes map[string]int
}

func (o *offloads) Offloaded(table string, n int) {
	o.mu.Lock()
	if o.bytes == nil {
		o.bytes = map[string]int{}
	}
	o.bytes[table] += n
	o.mu.Unlock()
}

func attrs(m sqstypes.Message) map[string]string {
	out := map[string]string{}
	for k, v := range m.MessageAttributes {
		out[k] = aws.ToString(v.DataType) + ":" + aws.ToString(v.StringValue)
	}
	return out
}

// TestClaimCheck publishes events around the threshold through the
// emulator: what a subscriber's raw-delivery queue receives, and what is
// in the bucket.
func TestClaimCheck(t *testing.T) {
	r := newRig(t, false)
	ctx := ctxT(t, 60*time.Second)
	evs := []*connector.Event{
		event("0/16B3748-1", "1", 262144, "x"),         // at the limit: SNS takes it as it is
		event("0/16B3748-2", "2", 262145, "x"),         // one byte over: through S3
		event("0/16B3748-3", "3", 300_000, "日本語の求人票 "), // multibyte: the size is in bytes
		event("0/16B3748-4", "4", 1024, "x"),
	}
	evs[3].Table = "public.applications" // a table without large_payloads
	if err := r.pub.Publish(ctx, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ms, err := r.emu.ReceiveAll(ctx, r.queueURL, len(evs), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(evs) {
		t.Fatalf("received %d messages, want %d", len(ms), len(evs))
	}
	byID := map[string]sqstypes.Message{}
	for _, m := range ms {
		body := aws.ToString(m.Body)
		if s3pointer.IsPointer([]byte(body)) {
			p, err := s3pointer.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			byID[strings.TrimPrefix(p.Key, r.largePayloads.Prefix)] = m
			continue
		}
		byID[body[strings.Index(body, `"id":"`)+6:][:11]] = m
	}
	for _, ev := range evs {
		m, ok := byID[ev.ID]
		if !ok {
			t.Fatalf("no message for event %s", ev.ID)
		}
		got := attrs(m)
		if ev.Size() <= 262144 {
			if aws.ToString(m.Body) != string(ev.Body) {
				t.Errorf("event %s (%d bytes): body changed", ev.ID, ev.Size())
			}
			if _, ok := got[s3pointer.SizeAttribute]; ok {
				t.Errorf("event %s (%d bytes) has %s", ev.ID, ev.Size(), s3pointer.SizeAttribute)
			}
			continue
		}
		key := "baitoru-cdc/baitoru_cdc/" + ev.ID
		want := `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"` + r.bucket + `","s3Key":"` + key + `"}]`
		if aws.ToString(m.Body) != want {
			t.Errorf("event %s: body\n %s\nwant\n %s", ev.ID, aws.ToString(m.Body), want)
		}
		wantAttrs := map[string]string{s3pointer.SizeAttribute: "Number:" + strconv.Itoa(len(ev.Body))}
		for _, a := range ev.Attributes {
			wantAttrs[a.Name] = a.Type + ":" + a.Value
		}
		if fmt.Sprint(got) != fmt.Sprint(wantAttrs) {
			t.Errorf("event %s: attributes\n %v\nwant\n %v", ev.ID, got, wantAttrs)
		}
		obj, err := r.emu.GetObject(ctx, r.bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(obj) != string(ev.Body) {
			t.Errorf("event %s: the object is not the event (%d bytes, want %d)", ev.ID, len(obj), len(ev.Body))
		}
	}
	// The multibyte event's size attribute counts bytes, not characters.
	if n := len([]rune(string(evs[2].Body))); n == len(evs[2].Body) {
		t.Fatalf("event 3 has no multibyte characters (%d)", n)
	}
	if got := r.offloads.bytes["public.job_postings"]; got != len(evs[1].Body)+len(evs[2].Body) {
		t.Errorf("offloaded %d bytes, want %d", got, len(evs[1].Body)+len(evs[2].Body))
	}
}

// TestClaimCheckRetry: S3 failures that retrying fixes are retried with
// the same key; a re-sent event overwrites its own object.
func TestClaimCheckRetry(t *testing.T) {
	r := newRig(t, true)
	ctx := ctxT(t, 60*time.Second)
	ev := event("0/2A0-7", "7", 400_000, "y")
	r.api.failNext(2, "SlowDown")
	if err := r.pub.Publish(ctx, []*connector.Event{ev}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if want := []string{"s3://" + r.bucket + " SlowDown 1", "s3://" + r.bucket + " SlowDown 1"}; !slices.Equal(r.retries.calls, want) {
		t.Errorf("retries observed %q, want %q", r.retries.calls, want)
	}
	// The re-send after a restart: same id, same key.
	if err := r.pub.Publish(ctx, []*connector.Event{ev}); err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	key := "baitoru-cdc/baitoru_cdc/0/2A0-7"
	if want := []string{key, key, key, key}; !slices.Equal(r.api.keys, want) {
		t.Errorf("PutObject keys %q, want %q", r.api.keys, want)
	}
	keys, err := r.emu.ListObjects(ctx, r.bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{key}) {
		t.Errorf("bucket holds %q, want only %s", keys, key)
	}
	// FIFO deduplication by event id still applies to the pointer.
	ms, err := r.emu.ReceiveAll(ctx, r.queueURL, 0, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Errorf("FIFO queue received %d messages for one event sent twice, want 1", len(ms))
	}
}

// TestClaimCheckPermanent: an S3 error retrying cannot fix stops the batch
// with the bucket, key, table and event id named, and publishes nothing.
func TestClaimCheckPermanent(t *testing.T) {
	r := newRig(t, false)
	ctx := ctxT(t, 60*time.Second)
	tables := []*connector.Mapping{{Table: "public.job_postings", LargePayloads: &connector.LargePayloads{Bucket: "no-such-bucket-" + r.bucket, Prefix: "p/", Threshold: 262144}}}
	snsc, err := sns.NewClient(ctx, "us-east-1", r.emu.Endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := connector.NewClaimCheck(sns.New(snsc, sns.Options{DefaultTopic: r.topicARN}, nil), r.store, tables, nil)
	evs := []*connector.Event{event("0/3B0-1", "1", 1000, "x"), event("0/3B0-2", "2", 270_000, "x")}
	err = pub.Publish(ctx, evs)
	if !errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("Publish: %v, want a permanent error", err)
	}
	for _, want := range []string{"event 0/3B0-2", "public.job_postings", "(key 2)", "s3://no-such-bucket-" + r.bucket + "/p/0/3B0-2", "NoSuchBucket", "the bucket does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	ms, err := r.emu.ReceiveAll(ctx, r.queueURL, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 0 {
		t.Errorf("%d messages published from a batch that failed", len(ms))
	}
}

// TestClaimCheckSNSFails: the object is written but SNS refuses the
// pointer: the batch is not accepted (the event is not acknowledged).
func TestClaimCheckSNSFails(t *testing.T) {
	r := newRig(t, false)
	ctx := ctxT(t, 60*time.Second)
	snsc, err := sns.NewClient(ctx, "us-east-1", r.emu.Endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	missing := r.topicARN + "-missing"
	pub := connector.NewClaimCheck(sns.New(snsc, sns.Options{DefaultTopic: missing}, nil), r.store,
		[]*connector.Mapping{{Table: "public.job_postings", LargePayloads: &r.largePayloads}}, nil)
	err = pub.Publish(ctx, []*connector.Event{event("0/4C0-1", "1", 300_000, "x")})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Publish: %v, want SNS's permanent error naming the topic", err)
	}
}

// TestProbe: check's write probe.
func TestProbe(t *testing.T) {
	r := newRig(t, false)
	ctx := ctxT(t, 30*time.Second)
	if err := r.store.Probe(ctx, r.bucket, "baitoru-cdc/", 10*time.Second); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, err := r.emu.GetObject(ctx, r.bucket, "baitoru-cdc/"+s3.ProbeKey); err != nil {
		t.Fatal(err)
	}
	err := r.store.Probe(ctx, "missing-"+r.bucket, "", 10*time.Second)
	if !errors.Is(err, s3.ErrProbe) || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("Probe of a missing bucket: %v", err)
	}
}
