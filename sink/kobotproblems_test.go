package sink_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/sink"
)

// TestKobotProblems: whatever is wrong with Kobot's endpoint or secret —
// nothing listens, a host name that does not resolve, a certificate the
// sink does not trust, plain HTTP behind https:, a wrong signing secret,
// 403, a wrong path, 413, a redirect, 5xx, no answer in time — the sink's
// log says what is wrong and the fix once, however many pushes fail so
// (the rest are summarised), /metrics counts the failures by problem with
// the fix, and no message is lost: a retryable one stays in the queue, a
// rejected one goes to the DLQ with the same reason. Real HTTP servers,
// the sink service with its queue and database.
func TestKobotProblems(t *testing.T) {
	integration(t)
	status := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, "scripted", code)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/webhooks"
	}
	self := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(self.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(plain.Close)
	onlyWebhooks := http.NewServeMux()
	onlyWebhooks.HandleFunc("POST /webhooks/baitoru", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	wrongPath := httptest.NewServer(onlyWebhooks)
	t.Cleanup(wrongPath.Close)
	small := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64)); err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(small.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	redirect := httptest.NewServer(http.RedirectHandler("https://kobot.example.com/new-hook", http.StatusPermanentRedirect))
	t.Cleanup(redirect.Close)
	selfHost := strings.TrimPrefix(self.URL, "https://")
	plainHost := strings.TrimPrefix(plain.URL, "http://")

	const dlq, retry = true, false
	cases := []struct {
		name    string
		url     string // "" is the verifying receiver
		secret  string // the sink's, when not the receiver's
		timeout time.Duration
		problem sink.PushProblem
		toDLQ   bool
		want    []string // in the log line and the reason
	}{
		{name: "nothing listens", url: downURL(t), problem: sink.ProblemUnreachable, toDLQ: retry,
			want: []string{"nothing accepts connections at 127.0.0.1:", "(connection refused)", "check that sink.kobot.endpoint names Kobot's host and port"}},
		{name: "host name does not resolve", url: "http://kobot-endpoint.invalid/webhooks", problem: sink.ProblemDNS, toDLQ: retry,
			want: []string{`Kobot's host name \"kobot-endpoint.invalid\" does not resolve`, "check the host name in sink.kobot.endpoint"}},
		{name: "self-signed certificate", url: self.URL + "/webhooks", problem: sink.ProblemTLS, toDLQ: retry,
			want: []string{"Kobot's TLS certificate at " + selfHost + " is not trusted (x509: certificate signed by unknown authority)", "SSL_CERT_FILE="}},
		{name: "https to a plain HTTP server", url: "https://" + plainHost + "/webhooks", problem: sink.ProblemTLS, toDLQ: retry,
			want: []string{plainHost + " does not speak TLS", "use http: in sink.kobot.endpoint"}},
		{name: "wrong webhook secret", secret: "whsec_" + "d3Jvbmctc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY=", problem: sink.ProblemSignature, toDLQ: dlq,
			want: []string{"Kobot refused the push's signature or credentials (401 Unauthorized", "check that sink.kobot.secret is the signing secret Kobot verifies with", "redrive the DLQ"}},
		{name: "403", url: status(http.StatusForbidden), problem: sink.ProblemSignature, toDLQ: dlq,
			want: []string{"(403 Forbidden: scripted)", "check that sink.kobot.secret"}},
		{name: "wrong path", url: wrongPath.URL + "/webhook/baitoru", problem: sink.ProblemNotFound, toDLQ: dlq,
			want: []string{"Kobot has no webhook at sink.kobot.endpoint's path (404 Not Found", "check the path of sink.kobot.endpoint"}},
		{name: "413", url: small.URL, problem: sink.ProblemTooLarge, toDLQ: dlq,
			want: []string{"Kobot refused the event as too large (", "bytes) (413 Request Entity Too Large: body too large)", "raise the request body limit of Kobot"}},
		{name: "redirect", url: redirect.URL, problem: sink.ProblemRedirect, toDLQ: dlq,
			want: []string{"Kobot answered with a redirect to https://kobot.example.com/new-hook (308 Permanent Redirect", "set sink.kobot.endpoint to the URL the redirect points at"}},
		{name: "503", url: status(http.StatusServiceUnavailable), problem: sink.ProblemServer, toDLQ: retry,
			want: []string{"Kobot failed to take the event (503 Service Unavailable: scripted)", "check Kobot's logs"}},
		{name: "no answer in time", url: slow.URL, timeout: 300 * time.Millisecond, problem: sink.ProblemTimeout, toDLQ: retry,
			want: []string{"did not answer within sink.kobot.timeout (300ms)", "raise sink.kobot.timeout"}},
	}
	const events = 3
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHarness(t, harnessOptions{KobotURL: tc.url, Secret: tc.secret, KobotTimeout: tc.timeout,
				MaxAttempts: 1, MaxReceiveCount: 100, Visibility: 2 * time.Second})
			h.startLink("kobot-acme", "7")
			for i := range events {
				h.send(event("0/8000000-"+string(rune('1'+i)), 7))
			}
			failures := func() float64 {
				return metric(t, h.reg, "baitoru_cdc_sink_kobot_failures_total", "problem", string(tc.problem))
			}
			waitFor(t, 20*time.Second, "3 failed pushes", func() bool { return failures() >= events })
			if tc.toDLQ {
				ms := h.receiveDLQ(events, 10*time.Second)
				if len(ms) != events {
					t.Fatalf("%d messages in the DLQ, want %d", len(ms), events)
				}
				for _, m := range ms {
					for _, w := range tc.want {
						if r := attr(m, "reason"); !strings.Contains(r, strings.ReplaceAll(w, `\"`, `"`)) {
							t.Errorf("DLQ reason %q does not say %q", r, w)
						}
					}
				}
			} else if n, d := h.queueCount(h.queueURL), h.queueCount(h.dlqURL); n != events || d != 0 {
				t.Errorf("queue holds %d messages and the DLQ %d, want %d and 0: a message left the queue", n, d, events)
			}
			lines := h.logs.lines(`msg="Kobot push failed"`)
			if len(lines) != 1 {
				t.Fatalf("%d log lines say the push failed, want 1 (the rest summarised):\n%s", len(lines), strings.Join(lines, "\n"))
			}
			for _, w := range append(tc.want, "problem="+string(tc.problem), "fix=") {
				if !strings.Contains(lines[0], w) {
					t.Errorf("the log line does not say %q:\n%s", w, lines[0])
				}
			}
			// /metrics names the problem and its fix.
			fixed := metric(t, h.reg, "baitoru_cdc_sink_kobot_failures_total", "fix", tc.problem.Fix())
			if fixed < events {
				t.Errorf("kobot_failures_total{problem=%q,fix=...} = %v, want ≥ %d", tc.problem, fixed, events)
			}
		})
	}
}

// TestKobotRecovers: while Kobot fails, its messages wait in the queue; when
// it answers again, every event is delivered and the log says the problem
// is over, with how many pushes failed.
func TestKobotRecovers(t *testing.T) {
	integration(t)
	var healthy atomic.Bool
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if !healthy.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	h := startHarness(t, harnessOptions{KobotURL: srv.URL, MaxAttempts: 1, MaxReceiveCount: 100, Visibility: time.Second})
	h.startLink("kobot-acme", "7")
	for i := range 3 {
		h.send(event("0/8100000-"+string(rune('1'+i)), 7))
	}
	waitFor(t, 20*time.Second, "3 failed pushes", func() bool {
		return metric(t, h.reg, "baitoru_cdc_sink_kobot_failures_total", "problem", string(sink.ProblemServer)) >= 3
	})
	healthy.Store(true)
	waitFor(t, 30*time.Second, "3 deliveries", func() bool { return got.Load() >= 3 })
	waitFor(t, 10*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	waitFor(t, 5*time.Second, "the recovery logged", func() bool { return len(h.logs.lines(`msg="Kobot pushes succeed again"`)) == 1 })
	if l := h.logs.lines(`msg="Kobot pushes succeed again"`)[0]; !strings.Contains(l, "problem=server_error") || !strings.Contains(l, "failures_total=") {
		t.Errorf("recovery line: %s", l)
	}
	if n := len(h.logs.lines(`msg="Kobot push failed"`)); n != 1 {
		t.Errorf("%d lines say the push failed, want 1", n)
	}
}
