package dba

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// ErrSlotActive means a connector streams the slot: teardown refuses.
var ErrSlotActive = errors.New("replication slot is in use")

// TeardownResult says what Teardown dropped.
type TeardownResult struct {
	// Slot is the dropped slot as it was (nil: there was none).
	Slot *postgres.SlotInfo
	// Publication reports whether the publication existed and was dropped.
	Publication bool
}

// Teardown drops the replication slot, then the publication. It refuses
// (ErrSlotActive) while a connector streams the slot, before dropping
// anything. Dropping the slot releases the WAL it retained; changes after
// its confirmed position will never be streamed.
func Teardown(ctx context.Context, conn *pgx.Conn, slot, publication string) (*TeardownResult, error) {
	res := &TeardownResult{}
	si, err := postgres.LookupSlot(ctx, conn, slot)
	if err != nil {
		return nil, err
	}
	if si != nil && si.ActivePID != 0 {
		return nil, fmt.Errorf("%w: slot %s is streamed by pid %d; stop that connector first (SELECT pg_terminate_backend(%d) ends the stream, but the connector reconnects): %w",
			ErrSlotActive, slot, si.ActivePID, si.ActivePID, connector.ErrPermanent)
	}
	if si != nil {
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55006" {
				return nil, fmt.Errorf("%w: %s; stop that connector first: %w", ErrSlotActive, pgErr.Message, connector.ErrPermanent)
			}
			return nil, fmt.Errorf("drop replication slot %s: %w", slot, err)
		}
		res.Slot = si
	}
	tag, err := conn.Exec(ctx, `SELECT 1 FROM pg_publication WHERE pubname = $1`, publication)
	if err != nil {
		return res, fmt.Errorf("look up publication %s: %w", publication, err)
	}
	if tag.RowsAffected() > 0 {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{publication}.Sanitize()); err != nil {
			return res, fmt.Errorf("drop publication %s: %w", publication, err)
		}
		res.Publication = true
	}
	return res, nil
}
