package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStreak: a run of failures is one warn line, then one per Every with
// the count, then one info line on recovery; successes alone log nothing.
func TestStreak(t *testing.T) {
	type step struct {
		at   time.Duration // clock
		fail bool
		// began is when a successful attempt began (default: at).
		began time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string // the lines, attributes trimmed to those named
	}{
		{"successes only", []step{{0, false, 0}, {time.Second, false, 0}}, nil},
		{"one failure, recovered", []step{{0, true, 0}, {time.Second, false, 0}}, []string{
			`level=WARN msg="receive failing; retrying" worker=1 err=boom`,
			`level=INFO msg="receive recovered" failures=1 failing_for=1s`,
		}},
		{"many failures within Every: one line", []step{{0, true, 0}, {100 * time.Millisecond, true, 0}, {time.Second, true, 0}, {9 * time.Second, true, 0}}, []string{
			`level=WARN msg="receive failing; retrying" worker=1 err=boom`,
		}},
		{"a long run: a summary per Every", []step{{0, true, 0}, {5 * time.Second, true, 0}, {10 * time.Second, true, 0}, {12 * time.Second, true, 0}, {21 * time.Second, true, 0}, {22 * time.Second, false, 0}}, []string{
			`level=WARN msg="receive failing; retrying" worker=1 err=boom`,
			`level=WARN msg="receive failing; retrying" worker=1 failures=3 failing_for=10s err=boom`,
			`level=WARN msg="receive failing; retrying" worker=1 failures=5 failing_for=21s err=boom`,
			`level=INFO msg="receive recovered" failures=5 failing_for=22s`,
		}},
		{"a success of an attempt begun before the failures ends nothing", []step{{time.Second, true, 0}, {2 * time.Second, false, time.Millisecond}, {3 * time.Second, true, 0}, {4 * time.Second, false, 0}}, []string{
			`level=WARN msg="receive failing; retrying" worker=1 err=boom`,
			`level=INFO msg="receive recovered" failures=2 failing_for=3s`,
		}},
		{"a new run after recovery starts over", []step{{0, true, 0}, {time.Second, false, 0}, {2 * time.Second, true, 0}, {3 * time.Second, true, 0}}, []string{
			`level=WARN msg="receive failing; retrying" worker=1 err=boom`,
			`level=INFO msg="receive recovered" failures=1 failing_for=1s`,
			`level=WARN msg="receive failing; retrying" worker=1 err=boom`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var now time.Time
			s := &Streak{Log: log, Failing: "receive failing; retrying", Recovered: "receive recovered", Every: 10 * time.Second, Now: func() time.Time { return now }}
			for _, st := range tc.steps {
				now = start.Add(st.at)
				if st.fail {
					s.Fail(errors.New("boom"), "worker", 1)
				} else {
					began := st.at
					if st.began != 0 {
						began = st.began
					}
					s.OK(start.Add(began))
				}
			}
			got := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if buf.Len() == 0 {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestStreakWorkers: workers failing at once share one line.
func TestStreakWorkers(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, nil))
	s := &Streak{Log: log, Failing: "receive failing; retrying"}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 5 {
				s.Fail(errors.New("boom"), "worker", w)
			}
		})
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("%d lines for 20 failures of 4 workers within %s, want 1:\n%s", n, DefaultStreakEvery, buf.String())
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
