package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// SlotInfo is a row of pg_replication_slots.
type SlotInfo struct {
	Name           string
	Plugin         string
	Database       string
	ActivePID      int32
	ConfirmedFlush connector.LSN
	RestartLSN     connector.LSN
	WALStatus      string
	// Failover: the slot is synchronised to standbys that have
	// sync_replication_slots (PostgreSQL 17+; false before).
	Failover bool
	// Synced: this server is a standby (or a promoted one) whose slot was
	// synchronised from the primary (17+).
	Synced bool
	// Temporary: a temporary slot (a synchronised slot is temporary on a
	// standby until it caught up with the primary's; a promotion drops it).
	Temporary bool
}

// ErrSlotLost means the slot can no longer serve the changes after its
// confirmed position (the server removed WAL it needed, or the slot was
// dropped while the connector ran): rows may be missing from the stream.
// Errors wrapping it also wrap connector.ErrPermanent and say which LSN
// range may be missing and how to recover. The connector never jumps
// forward on its own.
var ErrSlotLost = errors.New("replication slot lost WAL it needed")

// lostError is the loud error for a slot whose WAL the server removed.
func lostError(slot string, confirmed, current connector.LSN) error {
	return fmt.Errorf("%w: replication slot %q was invalidated by the server (wal_status lost: it retained more WAL than max_slot_wal_keep_size allows). "+
		"Changes committed after %s, the last position the connector confirmed, can no longer be read: rows changed between %s and the creation of a new slot (the server is at %s now) may be missing from the stream, and the connector will not skip them silently. "+
		"Recover: 1) as a DBA, baitoru-cdc teardown --config FILE --dsn DBA_DSN --yes (drops the lost slot and the publication); 2) baitoru-cdc setup --config FILE --dsn DBA_DSN (or start run with source.create: true); "+
		"3) start run, then backfill the mapped rows committed since %s (see docs/dba.md, \"Recovering a lost slot\"). To prevent it: keep the connector running, watch baitoru_cdc_slot_retained_wal_bytes, size max_slot_wal_keep_size for the longest outage you accept: %w",
		ErrSlotLost, slot, confirmed, confirmed, current, confirmed, connector.ErrPermanent)
}

// vanishedError is the loud error for a slot dropped while the connector
// used it.
func vanishedError(slot string, confirmed connector.LSN) error {
	return fmt.Errorf("%w: replication slot %q vanished while the connector used it (dropped by someone?). "+
		"Its last confirmed position was %s: rows changed after it and before a new slot exists may be missing from the stream, and the connector will not create a new slot and skip them silently. "+
		"Recover: baitoru-cdc setup --config FILE (creates a new slot), start run, then backfill the mapped rows committed since %s (see docs/dba.md, \"Recovering a lost slot\"): %w",
		ErrSlotLost, slot, confirmed, confirmed, connector.ErrPermanent)
}

// slotLostByServer reports a server error meaning the slot cannot serve its
// position any more: START_REPLICATION on an invalidated slot (SQLSTATE
// 55000, "This slot has been invalidated because it exceeded the maximum
// reserved size."), or WAL removed under a reading walsender.
func slotLostByServer(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch {
	case pgErr.Code == "55000" && (strings.Contains(pgErr.Detail, "has been invalidated") || strings.Contains(pgErr.Message, "has been invalidated")):
		return true
	case strings.Contains(pgErr.Message, "requested WAL segment") && strings.Contains(pgErr.Message, "has already been removed"):
		return true
	}
	return false
}

// LookupSlot returns the slot, or nil when it does not exist.
func LookupSlot(ctx context.Context, conn Querier, name string) (*SlotInfo, error) {
	var si SlotInfo
	var plugin, db, walStatus *string
	var pid *int32
	var confirmed, restart *string
	// failover and synced exist from PostgreSQL 17 on: read through jsonb
	// so that one query serves every version (absent: false).
	err := conn.QueryRow(ctx, `
		SELECT slot_name, plugin, database, active_pid, confirmed_flush_lsn::text, restart_lsn::text, wal_status,
		       coalesce((to_jsonb(s)->>'failover')::boolean, false), coalesce((to_jsonb(s)->>'synced')::boolean, false), temporary
		FROM pg_replication_slots s WHERE slot_name = $1`, name).
		Scan(&si.Name, &plugin, &db, &pid, &confirmed, &restart, &walStatus, &si.Failover, &si.Synced, &si.Temporary)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up slot %s: %w", name, err)
	}
	si.Plugin, si.Database, si.WALStatus = deref(plugin), deref(db), deref(walStatus)
	if pid != nil {
		si.ActivePID = *pid
	}
	if confirmed != nil {
		l, _ := pglogrepl.ParseLSN(*confirmed)
		si.ConfirmedFlush = connector.LSN(l)
	}
	if restart != nil {
		l, _ := pglogrepl.ParseLSN(*restart)
		si.RestartLSN = connector.LSN(l)
	}
	return &si, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// slot looks up the slot the subscription streams and checks that it can
// serve it: it exists (creating it is the job of setup, or of dba.Prepare
// before run streams), uses pgoutput, belongs to this database and was not
// invalidated. Once a session of this subscription found the slot, a slot
// missing is the loud vanished error (from the position confirmed so far),
// never a new slot created further on. Reading goroutine only.
func (s *Subscription) slot(ctx context.Context, meta Querier) (*SlotInfo, error) {
	name := s.opts.Slot
	slot, err := LookupSlot(ctx, meta, name)
	if err != nil {
		return nil, err
	}
	if slot == nil {
		if s.slotSeen {
			return nil, vanishedError(name, s.flushed())
		}
		return nil, fmt.Errorf("replication slot %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", name, connector.ErrPermanent)
	}
	var db string
	if err := meta.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return nil, fmt.Errorf("current database: %w", err)
	}
	if slot.WALStatus == "lost" {
		return nil, lostError(name, slot.ConfirmedFlush, currentLSN(ctx, meta))
	}
	if err := slot.Usable(db); err != nil {
		return nil, err
	}
	s.slotSeen = true
	return slot, nil
}

// Usable checks that an existing slot is one the connector can stream from
// database db: pgoutput, of that database, not invalidated. The error wraps
// connector.ErrPermanent and says what to do.
func (slot *SlotInfo) Usable(db string) error {
	name := slot.Name
	switch {
	case slot.Plugin != "pgoutput":
		return fmt.Errorf("slot %q uses plugin %q, not pgoutput; drop it or choose another source.slot: %w", name, slot.Plugin, connector.ErrPermanent)
	case slot.Database != db:
		return fmt.Errorf("slot %q belongs to database %q, not %q; choose another source.slot: %w", name, slot.Database, db, connector.ErrPermanent)
	case slot.WALStatus == "lost":
		return lostError(name, slot.ConfirmedFlush, 0)
	}
	return nil
}

// currentLSN is the server's current WAL position, 0 when unknown.
func currentLSN(ctx context.Context, conn Querier) connector.LSN {
	var s string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		return 0
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0
	}
	return connector.LSN(l)
}
