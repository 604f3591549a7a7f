package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// The connector keeps a small durable record in Baitoru's database, in a
// schema of its own (Schema), next to the data whose changes it is about:
// it outlives the connector's process, is seen by a standby connector and by
// `check`, and a DBA (and backfill) reads it with plain SQL. `setup`
// creates the schema and its tables and grants the connector's role what
// it needs (package dba); `teardown` drops them.
//
//   - GapTable: gaps, spans of WAL in which changes of a mapped table were
//     not published because the publication left them out (the table left
//     it, an operation is no longer published, the column list lost a
//     mapped column, a row filter was added or changed). Backfill fills
//     them.
//   - SeenTable: what the publication carried of each mapped table the
//     last time a connector looked, and at which position; a connector
//     that starts after the publication changed while none ran compares
//     with it and records the gap from that position.

// Schema is the schema of the connector's own tables in the source
// database.
const Schema = "baitoru_cdc"

// GapTable and SeenTable are the connector's tables (schema-qualified).
const (
	GapTable  = Schema + ".gaps"
	SeenTable = Schema + ".publication_state"
)

// LegacyGapTable is where an earlier version kept the gaps; setup moves it
// to GapTable.
const LegacyGapTable = "public.baitoru_cdc_gaps"

// Querier is what the catalog readers need: a connection, a pool or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// LossKind says what of a mapped table the publication leaves out.
type LossKind string

// Loss kinds. Each is its own gap: a table can lose its updates and, later,
// its place in the publication.
const (
	// LossTable: the table is not in the publication (ALTER PUBLICATION
	// … DROP TABLE, DROP COLUMN … CASCADE of a listed column): none of
	// its changes are published.
	LossTable LossKind = "table"
	// LossInsert, LossUpdate, LossDelete: the publication does not publish
	// an operation the table maps (ALTER PUBLICATION … SET (publish = …)).
	LossInsert LossKind = "insert"
	LossUpdate LossKind = "update"
	LossDelete LossKind = "delete"
	// LossColumns: the publication's column list lacks a mapped column;
	// the table's changes arrive without it and are not published.
	LossColumns LossKind = "columns"
	// LossRowFilter: the publication's row filter differs from the
	// mapping's where: (added or changed): rows it leaves out are not
	// published.
	LossRowFilter LossKind = "row filter"
)

// Gap is a span of WAL in which changes of a mapped table were not
// published: from FromLSN (a position at or before the first missing
// change) to ToLSN (at or after the last one), or still open (ToLSN 0)
// while the publication leaves them out. Kind says which changes: all of
// the table's, one operation's, or the rows a row filter left out.
// Re-sending the table's rows changed in that span (backfill) closes the
// hole, except for deletes, which only the stream carries; a wider span
// only re-sends more.
type Gap struct {
	ID          int64
	Slot        string
	Publication string
	Table       string // schema.name
	Kind        LossKind
	FromLSN     connector.LSN
	FromTime    time.Time // zero when unknown
	ToLSN       connector.LSN
	ToTime      time.Time
	Reason      string
	DetectedAt  time.Time
}

// Open reports whether the publication still leaves the changes out.
func (g Gap) Open() bool { return g.ToLSN == 0 }

// ErrNoRecord means the connector's tables do not exist (setup was not
// run, or the role may not see them).
var ErrNoRecord = errors.New(GapTable + " does not exist")

// Gaps returns the recorded gaps of slot, oldest first. It is the API of
// the gap record: `check` lists them, backfill fills them. A database
// without GapTable has none.
func Gaps(ctx context.Context, q Querier, slot string) ([]Gap, error) {
	rows, err := q.Query(ctx, `SELECT id, slot, publication, table_name, kind, from_lsn::text, from_time, to_lsn::text, to_time, reason, detected_at
		FROM `+GapTable+` WHERE slot = $1 ORDER BY id`, slot)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", GapTable, err)
	}
	gaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Gap, error) {
		var g Gap
		var from, kind string
		var to *string
		var fromTime, toTime *time.Time
		if err := r.Scan(&g.ID, &g.Slot, &g.Publication, &g.Table, &kind, &from, &fromTime, &to, &toTime, &g.Reason, &g.DetectedAt); err != nil {
			return g, err
		}
		g.Kind = LossKind(kind)
		g.FromLSN = parseLSN(&from)
		g.ToLSN = parseLSN(to)
		if fromTime != nil {
			g.FromTime = fromTime.UTC()
		}
		if toTime != nil {
			g.ToTime = toTime.UTC()
		}
		g.DetectedAt = g.DetectedAt.UTC()
		return g, nil
	})
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", GapTable, err)
	}
	return gaps, nil
}

// OpenGap records a new open gap and returns its id (ErrNoRecord when
// GapTable does not exist). When the slot already has an open gap of the
// same table and kind (another connector of the slot recorded it), it
// returns that one's id instead.
func OpenGap(ctx context.Context, q Querier, g Gap) (int64, error) {
	var fromTime *time.Time
	if !g.FromTime.IsZero() {
		fromTime = &g.FromTime
	}
	var id int64
	err := q.QueryRow(ctx, `WITH open AS (
			SELECT id FROM `+GapTable+` WHERE slot = $1 AND table_name = $3 AND kind = $4 AND to_lsn IS NULL ORDER BY id LIMIT 1
		), added AS (
			INSERT INTO `+GapTable+` (slot, publication, table_name, kind, from_lsn, from_time, reason)
			SELECT $1, $2, $3, $4, $5::pg_lsn, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM open) RETURNING id
		)
		SELECT id FROM added UNION ALL SELECT id FROM open`,
		g.Slot, g.Publication, g.Table, string(g.Kind), g.FromLSN.String(), fromTime, g.Reason).Scan(&id)
	if isUndefinedTable(err) {
		return 0, ErrNoRecord
	}
	if err != nil {
		return 0, fmt.Errorf("record gap of %s: %w", g.Table, err)
	}
	return id, nil
}

// CloseGap sets the end of an open gap.
func CloseGap(ctx context.Context, q Querier, id int64, to connector.LSN, at time.Time) error {
	_, err := q.Exec(ctx, `UPDATE `+GapTable+` SET to_lsn = $2::pg_lsn, to_time = $3 WHERE id = $1 AND to_lsn IS NULL`,
		id, to.String(), at)
	if isUndefinedTable(err) {
		return ErrNoRecord
	}
	if err != nil {
		return fmt.Errorf("close gap %d: %w", id, err)
	}
	return nil
}

// ExtendGap moves the end of a closed gap to to when it ends before it: a
// change decoded after the gap was closed still lacked what the gap is
// about (a transaction decoded with the catalog of its start).
func ExtendGap(ctx context.Context, q Querier, id int64, to connector.LSN, at time.Time) error {
	_, err := q.Exec(ctx, `UPDATE `+GapTable+` SET to_lsn = $2::pg_lsn, to_time = greatest(to_time, $3) WHERE id = $1 AND to_lsn < $2::pg_lsn`,
		id, to.String(), at)
	if isUndefinedTable(err) {
		return ErrNoRecord
	}
	if err != nil {
		return fmt.Errorf("extend gap %d: %w", id, err)
	}
	return nil
}

// Seen is what the publication carried of one aspect (Kind) of a mapped
// table when a connector last looked and lost nothing of it: State is the
// server's side (e.g. "published", a column list, a row filter), LSN and
// At the position and time of that look.
type Seen struct {
	Table string
	Kind  LossKind
	State string
	LSN   connector.LSN
	At    time.Time
}

// SeenKey identifies a Seen.
type SeenKey struct {
	Table string
	Kind  LossKind
}

// ReadSeen returns what slot's connectors last saw of the publication
// (ErrNoRecord when SeenTable does not exist).
func ReadSeen(ctx context.Context, q Querier, slot string) (map[SeenKey]Seen, error) {
	rows, err := q.Query(ctx, `SELECT table_name, kind, state, seen_lsn::text, seen_at FROM `+SeenTable+` WHERE slot = $1`, slot)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, ErrNoRecord
		}
		return nil, fmt.Errorf("read %s: %w", SeenTable, err)
	}
	out := map[SeenKey]Seen{}
	var s Seen
	var kind, lsn string
	_, err = pgx.ForEachRow(rows, []any{&s.Table, &kind, &s.State, &lsn, &s.At}, func() error {
		s.Kind = LossKind(kind)
		s.LSN = parseLSN(&lsn)
		s.At = s.At.UTC()
		out[SeenKey{s.Table, s.Kind}] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", SeenTable, err)
	}
	return out, nil
}

// WriteSeen records what slot's connector saw (one statement).
func WriteSeen(ctx context.Context, q Querier, slot, publication string, seen []Seen) error {
	if len(seen) == 0 {
		return nil
	}
	tables := make([]string, len(seen))
	kinds := make([]string, len(seen))
	states := make([]string, len(seen))
	lsns := make([]string, len(seen))
	ats := make([]time.Time, len(seen))
	for i, s := range seen {
		tables[i], kinds[i], states[i], lsns[i], ats[i] = s.Table, string(s.Kind), s.State, s.LSN.String(), s.At
	}
	_, err := q.Exec(ctx, `INSERT INTO `+SeenTable+` (slot, publication, table_name, kind, state, seen_lsn, seen_at)
		SELECT $1, $2, t, k, s, l::pg_lsn, a FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]) AS u(t, k, s, l, a)
		ON CONFLICT (slot, table_name, kind) DO UPDATE SET publication = excluded.publication, state = excluded.state,
			seen_lsn = excluded.seen_lsn, seen_at = excluded.seen_at`,
		slot, publication, tables, kinds, states, lsns, ats)
	if isUndefinedTable(err) {
		return ErrNoRecord
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", SeenTable, err)
	}
	return nil
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	// 42P01 undefined_table; 3F000 invalid_schema_name.
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000")
}

// ParseLSN parses PostgreSQL's text form of an LSN ("16/B374D848"); 0 when
// it is not one.
func ParseLSN(s string) connector.LSN { return parseLSN(&s) }

// GapBackfillID is the id of the attempt-th backfill that fills gap id
// (`backfill start --gap ID`): "gap-<id>", then "gap-<id>.2", … after one
// failed or was cancelled. Asking again while one is requested, running or
// done starts nothing new, and the gap's listing finds it.
func GapBackfillID(id int64, attempt int) string {
	if attempt <= 1 {
		return fmt.Sprintf("gap-%d", id)
	}
	return fmt.Sprintf("gap-%d.%d", id, attempt)
}

// ErrNoGap means no recorded gap of the slot has that id.
var ErrNoGap = errors.New("no such gap")

// GapByID returns slot's recorded gap id.
func GapByID(ctx context.Context, q Querier, slot string, id int64) (Gap, error) {
	gaps, err := Gaps(ctx, q, slot)
	if err != nil {
		return Gap{}, err
	}
	for _, g := range gaps {
		if g.ID == id {
			return g, nil
		}
	}
	return Gap{}, fmt.Errorf("gap %d of slot %s: %w", id, slot, ErrNoGap)
}

// GapFill is the latest backfill of a gap (GapBackfillID): Status is
// "requested" or a connector.BackfillStatus; FinishedAt is set once it
// ended; Attempt numbers it.
type GapFill struct {
	Backfill   string
	Attempt    int
	Status     string
	RowsDone   int64
	FinishedAt time.Time
}

// GapFills returns the latest backfill of each of gaps that has one, by gap
// id; none (and no error) when the backfill tables do not exist or this
// role may not read them: the gaps are then listed without it.
func GapFills(ctx context.Context, q Querier, gaps []Gap) (map[int64]GapFill, error) {
	out := map[int64]GapFill{}
	if len(gaps) == 0 {
		return out, nil
	}
	ids := make([]int64, len(gaps))
	for i, g := range gaps {
		ids[i] = g.ID
	}
	rows, err := q.Query(ctx, `SELECT m[1]::bigint, coalesce(m[2], '1')::int, r.backfill_id, coalesce(s.status, 'requested'), coalesce(s.rows_done, 0), s.finished_at
		FROM `+BackfillRequestsTable+` r LEFT JOIN `+BackfillStateTable+` s ON s.backfill_id = r.backfill_id,
		     regexp_match(r.backfill_id, '^gap-([0-9]{1,18})(?:\.([0-9]{1,9}))?$') m
		WHERE r.action = 'start' AND m[1]::bigint = ANY ($1)
		ORDER BY 1, 2`, ids)
	if err == nil {
		var gap int64
		var f GapFill
		var finished *time.Time
		_, err = pgx.ForEachRow(rows, []any{&gap, &f.Attempt, &f.Backfill, &f.Status, &f.RowsDone, &finished}, func() error {
			g := f
			if finished != nil {
				g.FinishedAt = finished.UTC()
			}
			out[gap] = g // the latest attempt last
			return nil
		})
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if isUndefinedTable(err) || errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return map[int64]GapFill{}, nil
		}
		return nil, fmt.Errorf("read the backfills of gaps: %w", err)
	}
	return out, nil
}
