package telemetry

import (
	"context"
	"log/slog"
	"math"
	"time"
)

// Status logs one line about the connector at info level every interval,
// so that a person following the log sees it work without a dashboard:
//
//	level=INFO msg=status streaming=true changes_per_sec=1520.4 events_per_sec=1498.2
//	  inflight_events=37 lag=84ms confirmed_lsn=0/1A2B3C48 retained_wal_bytes=1048576 publish_retries=0
//
// changes_per_sec counts row changes read, events_per_sec events accepted
// by the publisher, both over the interval; lag is the longest commit→publish
// latency of the events accepted in the interval (0s when none were);
// retained_wal_bytes is present once the slot monitor measured it. While
// events are in flight but none was accepted during the interval, the line
// is a warning with no_publish_for, the time since the last accepted batch.
type Status struct {
	m        *Metrics
	interval time.Duration
	log      *slog.Logger
}

// NewStatus returns a status logger over m (which must Watch the pipeline
// and the subscription). It logs nothing until Run.
func NewStatus(m *Metrics, interval time.Duration, log *slog.Logger) *Status {
	return &Status{m: m, interval: interval, log: log}
}

// Run logs a status line every interval until ctx ends; it returns nil.
// An interval <= 0 logs nothing.
func (s *Status) Run(ctx context.Context) error {
	if s.interval <= 0 {
		return nil
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	prev, prevAt := s.m.take(), time.Now()
	lastPublish := prevAt
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			cur := s.m.take()
			if cur.published != prev.published {
				lastPublish = now
			}
			s.line(prev, cur, now.Sub(prevAt), now.Sub(lastPublish))
			prev, prevAt = cur, now
		}
	}
}

func (s *Status) line(prev, cur snapshot, elapsed, sincePublish time.Duration) {
	secs := elapsed.Seconds()
	inflight, _ := s.m.window()
	attrs := []slog.Attr{
		slog.Bool("streaming", s.m.Streaming()),
		slog.Float64("changes_per_sec", rate(cur.read-prev.read, secs)),
		slog.Float64("events_per_sec", rate(cur.published-prev.published, secs)),
		slog.Int("inflight_events", inflight),
		// Durations as strings ("84ms"), also in JSON logs.
		slog.String("lag", cur.maxLag.Round(time.Millisecond).String()),
		slog.String("confirmed_lsn", cur.confirmed.String()),
	}
	if cur.retained >= 0 {
		attrs = append(attrs, slog.Int64("retained_wal_bytes", cur.retained))
	}
	attrs = append(attrs, slog.Int64("publish_retries", cur.retried-prev.retried))
	level := slog.LevelInfo
	if inflight > 0 && cur.published == prev.published {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("no_publish_for", sincePublish.Round(time.Second).String()))
	}
	s.log.LogAttrs(context.Background(), level, "status", attrs...)
}

// rate is n per second, with one decimal.
func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return math.Round(float64(n)/secs*10) / 10
}
