package connector

// Online backfill: re-emitting rows that already exist (a first load, a
// re-sync after a gap, a company's history when Kobot starts a link) while
// the live stream keeps flowing.
//
// The method is DBLog's watermarks. For each chunk of the table (keyset
// pagination by primary key, a bounded number of rows), the BackfillRunner
//
//  1. registers the chunk's window with the Interleaver (the reader side);
//  2. writes a low watermark (LW) into the WAL: a transactional logical
//     decoding message (pg_logical_emit_message), so no table is written;
//  3. reads the chunk in a short read-only REPEATABLE READ transaction and
//     keeps its snapshot (pg_current_snapshot), encoding each row's read
//     event as it arrives (ReadEvent: all but the position and time, which
//     come from HW's transaction);
//  4. writes a high watermark (HW).
//
// While the stream's reader and SNS take a chunk's events, the runner reads
// the next chunk (steps 1-3, unless a rate cap is set); its HW is written
// only once the chunk before it was confirmed and saved.
//
// The Interleaver sits between the replication stream and the Pipeline. From
// LW on, the primary key of every change of the table (old and new key of
// an update, so a key change drops both) is dropped from the chunk: the
// change's live event carries that row's newer state. At HW it queues the
// surviving rows as read events inside HW's transaction, so per key no read
// is published after a newer live change (events of one key share a lane,
// in order), and the slot is never confirmed past HW before the reads were
// accepted. Rows deleted, or moved out of the backfill's filter, inside the
// window are changes too: they drop out and their live events stand in. A
// transaction that commits after HW (it started before LW, or spans the
// watermarks) was invisible to the chunk's snapshot: its events follow the
// reads. The visibility race (a commit record written before LW by a
// transaction still invisible to the SELECT, e.g. one waiting for a
// synchronous standby, or a backend not yet scheduled again after writing
// it) is closed with the snapshot: the keys of changes decoded before LW
// whose transaction the snapshot does not see are dropped too. From the
// backfill's start the Interleaver notes the table's changes, and forgets
// those a chunk's snapshot saw (every later snapshot sees them too). A
// transaction decoded before the backfill began (its keys were not noted)
// and still invisible to a chunk's snapshot makes the chunk be read again.
//
// Durability: the runner saves a backfill's progress (last key read) in the
// source database only after the Pipeline confirmed everything up to the
// end of HW's transaction, i.e. after SNS accepted the chunk. A crash at any
// point re-reads the chunk after the last saved key, with new watermarks:
// nothing is skipped, and a re-sent row has the same event id
// (ReadEventID: backfill, table, primary key) but the new HW's position and
// time (and the row's state then). A chunk read ahead has no HW yet and
// emits nothing, so at most one chunk was published and not saved, and
// only its rows can be sent twice. The backfill holds the slot back by at
// most one chunk.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WatermarkPrefix is the prefix of the backfill's logical decoding
// messages; the content is a Watermark in JSON.
const WatermarkPrefix = "baitoru-cdc.backfill"

// Watermark is the content of a watermark message. Slot and Run tell this
// connector's watermarks from another connector's on the same database and
// from those of an earlier run of this one: both are ignored.
type Watermark struct {
	Slot     string `json:"slot"`
	Backfill string `json:"backfill"`
	Chunk    int64  `json:"chunk"`
	Run      string `json:"run"`
	Mark     string `json:"mark"` // "low" or "high"
}

// BackfillStatus is the state of a backfill.
type BackfillStatus string

// Backfill statuses, as stored.
const (
	BackfillRunning   BackfillStatus = "running"
	BackfillDone      BackfillStatus = "done"
	BackfillCancelled BackfillStatus = "cancelled"
	BackfillFailed    BackfillStatus = "failed"
)

// ErrBackfillRefused marks a backfill request that cannot run as asked (an
// unmapped table, no primary key, a predicate naming an unpublished column,
// an unsupported server): the message names the problem and the fix.
var ErrBackfillRefused = errors.New("backfill refused")

// BackfillState is one backfill and its durable progress.
type BackfillState struct {
	ID    string
	Table string // schema.name
	// Where is the backfill's own predicate (SQL over published columns),
	// empty for the whole table; KeyField/KeyValue restrict it to the rows
	// of one link key (field name in events = value).
	Where              string
	KeyField, KeyValue string
	Status             BackfillStatus
	// LastKey is the primary key (text form, per column) of the last row
	// read by a chunk whose events SNS accepted; nil: none yet.
	LastKey []string
	// MaxKey bounds the scan: the largest key matching at the start; rows
	// inserted after it arrive live.
	MaxKey         []string
	RowsDone       int64
	RowsEstimated  int64
	Chunks         int64
	ChunkSize      int
	Error          string
	RequestedBy    string
	RequestedAt    time.Time
	StartedAt      time.Time
	UpdatedAt      time.Time
	FinishedAt     time.Time
	RowsPerSecond  float64 // of the last chunk (not stored)
	LastChunkTaken time.Duration
}

// Snapshot is a PostgreSQL snapshot (pg_current_snapshot): transactions
// below Xmin are visible, from Xmax on invisible, those in Xip in progress.
type Snapshot struct {
	Xmin, Xmax uint64
	Xip        []uint64
}

// Sees reports whether a committed transaction xid (32 bits, as the stream
// carries it; compared within the snapshot's epoch) is visible in s.
func (s Snapshot) Sees(xid uint32) bool {
	if s.Xmax == 0 {
		return true // no snapshot taken
	}
	// Widen xid into the snapshot's 64-bit space: the value closest to
	// Xmax with the same low 32 bits.
	x := s.Xmax&^0xFFFFFFFF | uint64(xid)
	switch {
	case x > s.Xmax && x-s.Xmax > 1<<31 && x >= 1<<32:
		x -= 1 << 32
	case x < s.Xmax && s.Xmax-x > 1<<31:
		x += 1 << 32
	}
	if x >= s.Xmax {
		return false
	}
	if x < s.Xmin {
		return true
	}
	return !slices.Contains(s.Xip, x)
}

// BackfillChunk is what one chunk read: the keys of its rows, in primary-key
// order, and (filled by the runner as the rows are read) their read events.
type BackfillChunk struct {
	Rel *Relation
	// Keys[i] is the key of the i-th row (RowKey of its primary-key
	// values).
	Keys []string
	// LastKey is the primary key of the last row, per column; nil when
	// the chunk is empty.
	LastKey  []string
	Snapshot Snapshot
	Took     time.Duration

	// reads[i] is the read event of the i-th row (nil: the table is not
	// mapped), encoded with mapping and version.
	reads   []*ReadEvent
	mapping *Mapping
	version string
}

// RowFunc receives a row read by a chunk, in key order: the values of the
// published columns of rel in text form (valid only during the call) and
// the row's key (RowKey). An error stops the read and is returned.
type RowFunc func(rel *Relation, row []Datum, key string) error

// BackfillPlan is a backfill checked against the table and its mapping.
type BackfillPlan struct {
	Table string
	// Key are the primary-key columns, in index order.
	Key []string
	// MaxKey is the largest key matching when the backfill started (the
	// stored one when it resumes); nil: nothing matches.
	MaxKey        []string
	RowsEstimated int64
	// Source is the adapter's compiled query; opaque here.
	Source any
}

// BackfillSource is the source database side of backfill (connector/postgres
// implements it). Its methods are called from the BackfillRunner's
// goroutine only.
type BackfillSource interface {
	// Claim returns the backfills this connector runs, oldest first:
	// those it was running, then start requests not yet started (their
	// state is created). Cancel requests are applied first.
	Claim(ctx context.Context) ([]*BackfillState, error)
	// Prepare checks st against the table and its mapping; errors
	// wrapping ErrBackfillRefused are the requester's to fix.
	Prepare(ctx context.Context, st *BackfillState) (*BackfillPlan, error)
	// Watermark writes a watermark into the WAL.
	Watermark(ctx context.Context, w Watermark) error
	// ReadChunk reads up to limit rows after key after (nil: from the
	// start) and not beyond the plan's MaxKey, handing each to row as it
	// arrives; errors of row are returned wrapped.
	ReadChunk(ctx context.Context, p *BackfillPlan, after []string, limit int, row RowFunc) (*BackfillChunk, error)
	// Save stores st's progress and status and reports, in the same round
	// trip, whether a cancel of st was requested.
	Save(ctx context.Context, st *BackfillState) (cancelled bool, err error)
	// Cancelled reports whether a cancel of backfill id was requested.
	Cancelled(ctx context.Context, id string) (bool, error)
	// LagBytes is how far the slot's confirmed position is behind the
	// server's WAL end.
	LagBytes(ctx context.Context) (int64, error)
}

// RowKey joins the text forms of a row's primary-key values into the key
// the Interleaver compares (a NUL cannot occur in PostgreSQL text).
func RowKey(values []string) string { return strings.Join(values, "\x00") }

// Interleaver is the reader side of backfill: it sits between the
// replication stream and the Pipeline (its Handle is the subscription's
// handler), passes everything on, drops from the open chunk the keys of
// the changes it sees, and queues the chunk's surviving rows as read
// events at the high watermark. It also wakes the runner when a backfill
// request is decoded.
type Interleaver struct {
	*Pipeline
	slot     string
	requests string // schema.name of the requests table
	log      *slog.Logger
	wake     chan struct{}

	mu sync.Mutex
	// wins are the registered chunk windows, oldest first: a chunk
	// waiting for its high watermark, and the next one, read ahead, whose
	// low watermark follows it in the stream.
	wins []*chunkWindow
	// hist notes, for each table a backfill runs on, the changes decoded
	// whose transactions the last chunk's snapshot did not see yet (or
	// decoded since): a chunk registered later drops their keys unless
	// its snapshot sees them, however long before it they were decoded
	// (the visibility race).
	hist map[string]*tableHist
	// commits are the xids of the last transactions decoded (a ring;
	// reader goroutine only), ncommits how many in all: for the
	// visibility race of transactions decoded before a backfill began.
	commits  [commitRing]uint32
	ncommits atomic.Uint64
	// done is the window whose high watermark was decoded in the open
	// transaction; it is told the transaction's end at Commit.
	done *chunkWindow
	tx   *Tx
}

// chunkWindow is the window of one chunk between its watermarks.
type chunkWindow struct {
	wm    Watermark
	table string
	key   []string // primary-key columns
	open  bool     // the low watermark was decoded
	shut  bool     // the high watermark was decoded
	chunk *BackfillChunk
	// dropped are the keys changed since LW.
	dropped map[string]struct{}
	// seen are the changes of the table decoded since the window was
	// registered, with their transaction, and prev the table's history
	// when it was (tableHist): for the visibility race.
	seen []txKey
	prev []txKey
	// result receives the end LSN of HW's transaction once the reads are
	// queued, or 0 when the window was lost (the stream restarted): the
	// chunk is then read again.
	result chan LSN
	// redo is set when the chunk must be read again (a change without its
	// key in the stream); remap when its reads were encoded with mappings
	// that changed before the high watermark.
	redo    bool
	why     string // why redo
	lwAt    uint64 // Interleaver.ncommits when LW was decoded
	remap   bool
	emitted int
	keyIdx  map[*Relation][]int
}

type txKey struct {
	xid uint32
	key string
}

// NewInterleaver returns the reader side of backfill for slot; requests is
// the requests table (schema.name) whose inserts wake the runner.
func NewInterleaver(p *Pipeline, slot, requests string, log *slog.Logger) *Interleaver {
	return &Interleaver{Pipeline: p, slot: slot, requests: requests, log: log, wake: make(chan struct{}, 1)}
}

// Handle takes the next message of the replication stream, as
// Pipeline.Handle does, and passes it on to the pipeline: a change after
// its keys were dropped from the open chunk (a change of the requests
// table wakes the runner instead), this connector's watermarks open and
// close the chunk's window (the high one queues the chunk's reads), a
// commit tells the chunk whose reads it carries where they end, and a
// rollback gives up the open chunk. Reader goroutine only.
func (i *Interleaver) Handle(ctx context.Context, m Message) error {
	switch m.Kind {
	case MsgBegin:
		i.tx = m.Tx
	case MsgChange:
		if !i.change(m.Change) {
			return nil
		}
	case MsgLogical:
		if err := i.message(ctx, m.Tx, m.Prefix, m.Content); err != nil {
			return err
		}
	case MsgCommit:
		if i.tx != nil {
			n := i.ncommits.Load()
			i.commits[n%commitRing] = i.tx.XID
			i.ncommits.Store(n + 1)
		}
		err := i.Pipeline.Handle(ctx, m)
		i.commit(m.End)
		return err
	case MsgRollback:
		err := i.Pipeline.Handle(ctx, m)
		i.rollback()
		return err
	}
	return i.Pipeline.Handle(ctx, m)
}

// change drops c's keys from the open chunk; it reports whether c goes on
// to the pipeline (a change of the requests table does not: it wakes the
// runner).
func (i *Interleaver) change(c *Change) bool {
	table := c.Rel.QualifiedName()
	if table == i.requests {
		if c.Op == OpInsert {
			select {
			case i.wake <- struct{}{}:
			default:
			}
		}
		return false
	}
	i.mu.Lock()
	for _, w := range i.wins {
		if !w.shut && w.table == table {
			w.note(c)
		}
	}
	if h := i.hist[table]; h != nil {
		h.note(c)
		if len(h.seen) > maxHist {
			// Bounded: a long pause under heavy writes to the table.
			// Only a transaction invisible for that long would be
			// missed.
			h.seen = slices.Delete(h.seen, 0, len(h.seen)-maxHist/2)
		}
	}
	i.mu.Unlock()
	return true
}

// note records the keys of c (old and new: a primary-key update drops both).
func (w *chunkWindow) note(c *Change) {
	idx, ok := w.keyIdx[c.Rel]
	if !ok {
		idx = make([]int, 0, len(w.key))
		for _, k := range w.key {
			for j, col := range c.Rel.Columns {
				if col.Name == k {
					idx = append(idx, j)
					break
				}
			}
		}
		if len(idx) != len(w.key) {
			idx = nil // the stream lacks a key column: drop the chunk whole
		}
		w.keyIdx[c.Rel] = idx
	}
	var xid uint32
	if c.Tx != nil {
		xid = c.Tx.XID
	}
	rows := [2][]Datum{c.New, c.Old}
	switch c.Op {
	case OpInsert:
		rows[1] = nil
	case OpDelete:
		rows[0] = nil
	}
	for _, row := range rows {
		if len(row) == 0 {
			continue
		}
		k, ok := keyOfRow(row, idx)
		if !ok {
			k = "\x00*" // unknown key: everything of this chunk is stale
		}
		if w.open {
			w.dropped[k] = struct{}{}
		}
		w.seen = append(w.seen, txKey{xid, k})
	}
}

func keyOfRow(row []Datum, idx []int) (string, bool) {
	if idx == nil {
		return "", false
	}
	var sb strings.Builder
	for n, j := range idx {
		if j >= len(row) || row[j].Kind != DatumText {
			return "", false
		}
		if n > 0 {
			sb.WriteByte(0)
		}
		sb.Write(row[j].Value)
	}
	return sb.String(), true
}

// message handles a logical decoding message of the stream: this
// connector's watermarks open and close the chunk's window; others are
// ignored.
func (i *Interleaver) message(ctx context.Context, tx *Tx, prefix string, content []byte) error {
	if prefix != WatermarkPrefix || tx == nil {
		return nil
	}
	var wm Watermark
	if err := json.Unmarshal(content, &wm); err != nil || wm.Slot != i.slot {
		return nil // another connector's, or not ours
	}
	i.mu.Lock()
	var w *chunkWindow
	for _, o := range i.wins {
		if o.wm.Backfill == wm.Backfill && o.wm.Chunk == wm.Chunk && o.wm.Run == wm.Run {
			w = o
			break
		}
	}
	if w == nil {
		i.mu.Unlock()
		return nil // of an earlier run, or a chunk given up
	}
	switch wm.Mark {
	case "low":
		w.open = true
		w.lwAt = i.ncommits.Load()
		i.mu.Unlock()
		return nil
	case "high":
		if !w.open || w.shut || w.chunk == nil {
			i.mu.Unlock()
			return nil
		}
		w.shut = true
		i.wins = slices.DeleteFunc(i.wins, func(o *chunkWindow) bool { return o == w })
	default:
		i.mu.Unlock()
		return nil
	}
	ch := w.chunk
	stale := w.dropped
	if _, all := stale["\x00*"]; all {
		i.mu.Unlock()
		i.log.Warn("backfill: a change of the table lacked its primary key in the stream; the chunk is read again", "backfill", w.wm.Backfill, "chunk", w.wm.Chunk)
		w.redo, w.why = true, "a change inside it came without its primary key"
		i.done = w
		return nil
	}
	if h := i.hist[w.table]; h != nil && h.pre && i.invisibleBefore(h.trackAt, w.lwAt, ch.Snapshot) {
		// Committed before LW, decoded before the backfill began (its
		// keys were not noted), and still invisible to the chunk's
		// snapshot: a later read sees it.
		i.mu.Unlock()
		i.log.Warn("backfill: a transaction committed before the chunk was read was not yet visible to the read; the chunk is read again", "backfill", w.wm.Backfill, "chunk", w.wm.Chunk)
		w.redo, w.why = true, "a transaction committed before it was not yet visible to its read"
		i.done = w
		return nil
	} else if h != nil {
		h.pre = false // what this snapshot sees, every later one sees
	}
	for _, list := range [][]txKey{w.prev, w.seen} {
		for _, tk := range list {
			if !ch.Snapshot.Sees(tk.xid) {
				stale[tk.key] = struct{}{}
			}
		}
	}
	if h := i.hist[w.table]; h != nil {
		// What this snapshot sees, every later one sees.
		h.seen = slices.DeleteFunc(h.seen, func(tk txKey) bool { return ch.Snapshot.Sees(tk.xid) })
	}
	i.mu.Unlock()
	if mp := i.Pipeline.mapper; ch.mapping != mp.Mapping(w.table) || ch.version != mp.Version() {
		i.log.Info("backfill: the mappings changed while the chunk was read; it is read again", "backfill", w.wm.Backfill, "chunk", w.wm.Chunk)
		w.remap = true
		i.done = w
		return nil
	}
	seq := 0
	for n, r := range ch.reads {
		if _, skip := stale[ch.Keys[n]]; skip || r == nil {
			continue
		}
		seq++
		if err := i.Pipeline.readEncoded(ctx, tx, r); err != nil {
			return fmt.Errorf("backfill %s chunk %d: %w", w.wm.Backfill, w.wm.Chunk, err)
		}
		ch.reads[n] = nil // published: the chunk no longer holds it
	}
	w.emitted = seq
	i.done = w
	return nil
}

// commit follows the pipeline's end of the transaction: a chunk whose
// reads were queued in it learns the position after which they are
// acknowledged.
func (i *Interleaver) commit(end LSN) {
	if w := i.done; w != nil {
		i.done = nil
		select {
		case w.result <- end:
		default:
		}
	}
}

// rollback follows the pipeline's: the transaction being read is
// forgotten, and a chunk whose window was open is read again (its
// watermarks may not be decoded again).
func (i *Interleaver) rollback() {
	i.done = nil
	i.mu.Lock()
	for _, w := range i.wins {
		select {
		case w.result <- 0:
		default:
		}
	}
	i.mu.Unlock()
}

// expect registers the window of the next chunk (before its low watermark
// is written); the keys noted for the previous chunk carry over for the
// visibility race.
func (i *Interleaver) expect(wm Watermark, table string, key []string) *chunkWindow {
	w := &chunkWindow{wm: wm, table: table, key: key, dropped: map[string]struct{}{},
		result: make(chan LSN, 1), keyIdx: map[*Relation][]int{}}
	i.mu.Lock()
	if h := i.hist[table]; h != nil {
		w.prev = slices.Clone(h.seen)
	}
	i.wins = append(i.wins, w)
	i.mu.Unlock()
	return w
}

// tableHist notes a table's changes while a backfill of it runs (see
// Interleaver.hist): a window never opened, whose seen are the changes.
type tableHist struct {
	chunkWindow
	trackAt uint64 // Interleaver.ncommits when the backfill began
	pre     bool   // a transaction decoded before then may still be invisible
}

// maxHist bounds the changes Interleaver.hist notes for one table.
const maxHist = 1 << 18

// commitRing is how many of the last transactions' xids the Interleaver
// keeps.
const commitRing = 1 << 10

// invisibleBefore reports whether a transaction decoded before the
// backfill began (ring position < trackAt) and before a chunk's LW
// (< lwAt), of those the ring still holds, is invisible to snap. Reader
// goroutine only.
func (i *Interleaver) invisibleBefore(trackAt, lwAt uint64, snap Snapshot) bool {
	to := min(trackAt, lwAt)
	from := max(lwAt, commitRing) - commitRing
	for n := from; n < to; n++ {
		if !snap.Sees(i.commits[n%commitRing]) {
			return true
		}
	}
	return false
}

// track notes the changes of table (primary key key) from now on, for the
// visibility race of its chunks, until untrack; the runner calls it when a
// backfill of table starts or resumes.
func (i *Interleaver) track(table string, key []string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.hist == nil {
		i.hist = map[string]*tableHist{}
	}
	if i.hist[table] == nil {
		i.hist[table] = &tableHist{chunkWindow: chunkWindow{table: table, key: key, dropped: map[string]struct{}{}, keyIdx: map[*Relation][]int{}},
			trackAt: i.ncommits.Load(), pre: true}
	}
}

// untrack ends track's notes of table.
func (i *Interleaver) untrack(table string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.hist, table)
}

// deposit hands the chunk's rows to its window (before the high watermark
// is written).
func (i *Interleaver) deposit(w *chunkWindow, c *BackfillChunk) {
	i.mu.Lock()
	w.chunk = c
	i.mu.Unlock()
}

// forget gives up the windows of backfill id (it stopped, or its chunks are
// read again).
func (i *Interleaver) forget(id string) {
	i.mu.Lock()
	i.wins = slices.DeleteFunc(i.wins, func(w *chunkWindow) bool { return w.wm.Backfill == id })
	i.mu.Unlock()
}

// forgetWindow gives up the window of chunk number n (read ahead, and its
// read failed: it is read again in its turn).
func (i *Interleaver) forgetWindow(n int64) {
	i.mu.Lock()
	i.wins = slices.DeleteFunc(i.wins, func(w *chunkWindow) bool { return w.wm.Chunk == n })
	i.mu.Unlock()
}
