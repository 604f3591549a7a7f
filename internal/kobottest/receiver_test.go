package kobottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// push sends a signed push of event id for account, with the client
// timeout, and returns the status (0 on a transport error) and the error.
func push(t *testing.T, url, account, id string, timeout time.Duration, sign bool) (int, error) {
	t.Helper()
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"data":{"company_id":7,"application_id":42},"kobotaccount":%q}`, id, account))
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	now := time.Now()
	req.Header.Set(kobot.HeaderID, id)
	req.Header.Set(kobot.HeaderTimestamp, fmt.Sprint(now.Unix()))
	sig := kobot.Sign(key, id, now, body)
	if !sign {
		sig = "v1,AAAA"
	}
	req.Header.Set(kobot.HeaderSignature, sig)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestReceiverFaults(t *testing.T) {
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	rv := New(Options{Secret: key})
	if err := rv.Start(); err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	url := rv.URL()
	expect := func(account, id string, want int) {
		t.Helper()
		if got, err := push(t, url, account, id, 5*time.Second, true); got != want {
			t.Fatalf("push %s/%s: %d %v, want %d", account, id, got, err, want)
		}
	}
	expect("a", "e1", http.StatusNoContent)
	expect("a", "e1", http.StatusNoContent) // a duplicate after an acknowledged push
	rv.Fail(http.StatusInternalServerError)
	expect("a", "e2", http.StatusInternalServerError)
	rv.Fail(0)
	expect("a", "e2", http.StatusNoContent)
	rv.Reject("b", http.StatusBadRequest)
	expect("b", "e2", http.StatusBadRequest)
	expect("a", "e3", http.StatusNoContent)
	rv.Reject("b", 0)

	rv.Down()
	// The first push may fail on the kept-alive connection Down closed.
	_, _ = push(t, url, "a", "e4", 5*time.Second, true)
	if _, err := push(t, url, "a", "e4", 5*time.Second, true); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("push while down: %v, want connection refused", err)
	}
	if err := rv.Up(); err != nil {
		t.Fatal(err)
	}
	expect("a", "e4", http.StatusNoContent)

	// Slow: the client gives up, Kobot still applies the push (late);
	// the retry is a duplicate only Kobot's deduplication absorbs.
	rv.Slow(400 * time.Millisecond)
	if _, err := push(t, url, "a", "e5", 100*time.Millisecond, true); err == nil {
		t.Fatal("slow push answered within the client's timeout")
	}
	time.Sleep(500 * time.Millisecond)
	rv.Slow(0)
	expect("a", "e5", http.StatusNoContent)

	if got, _ := push(t, url, "a", "e6", 5*time.Second, false); got != http.StatusUnauthorized {
		t.Fatalf("unsigned push: %d, want 401", got)
	}
	if len(rv.Bad()) != 1 {
		t.Fatalf("bad pushes %v, want the unsigned one", rv.Bad())
	}

	ps := rv.Pairs()
	check := func(account, id string, processed, late, refused, afterAck, afterLate int) {
		t.Helper()
		p := ps[Pair{account, id}]
		a, l := p.Duplicates()
		if p.Processed != processed || p.Late != late || p.Refused != refused || a != afterAck || l != afterLate {
			t.Fatalf("%s/%s: %+v dups %d/%d", account, id, p, a, l)
		}
		if processed > 0 && (p.First.IsZero() || p.CompanyID != "7" || p.ApplicationID != 42) {
			t.Fatalf("%s/%s: %+v", account, id, p)
		}
	}
	check("a", "e1", 2, 0, 0, 1, 0)
	check("a", "e2", 1, 0, 1, 0, 0)
	check("b", "e2", 0, 0, 1, 0, 0)
	check("a", "e4", 1, 0, 0, 0, 0)
	check("a", "e5", 2, 1, 0, 0, 1)
}

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
	rv := New(Options{Secret: key, Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now },
		OnReceipt: func(r Receipt) { got = append(got, r) }})
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

// TestRecordRespondVerify: with Record every push is kept in order, with
// the verdict of Options.Verify; Respond decides the status per push and
// sees the push already recorded; a non-2xx answer is a refusal.
func TestRecordRespondVerify(t *testing.T) {
	var verified int
	rv := New(Options{Record: true, Verify: func(h http.Header, body []byte, now time.Time) error {
		verified++
		if h.Get(kobot.HeaderSignature) == "v1,AAAA" {
			return errors.New("no match")
		}
		return nil
	}})
	rv.Respond(func(r Request, n int) int {
		if got := len(rv.Log()); got != n+1 {
			t.Errorf("push %d: Respond sees %d recorded pushes", n, got)
		}
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	if err := rv.Start(); err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	for i, c := range []struct {
		sign bool
		want int
	}{{true, 503}, {true, 200}, {false, 401}} {
		if got, err := push(t, rv.URL(), "a", "e1", 5*time.Second, c.sign); got != c.want {
			t.Fatalf("push %d: %d %v, want %d", i, got, err, c.want)
		}
	}
	log := rv.Log()
	if len(log) != 3 || verified != 3 {
		t.Fatalf("%d recorded, %d verified, want 3", len(log), verified)
	}
	if log[0].ID != "e1" || log[0].Account != "a" || log[0].Event["id"] != "e1" || log[0].VerifyErr != nil || log[0].At.IsZero() {
		t.Fatalf("first push %+v", log[0])
	}
	if log[2].VerifyErr == nil || log[2].Account != "" || log[2].Event != nil {
		t.Fatalf("unverified push %+v: its body must not be looked at", log[2])
	}
	p := rv.Pairs()[Pair{"a", "e1"}]
	if p.Refused != 1 || p.Processed != 1 || rv.Requests() != 3 || len(rv.Bad()) != 1 {
		t.Fatalf("pair %+v, %d requests, bad %v", p, rv.Requests(), rv.Bad())
	}
}

// TestMaxPairs: the oldest pair is forgotten beyond MaxPairs, so a push of
// it again is not reported as a duplicate.
func TestMaxPairs(t *testing.T) {
	key, _ := kobot.ParseSecret(secret)
	var dups []bool
	rv := New(Options{Secret: key, MaxPairs: 2, OnReceipt: func(r Receipt) { dups = append(dups, r.Duplicate) }})
	if err := rv.Start(); err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	for _, id := range []string{"e1", "e1", "e2", "e3", "e1"} {
		if got, err := push(t, rv.URL(), "a", id, 5*time.Second, true); got != http.StatusNoContent {
			t.Fatalf("push %s: %d %v", id, got, err)
		}
	}
	if want := []bool{false, true, false, false, false}; !slices.Equal(dups, want) {
		t.Fatalf("duplicates %v, want %v", dups, want)
	}
	if n := len(rv.Pairs()); n != 2 {
		t.Fatalf("%d pairs kept, want 2", n)
	}
}
