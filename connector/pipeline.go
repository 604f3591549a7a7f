package connector

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PipelineOptions tune a Pipeline. The pipeline applies no defaults: the
// values come resolved from package config (publisher.*), and a value
// written in code means what it says, zero included.
type PipelineOptions struct {
	// Lanes is the number of batches published concurrently (at least
	// one). Events with the same key always travel in the same lane, in
	// order.
	Lanes int
	// MaxBatch is the most events handed to one Publish call (at least
	// one): the publisher's limit, e.g. sns.MaxBatchEntries.
	MaxBatch int
	// MaxInflightEvents and MaxInflightBytes bound what has been read from
	// the stream but not yet accepted by the publisher; the reader blocks
	// beyond them, so memory stays flat whatever the transaction size.
	// Zero: no bound.
	MaxInflightEvents int
	MaxInflightBytes  int64
	// ShutdownGrace is how long in-flight publishes may finish once the
	// context given to Run ends (zero: none).
	ShutdownGrace time.Duration
	// Losses, when set, is asked about a change of a mapped table that
	// arrives without some of its mapped columns: when it covers the
	// change (a recorded gap), the changes of that version of the table
	// are skipped instead of stopping the connector.
	Losses LossRecord
}

// LossRecord is the durable record of changes the publication left out.
type LossRecord interface {
	// CoverMissingColumns reports whether a recorded gap of table covers
	// a change of transaction xid committed at lsn that arrived without
	// columns: the publication's column list left them out. false: the
	// mapping no longer matches the table (a rename, a dropped column); an
	// error: the record could not be asked (retried with the stream).
	CoverMissingColumns(ctx context.Context, table string, columns []string, xid uint32, lsn LSN) (bool, error)
}

// normalize turns the values that cannot be taken literally into their
// meaning: no lane or an empty batch is one, no bound is the largest.
func (o *PipelineOptions) normalize() {
	o.Lanes = max(o.Lanes, 1)
	o.MaxBatch = max(o.MaxBatch, 1)
	if o.MaxInflightEvents <= 0 {
		o.MaxInflightEvents = math.MaxInt
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = math.MaxInt64
	}
}

// Observer is told what the pipeline does; metrics implement it. Methods
// are called from the pipeline's goroutines concurrently and must be fast:
// ChangeRead runs once per row change on the reader goroutine. The events
// in flight are not reported here: sample Window when needed (a scrape).
type Observer interface {
	// ChangeRead is called for every row change read from the stream.
	ChangeRead(table string, op Op)
	// Published is called after a batch was accepted; the events must not
	// be retained.
	Published(events []*Event, took time.Duration)
	// PublishFailed is called when a batch failed for good.
	PublishFailed(events []*Event, err error)
	// Flushed reports a new acknowledged position.
	Flushed(lsn LSN)
}

// SchemaObserver is an Observer that also counts schema changes of the
// mapped tables; the pipeline tells it when it implements it.
type SchemaObserver interface {
	// ColumnTypeChanged is called once per type change of a published
	// column, on the reader goroutine.
	ColumnTypeChanged(tc TypeChange)
}

type nopObserver struct{}

func (nopObserver) ChangeRead(string, Op)             {}
func (nopObserver) Published([]*Event, time.Duration) {}
func (nopObserver) PublishFailed([]*Event, error)     {}
func (nopObserver) Flushed(LSN)                       {}

// Pipeline maps row changes to events, publishes them in lanes, and keeps
// track of which WAL position every event up to has been accepted, in
// commit order.
//
// One goroutine (the replication reader) hands it the stream through
// Handle; Acked may be called from anywhere; Run runs the publishing lanes.
// Acknowledgement: Acked returns the end LSN of the last transaction all of
// whose events, and all earlier transactions' events, the Publisher
// accepted. Nothing beyond it may be confirmed to PostgreSQL for events
// handed over; what the source confirms when nothing is pending is the
// source's decision.
type Pipeline struct {
	mapper *Mapper
	pub    Publisher
	opts   PipelineOptions
	log    *slog.Logger
	obs    Observer

	lanes []*laneQueue
	seed  maphash.Seed
	rr    uint64
	// pending holds, per lane, events mapped but not yet handed to the lane
	// (reader goroutine only): handing over chunks instead of single events
	// saves a goroutine wake-up per event. pendingReads holds those bound
	// for the lane's read queue (backfill reads, and live events behind a
	// read of their key).
	pending      [][]*Event
	pendingReads [][]*Event
	running      chan struct{} // closed when Run's lanes have stopped

	win     window
	tracker tracker
	// reads counts the backfill read events in flight (Read), so that
	// the live events waiting can be told apart (LiveWindow).
	reads atomic.Int64
	// live counts the live events queued since the start (LiveEvents).
	live atomic.Int64

	failOnce sync.Once
	failed   chan struct{}
	failErr  error

	reload     atomic.Pointer[pendingReload] // mappings waiting for the next transaction
	priorUntil atomic.Uint64                 // LSN after which prior is not needed (0: not known yet)
	// Reader goroutine only: the mappings of the last applied reload, and
	// those before it for the transactions open when it changed the
	// publication.
	current        []*Mapping
	currentVersion string
	// mapState is the newest mappings applied (NewPipeline, then each
	// reload), for the backfill's runner, which encodes reads with them
	// (ReadEncoder).
	mapState atomic.Pointer[mappingState]
	prior    *priorMappings
}

// NewPipeline returns a pipeline; it publishes nothing until Run is called.
func NewPipeline(mapper *Mapper, pub Publisher, opts PipelineOptions, obs Observer, log *slog.Logger) *Pipeline {
	opts.normalize()
	if obs == nil {
		obs = nopObserver{}
	}
	p := &Pipeline{
		mapper: mapper, pub: pub, opts: opts, log: log, obs: obs,
		seed:    maphash.MakeSeed(),
		failed:  make(chan struct{}),
		running: make(chan struct{}),
	}
	for range opts.Lanes {
		p.lanes = append(p.lanes, newLaneQueue())
		p.pending = append(p.pending, make([]*Event, 0, opts.MaxBatch))
		p.pendingReads = append(p.pendingReads, nil)
	}
	p.mapState.Store(&mappingState{source: mapper.source, mappings: mapper.Mappings(), version: mapper.Version()})
	p.win.maxEvents = opts.MaxInflightEvents
	p.win.maxBytes = opts.MaxInflightBytes
	p.tracker.obs = obs
	return p
}

// Run publishes events until ctx ends or a publish fails for good. When ctx
// ends, in-flight batches get ShutdownGrace to finish before they are
// abandoned (abandoned events are re-sent after restart: they were never
// acknowledged). It returns nil on shutdown and the publish error otherwise.
func (p *Pipeline) Run(ctx context.Context) error {
	pubCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer close(p.running)
	var wg sync.WaitGroup
	for i, q := range p.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.lane(pubCtx, i, q)
		}()
	}
	select {
	case <-p.failed:
	case <-ctx.Done():
		grace, stop := context.WithTimeout(context.Background(), p.opts.ShutdownGrace)
		if err := p.win.waitEmpty(grace, p.failed); err != nil && p.Err() == nil {
			n, _ := p.win.load()
			p.log.Warn("shutdown grace period over; abandoning in-flight events (they are re-sent after restart)", "events", n)
		}
		stop()
	}
	cancel()
	wg.Wait()
	return p.Err()
}

// Err returns the error that stopped the pipeline, if any.
func (p *Pipeline) Err() error {
	select {
	case <-p.failed:
		return p.failErr
	default:
		return nil
	}
}

func (p *Pipeline) fail(err error) {
	p.failOnce.Do(func() {
		p.failErr = err
		close(p.failed)
	})
}

func (p *Pipeline) lane(ctx context.Context, id int, q *laneQueue) {
	batch := make([]*Event, 0, p.opts.MaxBatch)
	var carry []*Event // the rest of a chunk, sent first by the next call
	for {
		if len(carry) == 0 {
			var ok bool
			if carry, ok = q.wait(ctx); !ok {
				return
			}
		}
		// Natural batching: fill the call up to MaxBatch with what is
		// already queued, splitting a chunk that does not fit whole (its
		// rest leads the next call, so the lane's order holds). Full calls
		// matter: a PublishBatch endpoint costs about the same per call
		// whether it carries 2 entries or 10.
		batch = batch[:0]
	fill:
		for {
			n := min(len(carry), p.opts.MaxBatch-len(batch))
			batch = append(batch, carry[:n]...)
			carry = carry[n:]
			if len(batch) == p.opts.MaxBatch {
				break
			}
			var ok bool
			if carry, ok = q.next(); !ok {
				break fill
			}
		}
		start := time.Now()
		err := p.pub.Publish(ctx, batch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.obs.PublishFailed(batch, err)
			p.fail(fmt.Errorf("publish lane %d: %w", id, err))
			return
		}
		p.obs.Published(batch, time.Since(start))
		q.published(batch)
		p.tracker.ack(batch)
		var bytes, reads int64
		for i, e := range batch {
			bytes += int64(e.Size())
			if e.Op == OpRead {
				reads++
			}
			e.tx = nil
			batch[i] = nil
		}
		if reads > 0 {
			p.reads.Add(-reads)
		}
		p.win.release(len(batch), bytes)
	}
}

// typeChanged reports type changes of published columns: a warning each
// (consumers see another JSON form from this transaction on) and the
// observer's count.
func (p *Pipeline) typeChanged(tx *Tx, tcs []TypeChange) {
	so, _ := p.obs.(SchemaObserver)
	for _, tc := range tcs {
		attrs := []any{"table", tc.Table, "column", tc.Column, "field", tc.Field, "old_type", tc.OldType, "new_type", tc.NewType}
		if tx != nil {
			attrs = append(attrs, "lsn", tx.CommitLSN.String(), "commit_time", tx.CommitTime)
		}
		attrs = append(attrs, "action", "events from this transaction on carry the new type's JSON form; make sure the consumers (Kobot) accept it, or map the column to a stable form")
		p.log.Warn("a published column changed type: its values in events change form", attrs...)
		if so != nil {
			so.ColumnTypeChanged(tc)
		}
	}
}

// begin starts a transaction (MsgBegin). A reload waiting
// (see Reload) takes effect here, between two transactions: at the first
// one committed after the publication changed that was not open then.
// A transaction open when the publication changed is encoded by the
// mappings before the reload (the stream carries its changes from before
// the change as the old publication did), until TransitionEnded.
func (p *Pipeline) begin(tx *Tx) {
	if r := p.reload.Load(); r != nil && tx.CommitLSN > r.after && !slices.Contains(r.open, tx.XID) && p.reload.CompareAndSwap(r, nil) {
		p.prior = &priorMappings{mappings: p.mapper.Mappings(), version: p.mapper.Version(), open: r.open}
		p.current = r.mappings
		p.currentVersion = r.version
		p.priorUntil.Store(0)
		p.mapper.SetMappings(r.mappings, r.version)
		p.mapState.Store(&mappingState{source: p.mapper.source, mappings: r.mappings, version: r.version})
		close(r.applied)
		p.log.Info("mappings reloaded", "version", r.version, "from_lsn", tx.CommitLSN.String())
	}
	if p.prior != nil {
		if until := LSN(p.priorUntil.Load()); until != 0 && tx.CommitLSN > until {
			p.prior = nil
		}
	}
	switch {
	case p.prior != nil && slices.Contains(p.prior.open, tx.XID):
		if p.mapper.Version() != p.prior.version {
			p.mapper.SetMappings(p.prior.mappings, p.prior.version)
			p.log.Info("a transaction open when the publication changed is encoded by the mappings before the reload",
				"version", p.prior.version, "xid", tx.XID, "lsn", tx.CommitLSN.String())
		}
	case p.current != nil && p.mapper.Version() != p.currentVersion:
		p.mapper.SetMappings(p.current, p.currentVersion)
	}
	p.tracker.begin(tx)
}

// pendingReload is a set of mappings waiting for the next transaction.
type pendingReload struct {
	mappings []*Mapping
	version  string
	after    LSN      // applies to transactions committed after it
	open     []uint32 // transactions open when the publication changed
	applied  chan struct{}
}

// priorMappings are the mappings before the last reload, for the
// transactions open when the publication changed for it.
type priorMappings struct {
	mappings []*Mapping
	version  string
	open     []uint32
}

// Reload hands new mappings to the pipeline: the reader applies them at the
// start of the first transaction committed after the WAL position after
// (the position once the publication carries what they map; 0: the next
// transaction) that is not one of open (the transactions in progress when
// the publication changed, whose earlier changes the stream carries as the
// old publication did: they keep the old mappings until TransitionEnded).
// So every event of a transaction is encoded by one version, a transaction
// is never encoded by mappings its stream cannot carry, and events already
// mapped (in flight) are published and acknowledged as they were. The
// returned channel is closed once they apply. A Reload not yet applied is
// replaced by a newer one (its channel is then never closed). Safe for
// concurrent use.
func (p *Pipeline) Reload(mappings []*Mapping, version string, after LSN, open []uint32) <-chan struct{} {
	r := &pendingReload{mappings: mappings, version: version, after: after, open: open, applied: make(chan struct{})}
	p.reload.Store(r)
	return r.applied
}

// TransitionEnded tells the pipeline that the transactions open when the
// publication changed for the last applied reload all ended before the WAL
// position lsn: the mappings before it are no longer needed after lsn.
// Safe for concurrent use.
func (p *Pipeline) TransitionEnded(lsn LSN) { p.priorUntil.Store(uint64(lsn)) }

// Handle takes the next message of the replication stream: it is the
// replication handler the source calls (postgres.Handler), from one
// goroutine, in stream order. For MsgChange it maps the change and queues
// its event, blocking while the in-flight window is full; the change and
// its data are not retained. For MsgFlush it returns once every event
// handed over was accepted. It returns mapping errors (wrapping
// ErrPermanent), the pipeline's error once it failed, and for MsgFlush
// ctx's error when ctx ends first.
func (p *Pipeline) Handle(ctx context.Context, m Message) error {
	switch m.Kind {
	case MsgBegin:
		p.begin(m.Tx)
		return nil
	case MsgChange:
		return p.change(ctx, m.Change)
	case MsgCommit:
		p.commit(m.End)
		return nil
	case MsgLogical:
		return nil // nothing to publish
	case MsgFlush:
		return p.drain(ctx)
	case MsgRollback:
		p.abort()
		return nil
	}
	return fmt.Errorf("pipeline: unknown stream message kind %d", m.Kind)
}

// change maps a row change and queues its event, if the change is mapped.
func (p *Pipeline) change(ctx context.Context, c *Change) error {
	if err := p.Err(); err != nil {
		return err
	}
	p.obs.ChangeRead(c.Rel.QualifiedName(), c.Op)
	ev, err := p.mapper.Map(c)
	if tcs := p.mapper.TypeChanges(); tcs != nil {
		p.typeChanged(c.Tx, tcs)
	}
	var mc *MissingColumnsError
	if errors.As(err, &mc) && p.opts.Losses != nil {
		if err = p.skipUncovered(ctx, c, mc); err != nil {
			return err
		}
	}
	if err != nil || ev == nil {
		return err
	}
	return p.enqueue(ctx, ev, false)
}

// Read maps a row re-emitted by backfill (Mapper.EncodeRead) and queues its
// event in the open transaction c.Tx (the backfill's high watermark's), as
// readEncoded does. Reader goroutine only.
func (p *Pipeline) Read(ctx context.Context, c *Change, backfill, rowKey string) error {
	r, err := p.mapper.EncodeRead(c.Rel, c.New, backfill, rowKey)
	if err != nil || r == nil {
		return err
	}
	return p.readEncoded(ctx, c.Tx, r)
}

// readEncoded queues a read encoded before its high watermark (see
// ReadEvent) in the open transaction tx, the high watermark's, so the
// position after that transaction is confirmed only once the event was
// accepted. Like Change, it blocks while the window is full. The caller
// made sure r was encoded with the mappings in use (the Interleaver
// compares the chunk's mapping and version). Reader goroutine only.
func (p *Pipeline) readEncoded(ctx context.Context, tx *Tx, r *ReadEvent) error {
	if err := p.Err(); err != nil {
		return err
	}
	time, head := p.mapper.txParts(tx)
	if err := p.enqueue(ctx, r.assemble(tx, time, head), true); err != nil {
		return err
	}
	p.reads.Add(1)
	return nil
}

// Mapping returns the mapping of a schema-qualified table, or nil.
func (p *Pipeline) Mapping(table string) *Mapping { return p.mapper.Mapping(table) }

// enqueue queues ev in the open transaction; read is true for a backfill
// read (see laneQueue for the order). Reader goroutine only.
func (p *Pipeline) enqueue(ctx context.Context, ev *Event, read bool) error {
	size := int64(ev.Size())
	if !p.win.tryAcquire(size) {
		// Hand over what waits in the reader before blocking: the window
		// frees up only as lanes publish.
		if err := p.flush(); err != nil {
			return err
		}
		if err := p.win.acquire(ctx, size, p.failed); err != nil {
			if perr := p.Err(); perr != nil {
				return perr
			}
			return err
		}
	}
	ev.tx = p.tracker.add()
	if !read {
		p.live.Add(1)
	}
	var lane uint64
	if len(p.lanes) > 1 {
		if ev.Key != "" {
			lane = maphash.String(p.seed, ev.Key) % uint64(len(p.lanes))
		} else {
			p.rr++
			lane = p.rr % uint64(len(p.lanes))
		}
	}
	if read && len(p.pending[lane]) > 0 {
		p.handOver(int(lane)) // the live events before it go first
	}
	if read || len(p.pendingReads[lane]) > 0 && p.pendingBehind(int(lane), ev.Key) || p.lanes[lane].behind(ev.Key) {
		p.pendingReads[lane] = append(p.pendingReads[lane], ev)
		if len(p.pendingReads[lane]) >= p.opts.MaxBatch {
			p.handOverReads(int(lane))
		}
		return nil
	}
	p.pending[lane] = append(p.pending[lane], ev)
	if len(p.pending[lane]) >= p.opts.MaxBatch {
		p.handOver(int(lane))
	}
	return nil
}

// pendingBehind reports whether an event of key waits in the lane's
// pendingReads. Reader goroutine only.
func (p *Pipeline) pendingBehind(lane int, key string) bool {
	for _, e := range p.pendingReads[lane] {
		if e.Key == key {
			return true
		}
	}
	return false
}

// skipUncovered skips the changes of c's relation when a recorded gap
// covers them, and returns mc otherwise. Reader goroutine only.
func (p *Pipeline) skipUncovered(ctx context.Context, c *Change, mc *MissingColumnsError) error {
	var lsn LSN
	var xid uint32
	if c.Tx != nil {
		lsn, xid = c.Tx.CommitLSN, c.Tx.XID
	}
	covered, err := p.opts.Losses.CoverMissingColumns(ctx, mc.Table, mc.Columns, xid, lsn)
	if err != nil {
		return fmt.Errorf("%s arrives without mapped columns %s; cannot look up the gap record: %w", mc.Table, strings.Join(mc.Columns, ", "), err)
	}
	if !covered {
		return mc
	}
	p.mapper.SkipRelation(c.Rel)
	p.log.Error("changes of a mapped table arrive without mapped columns (the publication's column list left them out): they are NOT published; the gap is recorded",
		"table", mc.Table, "columns", strings.Join(mc.Columns, ", "), "lsn", lsn.String(),
		"recover", "align the publication with the config (baitoru-cdc setup), then re-send the table's changes of the recorded gap (backfill)")
	return nil
}

// flush hands every lane its pending events. Reader goroutine only.
func (p *Pipeline) flush() error {
	for i := range p.pending {
		if len(p.pending[i]) > 0 {
			p.handOver(i)
		}
		if len(p.pendingReads[i]) > 0 {
			p.handOverReads(i)
		}
	}
	return p.Err()
}

// handOver hands the lane its pending live events; the window bounds what
// a lane holds.
func (p *Pipeline) handOver(lane int) {
	chunk := p.pending[lane]
	p.pending[lane] = make([]*Event, 0, p.opts.MaxBatch)
	p.lanes[lane].put(chunk, false)
}

// handOverReads hands the lane its pendingReads, for its read queue.
func (p *Pipeline) handOverReads(lane int) {
	chunk := p.pendingReads[lane]
	p.pendingReads[lane] = make([]*Event, 0, p.opts.MaxBatch)
	p.lanes[lane].put(chunk, true)
}

// commit ends the current transaction; endLSN is the end of its commit
// record, the position acknowledged once all its events are accepted.
func (p *Pipeline) commit(endLSN LSN) {
	p.tracker.commit(endLSN)
	_ = p.flush() // an error here is the pipeline's, reported by change and Err
}

// Acked returns the acknowledged position: every event of every
// transaction whose commit ends at or before it was accepted by the
// Publisher. Safe for concurrent use.
func (p *Pipeline) Acked() LSN { return LSN(p.tracker.acked.Load()) }

// Inflight returns the number of events read and not yet accepted.
func (p *Pipeline) Inflight() int { n, _ := p.win.load(); return n }

// LiveWindow returns the events of the stream (not backfill reads) read and
// not yet accepted. Safe for concurrent use.
func (p *Pipeline) LiveWindow() int {
	n, _ := p.win.load()
	return max(n-int(p.reads.Load()), 0)
}

// LiveEvents returns how many live events (not backfill reads) were queued
// since the start: a backfill compares it between chunks to tell whether
// live changes flow. Safe for concurrent use.
func (p *Pipeline) LiveEvents() int64 { return p.live.Load() }

// WaitAcked returns once Acked reached lsn, or with ctx's error, or with
// the pipeline's error once it failed. Safe for concurrent use.
func (p *Pipeline) WaitAcked(ctx context.Context, lsn LSN) error {
	for {
		wake := p.tracker.waitPast(lsn)
		if wake == nil {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.failed:
			return p.failErr
		}
	}
}

// Window returns the events read and not yet accepted, and their bytes.
// Safe for concurrent use (metrics sample it at scrape time).
func (p *Pipeline) Window() (events int, bytes int64) { return p.win.load() }

// drain waits until every queued event was accepted (or ctx ends, or the
// pipeline fails), while the reader reads nothing.
func (p *Pipeline) drain(ctx context.Context) error {
	if err := p.Err(); err != nil {
		return err
	}
	if err := p.flush(); err != nil {
		return err
	}
	if err := p.win.waitEmpty(ctx, p.failed); err != nil {
		if perr := p.Err(); perr != nil {
			return perr
		}
		return err
	}
	return nil
}

// abort forgets the transaction being read, whose commit never arrived (the
// connection broke). Its events that were published are re-sent, with the
// same ids, when the stream restarts. Comes after a drain.
func (p *Pipeline) abort() {
	p.tracker.abort()
	p.mapper.Reset()
}
