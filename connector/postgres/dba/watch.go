package dba

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// ErrChangesLost is wrapped by the error Watch.Run returns when the
// publication leaves out changes of a mapped table and the configuration
// says to stop.
var ErrChangesLost = errors.New("the publication leaves out changes of a mapped table")

// LossObserver is told when the publication starts or stops leaving out
// changes of a mapped table (the metrics implement it). kind is a
// postgres.LossKind.
type LossObserver interface {
	ChangesUnpublished(table, kind string, unpublished bool)
}

// WatchOptions configure a Watch.
type WatchOptions struct {
	// Pool lends the watch a connection for each look (postgres.NewPool:
	// the connector's one pool of regular connections).
	Pool        *pgxpool.Pool
	Slot        string
	Publication string
	// Mappings are what the configuration maps (tables, columns,
	// operations, row filters).
	Mappings []*connector.Mapping
	// Interval between looks at the publication (source.status_interval).
	Interval time.Duration
	// RepeatEvery is how often the error about a loss is logged again
	// while it lasts. Default 30s.
	RepeatEvery time.Duration
	// SeenEvery is how often the position at which nothing was lost is
	// written down (postgres.SeenTable) while nothing changes: a
	// connector that starts after a loss that began while none ran
	// records the gap from the last such position. Default 30s.
	SeenEvery time.Duration
	// Stop makes Run return an error wrapping ErrChangesLost and
	// connector.ErrPermanent once a loss is recorded
	// (source.on_table_loss: stop). Otherwise the other tables keep
	// streaming: stopping would not save the changes, which pgoutput
	// leaves out by the catalog of their time.
	Stop bool
	// Streaming reports whether this process streams the slot; while
	// another process streams it (this one is a standby), the watch only
	// reports what that one recorded. Nil: always.
	Streaming func() bool
	// SetupCommand is how the operator runs setup, for the fix in
	// messages.
	SetupCommand string
	Observer     LossObserver // optional
}

// Watch notices, within its interval, that the publication leaves out
// changes of a mapped table that the configuration maps, which PostgreSQL
// then drops from the stream silently:
//
//   - the table is not in the publication (ALTER PUBLICATION … DROP TABLE,
//     DROP COLUMN … CASCADE of a column in its column list);
//   - an operation the table maps is not published (SET (publish = …));
//   - the column list lacks a mapped column (the table's changes then
//     arrive without it; the pipeline skips them, see
//     CoverMissingColumns);
//   - a row filter the configuration does not have, or another one.
//
// For each it records a gap in postgres.GapTable from the last position at
// which nothing was lost, logs an error naming the table, what is lost, the
// position and the way to recover, repeated until fixed, makes Check
// (readiness) fail, and tells the observer. When the publication carries
// the changes again it closes the gap and says which changes to re-send.
// Differences that lose nothing (a table the configuration does not map,
// operations nobody maps, no row filter or column list where the
// configuration has one) are a warning, once.
//
// It writes down what it saw (postgres.SeenTable), so that a connector
// starting after the publication changed while none ran records the gap
// from the last position a connector saw it whole.
type Watch struct {
	o        WatchOptions
	log      *slog.Logger
	ready    chan struct{}
	prepared atomic.Bool

	lookMu sync.Mutex // one look at a time; guards the fields below up to mu
	// conn is the connection borrowed from the pool for the look under
	// way (borrow), nil between looks.
	conn   *pgx.Conn
	server int
	// started: the first look as the slot's active connector happened.
	started     bool
	fingerprint string
	obs         map[aspect]observation // the last full observation
	seen        map[aspect]position    // last position each aspect lost nothing at
	seenState   map[aspect]string      // what it was then
	written     map[aspect]postgres.Seen
	pending     map[aspect]position // lost at start with nothing recorded: from the slot's position, once prepared
	warned      map[string]bool
	noRecord    bool

	mu   sync.Mutex
	lost map[aspect]*lostAspect // while the publication leaves them out
}

var _ connector.LossRecord = (*Watch)(nil)

// SetMappings replaces what the watch compares the publication with (a
// reload of the configuration); the next look uses them. Safe for
// concurrent use.
func (w *Watch) SetMappings(mappings []*connector.Mapping) {
	w.lookMu.Lock()
	defer w.lookMu.Unlock()
	w.o.Mappings = mappings
}

type aspect struct {
	table string
	kind  postgres.LossKind
}

// observation is what the publication carries of an aspect: state (for the
// record), and loss, a description of what is left out ("" for nothing).
type observation struct {
	state, loss string
}

type position struct {
	lsn connector.LSN
	at  time.Time
}

type lostAspect struct {
	gap       postgres.Gap
	lastError time.Time
}

// NewWatch returns a watch. It does not connect.
func NewWatch(o WatchOptions, log *slog.Logger) *Watch {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.RepeatEvery <= 0 {
		o.RepeatEvery = 30 * time.Second
	}
	if o.SeenEvery <= 0 {
		o.SeenEvery = 30 * time.Second
	}
	return &Watch{o: o, log: log, ready: make(chan struct{}), lost: map[aspect]*lostAspect{},
		seen: map[aspect]position{}, seenState: map[aspect]string{}, written: map[aspect]postgres.Seen{},
		pending: map[aspect]position{}, warned: map[string]bool{}}
}

// Ready is closed after the first look at the publication (or when Run
// returned), so that a caller can let it see the publication before
// anything changes it: a loss that began while no connector ran is then
// recorded before setup (or run with source.create) repairs it.
func (w *Watch) Ready() <-chan struct{} { return w.ready }

// Prepared tells the watch that the publication was prepared (created or
// aligned when source.create allows): a loss still there at the next look
// is not one the preparation was about to repair, and is recorded from the
// slot's position at start.
func (w *Watch) Prepared() { w.prepared.Store(true) }

// Look looks at the publication once, now. run calls it after Prepared and
// before the stream starts, so that what the prepared publication carries
// is the baseline a later change is measured from (with its position and
// time), however soon after the start it comes. Safe for concurrent use
// with Run; it returns ErrChangesLost when a loss stops the connector.
func (w *Watch) Look(ctx context.Context) error {
	w.lookMu.Lock()
	defer w.lookMu.Unlock()
	return w.look(ctx)
}

// Check is the readiness check: an error naming every loss. Safe for
// concurrent use.
func (w *Watch) Check(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lost) == 0 {
		return nil
	}
	var parts []string
	for _, a := range slices.SortedFunc(func(yield func(aspect) bool) {
		for k := range w.lost {
			if !yield(k) {
				return
			}
		}
	}, func(a, b aspect) int {
		return strings.Compare(a.table+"\x00"+string(a.kind), b.table+"\x00"+string(b.kind))
	}) {
		g := w.lost[a].gap
		parts = append(parts, fmt.Sprintf("%s: %s since %s: its changes are not published", a.table, g.Reason, g.FromLSN))
	}
	return errors.New(strings.Join(parts, "; "))
}

// Run looks at the publication every interval until ctx ends (nil), or a
// loss is recorded and Stop is set. A database it cannot reach is tried
// again at the next interval (the replication stream reports outages).
func (w *Watch) Run(ctx context.Context) error {
	readyOnce := sync.OnceFunc(func() { close(w.ready) })
	defer readyOnce()
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		err := w.Look(ctx)
		readyOnce()
		if errors.Is(err, ErrChangesLost) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// look looks once, logging what it cannot do. lookMu held.
func (w *Watch) look(ctx context.Context) error {
	err := w.lookOnce(ctx)
	switch {
	case err == nil, errors.Is(err, ErrChangesLost):
		return err
	case ctx.Err() == nil:
		w.log.Debug("publication watch: cannot look at the publication; trying again", "error", err)
	}
	return err
}

// borrow lends the watch a connection of the pool as w.conn until give is
// called; inside a look that already holds one (CoverMissingColumns looks
// again), it is that one and give does nothing. lookMu held. The pool
// drops a connection that broke or was left inside a transaction when it
// comes back.
func (w *Watch) borrow(ctx context.Context) (give func(), err error) {
	if w.conn != nil {
		return func() {}, nil
	}
	c, err := postgres.Acquire(ctx, w.o.Pool)
	if err != nil {
		return nil, err
	}
	if w.server == 0 {
		if w.server, err = postgres.ServerVersion(ctx, c.Conn()); err != nil {
			c.Release()
			return nil, err
		}
	}
	w.conn = c.Conn()
	return func() {
		w.conn = nil
		c.Release()
	}, nil
}

// lookOnce compares the publication with the configuration once. lookMu
// held.
func (w *Watch) lookOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, max(w.o.Interval, 5*time.Second))
	defer cancel()
	give, err := w.borrow(cctx)
	if err != nil {
		return err
	}
	defer give()
	c := w.conn
	// The position first, the publication after: what is seen of the
	// publication is at least as recent as the position it is recorded
	// with, so a gap from that position misses nothing.
	var now position
	var current string
	if err := c.QueryRow(cctx, `SELECT pg_current_wal_lsn()::text, now()`).Scan(&current, &now.at); err != nil {
		return err
	}
	now.lsn = postgres.ParseLSN(current)
	now.at = now.at.UTC()
	var fingerprint *string
	var confirmed *string
	var slotActive bool
	if err := c.QueryRow(cctx, `SELECT (`+fingerprintSQL(w.server)+`),
			(SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $2),
			coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = $2), false)`,
		w.o.Publication, w.o.Slot).Scan(&fingerprint, &confirmed, &slotActive); err != nil {
		return err
	}
	if fingerprint == nil || confirmed == nil {
		// Nothing streamed yet (setup creates them), or the publication
		// is gone: the stream itself fails loudly then.
		return nil
	}
	active := !slotActive || w.o.Streaming == nil || w.o.Streaming()
	if !active {
		// A standby: it reports what the active connector recorded.
		w.started = false
		return w.followRecord(cctx)
	}
	if *fingerprint != w.fingerprint || w.obs == nil {
		obs, warnings, err := w.observe(cctx)
		if err != nil {
			return err
		}
		w.obs, w.fingerprint = obs, *fingerprint
		for _, msg := range warnings {
			if !w.warned[msg.key] {
				w.warned[msg.key] = true
				w.log.Warn(msg.text, msg.args...)
			}
		}
	}
	if !w.started {
		if err := w.start(cctx, postgres.ParseLSN(*confirmed)); err != nil {
			return err
		}
		w.started = true
	}
	var stop error
	for _, a := range w.aspects() {
		o, ok := w.obs[a]
		if !ok {
			continue // not looked at: the table is not published at all
		}
		if err := w.step(cctx, a, o, now, &stop); err != nil {
			return err
		}
	}
	w.writeSeen(cctx)
	return stop
}

// aspects lists what is compared, in a stable order.
func (w *Watch) aspects() []aspect {
	var out []aspect
	for _, m := range w.o.Mappings {
		t := m.Table
		out = append(out, aspect{t, postgres.LossTable})
		for _, op := range opNames(m) {
			out = append(out, aspect{t, postgres.LossKind(op)})
		}
		out = append(out, aspect{t, postgres.LossColumns}, aspect{t, postgres.LossRowFilter})
	}
	return out
}

// step moves one aspect's state on with what was just observed. lookMu
// held.
func (w *Watch) step(ctx context.Context, a aspect, o observation, now position, stop *error) error {
	w.mu.Lock()
	l := w.lost[a]
	w.mu.Unlock()
	if o.loss == "" {
		delete(w.pending, a)
		w.seen[a], w.seenState[a] = now, o.state
		if l == nil {
			return nil
		}
		g := l.gap
		if g.ID != 0 {
			if err := postgres.CloseGap(ctx, w.conn, g.ID, now.lsn, now.at); err != nil && !errors.Is(err, postgres.ErrNoRecord) {
				return err
			}
		}
		g.ToLSN, g.ToTime = now.lsn, now.at
		w.back(g)
		return nil
	}
	if l != nil {
		w.repeat(l, now.at)
		return nil
	}
	from, known := w.seen[a]
	if !known {
		switch p, ok := w.pending[a]; {
		case ok && !w.prepared.Load():
			return nil // lost at start: recorded once prepared, if it lasts
		case ok:
			from = p
		default:
			// Not looked at before (its table was not published): from
			// when its table was seen in the publication, or now.
			from = now
			if ts, ok := w.seen[aspect{a.table, postgres.LossTable}]; ok {
				from = ts
			}
		}
	}
	delete(w.pending, a)
	g := postgres.Gap{Slot: w.o.Slot, Publication: w.o.Publication, Table: a.table, Kind: a.kind,
		Reason: o.loss, FromLSN: from.lsn, FromTime: from.at, DetectedAt: now.at}
	if err := w.record(ctx, &g); err != nil {
		return err
	}
	if e := w.lose(g, now.at); e != nil {
		*stop = e
	}
	return nil
}

// record writes a new open gap (in memory only when the record does not
// exist). lookMu held.
func (w *Watch) record(ctx context.Context, g *postgres.Gap) error {
	id, err := postgres.OpenGap(ctx, w.conn, *g)
	switch {
	case err == nil:
		g.ID = id
	case errors.Is(err, postgres.ErrNoRecord) || isPrivilegeError(err):
		if !w.noRecord {
			w.noRecord = true
			w.log.Error("cannot record the gap durably: "+postgres.GapTable+" does not exist or this role may not write it; run "+w.o.SetupCommand+" (a restart forgets the gap until then)",
				"table", g.Table, "error", err)
		}
	default:
		return err
	}
	return nil
}

// start adopts what the record says at the first look as the slot's
// connector: open gaps are reported again, and a loss that began while no
// connector ran (the publication differs from what was last seen) is
// recorded from the position it was last seen whole. A loss the record
// cannot explain (a table or operation newly mapped, a config change) is
// a warning now and a gap from the slot's position if it outlasts the
// preparation. lookMu held.
func (w *Watch) start(ctx context.Context, confirmed connector.LSN) error {
	gaps, err := postgres.Gaps(ctx, w.conn, w.o.Slot)
	if err != nil && !isPrivilegeError(err) {
		return err
	}
	open := map[aspect]postgres.Gap{}
	for _, g := range gaps {
		if g.Open() {
			open[aspect{g.Table, g.Kind}] = g
		}
	}
	seen, err := postgres.ReadSeen(ctx, w.conn, w.o.Slot)
	if err != nil && !errors.Is(err, postgres.ErrNoRecord) && !isPrivilegeError(err) {
		return err
	}
	for k, s := range seen {
		w.written[aspect{k.Table, k.Kind}] = s
	}
	for _, a := range w.aspects() {
		o, ok := w.obs[a]
		g, isOpen := open[a]
		switch {
		case isOpen:
			// Reported again; closed by step with this look's position
			// when the publication carries the changes again.
			w.adopt(g)
		case !ok, o.loss == "":
		default:
			s, rec := seen[postgres.SeenKey{Table: a.table, Kind: a.kind}]
			if rec && s.State != o.state {
				// The publication changed while no connector ran.
				w.seen[a], w.seenState[a] = position{s.LSN, s.At}, s.State
				continue
			}
			w.pending[a] = position{lsn: confirmed}
			key := "start " + a.table + " " + string(a.kind)
			if !w.warned[key] {
				w.warned[key] = true
				msg := "the publication leaves out changes of a mapped table at start: if they were published before, those since the slot's confirmed position were not published; re-send them (backfill)"
				if a.kind == postgres.LossTable {
					msg = "a mapped table is not in the publication at start; if it was published before, its changes since the slot's confirmed position were not published: re-send them (backfill)"
				}
				w.log.Warn(msg, "table", a.table, "kind", string(a.kind), "what", o.loss, "publication", w.o.Publication,
					"confirmed_lsn", confirmed.String(), "fix", w.o.SetupCommand+" aligns the publication with the config (run does with source.create: true); still there once the connector prepared the publication, it is recorded as a gap from the confirmed position")
			}
		}
	}
	return nil
}

// adopt reports a gap recorded earlier as open now.
func (w *Watch) adopt(g postgres.Gap) {
	w.mu.Lock()
	_, known := w.lost[aspect{g.Table, g.Kind}]
	w.mu.Unlock()
	if !known {
		_ = w.lose(g, time.Now())
	}
}

// followRecord is the standby's look: report the record's open gaps,
// write nothing.
func (w *Watch) followRecord(ctx context.Context) error {
	gaps, err := postgres.Gaps(ctx, w.conn, w.o.Slot)
	if err != nil {
		if isPrivilegeError(err) {
			return nil
		}
		return err
	}
	open := map[aspect]postgres.Gap{}
	for _, g := range gaps {
		if g.Open() {
			open[aspect{g.Table, g.Kind}] = g
		}
	}
	w.mu.Lock()
	var gone []postgres.Gap
	for a, l := range w.lost {
		if _, ok := open[a]; !ok {
			gone = append(gone, l.gap)
		}
	}
	w.mu.Unlock()
	for _, g := range gone {
		for _, r := range gaps {
			if r.ID == g.ID {
				g = r
			}
		}
		w.back(g)
	}
	for _, g := range open {
		w.adopt(g)
	}
	return nil
}

// writeSeen writes down the aspects that lose nothing, when what the
// publication carries of them changed or SeenEvery passed. lookMu held.
func (w *Watch) writeSeen(ctx context.Context) {
	var out []postgres.Seen
	for _, a := range w.aspects() {
		p, ok := w.seen[a]
		if !ok || w.obs[a].loss != "" {
			continue
		}
		if _, lost := w.lost[a]; lost {
			continue
		}
		s := postgres.Seen{Table: a.table, Kind: a.kind, State: w.seenState[a], LSN: p.lsn, At: p.at}
		if old, ok := w.written[a]; ok && old.State == s.State && s.At.Sub(old.At) < w.o.SeenEvery {
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return
	}
	err := postgres.WriteSeen(ctx, w.conn, w.o.Slot, w.o.Publication, out)
	switch {
	case err == nil:
		for _, s := range out {
			w.written[aspect{s.Table, s.Kind}] = s
		}
	case !w.warned["seen"]:
		w.warned["seen"] = true
		w.log.Warn("cannot write down the publication state: a publication change made while no connector runs will be reported at start without the position it began at; run "+w.o.SetupCommand,
			"table", postgres.SeenTable, "error", err)
	}
}

// lose reports a loss and remembers it.
func (w *Watch) lose(g postgres.Gap, now time.Time) error {
	l := &lostAspect{gap: g}
	w.mu.Lock()
	w.lost[aspect{g.Table, g.Kind}] = l
	w.mu.Unlock()
	if w.o.Observer != nil {
		w.o.Observer.ChangesUnpublished(g.Table, string(g.Kind), true)
	}
	w.repeat(l, time.Time{})
	l.lastError = now
	if w.o.Stop {
		return &lossError{msg: fmt.Sprintf("stopped (source.on_table_loss: stop): %s: %s since %s: %s", g.Table, g.Reason, g.FromLSN, w.fix(g))}
	}
	return nil
}

// lossError is the error Run stops with: it wraps ErrChangesLost and
// connector.ErrPermanent without naming them.
type lossError struct{ msg string }

func (e *lossError) Error() string   { return e.msg }
func (e *lossError) Unwrap() []error { return []error{ErrChangesLost, connector.ErrPermanent} }

// Log messages of a loss (docs/operations.md names them).
const (
	msgTableLost   = "a mapped table is not in the publication: PostgreSQL leaves its changes out of the stream and they are NOT published"
	msgChangesLost = "the publication leaves out changes of a mapped table: PostgreSQL drops them from the stream and they are NOT published"
	msgTableBack   = "a mapped table is in the publication again; its changes in between were NOT published: re-send them (backfill), then delete the gap from " + postgres.GapTable
	msgChangesBack = "the publication carries the mapped changes of a table again; those in between were NOT published: re-send them (backfill), then delete the gap from " + postgres.GapTable
)

// repeat logs the error about a loss, at most every RepeatEvery (a zero
// now logs now).
func (w *Watch) repeat(l *lostAspect, now time.Time) {
	if !now.IsZero() && now.Sub(l.lastError) < w.o.RepeatEvery {
		return
	}
	if !now.IsZero() {
		l.lastError = now
	}
	g := l.gap
	args := []any{"table", g.Table, "kind", string(g.Kind), "what", g.Reason, "publication", g.Publication, "missing_from_lsn", g.FromLSN.String()}
	if !g.FromTime.IsZero() {
		args = append(args, "missing_from_time", g.FromTime.Format(time.RFC3339Nano))
	}
	if g.ID != 0 {
		args = append(args, "gap_id", g.ID)
	}
	args = append(args, "recover", w.fix(g))
	msg := msgChangesLost
	if g.Kind == postgres.LossTable {
		msg = msgTableLost
	}
	w.log.Error(msg, args...)
}

func (w *Watch) fix(g postgres.Gap) string {
	resend := "re-send them (backfill)"
	if g.ID != 0 {
		resend = fmt.Sprintf("re-send them (%s --gap %d, once the publication carries them again)", strings.Replace(w.o.SetupCommand, " setup", " backfill start", 1), g.ID)
	}
	if g.Kind == postgres.LossDelete {
		resend = "deletes cannot be re-sent (a backfill re-sends rows that exist): tell the consumers which rows to check"
	}
	if g.Kind == postgres.LossTable {
		return fmt.Sprintf("put it back with %s (or ALTER PUBLICATION %s ADD TABLE %s with the mapped columns); its changes from %s until then are missing: %s and then delete the gap from %s",
			w.o.SetupCommand, pgx.Identifier{g.Publication}.Sanitize(), g.Table, g.FromLSN, resend, postgres.GapTable)
	}
	return fmt.Sprintf("align the publication with the config: %s (its output shows the ALTER PUBLICATION it runs); the changes it left out from %s until then are missing: %s and then delete the gap from %s",
		w.o.SetupCommand, g.FromLSN, resend, postgres.GapTable)
}

// back reports that the publication carries an aspect's changes again.
func (w *Watch) back(g postgres.Gap) {
	w.mu.Lock()
	delete(w.lost, aspect{g.Table, g.Kind})
	w.mu.Unlock()
	if w.o.Observer != nil {
		w.o.Observer.ChangesUnpublished(g.Table, string(g.Kind), false)
	}
	msg := msgChangesBack
	if g.Kind == postgres.LossTable {
		msg = msgTableBack
	}
	w.log.Error(msg, "table", g.Table, "kind", string(g.Kind), "what", g.Reason, "publication", g.Publication,
		"missing_from_lsn", g.FromLSN.String(), "missing_to_lsn", g.ToLSN.String(),
		"missing_to_time", g.ToTime.Format(time.RFC3339Nano), "gap_id", g.ID)
}

func isPrivilegeError(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == "42501"
}
