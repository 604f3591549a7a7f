package sink

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestProblemLogSummarises: a problem is logged at its first failure, then
// at most once per minute with the count since the last line, and once
// more when a push succeeds; each problem on its own.
func TestProblemLogSummarises(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	l := newProblemLog(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	fail := func(p PushProblem, class PushClass) {
		l.failure(PushResult{PushAttempt: PushAttempt{Class: class, Problem: p, Err: errors.New("what; fix: " + p.Fix())}}, "e", 1)
	}
	steps := []struct {
		do   func()
		want []string // the lines logged by the step, in order
	}{
		{func() { fail(ProblemTimeout, PushRetryable) }, []string{`msg="Kobot push failed" problem=timeout err=what fix=`}},
		{func() {
			for range 10 {
				now = now.Add(time.Second)
				fail(ProblemTimeout, PushRetryable)
			}
		}, nil},
		{func() { fail(ProblemSignature, PushRejected) }, []string{`msg="Kobot push failed" problem=signature_refused`, `the message goes to the DLQ`}},
		{func() { now = now.Add(time.Minute); fail(ProblemTimeout, PushRetryable) }, []string{`msg="Kobot pushes still failing" problem=timeout`, "failures=11 failures_total=12 since=2026-12-06T00:00:00Z"}},
		{func() { fail(ProblemTimeout, PushRetryable) }, nil},
		{func() { l.delivered(); l.delivered() }, []string{`msg="Kobot pushes succeed again"`}},
		{func() { fail(ProblemTimeout, PushRetryable) }, []string{`msg="Kobot push failed" problem=timeout`}},
	}
	for i, s := range steps {
		buf.Reset()
		s.do()
		out := buf.String()
		if len(s.want) == 0 && out != "" {
			t.Errorf("step %d logged:\n%s", i, out)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("step %d: the log does not say %q:\n%s", i, w, out)
			}
		}
	}
}

// TestPushProblemsHaveFixes: every problem says what to do.
func TestPushProblemsHaveFixes(t *testing.T) {
	for _, p := range PushProblems {
		if p.Fix() == "" {
			t.Errorf("%s has no fix", p)
		}
	}
}
