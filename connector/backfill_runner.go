package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// BackfillOptions tune the BackfillRunner. The values come resolved from
// package config (backfill.*); the runner applies no defaults.
type BackfillOptions struct {
	// ChunkRows is the first chunk's size; MinChunkRows and MaxChunkRows
	// bound its adaptation to ChunkTime, the time budget of one chunk's
	// SELECT.
	ChunkRows, MinChunkRows, MaxChunkRows int
	ChunkTime                             time.Duration
	// MaxRowsPerSecond caps the rows read per second (zero: no cap).
	MaxRowsPerSecond float64
	// LiveMaxRowsPerSecond caps the rows read per second while live
	// changes flow (as LiveChunkRows; zero: no cap). Reading at full speed
	// keeps both of a small machine's cores busy, and every live event
	// then waits for a CPU.
	LiveMaxRowsPerSecond float64
	// LiveChunkRows caps a chunk's rows while live changes flow: when a
	// live event was queued since the chunk before was read (zero: no
	// cap). A chunk's read events reach SNS in a burst after its high
	// watermark; small chunks keep the live events' latency.
	LiveChunkRows int
	// MaxLagBytes pauses the backfill while the slot's confirmed position
	// is further behind the server's WAL end (zero: never); the lag is
	// looked up at most every Poll.
	MaxLagBytes int64
	// MaxQueuedEvents pauses the backfill while more live events than this
	// wait to be accepted by the publisher (zero: never).
	MaxQueuedEvents int
	// Poll is how often the runner looks for requests when none was
	// decoded from the stream, and how often it re-checks a pause.
	Poll time.Duration
	// WindowTimeout bounds the wait for a chunk's high watermark to be
	// decoded; past it the chunk is read again.
	WindowTimeout time.Duration
}

// BackfillObserver is told the progress of backfills (package telemetry's
// Metrics implement it). Called from the runner's goroutine only.
type BackfillObserver interface {
	// BackfillChunk reports a chunk whose events SNS accepted and whose
	// progress was saved: rows it read, rows published as read events
	// (those a newer live change stood in for are not), and the time its
	// SELECT took. st is the state after the chunk.
	BackfillChunk(st *BackfillState, rows, published int, took time.Duration)
	// BackfillProgress reports st's state: when it starts or resumes,
	// after each chunk, and when it ends (Status done, cancelled or
	// failed).
	BackfillProgress(st *BackfillState)
	// BackfillPaused reports a pause (reason "lag" or "queue") or its end
	// (reason "").
	BackfillPaused(id, reason string)
}

type nopBackfillObserver struct{}

func (nopBackfillObserver) BackfillChunk(*BackfillState, int, int, time.Duration) {}
func (nopBackfillObserver) BackfillProgress(*BackfillState)                       {}
func (nopBackfillObserver) BackfillPaused(string, string)                         {}

// BackfillRunner runs backfills one after the other, chunk by chunk: see
// the package's notes on backfill (backfill.go). It acts only while ready
// reports true (the connector streams the slot), so a standby connector
// never runs a backfill; requests wait in the database meanwhile.
type BackfillRunner struct {
	il    *Interleaver
	src   BackfillSource
	opts  BackfillOptions
	ready func() bool
	obs   BackfillObserver
	log   *slog.Logger
	run   string
	enc   ReadEncoder
	seq   int64     // the last chunk window's number (watermarks)
	live  int64     // LiveEvents when the last chunk's size was chosen
	until time.Time // live changes flow until then (size)
	lagAt time.Time // the slot's lag was last looked up then (pause)
}

// NewBackfillRunner returns a runner; it does nothing until Run.
func NewBackfillRunner(il *Interleaver, src BackfillSource, opts BackfillOptions, ready func() bool, obs BackfillObserver, log *slog.Logger) *BackfillRunner {
	if obs == nil {
		obs = nopBackfillObserver{}
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return &BackfillRunner{il: il, src: src, opts: opts, ready: ready, obs: obs, log: log, run: hex.EncodeToString(nonce[:]), enc: ReadEncoder{p: il.Pipeline}}
}

// Run looks for backfills and runs them until ctx ends. A failure of the
// source database is logged and retried; it never stops the connector.
func (r *BackfillRunner) Run(ctx context.Context) error {
	for {
		if r.ready() {
			states, err := r.src.Claim(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("backfill: cannot read the requests; retrying", "error", err, "retry_in", r.opts.Poll)
			}
			for _, st := range states {
				if ctx.Err() != nil {
					return nil
				}
				r.runOne(ctx, st)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.il.wake:
		case <-time.After(r.opts.Poll):
		}
	}
}

// runOne runs one backfill until it is done, cancelled, failed, or ctx
// ends (it then resumes at the next start from its saved progress).
func (r *BackfillRunner) runOne(ctx context.Context, st *BackfillState) {
	log := r.log.With("backfill", st.ID, "table", st.Table)
	plan, err := r.src.Prepare(ctx, st)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrBackfillRefused) {
			log.Error("backfill refused", "error", err)
			r.finish(ctx, st, BackfillFailed, ErrorText(err))
			return
		}
		log.Warn("backfill: cannot prepare; retrying", "error", err)
		return
	}
	if st.MaxKey == nil && st.Chunks == 0 {
		st.MaxKey = plan.MaxKey
		st.RowsEstimated = plan.RowsEstimated
	}
	if st.ChunkSize <= 0 {
		st.ChunkSize = r.opts.ChunkRows
	}
	r.obs.BackfillProgress(st)
	if st.Chunks == 0 {
		log.Info("backfill started", "rows_estimated", st.RowsEstimated, "chunk_rows", st.ChunkSize)
	} else {
		log.Info("backfill resumed", "after_key", RowKeyText(st.LastKey), "rows_done", st.RowsDone, "chunks", st.Chunks)
	}
	if st.MaxKey == nil {
		r.finish(ctx, st, BackfillDone, "")
		log.Info("backfill done: no row matches", "rows", st.RowsDone)
		return
	}
	defer r.il.forget(st.ID)
	r.il.track(plan.Table, plan.Key)
	defer r.il.untrack(plan.Table)
	// The slot's lag is looked up before the backfill's first chunk,
	// whenever the one before looked it up last.
	r.lagAt = time.Time{}
	// next is the chunk read ahead (low watermark written, rows read and
	// encoded, high watermark not yet written) while the one before it
	// was confirmed; nil: none.
	var next *readChunk
	// check: a cancel is looked for before the next chunk; after a chunk
	// whose progress was saved, the save told (one round trip fewer).
	check := true
	for ctx.Err() == nil {
		if check {
			if cancelled, err := r.src.Cancelled(ctx, st.ID); err == nil && cancelled {
				r.finish(ctx, st, BackfillCancelled, "")
				log.Info("backfill cancelled", "rows", st.RowsDone)
				return
			}
		}
		check = true
		if !r.pause(ctx, st.ID) {
			continue // ctx ended, or cancelled while paused: the loop's checks end it
		}
		more, err := r.chunk(ctx, st, plan, &next)
		if errors.Is(err, errCancelRequested) {
			r.finish(ctx, st, BackfillCancelled, "")
			log.Info("backfill cancelled", "rows", st.RowsDone)
			return
		}
		if err != nil {
			r.il.forget(st.ID) // a chunk read ahead is read again too
			next = nil
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errRemap) {
				continue // read again at once, with the new mappings
			}
			if errors.Is(err, ErrPermanent) || errors.Is(err, ErrBackfillRefused) {
				log.Error("backfill failed", "error", err)
				r.finish(ctx, st, BackfillFailed, ErrorText(err))
				return
			}
			log.Warn("backfill: chunk failed; reading it again", "error", err, "retry_in", r.opts.Poll)
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.opts.Poll):
			}
			continue
		}
		if !more {
			r.finish(ctx, st, BackfillDone, "")
			log.Info("backfill done", "rows", st.RowsDone, "chunks", st.Chunks)
			return
		}
		check = false
	}
}

// readChunk is a chunk read: its window, rows and size asked.
type readChunk struct {
	wm    Watermark
	w     *chunkWindow
	c     *BackfillChunk
	limit int
}

// read registers a chunk's window, writes its low watermark and reads up to
// limit rows after key after, encoding their read events as they arrive
// (see ReadEvent) with the mappings in use now (the high watermark finds
// out whether they still are).
func (r *BackfillRunner) read(ctx context.Context, st *BackfillState, plan *BackfillPlan, after []string, limit int) (*readChunk, error) {
	r.seq++
	wm := Watermark{Slot: r.il.slot, Backfill: st.ID, Chunk: r.seq, Run: r.run}
	w := r.il.expect(wm, plan.Table, plan.Key)
	wm.Mark = "low"
	if err := r.src.Watermark(ctx, wm); err != nil {
		return nil, fmt.Errorf("low watermark: %w", err)
	}
	mapping, version := r.enc.sync(plan.Table)
	reads := make([]*ReadEvent, 0, limit)
	c, err := r.src.ReadChunk(ctx, plan, after, limit, func(rel *Relation, row []Datum, key string) error {
		re, err := r.enc.m.EncodeRead(rel, row, st.ID, key)
		if err != nil {
			return fmt.Errorf("row %s: %w", key, err)
		}
		reads = append(reads, re)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read chunk: %w", err)
	}
	c.reads, c.mapping, c.version = reads, mapping, version
	r.il.deposit(w, c)
	return &readChunk{wm: wm, w: w, c: c, limit: limit}, nil
}

// chunk reads (unless *next holds it, read ahead), interleaves and
// confirms one chunk, then saves the progress. While the stream's reader
// and SNS take the chunk's events, the following chunk is read into *next
// (not while a rate cap is in force: it reads a chunk at a time): its high
// watermark is written only after this chunk's progress was saved, so at
// most one chunk's events are published and not yet saved, as without the
// read-ahead. more is false once the scan reached MaxKey.
func (r *BackfillRunner) chunk(ctx context.Context, st *BackfillState, plan *BackfillPlan, next **readChunk) (more bool, err error) {
	rc := *next
	*next = nil
	if rc == nil {
		if rc, err = r.read(ctx, st, plan, st.LastKey, r.size(st.ChunkSize)); err != nil {
			return false, err
		}
	}
	w, c, limit, wm := rc.w, rc.c, rc.limit, rc.wm
	wm.Mark = "high"
	if err := r.src.Watermark(ctx, wm); err != nil {
		return false, fmt.Errorf("high watermark: %w", err)
	}
	rows := len(c.Keys)
	more = rows >= limit
	if more && r.rate() <= 0 {
		// Read ahead: errors are left to the chunk's own turn (it is
		// read again then). A chunk read ahead is at most half the
		// largest size: its encoded rows are held while this chunk's
		// events are in flight (with whole chunks read ahead, the
		// connector's peak RSS in make bench's item 10 went from 50-55
		// to 64-69 MiB; with halves, 50 MiB).
		size := r.size(min(r.adapt(st.ChunkSize, rows, c.Took), max(r.opts.MaxChunkRows/2, r.opts.MinChunkRows, 1)))
		if nc, err := r.read(ctx, st, plan, c.LastKey, size); err == nil {
			*next = nc
		} else {
			r.il.forgetWindow(r.seq)
		}
	}
	var end LSN
	select {
	case end = <-w.result:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(r.opts.WindowTimeout):
		return false, fmt.Errorf("the high watermark of chunk %d was not decoded within %s", wm.Chunk, r.opts.WindowTimeout)
	}
	r.il.mu.Lock()
	redo, why, remap, emitted := w.redo, w.why, w.remap, w.emitted
	r.il.mu.Unlock()
	switch {
	case remap:
		return false, errRemap
	case redo:
		return false, fmt.Errorf("chunk %d: %s", wm.Chunk, why)
	case end == 0:
		return false, fmt.Errorf("the stream restarted inside chunk %d", wm.Chunk)
	}
	// Wait until SNS accepted everything up to HW's transaction (the reads
	// included) before saving the progress.
	if err := r.il.WaitAcked(ctx, end); err != nil {
		return false, err
	}
	st.Chunks++
	st.RowsDone += int64(rows)
	if c.LastKey != nil {
		st.LastKey = c.LastKey
	}
	st.LastChunkTaken = c.Took
	if c.Took > 0 {
		st.RowsPerSecond = float64(rows) / c.Took.Seconds()
	}
	st.ChunkSize = r.adapt(st.ChunkSize, rows, c.Took)
	if !more {
		st.Status = BackfillDone
	}
	cancelled, err := r.src.Save(ctx, st)
	if err != nil {
		return false, fmt.Errorf("save progress: %w", err)
	}
	r.obs.BackfillChunk(st, rows, emitted, c.Took)
	if cancelled && more {
		return false, errCancelRequested
	}
	if more {
		r.obs.BackfillProgress(st) // the end is reported by finish
	}
	if rate := r.rate(); rate > 0 && rows > 0 {
		if wait := time.Duration(float64(rows)/rate*float64(time.Second)) - c.Took; wait > 0 {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	return more, nil
}

// errCancelRequested: the save of a chunk's progress found a cancel
// request.
var errCancelRequested = errors.New("a cancel was requested")

// errRemap: the chunk's reads were encoded with mappings that changed
// before its high watermark; it is read again.
var errRemap = errors.New("the mappings changed while the chunk was read")

// liveFor is how long after the last live event seen the chunks stay
// capped to LiveChunkRows (and the rate to LiveMaxRowsPerSecond): longer
// than the gaps of a steady trickle of transactions.
const liveFor = time.Second

// size is the rows to ask of the next chunk: want, or LiveChunkRows when
// fewer and live changes flow (a chunk's read events are published in one
// burst after its high watermark, which a live change would share the
// machine with).
func (r *BackfillRunner) size(want int) int {
	if r.opts.LiveChunkRows > 0 && r.liveFlowing() {
		return min(want, r.opts.LiveChunkRows)
	}
	return want
}

// rate is the cap on rows read per second now: MaxRowsPerSecond, or
// LiveMaxRowsPerSecond when lower and live changes flow; zero: no cap.
func (r *BackfillRunner) rate() float64 {
	rate := r.opts.MaxRowsPerSecond
	if live := r.opts.LiveMaxRowsPerSecond; live > 0 && (rate <= 0 || live < rate) && r.liveFlowing() {
		rate = live
	}
	return rate
}

// liveFlowing reports whether live events were queued within liveFor.
func (r *BackfillRunner) liveFlowing() bool {
	now := time.Now()
	if n := r.il.LiveEvents(); n != r.live {
		r.live, r.until = n, now.Add(liveFor)
	}
	return now.Before(r.until)
}

// adapt sizes the next chunk to the time budget: halved (at least) when
// the chunk took longer, doubled when it took under half of it.
func (r *BackfillRunner) adapt(size, rows int, took time.Duration) int {
	switch {
	case r.opts.ChunkTime <= 0:
	case took > r.opts.ChunkTime:
		size = int(float64(size) * float64(r.opts.ChunkTime) / float64(took) * 0.8)
	case took < r.opts.ChunkTime/2 && rows >= size:
		size *= 2
	}
	return min(max(size, r.opts.MinChunkRows, 1), max(r.opts.MaxChunkRows, 1))
}

// pause waits while the slot lags or live events queue beyond their
// bounds (the queue looked at every time, the lag at most every Poll
// unless paused for it). It returns false when ctx ended or the backfill was cancelled
// while paused (a cancel does not wait for the pause to end).
func (r *BackfillRunner) pause(ctx context.Context, id string) bool {
	paused := ""
	for {
		reason := ""
		if n := r.il.LiveWindow(); r.opts.MaxQueuedEvents > 0 && n > r.opts.MaxQueuedEvents {
			reason = "queue"
		} else if r.opts.MaxLagBytes > 0 && (paused == "lag" || time.Since(r.lagAt) >= r.opts.Poll) {
			// The slot's lag moves slowly: looked up before the first
			// chunk, then at most every Poll while the backfill runs,
			// not before every chunk.
			r.lagAt = time.Now()
			if lag, err := r.src.LagBytes(ctx); err == nil && lag > r.opts.MaxLagBytes {
				reason = "lag"
			}
		}
		if reason != paused {
			r.obs.BackfillPaused(id, reason)
			if reason != "" {
				r.log.Info("backfill paused", "backfill", id, "reason", reason)
			} else {
				r.log.Info("backfill resumed after a pause", "backfill", id)
			}
			paused = reason
		}
		if reason == "" {
			return true
		}
		if cancelled, err := r.src.Cancelled(ctx, id); err == nil && cancelled {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.opts.Poll):
		}
	}
}

// finish stores a final status.
func (r *BackfillRunner) finish(ctx context.Context, st *BackfillState, status BackfillStatus, msg string) {
	st.Status = status
	st.Error = msg
	if _, err := r.src.Save(ctx, st); err != nil && ctx.Err() == nil {
		r.log.Warn("backfill: cannot save its status", "backfill", st.ID, "status", status, "error", err)
	}
	r.obs.BackfillProgress(st)
}

// RowKeyText is a key for people: its values joined by ", ".
func RowKeyText(key []string) string {
	out := ""
	for i, k := range key {
		if i > 0 {
			out += ", "
		}
		out += k
	}
	return out
}
