package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// The requester's side of backfill (`baitoru-cdc backfill`, the sink's links
// API): a request is a row inserted into BackfillRequestsTable, which the
// connector streaming the slot reads from its stream; progress is read from
// BackfillStateTable. Inserting is idempotent: the backfill id is unique per
// action, so a request repeated after a timeout or a restart changes
// nothing. It needs only the least-privilege requester role.

// BackfillRequest is a start request.
type BackfillRequest struct {
	ID, Table, Where   string
	KeyField, KeyValue string
	// Slot names the connector that runs it; empty: whichever streams
	// first.
	Slot string
}

// ErrNoBackfill means no backfill has that id.
var ErrNoBackfill = errors.New("no such backfill")

// RequestBackfill inserts a start request; inserted is false when one with
// that id exists (the request was made before: nothing changes).
func RequestBackfill(ctx context.Context, conn *pgx.Conn, r BackfillRequest) (inserted bool, err error) {
	tag, err := conn.Exec(ctx, `INSERT INTO `+BackfillRequestsTable+` (backfill_id, action, table_name, filter, key_field, key_value, slot)
		VALUES ($1, 'start', $2, nullif($3, ''), nullif($4, ''), nullif($5, ''), nullif($6, '')) ON CONFLICT (backfill_id, action) DO NOTHING`,
		r.ID, r.Table, r.Where, r.KeyField, r.KeyValue, r.Slot)
	if err != nil {
		return false, requestError(conn, err)
	}
	return tag.RowsAffected() == 1, nil
}

// CancelBackfill inserts a cancel request for id (idempotent).
func CancelBackfill(ctx context.Context, conn *pgx.Conn, id string) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+BackfillRequestsTable+` WHERE backfill_id = $1 AND action = 'start')`, id).Scan(&exists); err != nil {
		return requestError(conn, err)
	}
	if !exists {
		return fmt.Errorf("backfill %s: %w", id, ErrNoBackfill)
	}
	_, err := conn.Exec(ctx, `INSERT INTO `+BackfillRequestsTable+` (backfill_id, action) VALUES ($1, 'cancel') ON CONFLICT (backfill_id, action) DO NOTHING`, id)
	return requestError(conn, err)
}

// Backfills returns the backfills (started or requested), newest first;
// id non-empty: only that one. A request not yet taken up by a connector
// has status "requested".
func Backfills(ctx context.Context, conn *pgx.Conn, id string) ([]*connector.BackfillState, error) {
	var ids []string
	if id != "" {
		ids = []string{id}
	}
	out, err := BackfillsOf(ctx, conn, ids)
	if err != nil {
		return nil, err
	}
	if id != "" && len(out) == 0 {
		return nil, fmt.Errorf("backfill %s: %w", id, ErrNoBackfill)
	}
	return out, nil
}

// BackfillsOf returns the backfills of ids (started or requested; ids
// nil: every one), newest first; unknown ids are absent.
func BackfillsOf(ctx context.Context, conn *pgx.Conn, ids []string) ([]*connector.BackfillState, error) {
	rows, err := conn.Query(ctx, `SELECT `+stateColumns+` FROM `+BackfillStateTable+` WHERE $1::text[] IS NULL OR backfill_id = ANY($1)
		UNION ALL
		SELECT r.backfill_id, r.table_name, coalesce(r.filter, ''), coalesce(r.key_field, ''), coalesce(r.key_value, ''), 'requested', NULL, NULL,
		       0, 0, 0, 0, '', r.requested_by, r.requested_at, r.requested_at, r.requested_at, 'epoch'
		FROM `+BackfillRequestsTable+` r WHERE r.action = 'start' AND ($1::text[] IS NULL OR r.backfill_id = ANY($1))
		  AND NOT EXISTS (SELECT 1 FROM `+BackfillStateTable+` s WHERE s.backfill_id = r.backfill_id)
		ORDER BY 16 DESC, 1`, ids)
	if err != nil {
		return nil, requestError(conn, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*connector.BackfillState, error) { return scanBackfill(r) })
	if err != nil {
		return nil, requestError(conn, err)
	}
	return out, nil
}

// requestError names the fix of the errors a requester (the user of
// conn) meets.
func requestError(conn *pgx.Conn, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "42P01", "3F000":
		return fmt.Errorf("backfill is not set up in this database (%s); fix: a DBA runs baitoru-cdc setup --config FILE --dsn 'postgres://<dba>@<host>:<port>/<database>' (docs/dba.md)", pgErr.Message)
	case "42501":
		role := quoteIdent(conn.Config().User)
		return fmt.Errorf("role %s may not request backfills or read their progress (PostgreSQL: %s); fix: as a DBA, GRANT USAGE ON SCHEMA %s TO %s; "+
			"GRANT SELECT, INSERT (backfill_id, action, table_name, filter, key_field, key_value, slot) ON %s TO %s; GRANT SELECT ON %s TO %s "+
			"(or use a role that has them: setup's script describes %s)",
			role, pgErr.Message, BackfillSchema, role, BackfillRequestsTable, role, BackfillStateTable, role, "baitoru_cdc_requester")
	case "23514":
		return fmt.Errorf("the request was refused (%s): a backfill id is 1 to 100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", pgErr.Message)
	}
	return err
}
