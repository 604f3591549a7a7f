package sink_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
)

// noMore waits d and fails if Kobot got more than n pushes.
func noMore(t *testing.T, k *kobottest.Receiver, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := k.Log(); len(got) != n {
		t.Fatalf("Kobot got %d pushes, want %d: %+v", len(got), n, got)
	}
}

func TestLinkedEventDeliveredOnceSigned(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	l1 := h.startLink("kobot-acme", "7")
	l2 := h.startLink("kobot-globex", "7")
	h.startLink("kobot-other", "8")

	h.send(event("0/16B3748-1", 7))
	waitFor(t, 10*time.Second, "two pushes", func() bool { return len(h.kobot.Log()) >= 2 })
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	noMore(t, h.kobot, 2, 1500*time.Millisecond) // past a visibility timeout: no redelivery

	accounts := map[string]bool{}
	for _, p := range h.kobot.Log() {
		if p.VerifyErr != nil {
			t.Errorf("push to %s: signature: %v", p.Account, p.VerifyErr)
		}
		if p.ID != "0/16B3748-1" || p.Event["id"] != "0/16B3748-1" {
			t.Errorf("webhook-id %q, event id %v", p.ID, p.Event["id"])
		}
		data, _ := p.Event["data"].(map[string]any)
		if data["company_id"] != float64(7) || p.Event["type"] != "baitoru.applications.insert" {
			t.Errorf("payload %s", p.Body)
		}
		accounts[p.Account] = true
	}
	if !accounts["kobot-acme"] || !accounts["kobot-globex"] {
		t.Fatalf("pushed to %v, want kobot-acme and kobot-globex", accounts)
	}
	rows := h.deliveryLog("0/16B3748-1")
	if len(rows) != 2 || rows[0].LinkID != l1.ID || rows[1].LinkID != l2.ID || rows[0].Status != "delivered" || rows[0].Attempts != 1 {
		t.Fatalf("delivery log %+v", rows)
	}
	if v := metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "delivered"); v != 1 {
		t.Errorf("deliveries_total{delivered} = %v, want 1", v)
	}
	if v := metric(t, h.reg, "baitoru_cdc_sink_commit_to_delivery_seconds", "", ""); v != 2 {
		t.Errorf("commit_to_delivery observations = %v, want 2", v)
	}
	if v := metric(t, h.reg, "baitoru_cdc_sink_kobot_requests_total", "class", "2xx"); v != 2 {
		t.Errorf("kobot_requests_total{2xx} = %v, want 2", v)
	}
}

func TestEnvelopeFromSNS(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	h.startLink("kobot-acme", "c-9")
	ctx := t.Context()
	topic, err := h.emu.CreateTopic(ctx, queueName(t, "topic"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.emu.Subscribe(ctx, topic, h.queueARN, false); err != nil { // SNS JSON envelope
		t.Fatal(err)
	}
	_, err = h.emu.SNS().Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String(event("0/2000000-1", "c-9"))})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "push", func() bool { return len(h.kobot.Log()) == 1 })
	p := h.kobot.Log()[0]
	if p.VerifyErr != nil || p.ID != "0/2000000-1" || p.Account != "kobot-acme" {
		t.Fatalf("push %+v", p)
	}
	if _, envelope := p.Event["Type"]; envelope {
		t.Fatalf("Kobot got the SNS envelope, not the event: %s", p.Body)
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
}

func TestUnlinkedDeletedAndCounted(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	h.startLink("kobot-acme", "7")
	h.send(event("0/3000000-1", 99))
	h.send(event("0/3000000-2", "99"))
	waitFor(t, 10*time.Second, "2 unlinked", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "unlinked") == 2
	})
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	noMore(t, h.kobot, 0, 200*time.Millisecond)
	if n := h.queueCount(h.dlqURL); n != 0 {
		t.Fatalf("DLQ has %d messages", n)
	}
}

func TestStoppedLinkStopsDeliveries(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	l := h.startLink("kobot-acme", "7")
	h.send(event("0/4000000-1", 7))
	waitFor(t, 10*time.Second, "first push", func() bool { return len(h.kobot.Log()) == 1 })

	reloads := metric(t, h.reg, "baitoru_cdc_sink_link_reloads_total", "scope", "keys")
	stopped := time.Now()
	status, body := h.call(http.MethodDelete, "/v1/links/"+itoa(l.ID), "")
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"stopped"`) {
		t.Fatalf("stop: %d %s", status, body)
	}
	// The cache takes the NOTIFY within a second.
	waitFor(t, time.Second, "link cache reload", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_link_reloads_total", "scope", "keys") > reloads
	})
	t.Logf("link cache reloaded %s after the stop", time.Since(stopped).Round(time.Millisecond))
	h.send(event("0/4000000-2", 7))
	waitFor(t, 10*time.Second, "unlinked", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "unlinked") == 1
	})
	noMore(t, h.kobot, 1, 200*time.Millisecond)

	// Starting it again makes a new link that receives again.
	l2 := h.startLink("kobot-acme", "7")
	if l2.ID == l.ID || l2.Status != sink.StatusActive {
		t.Fatalf("restarted link %+v", l2)
	}
	waitFor(t, time.Second, "link cache reload", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_link_reloads_total", "scope", "keys") > reloads+1
	})
	h.send(event("0/4000000-3", 7))
	waitFor(t, 10*time.Second, "push after restart", func() bool { return len(h.kobot.Log()) == 2 })
}

func TestKobot500TwiceThen200DeliveredOnce(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{MaxAttempts: 3})
	h.kobot.Respond(func(_ kobottest.Request, n int) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	l := h.startLink("kobot-acme", "7")
	h.send(event("0/5000000-1", 7))
	waitFor(t, 10*time.Second, "3 requests", func() bool { return len(h.kobot.Log()) == 3 })
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	noMore(t, h.kobot, 3, 1500*time.Millisecond)
	rows := h.deliveryLog("0/5000000-1")
	if len(rows) != 1 || rows[0].LinkID != l.ID || rows[0].Status != "delivered" || rows[0].Attempts != 3 {
		t.Fatalf("delivery log %+v", rows)
	}
	if v := metric(t, h.reg, "baitoru_cdc_sink_kobot_requests_total", "class", "5xx"); v != 2 {
		t.Errorf("kobot_requests_total{5xx} = %v, want 2", v)
	}
}

func TestKobotDownEndsInDLQ(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{KobotURL: downURL(t), MaxReceiveCount: 2, Visibility: time.Second, MaxAttempts: 2})
	h.startLink("kobot-acme", "7")
	h.send(event("0/6000000-1", 7))
	// Until the redrive, the message is always in the queue (visible or
	// in flight): nothing is lost in between.
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for h.queueCount(h.dlqURL) == 0 {
		if n := h.queueCount(h.queueURL); n != 1 && h.queueCount(h.dlqURL) == 0 {
			t.Fatalf("after %s the queue holds %d messages and the DLQ none", time.Since(start), n)
		}
		if time.Now().After(deadline) {
			t.Fatal("message not in the DLQ after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("moved to the DLQ after %s", time.Since(start).Round(time.Millisecond))
	if n := h.queueCount(h.queueURL); n != 0 {
		t.Fatalf("queue still holds %d", n)
	}
	ms := h.receiveDLQ(1, 5*time.Second)
	if len(ms) != 1 || !bodyHas(ms[0], "0/6000000-1") {
		t.Fatalf("DLQ: %+v", ms)
	}
	rows := h.deliveryLog("0/6000000-1")
	if len(rows) != 1 || rows[0].Status != "retry" || rows[0].Attempts != 4 || !strings.Contains(rows[0].Error, "nothing accepts connections") {
		t.Fatalf("delivery log %+v, want status retry, 2 receives × 2 attempts", rows)
	}
	if v := metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "retry"); v != 2 {
		t.Errorf("deliveries_total{retry} = %v, want 2", v)
	}
}

func TestKobot400GoesToDLQWithReason(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	h.kobot.Respond(func(kobottest.Request, int) int { return http.StatusBadRequest })
	l := h.startLink("kobot-acme", "7")
	h.send(event("0/7000000-1", 7))
	ms := h.receiveDLQ(1, 10*time.Second)
	if len(ms) != 1 {
		t.Fatal("nothing in the DLQ")
	}
	if code, reason := attr(ms[0], "reason_code"), attr(ms[0], "reason"); code != sink.CodeKobotRejected ||
		!strings.Contains(reason, "400") || !strings.Contains(reason, "kobot-acme") {
		t.Fatalf("DLQ attributes reason_code=%q reason=%q", code, reason)
	}
	if !bodyHas(ms[0], "0/7000000-1") || attr(ms[0], "source_message_id") == "" {
		t.Fatalf("DLQ message %+v", ms[0])
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	noMore(t, h.kobot, 1, 1500*time.Millisecond) // not retried
	rows := h.deliveryLog("0/7000000-1")
	if len(rows) != 1 || rows[0].LinkID != l.ID || rows[0].Status != "rejected" || rows[0].Attempts != 1 {
		t.Fatalf("delivery log %+v", rows)
	}
}

func TestRedeliveredMessageNotDeliveredTwice(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{MaxAttempts: 1})
	// Globex fails the first time, so the message is redelivered by SQS;
	// acme, which answered 2xx, must not get it again.
	h.kobot.Respond(func(r kobottest.Request, _ int) int {
		if r.Account == "kobot-globex" && countFor(h.kobot, "kobot-globex") == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	h.startLink("kobot-acme", "7")
	h.startLink("kobot-globex", "7")
	h.send(event("0/8000000-1", 7))
	waitFor(t, 15*time.Second, "globex retried", func() bool { return countFor(h.kobot, "kobot-globex") == 2 })
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	time.Sleep(1500 * time.Millisecond)
	if a, g := countFor(h.kobot, "kobot-acme"), countFor(h.kobot, "kobot-globex"); a != 1 || g != 2 {
		t.Fatalf("acme got %d pushes (want 1), globex %d (want 2)", a, g)
	}

	// The same event again (a copy SNS or a restarted connector re-sent):
	// both links already have it.
	h.send(event("0/8000000-1", 7))
	waitFor(t, 10*time.Second, "duplicate", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "duplicate") == 1
	})
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	noMore(t, h.kobot, 3, 200*time.Millisecond)
	for _, r := range h.deliveryLog("0/8000000-1") {
		if r.Status != "delivered" {
			t.Fatalf("delivery log %+v", r)
		}
	}
}

// TestConcurrentCopiesPushedOnce: copies of one event (a connector re-sent
// it after a crash) received by different consumers at the same moment are
// pushed once: the first claims the push, the others wait for its outcome
// and are then deleted as duplicates. Found by the fault suite (scenario 2b).
func TestConcurrentCopiesPushedOnce(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{Concurrency: 4, Visibility: 2 * time.Second})
	h.kobot.Respond(func(kobottest.Request, int) int {
		time.Sleep(700 * time.Millisecond) // every copy is received while the first push is under way
		return http.StatusNoContent
	})
	h.startLink("kobot-acme", "7")
	const copies = 4
	for range copies {
		h.send(event("0/8100000-1", 7))
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "every copy handled", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "delivered")+
			metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "duplicate") == copies
	})
	waitFor(t, 10*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	if n := countFor(h.kobot, "kobot-acme"); n != 1 {
		t.Fatalf("Kobot got %d pushes of one event, want 1", n)
	}
	if r := metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "retry"); r == 0 {
		t.Logf("no copy met a claim (all copies in one batch?); the test proved less")
	}
	for _, r := range h.deliveryLog("0/8100000-1") {
		if r.Status != "delivered" {
			t.Fatalf("delivery log %+v", r)
		}
	}
}

// TestNumericLinkKeysMatchByValue: a link key written as a number matches
// whatever way its producer wrote the number (1, 1.0, 1e0, "1.0"); one whose
// plain text cannot be a key goes to the DLQ with the reason, never counted
// as unlinked.
func TestNumericLinkKeysMatchByValue(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	h.startLink("kobot-acme", "1")
	if l := h.startLink("kobot-globex", "2.50"); l.Key != "2.5" {
		t.Fatalf("link started with key 2.50 has key %q, want the canonical 2.5", l.Key)
	}
	if status, b := h.call(http.MethodGet, "/v1/links?key=1.0", ""); status != http.StatusOK || !strings.Contains(string(b), `"link_key":"1"`) {
		t.Fatalf("GET /v1/links?key=1.0: %d %s", status, b)
	}
	acme := []any{json.RawMessage("1.0"), json.RawMessage("1e0"), json.RawMessage("10E-1"), "1.0", "1", 1}
	for i, k := range acme {
		h.send(event("0/A000000-"+strconv.Itoa(i), k))
	}
	h.send(event("0/A100000-1", json.RawMessage("2.5")))
	h.send(event("0/A100000-2", "2.500"))
	h.send(event("0/A200000-1", json.RawMessage("1e300")))
	waitFor(t, 15*time.Second, "every linked event pushed", func() bool { return len(h.kobot.Log()) >= len(acme)+2 })
	ms := h.receiveDLQ(1, 10*time.Second)
	if len(ms) != 1 || attr(ms[0], "reason_code") != sink.CodeInvalidLinkKey || !strings.Contains(attr(ms[0], "reason"), "longer than 256 bytes") {
		t.Fatalf("DLQ: %+v", ms)
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	if n, m := countFor(h.kobot, "kobot-acme"), countFor(h.kobot, "kobot-globex"); n != len(acme) || m != 2 {
		t.Fatalf("pushes: kobot-acme %d (want %d), kobot-globex %d (want 2)", n, len(acme), m)
	}
	if n := metric(t, h.reg, "baitoru_cdc_sink_deliveries_total", "result", "unlinked"); n != 0 {
		t.Fatalf("%v events counted as unlinked", n)
	}
}

func countFor(k *kobottest.Receiver, account string) int {
	n := 0
	for _, p := range k.Log() {
		if p.Account == account {
			n++
		}
	}
	return n
}

func TestHostileMessagesGoToDLQ(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	h.startLink("kobot-acme", "7")
	huge := event("0/9000000-9", 7)
	huge = strings.Replace(huge, `"applied_at"`, `"pad":"`+strings.Repeat("x", 300<<10)+`","applied_at"`, 1)
	cases := map[string]struct{ body, code string }{
		"e1": {`not json at all`, sink.CodeInvalidJSON},
		"e2": {`{"specversion":"1.0","id":`, sink.CodeInvalidJSON},
		"e3": {`[1,2,3]`, sink.CodeInvalidJSON},
		"e4": {huge, sink.CodeTooLarge},
		"e5": {strings.Replace(event("0/9000000-5", 7), `"id":"0/9000000-5"`, `"id":95`, 1), sink.CodeInvalidField},
		"e6": {strings.Replace(event("0/9000000-6", 7), `"type":"baitoru.applications.insert",`, ``, 1), sink.CodeMissingField},
		"e7": {strings.Replace(event("0/9000000-7", 7), `"company_id":7,`, ``, 1), sink.CodeMissingLinkKey},
		"e8": {event("0/9000000-8", true), sink.CodeInvalidLinkKey},
		"e9": {strings.Replace(event("0/9000000-9", 7), `"public.applications"`, `"public.users"`, 1), sink.CodeNoLinkRule},
		"ea": {`{"Type":"Notification","MessageId":"x","Message":"{broken"}`, sink.CodeInvalidJSON},
		"eb": {strings.Replace(event("0/9000000-b", 7), `"op":`, `"kobotaccount":"evil","op":`, 1), sink.CodeReservedField},
		"ec": {strings.Replace(event("0/9000000-c", 7), `"time":"`, `"time":"not-a-time`, 1), sink.CodeInvalidField},
	}
	for name, c := range cases {
		_, err := h.emu.SQS().SendMessage(t.Context(), sendInput(h.queueURL, c.body, name))
		if err != nil {
			t.Fatalf("send %s: %v", name, err)
		}
	}
	ms := h.receiveDLQ(len(cases), 20*time.Second)
	if len(ms) != len(cases) {
		t.Fatalf("DLQ got %d of %d messages", len(ms), len(cases))
	}
	for _, m := range ms {
		name := attr(m, "case")
		c, ok := cases[name]
		if !ok {
			t.Errorf("unexpected DLQ message %q", aws.ToString(m.Body)[:min(80, len(aws.ToString(m.Body)))])
			continue
		}
		if got := attr(m, "reason_code"); got != c.code || attr(m, "reason") == "" {
			t.Errorf("%s: reason_code %q reason %q, want code %s", name, got, attr(m, "reason"), c.code)
		}
		if aws.ToString(m.Body) != c.body {
			t.Errorf("%s: DLQ body differs from the original", name)
		}
		delete(cases, name)
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	noMore(t, h.kobot, 0, 100*time.Millisecond)

	// The sink is still serving: a good event goes through.
	h.send(event("0/9000000-0", 7))
	waitFor(t, 10*time.Second, "good push", func() bool { return len(h.kobot.Log()) == 1 })
}

func TestGracefulShutdownFinishesDeliveries(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	h.kobot.Slow(700 * time.Millisecond)
	h.startLink("kobot-acme", "7")
	h.send(event("0/A000000-1", 7))
	waitFor(t, 10*time.Second, "push under way", func() bool { return len(h.kobot.Log()) == 1 })
	start := time.Now()
	if err := h.stop(); err != nil { // as on SIGTERM
		t.Fatalf("Run returned %v, want nil", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("stopped after %s, before the push under way finished", d)
	}
	// The push finished with 2xx, so its message was deleted before exit.
	if n := h.queueCount(h.queueURL); n != 0 {
		t.Fatalf("queue holds %d messages after shutdown", n)
	}
	if rows := h.deliveryLog("0/A000000-1"); len(rows) != 1 || rows[0].Status != "delivered" {
		t.Fatalf("delivery log %+v", rows)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	for _, path := range []string{"/healthz", "/readyz"} {
		status, body := call(t, h.api, "", http.MethodGet, path, "")
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
	}
	_, body := call(t, h.api, "", http.MethodGet, "/readyz", "")
	var r monitoring.Readiness
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "ready" || r.Checks["sqs"] != "ok" || r.Checks["database"] != "ok" || r.Checks["links"] != "ok" {
		t.Fatalf("readyz %s", body)
	}
	status, body := call(t, h.api, "", http.MethodGet, "/metrics", "")
	if status != http.StatusOK || !strings.Contains(string(body), "baitoru_cdc_sink_deliveries_total") {
		t.Fatalf("metrics: %d", status)
	}

	// A sink whose queue does not exist is alive but not ready, and says why.
	bad := startHarness(t, harnessOptions{QueueURL: h.emu.Endpoint + "/000000000000/no-such-queue", NotReady: true})
	status, body = call(t, bad.api, "", http.MethodGet, "/readyz", "")
	if err := json.Unmarshal(body, &r); status != http.StatusServiceUnavailable || err != nil || r.Status != "not ready" || r.Checks["sqs"] == "ok" || r.Checks["database"] != "ok" {
		t.Fatalf("readyz of a sink without its queue: %d %s", status, body)
	}
	if status, _ := call(t, bad.api, "", http.MethodGet, "/healthz", ""); status != http.StatusOK {
		t.Fatalf("healthz: %d", status)
	}
}

// TestReadyMeansReady: a sink whose queue does not answer yet serves its
// API but neither says "sink ready" nor consumes, /readyz says not ready
// (sqs), and its failed attempts are one log line, not one per attempt; once
// the queue exists it says "sink ready", /readyz agrees and it consumes. When
// the queue goes away later, the failed receives of every worker are one
// line too, then one "recovered" line.
func TestReadyMeansReady(t *testing.T) {
	integration(t)
	emu := testenv.Emu(t)
	name := queueName(t, "late")
	url := emu.Endpoint + "/000000000000/" + name
	h := startHarness(t, harnessOptions{QueueURL: url, NotReady: true, Concurrency: 4})
	notReady := "sink not ready: SQS queue not reachable; retrying"
	time.Sleep(3100 * time.Millisecond) // 5 attempts and more (0.1+0.2+0.4+0.8+1.6 s of backoff, jittered)
	select {
	case <-h.sink.Ready():
		t.Fatal("the sink is ready while its queue does not exist")
	default:
	}
	status, body := call(t, h.api, "", http.MethodGet, "/readyz", "")
	var r monitoring.Readiness
	if err := json.Unmarshal(body, &r); status != http.StatusServiceUnavailable || err != nil || r.Checks["sqs"] == "ok" {
		t.Fatalf("readyz while the queue does not exist: %d %s", status, body)
	}
	if l := h.logs.lines(notReady); len(l) != 1 || !strings.Contains(l[0], "queue="+url) || !strings.Contains(l[0], "api=127.0.0.1:") {
		t.Errorf("want one %q line naming the queue and the API, got %d:\n%s", notReady, len(l), strings.Join(l, "\n"))
	}
	if l := h.logs.lines("sink ready"); len(l) != 0 {
		t.Errorf("logged %q", l)
	}

	if got, _, err := emu.CreateQueue(t.Context(), name, testenv.QueueOptions{}); err != nil || !strings.HasSuffix(got, "/000000000000/"+name) {
		t.Fatalf("create queue: %s %v, want .../000000000000/%s", got, err, name)
	}
	h.queueURL = url // the one the sink consumes
	select {
	case <-h.sink.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("not ready 15 s after the queue was created")
	}
	if l := h.logs.lines("sink ready"); len(l) != 1 {
		t.Errorf("%d \"sink ready\" lines, want 1", len(l))
	}
	if status, body := call(t, h.api, "", http.MethodGet, "/readyz", ""); status != http.StatusOK {
		t.Errorf("readyz after \"sink ready\": %d %s", status, body)
	}
	h.startLink("kobot-acme", "7")
	h.send(event("0/B000000-1", 7))
	waitFor(t, 10*time.Second, "a push once ready", func() bool { return len(h.kobot.Log()) == 1 })

	// The queue goes away: 4 workers fail their receives for 3 s.
	if _, err := emu.SQS().DeleteQueue(t.Context(), &awssqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	failing := "receive from SQS failing; retrying"
	waitFor(t, 15*time.Second, "a failing receive", func() bool { return len(h.logs.lines(failing)) > 0 })
	time.Sleep(3 * time.Second)
	if l := h.logs.lines(failing); len(l) != 1 {
		t.Errorf("%d %q lines within 3 s, want 1:\n%s", len(l), failing, strings.Join(l, "\n"))
	}
	if _, _, err := emu.CreateQueue(t.Context(), name, testenv.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "receive from SQS recovered", func() bool { return len(h.logs.lines("receive from SQS recovered")) == 1 })
}

// TestEveryErrorIsJSON: the sink's HTTP port answers every error, outside
// /v1/ too, with the API's JSON error body (ServeMux's own are plain text).
func TestEveryErrorIsJSON(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	for _, tc := range []struct {
		method, path, token string
		status              int
		code, allow         string
	}{
		{http.MethodGet, "/", "", 404, sink.ErrCodeNotFound, ""},
		{http.MethodGet, "/nothing", testToken, 404, sink.ErrCodeNotFound, ""},
		{http.MethodGet, "/v2/links", testToken, 404, sink.ErrCodeNotFound, ""},
		{http.MethodGet, "/metrics/x", "", 404, sink.ErrCodeNotFound, ""},
		{http.MethodGet, "/v1/nothing", testToken, 404, sink.ErrCodeNotFound, ""},
		{http.MethodPost, "/healthz", "", 405, sink.ErrCodeMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/metrics", "", 405, sink.ErrCodeMethodNotAllowed, "GET, HEAD"},
		{http.MethodPut, "/readyz", "", 405, sink.ErrCodeMethodNotAllowed, "GET, HEAD"},
		{http.MethodPut, "/v1/links", testToken, 405, sink.ErrCodeMethodNotAllowed, "GET, HEAD, POST"},
		{http.MethodGet, "/v1/links", "", 401, sink.ErrCodeUnauthorized, ""},
	} {
		req, _ := http.NewRequest(tc.method, h.api+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e sink.ErrorBody
		derr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || derr != nil || e.Error.Code != tc.code || e.Error.Message == "" ||
			resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d %s %+v (%v), Allow %q; want %d %s, Allow %q",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), e, derr, resp.Header.Get("Allow"), tc.status, tc.code, tc.allow)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// sendInput is a SendMessage request tagging the message with a "case" attribute.
func sendInput(queueURL, body, name string) *awssqs.SendMessageInput {
	return &awssqs.SendMessageInput{
		QueueUrl:    aws.String(queueURL),
		MessageBody: aws.String(body),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"case": {DataType: aws.String("String"), StringValue: aws.String(name)},
		},
	}
}
