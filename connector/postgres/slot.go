package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
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
		"Recover: 1) baitoru-cdc teardown --config FILE --yes (drops the lost slot and the publication); 2) baitoru-cdc setup --config FILE (or start run with source.create: true); "+
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
func LookupSlot(ctx context.Context, conn *pgx.Conn, name string) (*SlotInfo, error) {
	var si SlotInfo
	var plugin, db, walStatus *string
	var pid *int32
	var confirmed, restart *string
	err := conn.QueryRow(ctx, `
		SELECT slot_name, plugin, database, active_pid, confirmed_flush_lsn::text, restart_lsn::text, wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&si.Name, &plugin, &db, &pid, &confirmed, &restart, &walStatus)
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

// ensure checks (and, when allowed, creates or updates) the publication
// and the permanent slot the subscription streams from. streamed is the
// position this process confirmed when it already streamed from the slot
// (ok false: it never did): a slot missing then is an error, never a new
// slot created further on.
func ensure(ctx context.Context, meta *pgx.Conn, repl *pgconn.PgConn, o Options, streamed connector.LSN, streamedBefore bool, log *slog.Logger) (*SlotInfo, error) {
	if o.Create {
		res, err := ApplyPublication(ctx, meta, ApplyOptions{Publication: o.Publication, Spec: o.Publish})
		if err != nil {
			return nil, err
		}
		switch res.Action {
		case PublicationCreated:
			log.Info("created publication", "publication", o.Publication, "tables", strings.Join(o.Publish.Tables, ","), "sql", res.Statements[0].SQL)
		case PublicationAltered:
			ds := make([]string, len(res.Drift))
			for i, d := range res.Drift {
				ds[i] = d.String()
			}
			log.Info("altered publication to match the config", "publication", o.Publication, "changes", strings.Join(ds, "; "))
		}
	} else {
		var exists bool
		if err := meta.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, o.Publication).Scan(&exists); err != nil {
			return nil, fmt.Errorf("look up publication %s: %w", o.Publication, err)
		}
		if !exists {
			return nil, fmt.Errorf("publication %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", o.Publication, connector.ErrPermanent)
		}
		if _, _, drift, err := DiffPublication(ctx, meta, o.Publication, o.Publish); err != nil {
			log.Debug("could not compare the publication with the config", "error", err)
		} else if len(drift) > 0 {
			ds := make([]string, len(drift))
			for i, d := range drift {
				ds[i] = d.String()
			}
			log.Warn("the publication differs from the config; run `baitoru-cdc setup` to align it (or `baitoru-cdc check` for details)", "publication", o.Publication, "differences", strings.Join(ds, "; "))
		}
	}

	slot, err := LookupSlot(ctx, meta, o.Slot)
	if err != nil {
		return nil, err
	}
	if slot == nil {
		if streamedBefore {
			return nil, vanishedError(o.Slot, streamed)
		}
		if !o.Create {
			return nil, fmt.Errorf("replication slot %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", o.Slot, connector.ErrPermanent)
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, o.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
			Mode:           pglogrepl.LogicalReplication,
			SnapshotAction: "NOEXPORT_SNAPSHOT",
		})
		if err != nil {
			return nil, fmt.Errorf("create replication slot %s: %w", o.Slot, err)
		}
		log.Info("created permanent replication slot", "slot", o.Slot, "consistent_point", res.ConsistentPoint)
		if slot, err = LookupSlot(ctx, meta, o.Slot); err != nil {
			return nil, err
		}
		if slot == nil {
			return nil, fmt.Errorf("slot %s vanished right after creation", o.Slot)
		}
	}
	var db string
	if err := meta.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return nil, fmt.Errorf("current database: %w", err)
	}
	if slot.WALStatus == "lost" {
		return nil, lostError(o.Slot, slot.ConfirmedFlush, currentLSN(ctx, meta))
	}
	if err := slotUsable(slot, o.Slot, db); err != nil {
		return nil, err
	}
	return slot, nil
}

// slotUsable checks that an existing slot is one the connector can stream.
func slotUsable(slot *SlotInfo, name, db string) error {
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
func currentLSN(ctx context.Context, conn *pgx.Conn) connector.LSN {
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

// DiffPublication compares the server's publication with the plan for
// spec, in a read-only transaction. cur is nil when the publication does
// not exist (drift is then empty).
func DiffPublication(ctx context.Context, conn *pgx.Conn, name string, spec PublicationSpec) (*Plan, *PublicationState, []Drift, error) {
	server, err := ServerVersion(ctx, conn)
	if err != nil {
		return nil, nil, nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	tables, err := ReadTables(ctx, tx, server, spec.Tables)
	if err != nil {
		return nil, nil, nil, err
	}
	plan, err := PlanPublication(name, spec, server, tables)
	if err != nil {
		return nil, nil, nil, err
	}
	cur, err := ReadPublication(ctx, tx, server, name)
	if err != nil || cur == nil {
		return plan, nil, nil, err
	}
	drift, err := plan.Diff(ctx, cur, CompareFilters(tx))
	if err != nil {
		return plan, cur, nil, err
	}
	return plan, cur, drift, nil
}

// CreatePublicationSQL returns the CREATE PUBLICATION statement for spec,
// with every identifier quoted.
func CreatePublicationSQL(name string, spec PublicationSpec) (string, error) {
	if len(spec.Tables) == 0 {
		return "", fmt.Errorf("publication %s: no tables: %w", name, connector.ErrPermanent)
	}
	var b strings.Builder
	b.WriteString("CREATE PUBLICATION ")
	b.WriteString(pgx.Identifier{name}.Sanitize())
	b.WriteString(" FOR TABLE ")
	for i, t := range spec.Tables {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteTable(t))
	}
	ops := spec.Operations
	if len(ops) == 0 {
		ops = []string{"insert"}
	}
	b.WriteString(" WITH (publish = '")
	b.WriteString(escapeLiteral(strings.Join(ops, ", ")))
	b.WriteString("')")
	return b.String(), nil
}

// QuoteTable quotes a "schema.name" table name as an identifier pair.
func QuoteTable(t string) string {
	schema, name, ok := strings.Cut(t, ".")
	if !ok {
		return pgx.Identifier{t}.Sanitize()
	}
	return pgx.Identifier{schema, name}.Sanitize()
}

func escapeLiteral(s string) string { return strings.ReplaceAll(s, "'", "''") }

// isSQLError reports a syntax or access-rule error (SQLSTATE class 42, 22):
// retrying cannot fix it.
func isSQLError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "42") || strings.HasPrefix(pgErr.Code, "22"))
}

var (
	urlPasswordRE = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)
	kvPasswordRE  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// Redact removes anything that looks like a password from a message.
func Redact(msg string) string {
	msg = urlPasswordRE.ReplaceAllString(msg, "${1}:xxxxx@")
	return kvPasswordRE.ReplaceAllString(msg, "${1}xxxxx")
}

// redact removes anything that looks like a password from an error,
// keeping the chain when there is nothing to remove.
func redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := Redact(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}
