package dba

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// SlotStatement is the statement creating the permanent slot on a server
// (server_version_num): with failover where the server has failover slots
// (17+), so that a standby with sync_replication_slots keeps it.
func SlotStatement(slot string, server int) Statement {
	if postgres.Supports(server, postgres.FeatureFailoverSlots) {
		return Statement{
			Comment: fmt.Sprintf("Permanent logical replication slot %s (pgoutput), the connector's checkpoint: the server keeps WAL from the position the connector last confirmed. failover: standbys with sync_replication_slots keep a copy, so that a promoted standby continues from it (docs/dba.md, Failover).", slot),
			SQL:     "SELECT pg_create_logical_replication_slot('" + escapeLiteral(slot) + "', 'pgoutput', failover => true)",
		}
	}
	return Statement{
		Comment: fmt.Sprintf("Permanent logical replication slot %s (pgoutput), the connector's checkpoint: the server keeps WAL from the position the connector last confirmed.", slot),
		SQL:     "SELECT pg_create_logical_replication_slot('" + escapeLiteral(slot) + "', 'pgoutput')",
	}
}

// SlotAction is what EnsureSlot did (or would do).
type SlotAction string

// Slot actions.
const (
	SlotCreated SlotAction = "created"
	SlotExists  SlotAction = "exists"
)

// SlotResult reports EnsureSlot.
type SlotResult struct {
	Action    SlotAction
	Statement *Statement         // the statement run (or to run)
	Slot      *postgres.SlotInfo // after creation, or the existing one
	// WALLevel is the server's wal_level when the slot is to be created.
	// A dry run reports a level other than logical here instead of failing,
	// so that the DBA can review the SQL before changing it.
	WALLevel string
}

// EnsureSlot creates the permanent pgoutput slot unless it exists, and
// checks an existing one (plugin, database, not lost). Outside any
// transaction: creating a slot waits for running transactions to end.
// Creating needs wal_level = logical (an error wrapping
// connector.ErrPermanent otherwise); a dry run only reports the level in
// SlotResult.WALLevel.
func EnsureSlot(ctx context.Context, conn *pgx.Conn, slot string, dryRun bool) (*SlotResult, error) {
	si, err := postgres.LookupSlot(ctx, conn, slot)
	if err != nil {
		return nil, err
	}
	if si != nil {
		var db string
		if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return nil, fmt.Errorf("current database: %w", err)
		}
		if err := si.Usable(db); err != nil {
			return nil, err
		}
		return &SlotResult{Action: SlotExists, Slot: si}, nil
	}
	server, err := postgres.ServerVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	st := SlotStatement(slot, server)
	res := &SlotResult{Action: SlotCreated, Statement: &st}
	walLevel, err := WALLevel(ctx, conn)
	if err != nil {
		return nil, err
	}
	res.WALLevel = walLevel
	if dryRun {
		return res, nil
	}
	if walLevel != "logical" {
		return nil, WALLevelError(walLevel)
	}
	if _, err := conn.Exec(ctx, st.SQL); err != nil {
		if msg, ok := isPrivilege(err); ok {
			return nil, replicationPrivilegeError(ctx, conn, "create replication slot "+slot, msg)
		}
		return nil, permanentIfSQL(fmt.Errorf("create replication slot %s: %w", slot, err))
	}
	if res.Slot, err = postgres.LookupSlot(ctx, conn, slot); err != nil {
		return nil, err
	}
	return res, nil
}

// WALLevel returns the server's wal_level.
func WALLevel(ctx context.Context, conn *pgx.Conn) (string, error) {
	var walLevel string
	if err := conn.QueryRow(ctx, `SHOW wal_level`).Scan(&walLevel); err != nil {
		return "", fmt.Errorf("wal_level: %w", err)
	}
	return walLevel, nil
}

// WALLevelError is the error for a server whose wal_level is not logical:
// no logical replication slot can exist there. It says how to fix it.
func WALLevelError(walLevel string) error {
	return fmt.Errorf("wal_level is %s; logical decoding needs wal_level = logical: ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL (the setting needs a restart): %w", walLevel, connector.ErrPermanent)
}
