package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
)

// ErrTableLost is wrapped by the error TableWatch.Run returns when a mapped
// table left the publication and the configuration says to stop.
var ErrTableLost = errors.New("mapped table not in the publication")

// TableObserver is told when a mapped table leaves or rejoins the
// publication (the metrics implement it).
type TableObserver interface {
	TableUnpublished(table string, unpublished bool)
}

// TableWatchOptions configure a TableWatch.
type TableWatchOptions struct {
	DSN         string
	Slot        string
	Publication string
	// Tables are the mapped tables (schema.name).
	Tables []string
	// Interval between looks at the publication (source.status_interval).
	Interval time.Duration
	// RepeatEvery is how often the error about an unpublished table is
	// logged again while it lasts. Default 30s.
	RepeatEvery time.Duration
	// Stop makes Run return an error wrapping ErrTableLost and
	// connector.ErrPermanent once the loss is recorded
	// (source.on_table_loss: stop). Otherwise the other tables keep
	// streaming: stopping would not save the changes, which pgoutput
	// leaves out by the catalog of their time.
	Stop bool
	// Command is how the operator runs setup, for the fix in messages.
	SetupCommand string
	Observer     TableObserver // optional
}

// TableWatch notices, within its interval, that a mapped table is no longer
// in the publication (ALTER PUBLICATION … DROP TABLE, or DROP COLUMN …
// CASCADE of a column in its column list): from then on PostgreSQL leaves
// the table's changes out of the stream, silently. It records the gap in
// GapTable (from the last position at which the table was still
// published), logs an error naming the table, the position and the way to
// recover, repeated until the table is back, makes Check (readiness) fail,
// and tells the observer. When the table is back it closes the gap (to the
// position at which it was seen again) and says which changes to re-send.
// Tables the publication has beyond the mapped ones lose nothing and are a
// warning.
type TableWatch struct {
	o     TableWatchOptions
	log   *slog.Logger
	ready chan struct{}

	mu   sync.Mutex
	lost map[string]*lostTable // by table, while unpublished

	seen      map[string]position // last position each mapped table was published at
	extraSeen map[string]bool
	noTable   bool // GapTable missing: said once
}

type position struct {
	lsn connector.LSN
	at  time.Time
}

type lostTable struct {
	gap       Gap
	lastError time.Time
}

// NewTableWatch returns a watch. It does not connect.
func NewTableWatch(o TableWatchOptions, log *slog.Logger) *TableWatch {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.RepeatEvery <= 0 {
		o.RepeatEvery = 30 * time.Second
	}
	return &TableWatch{o: o, log: log, ready: make(chan struct{}), lost: map[string]*lostTable{},
		seen: map[string]position{}, extraSeen: map[string]bool{}}
}

// Ready is closed after the first look at the publication (or when Run
// returned), so that a caller can let it see the publication before
// anything changes it: a table missing at start is then recorded before
// setup adds it back.
func (w *TableWatch) Ready() <-chan struct{} { return w.ready }

// Check is the readiness check: an error naming every mapped table that is
// not in the publication. Safe for concurrent use.
func (w *TableWatch) Check(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lost) == 0 {
		return nil
	}
	var parts []string
	for _, t := range slices.Sorted(func(yield func(string) bool) {
		for k := range w.lost {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s is not in publication %s since %s: its changes are not published", t, w.o.Publication, w.lost[t].gap.FromLSN))
	}
	return errors.New(strings.Join(parts, "; "))
}

// Run looks at the publication every interval until ctx ends (nil), or a
// mapped table left it and Stop is set. A database it cannot reach is
// retried at the next interval (the replication stream reports outages).
func (w *TableWatch) Run(ctx context.Context) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	readyOnce := sync.OnceFunc(func() { close(w.ready) })
	defer readyOnce()
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		err := w.look(ctx, &conn)
		readyOnce()
		switch {
		case errors.Is(err, ErrTableLost):
			return err
		case err != nil && ctx.Err() == nil:
			w.log.Debug("publication watch: cannot look at the publication; trying again", "error", err)
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// look compares the publication with the mapped tables once.
func (w *TableWatch) look(ctx context.Context, conn **pgx.Conn) error {
	cctx, cancel := context.WithTimeout(ctx, max(w.o.Interval, 5*time.Second))
	defer cancel()
	if *conn == nil {
		cfg, err := pgx.ParseConfig(w.o.DSN)
		if err != nil {
			return fmt.Errorf("parse source dsn: %w", redact(err))
		}
		cfg.RuntimeParams["application_name"] = "baitoru-cdc publication watch"
		c, err := pgx.ConnectConfig(cctx, cfg)
		if err != nil {
			return fmt.Errorf("connect: %w", redact(err))
		}
		*conn = c
	}
	c := *conn
	var now position
	var current string
	var pubExists bool
	var confirmed *string
	if err := c.QueryRow(cctx, `SELECT pg_current_wal_lsn()::text, now(),
			EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),
			(SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $2)`,
		w.o.Publication, w.o.Slot).Scan(&current, &now.at, &pubExists, &confirmed); err != nil {
		return err
	}
	now.lsn = parseLSN(&current)
	if !pubExists || confirmed == nil {
		// Nothing streamed yet (setup creates them), or the publication
		// is gone: the stream itself fails loudly then.
		return nil
	}
	rows, err := c.Query(cctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, w.o.Publication)
	if err != nil {
		return err
	}
	published, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	gaps, err := Gaps(cctx, c, w.o.Slot)
	if err != nil {
		return err
	}
	openByTable := map[string]Gap{}
	for _, g := range gaps {
		if g.Open() {
			openByTable[g.Table] = g
		}
	}
	var stop error
	for _, t := range w.o.Tables {
		in := slices.Contains(published, t)
		g, open := openByTable[t]
		switch {
		case in && open:
			if err := closeGap(cctx, c, g.ID, now.lsn, now.at); err != nil && !errors.Is(err, errNoGapTable) {
				return err
			}
			g.ToLSN, g.ToTime = now.lsn, now.at
			w.back(g)
			w.seen[t] = now
		case in:
			w.mu.Lock()
			if l := w.lost[t]; l != nil { // gap known only in memory
				g = l.gap
				g.ToLSN, g.ToTime = now.lsn, now.at
				w.mu.Unlock()
				w.back(g)
			} else {
				w.mu.Unlock()
			}
			w.seen[t] = now
		case !open:
			w.mu.Lock()
			l := w.lost[t]
			w.mu.Unlock()
			if l != nil {
				w.repeat(l, now.at)
				break
			}
			p, ok := w.seen[t]
			if !ok {
				// Not published when the connector started: a newly
				// mapped table (setup or run adds it), or one that left
				// while no connector ran, which nothing recorded.
				if !w.extraSeen["missing "+t] {
					w.extraSeen["missing "+t] = true
					w.log.Warn("a mapped table is not in the publication at start; if it was published before, its changes since the slot's confirmed position were not published: re-send them (backfill)",
						"table", t, "publication", w.o.Publication, "confirmed_lsn", parseLSN(confirmed).String(), "fix", w.o.SetupCommand+" adds it (run does with source.create: true)")
				}
				break
			}
			g := Gap{Slot: w.o.Slot, Publication: w.o.Publication, Table: t,
				Reason: "not in publication " + w.o.Publication, FromLSN: p.lsn, FromTime: p.at}
			id, err := openGap(cctx, c, g)
			switch {
			case errors.Is(err, errNoGapTable):
				if !w.noTable {
					w.noTable = true
					w.log.Error("cannot record the gap durably: "+GapTable+" does not exist; create it with "+w.o.SetupCommand+" (a restart forgets the gap until then)", "table", t)
				}
			case err != nil:
				return err
			}
			g.ID, g.DetectedAt = id, now.at
			if e := w.lose(g, now.at); e != nil {
				stop = e
			}
		default: // still unpublished, gap recorded (maybe by an earlier process)
			w.mu.Lock()
			l := w.lost[t]
			w.mu.Unlock()
			if l == nil {
				if e := w.lose(g, now.at); e != nil {
					stop = e
				}
				break
			}
			w.repeat(l, now.at)
		}
	}
	for _, p := range published {
		if !slices.Contains(w.o.Tables, p) && !w.extraSeen[p] {
			w.extraSeen[p] = true
			w.log.Warn("a table in the publication is not mapped: its changes are read and dropped (nothing is lost); map it, or remove it from the publication to save work",
				"table", p, "publication", w.o.Publication)
		}
	}
	return stop
}

// lose reports a table that left the publication and remembers it.
func (w *TableWatch) lose(g Gap, now time.Time) error {
	l := &lostTable{gap: g}
	w.mu.Lock()
	w.lost[g.Table] = l
	w.mu.Unlock()
	if w.o.Observer != nil {
		w.o.Observer.TableUnpublished(g.Table, true)
	}
	w.repeat(l, time.Time{})
	l.lastError = now
	if w.o.Stop {
		return fmt.Errorf("%s is not in publication %s since %s (source.on_table_loss: stop): %s: %w: %w",
			g.Table, g.Publication, g.FromLSN, w.fix(g), ErrTableLost, connector.ErrPermanent)
	}
	return nil
}

// repeat logs the error about an unpublished table, at most every
// RepeatEvery (a zero last time logs now).
func (w *TableWatch) repeat(l *lostTable, now time.Time) {
	if !now.IsZero() && now.Sub(l.lastError) < w.o.RepeatEvery {
		return
	}
	if !now.IsZero() {
		l.lastError = now
	}
	g := l.gap
	args := []any{"table", g.Table, "publication", g.Publication, "missing_from_lsn", g.FromLSN.String()}
	if !g.FromTime.IsZero() {
		args = append(args, "missing_from_time", g.FromTime.Format(time.RFC3339Nano))
	}
	if g.ID != 0 {
		args = append(args, "gap_id", g.ID)
	}
	args = append(args, "recover", w.fix(g))
	w.log.Error("a mapped table is not in the publication: PostgreSQL leaves its changes out of the stream and they are NOT published", args...)
}

func (w *TableWatch) fix(g Gap) string {
	return fmt.Sprintf("put it back with %s (or ALTER PUBLICATION %s ADD TABLE %s with the mapped columns); its changes from %s until then are missing: re-send them (backfill) and then delete the gap from %s",
		w.o.SetupCommand, pgx.Identifier{g.Publication}.Sanitize(), g.Table, g.FromLSN, GapTable)
}

// back reports a table that is in the publication again.
func (w *TableWatch) back(g Gap) {
	w.mu.Lock()
	delete(w.lost, g.Table)
	w.mu.Unlock()
	if w.o.Observer != nil {
		w.o.Observer.TableUnpublished(g.Table, false)
	}
	w.log.Error("a mapped table is in the publication again; its changes in between were NOT published: re-send them (backfill), then delete the gap from "+GapTable,
		"table", g.Table, "publication", g.Publication, "missing_from_lsn", g.FromLSN.String(), "missing_to_lsn", g.ToLSN.String(),
		"missing_to_time", g.ToTime.Format(time.RFC3339Nano), "gap_id", g.ID)
}
