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

// GapTable is the table in Baitoru's database where the connector records
// gaps: spans of WAL in which a mapped table's changes were not published
// because the table was not in the publication. It lives next to the data
// whose changes are missing, so it outlives the connector's process, is
// seen by a standby connector and by `check`, and is there for a DBA (and
// for backfill) to read with plain SQL. `setup` creates it and grants the
// connector's role what it needs; `teardown` drops it.
const GapTable = "public.baitoru_cdc_gaps"

// GapTableSQL creates GapTable (idempotent).
const GapTableSQL = `CREATE TABLE IF NOT EXISTS public.baitoru_cdc_gaps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot        text        NOT NULL,
    publication text        NOT NULL,
    table_name  text        NOT NULL,
    from_lsn    pg_lsn      NOT NULL,
    from_time   timestamptz,
    to_lsn      pg_lsn,
    to_time     timestamptz,
    reason      text        NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now()
)`

// Gap is a span of WAL in which the changes of a mapped table were not
// published: from FromLSN (a position at or before the first missing
// change) to ToLSN (at or after the last one), or still open (ToLSN 0)
// while the table is not in the publication. Re-sending the table's rows
// changed in that span (backfill) closes the hole; a wider span only
// re-sends more.
type Gap struct {
	ID          int64
	Slot        string
	Publication string
	Table       string // schema.name
	FromLSN     connector.LSN
	FromTime    time.Time // zero when unknown (detected at start)
	ToLSN       connector.LSN
	ToTime      time.Time
	Reason      string
	DetectedAt  time.Time
}

// Open reports whether the table is still not published.
func (g Gap) Open() bool { return g.ToLSN == 0 }

// errNoGapTable means GapTable does not exist (setup was not run).
var errNoGapTable = errors.New(GapTable + " does not exist")

// Gaps returns the recorded gaps of slot, oldest first. It is the API of
// the gap record: `check` lists them, backfill fills them. A database
// without GapTable has none.
func Gaps(ctx context.Context, conn *pgx.Conn, slot string) ([]Gap, error) {
	rows, err := conn.Query(ctx, `SELECT id, slot, publication, table_name, from_lsn::text, from_time, to_lsn::text, to_time, reason, detected_at
		FROM public.baitoru_cdc_gaps WHERE slot = $1 ORDER BY id`, slot)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", GapTable, err)
	}
	gaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Gap, error) {
		var g Gap
		var from string
		var to *string
		var fromTime, toTime *time.Time
		if err := r.Scan(&g.ID, &g.Slot, &g.Publication, &g.Table, &from, &fromTime, &to, &toTime, &g.Reason, &g.DetectedAt); err != nil {
			return g, err
		}
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

// openGap records a new open gap and returns its id.
func openGap(ctx context.Context, conn *pgx.Conn, g Gap) (int64, error) {
	var fromTime *time.Time
	if !g.FromTime.IsZero() {
		fromTime = &g.FromTime
	}
	var id int64
	err := conn.QueryRow(ctx, `INSERT INTO public.baitoru_cdc_gaps (slot, publication, table_name, from_lsn, from_time, reason)
		VALUES ($1, $2, $3, $4::pg_lsn, $5, $6) RETURNING id`,
		g.Slot, g.Publication, g.Table, g.FromLSN.String(), fromTime, g.Reason).Scan(&id)
	if isUndefinedTable(err) {
		return 0, errNoGapTable
	}
	return id, err
}

// closeGap sets the end of an open gap.
func closeGap(ctx context.Context, conn *pgx.Conn, id int64, to connector.LSN, at time.Time) error {
	_, err := conn.Exec(ctx, `UPDATE public.baitoru_cdc_gaps SET to_lsn = $2::pg_lsn, to_time = $3 WHERE id = $1 AND to_lsn IS NULL`,
		id, to.String(), at)
	if isUndefinedTable(err) {
		return errNoGapTable
	}
	return err
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
