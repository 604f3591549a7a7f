package dba

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
	var pubExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, publication).Scan(&pubExists); err != nil {
		return nil, fmt.Errorf("look up publication %s: %w", publication, err)
	}
	if err := teardownPrivileges(ctx, conn, slot, si != nil, publication, pubExists); err != nil {
		return nil, err
	}
	if si != nil {
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55006" {
				return nil, fmt.Errorf("%w: %s; stop that connector first: %w", ErrSlotActive, pgErr.Message, connector.ErrPermanent)
			}
			if msg, ok := isPrivilege(err); ok {
				return nil, replicationPrivilegeError(ctx, conn, "drop replication slot "+slot, msg)
			}
			return nil, fmt.Errorf("drop replication slot %s: %w", slot, err)
		}
		res.Slot = si
	}
	if pubExists {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{publication}.Sanitize()); err != nil {
			if msg, ok := isPrivilege(err); ok {
				return res, publicationOwnerError(ctx, conn, publication, msg)
			}
			return res, fmt.Errorf("drop publication %s: %w", publication, err)
		}
		res.Publication = true
	}
	return res, nil
}

// teardownPrivileges refuses, before anything is dropped, what the role
// may not drop: a slot without REPLICATION, a publication it does not own
// (a *PrivilegeError saying both).
func teardownPrivileges(ctx context.Context, conn *pgx.Conn, slot string, slotExists bool, pub string, pubExists bool) error {
	var role, owner string
	var super, repl, owns bool
	if err := conn.QueryRow(ctx, `SELECT current_user, rolsuper, rolreplication,
		coalesce((SELECT pg_get_userbyid(pubowner) FROM pg_publication WHERE pubname = $1), ''),
		coalesce((SELECT pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1), true)
		FROM pg_roles WHERE rolname = current_user`, pub).Scan(&role, &super, &repl, &owner, &owns); err != nil {
		return fmt.Errorf("read the role's privileges: %w", err)
	}
	if super {
		return nil
	}
	e := &PrivilegeError{Role: role}
	var what []string
	if slotExists && !repl {
		what = append(what, "replication slot "+slot)
		e.Lacks = append(e.Lacks, "the REPLICATION attribute (to drop a slot)")
		e.Grants = append(e.Grants, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" WITH REPLICATION")
	}
	if pubExists && !owns {
		what = append(what, "publication "+pub)
		e.Lacks = append(e.Lacks, "the ownership of publication "+pub+" (owner: "+owner+")")
		e.Grants = nil
	}
	if len(what) == 0 {
		return nil
	}
	e.Action = "drop " + strings.Join(what, " and ")
	return e
}
