package sink_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// The code between the BEGIN and END lines is the example of docs/kobot.md;
// TestKobotGuideExample checks that the guide shows exactly this code, and
// every integration test verifies the sink's pushes with verifyWebhook.

// BEGIN kobot.md example

// verifyWebhook checks that a push came from baitoru-cdc (Standard Webhooks
// 1.0): the HMAC-SHA256, keyed with the base64 part of the "whsec_" secret,
// of "<webhook-id>.<webhook-timestamp>.<body>" must match one of the
// "v1,<base64>" signatures, and the timestamp must be within 5 minutes.
func verifyWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return errors.New("secret is not whsec_ and base64")
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("webhook-timestamp is too far from now")
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid webhook-signature")
}

// receiveBaitoru is a Kobot webhook handler. store must be idempotent per
// (account, webhook-id): record the id in the same transaction as the
// event's effect, and do nothing if it is already there.
func receiveBaitoru(secret string, store func(account, webhookID string, event map[string]any) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Events reach 16 MiB (the sink's sink.s3.max_event_bytes); a 413
		// is permanent: the event would go to the DLQ.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := verifyWebhook(secret, r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized) // 4xx: not retried
			return
		}
		var event map[string]any
		if err := json.Unmarshal(body, &event); err != nil {
			http.Error(w, "body is not JSON", http.StatusBadRequest)
			return
		}
		account, _ := event["kobotaccount"].(string)
		if err := store(account, r.Header.Get("webhook-id"), event); err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable) // 5xx: retried
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// END kobot.md example

// TestKobotGuideExample checks that docs/kobot.md shows the example above
// verbatim, and that the example accepts what the sink's Kobot client sends
// and refuses a tampered push.
func TestKobotGuideExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, code, ok := strings.Cut(string(src), "// BEGIN kobot.md example\n")
	code, _, ok2 := strings.Cut(code, "// END kobot.md example")
	if !ok || !ok2 {
		t.Fatal("example markers not found")
	}
	code = strings.TrimSpace(code)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "kobot.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+code+"\n```") {
		t.Fatal("docs/kobot.md does not show the example of sink/example_test.go verbatim in a ```go block; copy it over")
	}

	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	// The guide's example request verifies with its example secret.
	_, req, _ := strings.Cut(string(doc), "```http\n")
	req, _, _ = strings.Cut(req, "\n```")
	head, body, ok := strings.Cut(req, "\n\n")
	if !ok {
		t.Fatal("no example request in docs/kobot.md")
	}
	h := http.Header{}
	for _, line := range strings.Split(head, "\n")[1:] {
		k, v, _ := strings.Cut(line, ": ")
		h.Add(k, v)
	}
	ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err := verifyWebhook(secret, h, []byte(body), time.Unix(ts, 30)); err != nil {
		t.Fatalf("the guide's example request: %v", err)
	}
	if err := verifyWebhook(secret, h, []byte(strings.Replace(body, "kobot-acme", "kobot-evil", 1)), time.Unix(ts, 30)); err == nil {
		t.Fatal("a changed example body verified")
	}
	if err := verifyWebhook(secret, h, []byte(body), time.Unix(ts+3600, 0)); err == nil {
		t.Fatal("an hour-old request verified")
	}
	var example map[string]any
	if err := json.Unmarshal([]byte(body), &example); err != nil || example["kobotaccount"] != "kobot-acme" || example["id"] != h.Get("webhook-id") {
		t.Fatalf("example body: %v %v", example, err)
	}

	type stored struct {
		account, id string
		event       map[string]any
	}
	var mu sync.Mutex
	var got []stored
	srv := httptest.NewServer(receiveBaitoru(secret, func(account, id string, ev map[string]any) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, stored{account, id, ev})
		return nil
	}))
	defer srv.Close()
	c, err := kobot.New(config.Kobot{Endpoint: srv.URL, Secret: secret, MaxAttempts: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := `{"specversion":"1.0","id":"0/16B3748-3","source":"baitoru/baitoru","type":"baitoru.applications.insert","data":{"company_id":7}}`
	res := c.Push(t.Context(), sink.PushRequest{EventID: "0/16B3748-3", Account: "kobot-acme", Event: []byte(ev)})
	if res.Class != sink.PushDelivered || res.Status != http.StatusNoContent {
		t.Fatalf("push: %v %d %v", res.Class, res.Status, res.Err)
	}
	if len(got) != 1 || got[0].account != "kobot-acme" || got[0].id != "0/16B3748-3" || got[0].event["type"] != "baitoru.applications.insert" {
		t.Fatalf("stored %+v", got)
	}

	// A push signed with another secret is refused with a 4xx, which the
	// sink does not retry.
	other, _ := kobot.New(config.Kobot{Endpoint: srv.URL, Secret: "whsec_b3RoZXItc2VjcmV0", MaxAttempts: 1}, nil)
	res = other.Push(t.Context(), sink.PushRequest{EventID: "0/16B3748-3", Account: "kobot-acme", Event: []byte(ev)})
	if res.Class != sink.PushRejected || res.Status != http.StatusUnauthorized || len(got) != 1 {
		t.Fatalf("forged push: %v %d, stored %d", res.Class, res.Status, len(got))
	}
}
