package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBackfillChunkSizeWhileLive: a chunk is capped to LiveChunkRows while
// live events were queued within liveFor, and takes its full size when
// none were (or with no cap).
func TestBackfillChunkSizeWhileLive(t *testing.T) {
	tests := []struct {
		name      string
		liveRows  int
		live      bool          // a live transaction before the chunk
		ago       time.Duration // how long before the chunk the runner last saw it
		want, ask int
	}{
		{name: "no live change", liveRows: 250, ask: 1000, want: 1000},
		{name: "a live change just now", liveRows: 250, live: true, ask: 1000, want: 250},
		{name: "smaller than the cap", liveRows: 250, live: true, ask: 100, want: 100},
		{name: "the last live change long ago", liveRows: 250, live: true, ago: 2 * liveFor, ask: 1000, want: 1000},
		{name: "no cap", liveRows: 0, live: true, ask: 1000, want: 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := testPipeline(t, &recordPublisher{}, PipelineOptions{Lanes: 1})
			il := NewInterleaver(p, "cdc", "baitoru_cdc.backfill_requests", p.log)
			r := NewBackfillRunner(il, nil, BackfillOptions{LiveChunkRows: tc.liveRows}, func() bool { return true }, nil, p.log)
			if got := r.size(tc.ask); got != tc.ask {
				t.Fatalf("before any live change: size %d, want %d", got, tc.ask)
			}
			if tc.live {
				feed(t, p, 0x100, 0x110, "k1")
				if tc.ago > 0 {
					r.size(tc.ask) // the runner sees it ...
					r.until = r.until.Add(-tc.ago)
				}
			}
			if got := r.size(tc.ask); got != tc.want {
				t.Errorf("size %d, want %d", got, tc.want)
			}
		})
	}
}

// TestBackfillRateWhileLive: the rows/s cap is LiveMaxRowsPerSecond while
// live events were queued within liveFor (unless MaxRowsPerSecond is
// lower), MaxRowsPerSecond otherwise.
func TestBackfillRateWhileLive(t *testing.T) {
	tests := []struct {
		name         string
		max, liveMax float64
		live         bool
		ago          time.Duration
		want         float64
	}{
		{name: "no cap, no live change", want: 0},
		{name: "live cap, no live change", liveMax: 50000, want: 0},
		{name: "live cap, a live change just now", liveMax: 50000, live: true, want: 50000},
		{name: "live cap, the last live change long ago", liveMax: 50000, live: true, ago: 2 * liveFor, want: 0},
		{name: "a lower overall cap wins", max: 1000, liveMax: 50000, live: true, want: 1000},
		{name: "the live cap below the overall one", max: 80000, liveMax: 50000, live: true, want: 50000},
		{name: "the overall cap without live changes", max: 80000, liveMax: 50000, want: 80000},
		{name: "no live cap", max: 0, liveMax: 0, live: true, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := testPipeline(t, &recordPublisher{}, PipelineOptions{Lanes: 1})
			il := NewInterleaver(p, "cdc", "baitoru_cdc.backfill_requests", p.log)
			r := NewBackfillRunner(il, nil, BackfillOptions{MaxRowsPerSecond: tc.max, LiveMaxRowsPerSecond: tc.liveMax}, func() bool { return true }, nil, p.log)
			if tc.live {
				feed(t, p, 0x100, 0x110, "k1")
				if tc.ago > 0 {
					r.rate() // the runner sees it ...
					r.until = r.until.Add(-tc.ago)
				}
			}
			if got := r.rate(); got != tc.want {
				t.Errorf("rate %v, want %v", got, tc.want)
			}
		})
	}
}

// TestErrorText: what a failed backfill stores (and the command line
// prints) keeps the message and drops the words the code decides with.
func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read chunk: row 7: column wage: %q is not a number: %w", "NaN", ErrPermanent), `read chunk: row 7: column wage: "NaN" is not a number`},
		{errors.New("plain"), "plain"},
	} {
		if got := ErrorText(tc.err); got != tc.want {
			t.Errorf("ErrorText(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// lagSource is a BackfillSource whose slot lags by lag bytes; it counts
// the chunks read and the lag's lookups.
type lagSource struct {
	lag     int64
	chunks  int
	lookups int
}

func (s *lagSource) Claim(context.Context) ([]*BackfillState, error) { return nil, nil }
func (s *lagSource) Prepare(context.Context, *BackfillState) (*BackfillPlan, error) {
	return &BackfillPlan{Table: "public.t", Key: []string{"id"}, MaxKey: []string{"9"}}, nil
}
func (s *lagSource) Watermark(context.Context, Watermark) error { return nil }
func (s *lagSource) ReadChunk(context.Context, *BackfillPlan, []string, int, RowFunc) (*BackfillChunk, error) {
	s.chunks++
	return nil, errors.New("no chunk in this test")
}
func (s *lagSource) Save(context.Context, *BackfillState) (bool, error) { return false, nil }
func (s *lagSource) Cancelled(context.Context, string) (bool, error)    { return false, nil }
func (s *lagSource) LagBytes(context.Context) (int64, error) {
	s.lookups++
	return s.lag, nil
}

// pauses records the pauses reported.
type pauses struct {
	nopBackfillObserver
	mu      sync.Mutex
	reasons []string
}

func (p *pauses) BackfillPaused(_, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reasons = append(p.reasons, reason)
}

func (p *pauses) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reasons)
}

// TestBackfillLagBeforeFirstChunk: a backfill looks up the slot's lag
// before its first chunk even when the backfill before it looked it up a
// moment ago (the lag is otherwise looked up at most every Poll), and
// pauses without reading a chunk while it is over MaxLagBytes.
func TestBackfillLagBeforeFirstChunk(t *testing.T) {
	p, _, _ := testPipeline(t, &recordPublisher{}, PipelineOptions{Lanes: 1})
	il := NewInterleaver(p, "cdc", "baitoru_cdc.backfill_requests", p.log)
	src := &lagSource{lag: 2 << 20}
	obs := &pauses{}
	r := NewBackfillRunner(il, src, BackfillOptions{ChunkRows: 10, MaxLagBytes: 1 << 20, Poll: time.Hour}, func() bool { return true }, obs, p.log)
	r.lagAt = time.Now() // the backfill before looked it up just now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.runOne(ctx, &BackfillState{ID: "bf", Table: "public.t"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(obs.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := obs.got(); !slices.Equal(got, []string{"lag"}) || src.chunks != 0 || src.lookups != 1 {
		t.Errorf("pauses %q, %d chunks read, %d lag lookups; want one pause for the lag, before any chunk, after one lookup", got, src.chunks, src.lookups)
	}
}
