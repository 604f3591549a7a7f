package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector"
)

// SlotObserver receives the slot monitor's measurements (the metrics
// implement it). Called from the monitor's goroutine.
type SlotObserver interface {
	// SlotRetainedWAL is the WAL the slot keeps on the server, in bytes:
	// the current WAL position minus the slot's restart_lsn.
	SlotRetainedWAL(bytes int64)
}

// MonitorOptions configure a SlotMonitor.
type MonitorOptions struct {
	// Pool lends the connection of each measurement (NewPool).
	Pool *pgxpool.Pool
	Slot string
	// Interval between measurements. Default 5s.
	Interval time.Duration
	// MaxLagBytes is the retained WAL above which the monitor warns; 0
	// disables the warning.
	MaxLagBytes int64
	// WarnEvery bounds how often the same warning is logged. Default 1m.
	WarnEvery time.Duration
	Observer  SlotObserver // optional
}

// SlotStatus is one measurement of the slot.
type SlotStatus struct {
	WALStatus      string // reserved, extended, unreserved, lost
	ActivePID      int32
	RestartLSN     connector.LSN
	ConfirmedFlush connector.LSN
	Current        connector.LSN // pg_current_wal_lsn()
	// SafeWALSize is the WAL that may still be written before the slot
	// is invalidated; -1 when max_slot_wal_keep_size is unlimited.
	SafeWALSize int64
}

// Retained is the WAL the slot keeps: current - restart_lsn.
func (s SlotStatus) Retained() int64 { return lsnDiff(s.Current, s.RestartLSN) }

// ConfirmedLag is current - confirmed_flush_lsn: WAL not yet confirmed.
func (s SlotStatus) ConfirmedLag() int64 { return lsnDiff(s.Current, s.ConfirmedFlush) }

func lsnDiff(a, b connector.LSN) int64 {
	if b == 0 || a < b {
		return 0
	}
	return int64(a - b)
}

// ReadSlotStatus measures the slot; nil when it does not exist.
func ReadSlotStatus(ctx context.Context, conn Querier, slot string) (*SlotStatus, error) {
	var st SlotStatus
	var walStatus, restart, confirmed *string
	var pid *int32
	var safe *int64
	var current string
	err := conn.QueryRow(ctx, `
		SELECT wal_status, active_pid, restart_lsn::text, confirmed_flush_lsn::text, safe_wal_size, pg_current_wal_lsn()::text
		FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&walStatus, &pid, &restart, &confirmed, &safe, &current)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read slot %s: %w", slot, err)
	}
	st.WALStatus = deref(walStatus)
	if pid != nil {
		st.ActivePID = *pid
	}
	st.RestartLSN, st.ConfirmedFlush, st.Current = parseLSN(restart), parseLSN(confirmed), parseLSN(&current)
	st.SafeWALSize = -1
	if safe != nil {
		st.SafeWALSize = *safe
	}
	return &st, nil
}

func parseLSN(s *string) connector.LSN {
	if s == nil {
		return 0
	}
	l, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		return 0
	}
	return connector.LSN(l)
}

// SlotMonitor watches the replication slot from a regular connection while
// the connector runs: it reports the retained WAL to the observer, warns
// when it exceeds the threshold or when the slot is about to be
// invalidated, and stops the connector (Run returns an error wrapping
// ErrSlotLost and connector.ErrPermanent) when the slot was invalidated or
// vanished after it had been seen: rows may then be missing, and only a
// person can decide how to recover.
type SlotMonitor struct {
	o   MonitorOptions
	log *slog.Logger
}

// NewSlotMonitor returns a monitor. It does not connect.
func NewSlotMonitor(o MonitorOptions, log *slog.Logger) *SlotMonitor {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.WarnEvery <= 0 {
		o.WarnEvery = time.Minute
	}
	return &SlotMonitor{o: o, log: log}
}

// Run measures the slot every interval until ctx ends (nil) or the slot is
// lost (an error). Connection errors are logged and retried: the
// subscription reports an unreachable server.
func (m *SlotMonitor) Run(ctx context.Context) error {
	var (
		seen       bool
		confirmed  connector.LSN
		lastWarn   = map[string]time.Time{}
		over       bool
		connFailed bool
	)
	warn := func(kind, msg string, args ...any) {
		if t, ok := lastWarn[kind]; ok && time.Since(t) < m.o.WarnEvery {
			return
		}
		lastWarn[kind] = time.Now()
		m.log.Warn(msg, args...)
	}
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	for {
		st, err := m.measure(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !connFailed {
				m.log.Debug("slot monitor: cannot read the slot; retrying", "error", err)
			}
			connFailed = true
		case err == nil:
			connFailed = false
			switch {
			case st == nil && seen:
				return vanishedError(m.o.Slot, confirmed)
			case st == nil:
				// Not created yet (source.create: the subscription creates it).
			case st.WALStatus == "lost":
				c := st.ConfirmedFlush
				if c == 0 {
					c = confirmed
				}
				return lostError(m.o.Slot, c, st.Current)
			default:
				seen = true
				if st.ConfirmedFlush > confirmed {
					confirmed = st.ConfirmedFlush
				}
				retained := st.Retained()
				if m.o.Observer != nil {
					m.o.Observer.SlotRetainedWAL(retained)
				}
				if st.WALStatus == "unreserved" {
					warn("unreserved", "replication slot is about to be invalidated: it retains more WAL than max_wal_size and the server will remove it at the next checkpoint unless the connector catches up",
						"slot", m.o.Slot, "retained_wal_bytes", retained, "safe_wal_size", st.SafeWALSize, "confirmed_lsn", st.ConfirmedFlush.String())
				}
				switch {
				case m.o.MaxLagBytes > 0 && retained > m.o.MaxLagBytes:
					over = true
					warn("lag", "replication slot retains more WAL than source.max_lag_bytes: the connector is behind or stalled, and the server keeps WAL for it",
						"slot", m.o.Slot, "retained_wal_bytes", retained, "max_lag_bytes", m.o.MaxLagBytes,
						"unconfirmed_wal_bytes", st.ConfirmedLag(), "wal_status", st.WALStatus, "safe_wal_size", st.SafeWALSize, "active_pid", st.ActivePID)
				case over:
					over = false
					delete(lastWarn, "lag")
					m.log.Info("replication slot retained WAL back under source.max_lag_bytes", "slot", m.o.Slot, "retained_wal_bytes", retained)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (m *SlotMonitor) measure(ctx context.Context) (*SlotStatus, error) {
	cctx, cancel := context.WithTimeout(ctx, max(m.o.Interval, 5*time.Second))
	defer cancel()
	return ReadSlotStatus(cctx, m.o.Pool, m.o.Slot)
}
