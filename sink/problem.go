package sink

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PushProblem is what went wrong with a failed push attempt, in the
// operator's terms: the "problem" label of
// baitoru_cdc_sink_kobot_failures_total and of the sink's log. The Pusher
// sets it on every failed attempt; Fix says what to do about it.
type PushProblem string

// The problems a push can meet. The set is closed: a metric label.
const (
	ProblemUnreachable PushProblem = "unreachable"       // no connection (refused, reset)
	ProblemDNS         PushProblem = "dns"               // the endpoint's host name does not resolve
	ProblemTLS         PushProblem = "tls"               // Kobot's certificate is not trusted
	ProblemTimeout     PushProblem = "timeout"           // no answer within sink.kobot.timeout
	ProblemSignature   PushProblem = "signature_refused" // 401 or 403
	ProblemNotFound    PushProblem = "not_found"         // 404 or 405: the endpoint's path is wrong
	ProblemTooLarge    PushProblem = "too_large"         // 413
	ProblemRateLimited PushProblem = "rate_limited"      // 429
	ProblemServer      PushProblem = "server_error"      // 5xx, 408
	ProblemRedirect    PushProblem = "redirect"          // 3xx (never followed)
	ProblemRejected    PushProblem = "rejected"          // any other answer
)

// PushProblems lists every problem, for metrics.
var PushProblems = []PushProblem{ProblemUnreachable, ProblemDNS, ProblemTLS, ProblemTimeout, ProblemSignature,
	ProblemNotFound, ProblemTooLarge, ProblemRateLimited, ProblemServer, ProblemRedirect, ProblemRejected}

// Fix says what the operator does about p, naming the configuration key
// involved; the sink's log and /metrics carry it.
func (p PushProblem) Fix() string {
	switch p {
	case ProblemUnreachable:
		return "check that sink.kobot.endpoint names Kobot's host and port and that Kobot is running and reachable from the sink"
	case ProblemDNS:
		return "check the host name in sink.kobot.endpoint (and the sink's DNS)"
	case ProblemTLS:
		return "Kobot needs a certificate for its host name from a CA the sink trusts; for a private CA, give the sink its certificate with SSL_CERT_FILE=/path/to/ca.pem"
	case ProblemTimeout:
		return "check Kobot's health, or raise sink.kobot.timeout if Kobot is slow but well"
	case ProblemSignature:
		return "check that sink.kobot.secret is the signing secret Kobot verifies with, restart the sink, then redrive the DLQ"
	case ProblemNotFound:
		return "check the path of sink.kobot.endpoint (Kobot's webhook URL), restart the sink, then redrive the DLQ"
	case ProblemTooLarge:
		return "raise the request body limit of Kobot (or of its proxy) above the event's size, then redrive the DLQ"
	case ProblemRateLimited:
		return "Kobot asks the sink to slow down: lower sink.sqs.concurrency, or raise Kobot's limit"
	case ProblemServer:
		return "Kobot failed on its side: check Kobot's logs; the sink retries and the queue redelivers until it recovers"
	case ProblemRedirect:
		return "set sink.kobot.endpoint to the URL the redirect points at (redirects are not followed), restart the sink, then redrive the DLQ"
	case ProblemRejected:
		return "Kobot refused the event: see the answer's text and Kobot's logs; once fixed, redrive the DLQ"
	}
	return ""
}

// problemReport is how often a problem that goes on is logged again.
const problemReport = time.Minute

// problemLog logs failed pushes without flooding the log: the first
// failure of a problem at once, with its fix, then one summary a minute
// (how many pushes failed so) while it goes on, and one line when pushes
// succeed again. Safe for concurrent use.
type problemLog struct {
	logger *slog.Logger
	now    func() time.Time

	failed atomic.Bool // a failure since the last success: delivered's fast path
	mu     sync.Mutex
	open   map[PushProblem]*problemRun
}

type problemRun struct {
	first, logged time.Time
	total, since  int // failures since first, and since the last log line
}

func newProblemLog(l *slog.Logger, now func() time.Time) *problemLog {
	return &problemLog{logger: l, now: now, open: map[PushProblem]*problemRun{}}
}

// failure records a failed push of an event to a link; r.Class says what
// becomes of its message (retryable: redelivered; rejected: to the DLQ).
func (l *problemLog) failure(r PushResult, event string, link int64) {
	p := r.Problem
	if p == "" {
		p = ProblemRejected
	}
	now := l.now()
	l.mu.Lock()
	run := l.open[p]
	if run == nil {
		run = &problemRun{first: now}
		l.open[p] = run
	}
	run.total++
	run.since++
	first := run.total == 1
	due := first || now.Sub(run.logged) >= problemReport
	n, total, since := run.since, run.total, run.first
	if due {
		run.logged, run.since = now, 0
	}
	l.failed.Store(true)
	l.mu.Unlock()
	if !due {
		return
	}
	then := "the message is left in the queue for redelivery"
	if r.Class == PushRejected {
		then = "the message goes to the DLQ (nothing is lost: redrive the DLQ once fixed)"
	}
	// The Pusher's error usually ends with the fix already.
	err := strings.TrimSuffix(errText(r.Err), "; fix: "+p.Fix())
	attrs := []any{"problem", string(p), "err", err, "fix", p.Fix(), "then", then, "event", event, "link", link}
	if first {
		l.logger.Warn("Kobot push failed", attrs...)
		return
	}
	l.logger.Warn("Kobot pushes still failing", append(attrs, "failures", n, "failures_total", total, "since", since.UTC().Format(time.RFC3339))...)
}

// delivered records a successful push: a problem that was logged is over.
func (l *problemLog) delivered() {
	if !l.failed.Load() {
		return
	}
	l.mu.Lock()
	runs := l.open
	l.open = map[PushProblem]*problemRun{}
	l.failed.Store(false)
	l.mu.Unlock()
	for p, run := range runs {
		l.logger.Info("Kobot pushes succeed again", "problem", string(p), "failures_total", run.total, "since", run.first.UTC().Format(time.RFC3339))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
