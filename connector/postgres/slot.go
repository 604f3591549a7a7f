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

// PublicationSpec is what the publication must carry: the mapped tables and
// the operations mapped for any of them.
type PublicationSpec struct {
	Tables     []string // schema-qualified, e.g. public.applications
	Operations []string // insert, update, delete
}

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
// confirmed position: rows may be missing from the stream.
var ErrSlotLost = errors.New("replication slot lost WAL it needed")

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

// ensure checks (and, when allowed, creates) the publication and the
// permanent slot the subscription streams from.
func ensure(ctx context.Context, meta *pgx.Conn, repl *pgconn.PgConn, o Options, log *slog.Logger) (*SlotInfo, error) {
	var exists bool
	if err := meta.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, o.Publication).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up publication %s: %w", o.Publication, err)
	}
	if !exists {
		if !o.Create {
			return nil, fmt.Errorf("publication %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", o.Publication, connector.ErrPermanent)
		}
		sql, err := CreatePublicationSQL(o.Publication, o.Publish)
		if err != nil {
			return nil, err
		}
		if _, err := meta.Exec(ctx, sql); err != nil {
			err = fmt.Errorf("create publication %s: %w", o.Publication, err)
			if isSQLError(err) {
				err = fmt.Errorf("%w: %w", err, connector.ErrPermanent)
			}
			return nil, err
		}
		log.Info("created publication", "publication", o.Publication, "tables", strings.Join(o.Publish.Tables, ","))
	}

	slot, err := LookupSlot(ctx, meta, o.Slot)
	if err != nil {
		return nil, err
	}
	if slot == nil {
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
	switch {
	case slot.Plugin != "pgoutput":
		return nil, fmt.Errorf("slot %q uses plugin %q, not pgoutput; drop it or choose another source.slot: %w", o.Slot, slot.Plugin, connector.ErrPermanent)
	case slot.Database != db:
		return nil, fmt.Errorf("slot %q belongs to database %q, not %q; choose another source.slot: %w", o.Slot, slot.Database, db, connector.ErrPermanent)
	case slot.WALStatus == "lost":
		return nil, fmt.Errorf("%w: slot %q has wal_status lost: the server removed WAL after its confirmed position %s, so changes committed after that position may be missing from the stream. Recover: drop and recreate the slot (baitoru-cdc teardown --yes; baitoru-cdc setup), then backfill rows committed since %s: %w",
			ErrSlotLost, o.Slot, slot.ConfirmedFlush, slot.ConfirmedFlush, connector.ErrPermanent)
	}
	return slot, nil
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
