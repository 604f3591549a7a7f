package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	dto "github.com/prometheus/client_model/go"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/lambda"
	"github.com/baitoru/baitoru-cdc/sink/service"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	token  = "a-links-api-token-for-tests"
)

func event(id, company string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"baitoru/baitoru","type":"baitoru.applications.insert",` +
		`"time":"2026-11-25T03:00:00Z","table":"public.applications","op":"insert","data":{"company_id":` + company + `}}`
}

// kobotStub is Kobot: it verifies each push's signature and answers 204,
// except 503 for account kobot-8 and 422 for account kobot-9.
func kobotStub(t *testing.T) *kobottest.Receiver {
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	rv := kobottest.New(kobottest.Options{Secret: key})
	rv.Reject("kobot-8", http.StatusServiceUnavailable)
	rv.Reject("kobot-9", http.StatusUnprocessableEntity)
	if err := rv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rv.Close()
		if bad := rv.Bad(); len(bad) > 0 {
			t.Errorf("Kobot refused pushes: %v", bad)
		}
	})
	return rv
}

// TestBuildForLambda builds the parts the Lambda function's two handlers
// use, from configuration alone (the SQS client too, from sink.sqs and the
// default credential chain), and checks that they are the sink's: links
// started through BuildAPI's handler are found by the next batch, pushes
// are signed, Kobot's answers and the results are counted in the metrics, a
// retry carries the redelivery delay, a rejection reaches the DLQ.
func TestBuildForLambda(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SQS emulator); run without -short")
	}
	ctx := t.Context()
	emu := testenv.Emu(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	queueURL, _, err := emu.CreateQueue(ctx, "build-lambda-q", testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dlqURL, _, err := emu.CreateQueue(ctx, "build-lambda-dlq", testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Sink{
		DSN: testenv.PG(t).NewDatabase(t),
		SQS: config.SinkSQS{Region: emu.Region, Endpoint: emu.Endpoint, QueueURL: queueURL, DLQURL: dlqURL,
			Concurrency: 1, BatchSize: 10, VisibilityTimeout: 30 * time.Second},
		S3: config.SinkS3{Region: emu.Region, Endpoint: emu.Endpoint},
		Kobot: config.Kobot{Endpoint: kobotStub(t).URL(), Secret: secret, Timeout: 5 * time.Second, MaxAttempts: 2,
			Retry: config.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}},
		API:   config.API{Listen: "127.0.0.1:0", Token: token},
		Links: []config.LinkKey{{Table: "public.applications", Field: "company_id"}},
	}

	// The links-api handler: start links, and answer unknown paths in JSON.
	api, err := service.BuildAPI(ctx, cfg, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	apiSrv := httptest.NewServer(api.Handler)
	defer apiSrv.Close()
	for _, k := range []string{"7", "8", "9"} {
		status, body := call(t, apiSrv.URL+"/v1/links", http.MethodPost, `{"kobot_account":"kobot-`+k+`","link_key":"`+k+`"}`)
		if status != http.StatusCreated {
			t.Fatalf("start link %s: %d %s", k, status, body)
		}
	}
	if status, body := call(t, apiSrv.URL+"/nope", http.MethodGet, ""); status != http.StatusNotFound || !json.Valid([]byte(body)) {
		t.Errorf("unknown path: %d %s", status, body)
	}

	// The SQS handler: the delivery core reading links per batch.
	p, err := service.Build(ctx, cfg, service.Options{Links: service.QueriedLinks})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Cache != nil {
		t.Error("QueriedLinks built a link cache")
	}
	res, err := p.Processor.Process(ctx, []sink.Message{{ID: "m-503", Body: []byte(event("0/2-1", "8")), ReceiveCount: 2}})
	if err != nil || len(res) != 1 || res[0].Action != sink.Retry || res[0].Delay != 60*time.Second {
		t.Fatalf("a retryable push: %+v %v, want a retry after 60s (visibility 30s, second receive)", res, err)
	}
	// An event stored in S3 (too large for SNS): the message is a pointer
	// with the size attribute, as Lambda hands it over.
	stored := event("0/1-4", "7")
	if err := emu.CreateBucket(ctx, "build-lambda-large"); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.S3().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("build-lambda-large"), Key: aws.String("cdc/0/1-4"), Body: strings.NewReader(stored)}); err != nil {
		t.Fatal(err)
	}
	size := strconv.Itoa(len(stored))
	h := lambda.New(p.Processor, p.DLQ, nil)
	resp, err := h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "m-s3", Body: string(s3pointer.Encode(s3pointer.Pointer{Bucket: "build-lambda-large", Key: "cdc/0/1-4"})),
			Attributes:        map[string]string{"ApproximateReceiveCount": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{s3pointer.SizeAttribute: {DataType: "Number", StringValue: &size}}},
		{MessageId: "m-linked", Body: event("0/1-1", "7"), Attributes: map[string]string{"ApproximateReceiveCount": "1"}},
		{MessageId: "m-unlinked", Body: event("0/1-2", "100"), Attributes: map[string]string{"ApproximateReceiveCount": "1"}},
		{MessageId: "m-422", Body: event("0/1-3", "9"), Attributes: map[string]string{"ApproximateReceiveCount": "1"}},
	}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("handle: %+v %v", resp, err)
	}
	dead, err := emu.ReceiveAll(ctx, dlqURL, 1, 10*time.Second)
	if err != nil || len(dead) != 1 || !strings.Contains(*dead[0].Body, `"0/1-3"`) {
		t.Fatalf("DLQ holds %d messages (%v), want the rejected one", len(dead), err)
	}

	for _, c := range []struct {
		metric, label, value string
		want                 float64
	}{
		{"baitoru_cdc_sink_deliveries_total", "result", "delivered", 2},
		{"baitoru_cdc_sink_events_read_from_s3_total", "", "", 1},
		{"baitoru_cdc_sink_deliveries_total", "result", "unlinked", 1},
		{"baitoru_cdc_sink_deliveries_total", "result", "dlq", 1},
		{"baitoru_cdc_sink_deliveries_total", "result", "retry", 1},
		{"baitoru_cdc_sink_kobot_requests_total", "class", "2xx", 2},
		{"baitoru_cdc_sink_kobot_requests_total", "class", "5xx", 2},
		{"baitoru_cdc_sink_kobot_requests_total", "class", "4xx", 1},
	} {
		if got := counter(t, p, c.metric, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.metric, c.label, c.value, got, c.want)
		}
	}
}

// TestBuildCachedLinks: the server's lookup reads a cache that is empty
// until the watcher loads it, so no batch runs on missing links.
func TestBuildCachedLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL); run without -short")
	}
	ctx := t.Context()
	emu := testenv.Emu(t)
	cfg := config.Sink{
		DSN:   testenv.PG(t).NewDatabase(t),
		SQS:   config.SinkSQS{Region: emu.Region, Endpoint: emu.Endpoint, QueueURL: emu.Endpoint + "/000000000000/q"},
		S3:    config.SinkS3{Region: emu.Region, Endpoint: emu.Endpoint},
		Kobot: config.Kobot{Endpoint: kobotStub(t).URL(), Secret: secret, MaxAttempts: 1},
		Links: []config.LinkKey{{Table: "public.applications", Field: "company_id"}},
	}
	p, err := service.Build(ctx, cfg, service.Options{SQS: emu.SQS()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Cache == nil {
		t.Fatal("CachedLinks built no cache")
	}
	msg := []sink.Message{{ID: "m", Body: []byte(event("0/1-1", "7")), ReceiveCount: 1}}
	if _, err := p.Processor.Process(ctx, msg); !errors.Is(err, sink.ErrLinksNotSynced) {
		t.Fatalf("before the cache is loaded: %v", err)
	}
	if _, _, err := p.Store.StartLink(ctx, "kobot-7", "7"); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Store.WatchLinks(wctx, p.Cache, nil) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !p.Cache.Synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cache was not loaded within 10s")
		}
	}
	res, err := p.Processor.Process(ctx, msg)
	if err != nil || res[0].Result != sink.ResultDelivered {
		t.Fatalf("after the cache is loaded: %+v %v", res, err)
	}
}

func TestBuildRefusesIncompleteConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config.Sink
		want string
	}{
		{"no dsn", config.Sink{SQS: config.SinkSQS{QueueURL: "http://q"}}, "sink.dsn"},
		{"no queue", config.Sink{DSN: "postgres://x/y"}, "sink.sqs.queue_url"},
		{"bad secret", config.Sink{DSN: "postgres://x/y", SQS: config.SinkSQS{QueueURL: "http://q"},
			Kobot: config.Kobot{Endpoint: "http://k", Secret: "nope"}}, "kobot secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := service.Build(t.Context(), tc.cfg, service.Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := service.BuildAPI(t.Context(), config.Sink{DSN: "postgres://x/y"}, service.Options{}); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("BuildAPI without a token = %v", err)
	}
}

func call(t *testing.T, url, method, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// counter reads one series of a counter from the parts' registry.
func counter(t *testing.T, p *service.Parts, name, label, value string) float64 {
	t.Helper()
	mfs, err := p.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if has(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func has(m *dto.Metric, label, value string) bool {
	if label == "" {
		return true // a counter without labels
	}
	for _, l := range m.GetLabel() {
		if l.GetName() == label && l.GetValue() == value {
			return true
		}
	}
	return false
}
