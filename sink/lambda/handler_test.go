package lambda_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/lambda"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func ev(id, company string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"baitoru/baitoru","type":"baitoru.applications.insert",` +
		`"time":"2026-11-25T03:00:00Z","table":"public.applications","op":"insert","data":{"company_id":` + company + `}}`
}

func TestHandleReportsBatchItemFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SQS emulator); run without -short")
	}
	ctx := t.Context()
	store, err := postgres.Open(testenv.PG(t).NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"7", "8", "9"} {
		if _, _, err := store.StartLink(ctx, "kobot-"+k, k); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var pushed []string
	kob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key, _ := kobot.ParseSecret(secret)
		if err := kobot.Verify(key, r.Header, body, time.Now(), kobot.DefaultTolerance); err != nil {
			t.Errorf("signature: %v", err)
		}
		mu.Lock()
		pushed = append(pushed, r.Header.Get("webhook-id"))
		mu.Unlock()
		switch {
		case strings.Contains(string(body), `"kobot-8"`):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.Contains(string(body), `"kobot-9"`):
			w.WriteHeader(http.StatusUnprocessableEntity)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer kob.Close()
	kc, err := kobot.New(config.Kobot{Endpoint: kob.URL, Secret: secret, MaxAttempts: 2,
		Retry: config.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := sink.NewRules([]sink.LinkRule{{Table: "public.applications", Field: "company_id"}})
	proc, err := sink.NewProcessor(sink.ProcessorConfig{Rules: rules, Links: store, Log: store, Pusher: kc})
	if err != nil {
		t.Fatal(err)
	}
	emu := testenv.Emu(t)
	dlqURL, _, err := emu.CreateQueue(ctx, "lambda-dlq", testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := lambda.New(proc, sqs.NewDLQ(emu.SQS(), dlqURL), nil)

	rec := func(id, body, receives string) events.SQSMessage {
		return events.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body,
			Attributes: map[string]string{"ApproximateReceiveCount": receives}}
	}
	resp, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		rec("m-linked", ev("0/1-1", "7"), "1"),
		rec("m-unlinked", ev("0/1-2", "100"), "1"),
		rec("m-503", ev("0/1-3", "8"), "1"),
		rec("m-422", ev("0/1-4", "9"), "1"),
		rec("m-bad", `{"specversion":"1.0","id":`, "1"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if !slices.Equal(failed, []string{"m-503"}) {
		t.Fatalf("batch item failures %v, want [m-503]", failed)
	}
	ms, err := emu.ReceiveAll(ctx, dlqURL, 2, 10*time.Second)
	if err != nil || len(ms) != 2 {
		t.Fatalf("DLQ: %d messages, %v", len(ms), err)
	}
	codes := map[string]string{}
	for _, m := range ms {
		codes[aws.ToString(m.MessageAttributes[sqs.AttrSourceMessageID].StringValue)] = aws.ToString(m.MessageAttributes[sqs.AttrReasonCode].StringValue)
	}
	if codes["m-422"] != sink.CodeKobotRejected || codes["m-bad"] != sink.CodeInvalidJSON {
		t.Fatalf("DLQ reason codes %v", codes)
	}
	mu.Lock()
	n := len(pushed)
	mu.Unlock()
	if n != 4 { // linked 1, 503 twice (2 attempts), 422 once
		t.Fatalf("Kobot got %d pushes %v, want 4", n, pushed)
	}

	// Lambda retries the failed record (and re-sends the delivered one, as a
	// duplicate): the delivered link is not pushed again.
	resp, _ = h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		rec("m-linked", ev("0/1-1", "7"), "2"),
	}})
	mu.Lock()
	n = len(pushed)
	mu.Unlock()
	if len(resp.BatchItemFailures) != 0 || n != 4 {
		t.Fatalf("redelivery: failures %v, pushes %d (want 4)", resp.BatchItemFailures, n)
	}
}
