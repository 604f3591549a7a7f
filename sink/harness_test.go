package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/service"
)

const (
	testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testToken  = "test-token-0123456789abcdef"
)

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SQS emulator); run without -short")
	}
}

// newKobot starts the Kobot stand-in: it verifies each push with the
// integration guide's verifyWebhook, records it, and answers 204 unless a
// test sets a fault.
func newKobot(t *testing.T) *kobottest.Receiver {
	k := kobottest.New(kobottest.Options{Record: true, Verify: func(h http.Header, body []byte, now time.Time) error {
		return verifyWebhook(testSecret, h, body, now)
	}})
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// downURL returns a URL where nothing listens.
func downURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/webhooks"
}

type harnessOptions struct {
	MaxReceiveCount int           // default 3
	Visibility      time.Duration // default 1s
	MaxAttempts     int           // default 3
	KobotURL        string        // default: the receiver
	KobotTimeout    time.Duration // default 2s
	Secret          string        // the sink's signing secret; default testSecret (the receiver's)
	QueueURL        string        // default: a new queue
	Concurrency     int           // default 2
	// NotReady: the queue does not answer; wait only for the API.
	NotReady bool
}

// harness is a running sink with its own database, queue, DLQ and Kobot.
type harness struct {
	t        *testing.T
	emu      *testenv.Emulator
	dsn      string
	queueURL string
	queueARN string
	dlqURL   string
	kobot    *kobottest.Receiver
	sink     *service.Sink
	reg      *prometheus.Registry
	api      string
	logs     *logBuffer // every line the sink logged
	cancel   context.CancelFunc
	done     chan error
}

var queueSeq atomic.Int64

var unsafeQueueChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func queueName(t *testing.T, suffix string) string {
	n := unsafeQueueChars.ReplaceAllString(t.Name(), "-")
	if len(n) > 50 {
		n = n[len(n)-50:]
	}
	return fmt.Sprintf("%s-%d-%s", n, queueSeq.Add(1), suffix)
}

func startHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	if o.MaxReceiveCount == 0 {
		o.MaxReceiveCount = 3
	}
	if o.Visibility == 0 {
		o.Visibility = time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.Concurrency == 0 {
		o.Concurrency = 2
	}
	if o.KobotTimeout == 0 {
		o.KobotTimeout = 2 * time.Second
	}
	if o.Secret == "" {
		o.Secret = testSecret
	}
	h := &harness{t: t, emu: testenv.Emu(t), dsn: testenv.PG(t).NewDatabase(t), kobot: newKobot(t)}
	ctx := t.Context()
	var dlqARN string
	var err error
	if h.dlqURL, dlqARN, err = h.emu.CreateQueue(ctx, queueName(t, "dlq"), testenv.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if h.queueURL, h.queueARN, err = h.emu.CreateQueue(ctx, queueName(t, "q"), testenv.QueueOptions{
		DLQArn: dlqARN, MaxReceiveCount: o.MaxReceiveCount, VisibilityTimeout: o.Visibility,
	}); err != nil {
		t.Fatal(err)
	}
	queue := h.queueURL
	if o.QueueURL != "" {
		queue = o.QueueURL
	}
	kobotURL := h.kobot.URL()
	if o.KobotURL != "" {
		kobotURL = o.KobotURL
	}
	cfg := config.Sink{
		DSN: h.dsn,
		SQS: config.SinkSQS{
			Region: h.emu.Region, Endpoint: h.emu.Endpoint, QueueURL: queue, DLQURL: h.dlqURL,
			Concurrency: o.Concurrency, BatchSize: 10, WaitTime: time.Second, VisibilityTimeout: o.Visibility,
		},
		Kobot: config.Kobot{
			Endpoint: kobotURL, Secret: o.Secret, Timeout: o.KobotTimeout, MaxAttempts: o.MaxAttempts,
			Retry: config.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		},
		S3:    config.SinkS3{Region: h.emu.Region, Endpoint: h.emu.Endpoint, MaxEventBytes: 1 << 20},
		API:   config.API{Listen: "127.0.0.1:0", Token: testToken},
		Links: []config.LinkKey{{Table: "public.applications", Field: "company_id"}},
	}
	h.reg = prometheus.NewRegistry()
	h.logs = &logBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&testWriter{t: t}, h.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.sink, err = service.New(cfg, service.Options{Logger: log, Registry: h.reg, SQS: h.emu.SQS(), S3: h.emu.S3()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.sink.Run(runCtx) }()
	t.Cleanup(func() { h.stop() })
	wait, what := h.sink.Ready(), "ready"
	if o.NotReady {
		wait, what = h.sink.Listening(), "listening"
	}
	select {
	case <-wait:
	case err := <-h.done:
		t.Fatalf("sink stopped before %s: %v", what, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("sink not %s after 30s", what)
	}
	h.api = "http://" + h.sink.Addr().String()
	return h
}

// stop cancels the sink and returns Run's error (nil twice is fine).
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Error("sink did not stop within 30s")
		return nil
	}
}

// logBuffer keeps log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines that contain s.
func (b *logBuffer) lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// testLogger logs through t.Log while the test runs.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		func() {
			defer func() {
				if recover() != nil { // logged after the test ended
					w.done = true
				}
			}()
			w.t.Log(strings.TrimRight(string(p), "\n"))
		}()
	}
	return len(p), nil
}

// event returns a CloudEvent of public.applications for company.
func event(id string, company any) string {
	b, _ := json.Marshal(company)
	return `{"specversion":"1.0","id":"` + id + `","source":"baitoru/baitoru","type":"baitoru.applications.insert","subject":"42",` +
		`"time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","datacontenttype":"application/json",` +
		`"table":"public.applications","op":"insert","lsn":"0/16B3748","xid":1234,` +
		`"data":{"application_id":42,"company_id":` + string(b) + `,"applied_at":"2026-11-25T03:00:00Z"}}`
}

func (h *harness) send(body string) {
	h.t.Helper()
	_, err := h.emu.SQS().SendMessage(h.t.Context(), &awssqs.SendMessageInput{QueueUrl: aws.String(h.queueURL), MessageBody: aws.String(body)})
	if err != nil {
		h.t.Fatalf("send: %v", err)
	}
}

// queueCount is visible + in-flight messages of url.
func (h *harness) queueCount(url string) int {
	h.t.Helper()
	out, err := h.emu.SQS().GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		h.t.Fatalf("queue attributes: %v", err)
	}
	n := 0
	for _, v := range out.Attributes {
		c, _ := strconv.Atoi(v)
		n += c
	}
	return n
}

// startLink starts a link through the API and returns it.
func (h *harness) startLink(account string, key string) sink.Link {
	h.t.Helper()
	status, body := h.call(http.MethodPost, "/v1/links", `{"kobot_account":`+strconv.Quote(account)+`,"link_key":`+strconv.Quote(key)+`}`)
	if status != http.StatusCreated && status != http.StatusOK {
		h.t.Fatalf("start link: %d %s", status, body)
	}
	var l sink.Link
	if err := json.Unmarshal(body, &l); err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *harness) call(method, path, body string) (int, []byte) {
	return call(h.t, h.api, testToken, method, path, body)
}

// call makes an authenticated API request (token "" sends none).
func call(t *testing.T, base, token, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of a counter or gauge with one label (or none).
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// deliveryRow is one row of the delivery log.
type deliveryRow struct {
	LinkID   int64
	Status   string
	Attempts int
	Error    string
}

func (h *harness) deliveryLog(eventID string) []deliveryRow {
	h.t.Helper()
	conn, err := pgx.Connect(context.Background(), h.dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT link_id, status, attempts, coalesce(last_error, '') FROM deliveries WHERE event_id = $1 ORDER BY link_id`, eventID)
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deliveryRow, error) {
		var d deliveryRow
		return d, r.Scan(&d.LinkID, &d.Status, &d.Attempts, &d.Error)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// receiveDLQ takes want messages from the DLQ (deleting them).
func (h *harness) receiveDLQ(want int, timeout time.Duration) []sqstypes.Message {
	h.t.Helper()
	ms, err := h.emu.ReceiveAll(h.t.Context(), h.dlqURL, want, timeout)
	if err != nil {
		h.t.Fatal(err)
	}
	return ms
}

func attr(m sqstypes.Message, name string) string {
	return aws.ToString(m.MessageAttributes[name].StringValue)
}

func bodyHas(m sqstypes.Message, s string) bool {
	return bytes.Contains([]byte(aws.ToString(m.Body)), []byte(s))
}
