package kobot

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/sink"
)

const testEvent = `{"specversion":"1.0","id":"0/16B3748-3","source":"baitoru/app","type":"baitoru.applications.insert","time":"2026-11-25T03:00:00.123456Z","data":{"company_id":7}}`

func newClient(t *testing.T, url string, attempts int) *Client {
	t.Helper()
	c, err := New(config.Kobot{
		Endpoint:    url,
		Secret:      vectorSecret,
		Timeout:     500 * time.Millisecond,
		MaxAttempts: attempts,
		Retry:       config.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scripted answers each request with the next status of its script (the
// last one repeats) and records the requests.
type scripted struct {
	mu       sync.Mutex
	statuses []int
	headers  []http.Header // extra response headers per request
	reqs     []*http.Request
	bodies   [][]byte
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r)
	s.bodies = append(s.bodies, b)
	st := s.statuses[min(n, len(s.statuses)-1)]
	var h http.Header
	if n < len(s.headers) {
		h = s.headers[n]
	}
	s.mu.Unlock()
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(st)
	_, _ = io.WriteString(w, `{"error":"scripted"}`)
}

func TestDeliverClassifies(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		attempts int
		class    sink.PushClass
		status   int
		tries    int
	}{
		{"200", []int{200}, 3, sink.PushDelivered, 200, 1},
		{"204", []int{204}, 3, sink.PushDelivered, 204, 1},
		{"500 twice then 200", []int{500, 500, 200}, 3, sink.PushDelivered, 200, 3},
		{"500 beyond max attempts", []int{500}, 3, sink.PushRetryable, 500, 3},
		{"429", []int{429}, 2, sink.PushRetryable, 429, 2},
		{"408", []int{408}, 2, sink.PushRetryable, 408, 2},
		{"503 then 201", []int{503, 201}, 3, sink.PushDelivered, 201, 2},
		{"400 is permanent", []int{400}, 3, sink.PushRejected, 400, 1},
		{"404 is permanent", []int{404}, 3, sink.PushRejected, 404, 1},
		{"410 is permanent", []int{410}, 3, sink.PushRejected, 410, 1},
		{"redirect is not followed", []int{307}, 3, sink.PushRejected, 307, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{statuses: tt.statuses}
			srv := httptest.NewServer(s)
			defer srv.Close()
			res := newClient(t, srv.URL, tt.attempts).Push(context.Background(), sink.PushRequest{EventID: "0/16B3748-3", Account: "acme", Event: []byte(testEvent)})
			if res.Class != tt.class || res.Status != tt.status || res.Attempts != tt.tries || len(s.reqs) != tt.tries {
				t.Fatalf("got class %v status %d attempts %d (server saw %d), want %v %d %d", res.Class, res.Status, res.Attempts, len(s.reqs), tt.class, tt.status, tt.tries)
			}
			if (res.Err == nil) != (tt.class == sink.PushDelivered) {
				t.Fatalf("Err = %v", res.Err)
			}
		})
	}
}

func TestDeliverSignsEveryAttempt(t *testing.T) {
	s := &scripted{statuses: []int{500, 200}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := newClient(t, srv.URL, 3)
	res := c.Push(context.Background(), sink.PushRequest{EventID: "0/16B3748-3", Account: "acme", Event: []byte(testEvent)})
	if res.Class != sink.PushDelivered {
		t.Fatalf("class %v: %v", res.Class, res.Err)
	}
	key, _ := ParseSecret(vectorSecret)
	for i, r := range s.reqs {
		if err := Verify(key, r.Header, s.bodies[i], time.Now(), DefaultTolerance); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		if r.Header.Get(HeaderID) != "0/16B3748-3" || r.Header.Get("Content-Type") != ContentType || r.Method != http.MethodPost {
			t.Errorf("attempt %d: headers %v", i+1, r.Header)
		}
		var m map[string]any
		if err := json.Unmarshal(s.bodies[i], &m); err != nil || m["kobotaccount"] != "acme" || m["id"] != "0/16B3748-3" {
			t.Errorf("attempt %d: body %s (%v)", i+1, s.bodies[i], err)
		}
	}
}

func TestDeliverHonoursRetryAfter(t *testing.T) {
	t.Run("short Retry-After is waited", func(t *testing.T) {
		s := &scripted{statuses: []int{429, 200}, headers: []http.Header{{"Retry-After": {"1"}}}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		c := newClient(t, srv.URL, 3)
		c.max = 2 * time.Second
		start := time.Now() // 1 s is within the 2 s maximum: waited in process
		res := c.Push(context.Background(), sink.PushRequest{EventID: "e-1", Account: "a", Event: []byte(testEvent)})
		if res.Class != sink.PushDelivered || res.Attempts != 2 {
			t.Fatalf("class %v attempts %d", res.Class, res.Attempts)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Fatalf("retried after %s, want ≥ 1s (Retry-After)", d)
		}
	})
	t.Run("long Retry-After is left to redelivery", func(t *testing.T) {
		s := &scripted{statuses: []int{503, 200}, headers: []http.Header{{"Retry-After": {"120"}}}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		res := newClient(t, srv.URL, 3).Push(context.Background(), sink.PushRequest{EventID: "e-1", Account: "a", Event: []byte(testEvent)})
		if res.Class != sink.PushRetryable || res.Attempts != 1 || res.RetryAfter != 120*time.Second {
			t.Fatalf("class %v attempts %d retry-after %s", res.Class, res.Attempts, res.RetryAfter)
		}
	})
}

func TestDeliverUnreachableAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	res := newClient(t, "http://"+addr, 2).Push(context.Background(), sink.PushRequest{EventID: "e", Account: "a", Event: []byte(testEvent)})
	if res.Class != sink.PushRetryable || res.Attempts != 2 || res.Status != 0 || res.Err == nil {
		t.Fatalf("unreachable: %+v", res)
	}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	res = newClient(t, slow.URL, 1).Push(context.Background(), sink.PushRequest{EventID: "e", Account: "a", Event: []byte(testEvent)})
	if res.Class != sink.PushRetryable || res.Err == nil {
		t.Fatalf("timeout: %+v", res)
	}
}

func TestDeliverStopsRetryingWhenCancelled(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(100 * time.Millisecond)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, 10)
	c.initial, c.max = time.Second, time.Second
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // during the first attempt
	res := c.Push(ctx, sink.PushRequest{EventID: "e", Account: "a", Event: []byte(testEvent)})
	// The attempt under way finished (status 500 seen), no other started.
	if res.Status != 500 || res.Attempts != 1 || n.Load() != 1 {
		t.Fatalf("status %d attempts %d requests %d", res.Status, res.Attempts, n.Load())
	}
}

func TestPayload(t *testing.T) {
	tests := []struct {
		event, account, want string
	}{
		{`{"id":"1"}`, "acme", `{"id":"1","kobotaccount":"acme"}`},
		{"{\"id\":\"1\"}\n  ", "acme", `{"id":"1","kobotaccount":"acme"}`},
		{`{"id":"1" }`, `a"b\c`, `{"id":"1" ,"kobotaccount":"a\"b\\c"}`},
		{`{ }`, "x", `{ "kobotaccount":"x"}`},
		{`{"id":"1"}`, "会社", `{"id":"1","kobotaccount":"会社"}`},
	}
	for _, tt := range tests {
		got, err := Payload([]byte(tt.event), tt.account)
		if err != nil || string(got) != tt.want {
			t.Errorf("Payload(%q, %q) = %s, %v; want %s", tt.event, tt.account, got, err, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("Payload(%q) is not JSON", tt.event)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`} {
		if _, err := Payload([]byte(bad), "a"); err == nil {
			t.Errorf("Payload(%q) accepted", bad)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{"999999999", 12 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(config.Kobot{Endpoint: "http://x", Secret: "plain"}, nil); !errors.Is(err, ErrSecret) {
		t.Errorf("bad secret: %v", err)
	}
	if _, err := New(config.Kobot{Secret: vectorSecret}, nil); err == nil {
		t.Error("empty endpoint accepted")
	}
}

// TestRetryBackoff checks the waits between attempts: the n-th drawn from
// [d/2, d], d = min(initial·2^(n-1), max), spread over that range.
func TestRetryBackoff(t *testing.T) {
	for _, tc := range []struct{ initial, max time.Duration }{
		{200 * time.Millisecond, 5 * time.Second}, // the defaults
		{5 * time.Millisecond, 50 * time.Millisecond},
		{time.Second, time.Second},
		{3 * time.Millisecond, 1 * time.Minute},
	} {
		t.Run(tc.initial.String()+"-"+tc.max.String(), func(t *testing.T) {
			const runs = 300
			lows, highs := make([]bool, 12), make([]bool, 12)
			for range runs {
				bo := retryBackoff(tc.initial, tc.max)
				for n := 1; n <= 12; n++ {
					d := min(tc.initial<<(n-1), tc.max)
					w := bo.NextBackOff()
					if w < d/2-time.Nanosecond || w > d+time.Nanosecond {
						t.Fatalf("wait %d = %s, want within [%s, %s]", n, w, d/2, d)
					}
					lows[n-1] = lows[n-1] || w < d/2+d/8
					highs[n-1] = highs[n-1] || w > d-d/8
				}
			}
			for n := range lows {
				if !lows[n] || !highs[n] {
					t.Errorf("wait %d never came near one end of [d/2, d] in %d runs (low %v, high %v)", n+1, runs, lows[n], highs[n])
				}
			}
		})
	}
}

// TestDeliverEndpointUserinfo: an endpoint with userinfo gets basic auth on
// every push, as http.Client sends it; one without gets no Authorization.
func TestDeliverEndpointUserinfo(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	for _, tc := range []struct{ endpoint, want string }{
		{strings.Replace(srv.URL, "://", "://kobot:s%40cret@", 1), "Basic " + base64.StdEncoding.EncodeToString([]byte("kobot:s@cret"))},
		{srv.URL, ""},
	} {
		c := newClient(t, tc.endpoint, 1)
		if r := c.Push(t.Context(), sink.PushRequest{EventID: "0/1-1", Account: "kobot-acme", Event: []byte(testEvent)}); r.Class != sink.PushDelivered {
			t.Fatalf("%s: %+v", tc.endpoint, r)
		}
		if a := <-got; a != tc.want {
			t.Errorf("%s: Authorization %q, want %q", tc.endpoint, a, tc.want)
		}
	}
}

// TestDeliverErrorHidesPassword: a transport error names the endpoint
// without the password of its userinfo.
func TestDeliverErrorHidesPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	c := newClient(t, "http://kobot:hunter2@"+addr+"/hook", 1)
	r := c.Push(t.Context(), sink.PushRequest{EventID: "0/1-1", Account: "kobot-acme", Event: []byte(testEvent)})
	if r.Class != sink.PushRetryable || r.Err == nil {
		t.Fatalf("push to a closed port: %+v", r)
	}
	if msg := r.Err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, addr) {
		t.Errorf("error %q: want Kobot's address without the endpoint's password", msg)
	}
}
