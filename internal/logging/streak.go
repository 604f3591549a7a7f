package logging

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultStreakEvery is how often a Streak logs a failure that keeps
// repeating, when Every is zero.
const DefaultStreakEvery = 30 * time.Second

// Streak summarises a run of repeated failures of one operation in the log,
// instead of one line per attempt (and per worker): the first failure is
// logged at warn level with its error; while failures go on, one warn line
// at most every Every counts them (failures, failing_for) with the latest
// error; the first success after failures is logged at info level with how
// many there were and for how long (when Recovered is set). A success with
// no failure before it logs nothing, and so does one of an attempt begun
// before the failures started. Safe for concurrent use: the workers of
// one operation share one Streak.
type Streak struct {
	// Log receives the lines; nil discards them.
	Log *slog.Logger
	// Failing is the message of the warn lines, e.g. "receive from SQS
	// failing; retrying".
	Failing string
	// Recovered is the message of the info line after a run of failures;
	// empty: no such line.
	Recovered string
	// Every is the least time between two warn lines of one run (zero:
	// DefaultStreakEvery).
	Every time.Duration
	// Now is the clock (nil: time.Now); tests set it.
	Now func() time.Time

	mu       sync.Mutex
	failures int
	since    time.Time // first failure of the run
	logged   time.Time // last warn line
}

func (s *Streak) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Fail records a failure; attrs are added to a warn line when one is
// logged.
func (s *Streak) Fail(err error, attrs ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.failures++
	every := s.Every
	if every <= 0 {
		every = DefaultStreakEvery
	}
	switch {
	case s.failures == 1:
		s.since, s.logged = now, now
	case now.Sub(s.logged) >= every:
		s.logged = now
		attrs = append(attrs, "failures", s.failures, "failing_for", now.Sub(s.since).Round(time.Millisecond).String())
	default:
		return
	}
	if s.Log != nil {
		s.Log.Warn(s.Failing, append(attrs, "err", err)...)
	}
}

// OK records a success of an attempt begun at started: it ends a run of
// failures, unless the attempt began before the run did (a call in flight
// when the failures started, such as another worker's long poll, says
// nothing about whether they are over).
func (s *Streak) OK(started time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == 0 || started.Before(s.since) {
		return
	}
	n, took := s.failures, s.now().Sub(s.since)
	s.failures = 0
	if s.Log != nil && s.Recovered != "" {
		s.Log.Info(s.Recovered, "failures", n, "failing_for", took.Round(time.Millisecond).String())
	}
}
