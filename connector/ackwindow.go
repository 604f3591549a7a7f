package connector

// The pipeline's bookkeeping: the tracker, which turns the publisher's
// acceptances into the acknowledged position (a transaction counts once
// every event of it and of every transaction before it was accepted), and
// the window, which bounds the events read and not yet accepted.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// txState is the acknowledgement state of one transaction.
type txState struct {
	end     LSN
	pending int
	closed  bool
}

// tracker keeps transactions in commit order and advances the acknowledged
// position over the prefix of transactions that are committed and whose
// events were all accepted.
type tracker struct {
	mu    sync.Mutex
	queue []*txState // oldest first; the last may be open
	open  *txState
	acked atomic.Uint64
	obs   Observer
	// wake is closed when acked advances, if someone waits (waitPast).
	wake chan struct{}
}

// waitPast returns nil when acked reached lsn, and otherwise a channel
// closed at the next advance.
func (t *tracker) waitPast(lsn LSN) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if LSN(t.acked.Load()) >= lsn {
		return nil
	}
	if t.wake == nil {
		t.wake = make(chan struct{})
	}
	return t.wake
}

func (t *tracker) begin(tx *Tx) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &txState{}
	t.open = s
	t.queue = append(t.queue, s)
}

// add counts one more in-flight event of the open transaction.
func (t *tracker) add() *txState {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open.pending++
	return t.open
}

func (t *tracker) commit(end LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.open
	if s == nil {
		return
	}
	t.open = nil
	s.end = end
	s.closed = true
	// A transaction with nothing in flight, behind others: fold it into the
	// previous one so the queue holds only transactions with events.
	if n := len(t.queue); s.pending == 0 && n >= 2 && t.queue[n-2].closed {
		t.queue[n-2].end = end
		t.queue[n-1] = nil
		t.queue = t.queue[:n-1]
	}
	t.advance()
}

func (t *tracker) ack(batch []*Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range batch {
		if e.tx != nil {
			e.tx.pending--
		}
	}
	t.advance()
}

func (t *tracker) abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.queue[:0]
	for _, s := range t.queue {
		if s.closed {
			kept = append(kept, s)
		}
	}
	clear(t.queue[len(kept):])
	t.queue = kept
	t.open = nil
	t.advance()
}

// advance pops completed transactions; t.mu held.
func (t *tracker) advance() {
	i := 0
	var end LSN
	for ; i < len(t.queue); i++ {
		s := t.queue[i]
		if !s.closed || s.pending > 0 {
			break
		}
		end = s.end
	}
	if i == 0 {
		return
	}
	n := copy(t.queue, t.queue[i:])
	clear(t.queue[n:])
	t.queue = t.queue[:n]
	if uint64(end) > t.acked.Load() {
		t.acked.Store(uint64(end))
		t.obs.Flushed(end)
		if t.wake != nil {
			close(t.wake)
			t.wake = nil
		}
	}
}

// window bounds the events (and bytes) in flight.
type window struct {
	mu        sync.Mutex
	events    int
	bytes     int64
	maxEvents int
	maxBytes  int64
	wake      chan struct{}
}

var errWindowClosed = errors.New("pipeline stopped")

// tryAcquire reserves room for one event if there is room now.
func (w *window) tryAcquire(size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.events < w.maxEvents && (w.bytes+size <= w.maxBytes || w.events == 0) {
		w.events++
		w.bytes += size
		return true
	}
	return false
}

// acquire reserves room for one event of size bytes. An event larger than
// the whole byte budget is let through alone.
func (w *window) acquire(ctx context.Context, size int64, stop <-chan struct{}) error {
	return w.waitUntil(ctx, stop, func() bool {
		if w.events < w.maxEvents && (w.bytes+size <= w.maxBytes || w.events == 0) {
			w.events++
			w.bytes += size
			return true
		}
		return false
	})
}

func (w *window) release(n int, bytes int64) {
	w.mu.Lock()
	w.events -= n
	w.bytes -= bytes
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
	w.mu.Unlock()
}

func (w *window) load() (int, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events, w.bytes
}

func (w *window) wakeLocked() chan struct{} {
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	return w.wake
}

func (w *window) waitEmpty(ctx context.Context, stop <-chan struct{}) error {
	return w.waitUntil(ctx, stop, func() bool { return w.events == 0 })
}

// waitUntil calls ok under w.mu until it returns true, sleeping until the
// next release in between; it gives up when ctx ends or stop is closed.
func (w *window) waitUntil(ctx context.Context, stop <-chan struct{}, ok func() bool) error {
	for {
		w.mu.Lock()
		if ok() {
			w.mu.Unlock()
			return nil
		}
		wake := w.wakeLocked()
		w.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return errWindowClosed
		}
	}
}
