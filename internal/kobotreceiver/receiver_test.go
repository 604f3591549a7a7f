package kobotreceiver

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

const event = `{"specversion":"1.0","id":"0/16B3748-1","source":"baitoru/baitoru","type":"baitoru.applications.insert","subject":"1","time":"2026-11-25T03:00:00.123456Z","datacontenttype":"application/json","table":"public.applications","op":"insert","lsn":"0/16B3748","xid":1234,"data":{"application_id":42,"company_id":1},"kobotaccount":"kobot-demo"}`

func TestReceiver(t *testing.T) {
	key, err := kobot.ParseSecret("whsec_YmFpdG9ydS1jZGMgZGVtbyBzZWNyZXQsIG5vdCBmb3I=")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := kobot.ParseSecret("whsec_b3RoZXIgc2VjcmV0IG9mIDI0IGJ5dGVzIG9y")
	now := time.Date(2026, 11, 25, 3, 0, 0, 207_000_000, time.UTC)
	signed := func(k kobot.Secret, id string, ts time.Time, body string) http.Header {
		h := http.Header{}
		h.Set(kobot.HeaderID, id)
		h.Set(kobot.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(kobot.HeaderSignature, kobot.Sign(k, id, ts, []byte(body)))
		return h
	}
	cases := []struct {
		name     string
		method   string
		header   http.Header
		body     string
		status   int
		receipts int
		dup      bool
	}{
		{"valid", "POST", signed(key, "0/16B3748-1", now, event), event, 204, 1, false},
		{"redelivered", "POST", signed(key, "0/16B3748-1", now, event), event, 204, 1, true},
		{"wrong secret", "POST", signed(other, "0/16B3748-1", now, event), event, 401, 0, false},
		{"body changed", "POST", signed(key, "0/16B3748-1", now, event), strings.Replace(event, `"company_id":1`, `"company_id":2`, 1), 401, 0, false},
		{"no headers", "POST", http.Header{}, event, 401, 0, false},
		{"too old", "POST", signed(key, "0/16B3748-1", now.Add(-10*time.Minute), event), event, 401, 0, false},
		{"id mismatch", "POST", signed(key, "0/1-1", now, event), event, 400, 0, false},
		{"not an event", "POST", signed(key, "x", now, `[1]`), `[1]`, 400, 0, false},
		{"GET", "GET", http.Header{}, "", 405, 0, false},
	}
	var got []Receipt
	var logs bytes.Buffer
	rv := New(key, slog.New(slog.NewTextHandler(&logs, nil)), func(r Receipt) { got = append(got, r) })
	rv.now = func() time.Time { return now }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(c.method, "/webhooks/baitoru", strings.NewReader(c.body))
			req.Header = c.header
			w := httptest.NewRecorder()
			rv.ServeHTTP(w, req)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, c.status, w.Body)
			}
			if len(got) != c.receipts {
				t.Fatalf("%d receipts, want %d", len(got), c.receipts)
			}
			if c.receipts == 1 {
				r := got[0]
				if r.ID != "0/16B3748-1" || r.Account != "kobot-demo" || r.Type != "baitoru.applications.insert" ||
					r.Subject != "1" || r.Table != "public.applications" || r.Op != "insert" ||
					string(r.Data) != `{"application_id":42,"company_id":1}` || r.Duplicate != c.dup {
					t.Errorf("receipt %+v", r)
				}
				if r.LatencyMS < 83.5 || r.LatencyMS > 83.6 {
					t.Errorf("latency %vms, want 83.544 (received .207, committed .123456)", r.LatencyMS)
				}
				line := Format(r)
				if !strings.Contains(line, "commit→receipt 83.5ms") || !strings.Contains(line, "id=0/16B3748-1") {
					t.Errorf("text line %q", line)
				}
			}
		})
	}
	if !strings.Contains(logs.String(), "bad signature") {
		t.Errorf("rejections not logged:\n%s", logs.String())
	}
}
