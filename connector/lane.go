package connector

import (
	"context"
	"sync"
	"sync/atomic"
)

// laneQueue is what waits for one publishing lane: chunks of live events and
// chunks of backfill reads, queued apart, live events first, so that a
// backfill's chunk does not hold up the live changes of other keys. Per key
// the order of the stream holds:
//   - a read is handed over only after every live event queued before it in
//     the reader (Pipeline.Read hands those over first), and live chunks
//     are taken before read chunks;
//   - a live event whose key has a read (or another event) still waiting in
//     the read queue goes behind it, into the read queue (Pipeline.enqueue
//     asks behind).
//
// The reader goroutine puts; the lane's goroutine takes and, after
// publishing, releases the keys of what it took from the read queue.
type laneQueue struct {
	mu    sync.Mutex
	live  [][]*Event
	reads [][]*Event
	// queued counts, per key, the events put in the read queue and not
	// yet published; nil until the first read.
	queued map[string]int
	// n is the number of events counted in queued: behind answers
	// without the lock while no backfill runs.
	n    atomic.Int64
	wake chan struct{} // a put happened (capacity 1)
}

func newLaneQueue() *laneQueue { return &laneQueue{wake: make(chan struct{}, 1)} }

// put queues a chunk; reads true puts it in the read queue. Reader
// goroutine only.
func (q *laneQueue) put(chunk []*Event, reads bool) {
	q.mu.Lock()
	if reads {
		if q.queued == nil {
			q.queued = map[string]int{}
		}
		for _, e := range chunk {
			e.behind = true
			q.queued[e.Key]++
		}
		q.n.Add(int64(len(chunk)))
		q.reads = append(q.reads, chunk)
	} else {
		q.live = append(q.live, chunk)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// behind reports whether an event of key waits in the read queue (then a
// live event of that key must be put there too, after it). Reader
// goroutine only.
func (q *laneQueue) behind(key string) bool {
	if q.n.Load() == 0 {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued[key] > 0
}

// next takes the next chunk, live ones first, without waiting (ok false:
// none queued).
func (q *laneQueue) next() (chunk []*Event, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case len(q.live) > 0:
		chunk = q.live[0]
		q.live[0] = nil
		q.live = q.live[1:]
	case len(q.reads) > 0:
		chunk = q.reads[0]
		q.reads[0] = nil
		q.reads = q.reads[1:]
	default:
		return nil, false
	}
	return chunk, true
}

// wait takes the next chunk, waiting for one; ok false when ctx ended.
func (q *laneQueue) wait(ctx context.Context) (chunk []*Event, ok bool) {
	for {
		if chunk, ok := q.next(); ok {
			return chunk, true
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// published releases the keys of the events of batch taken from the read
// queue. Lane goroutine only.
func (q *laneQueue) published(batch []*Event) {
	var locked bool
	var released int64
	for _, e := range batch {
		if !e.behind {
			continue
		}
		if !locked {
			q.mu.Lock()
			locked = true
		}
		released++
		if n := q.queued[e.Key] - 1; n > 0 {
			q.queued[e.Key] = n
		} else {
			delete(q.queued, e.Key)
		}
	}
	if locked {
		q.n.Add(-released)
		q.mu.Unlock()
	}
}
