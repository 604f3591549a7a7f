package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// HeartbeatPrefix is the prefix of the logical decoding messages the
// heartbeat writes; the decoder ignores them.
const HeartbeatPrefix = "baitoru-cdc.heartbeat"

// Heartbeat writes a small non-transactional logical decoding message
// (pg_logical_emit_message) into the source database's WAL at an interval,
// on its own regular connection. The replication stream then has something
// of its own database to decode even when the mapped tables, and the whole
// database, are idle while other databases write: the connector confirms
// past it and the slot advances instead of holding WAL back.
//
// Run is its only long-running method. A failed heartbeat (the server is
// restarting, the role may not call the function) is logged and retried at
// the next tick; it never stops the connector.
type Heartbeat struct {
	pool     *pgxpool.Pool
	interval time.Duration
	log      *slog.Logger
}

// NewHeartbeat returns a heartbeat that writes through pool (NewPool). It
// does not connect.
func NewHeartbeat(pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) *Heartbeat {
	return &Heartbeat{pool: pool, interval: interval, log: log}
}

// Run emits a heartbeat at once and then every interval until ctx ends; it
// returns nil then.
func (h *Heartbeat) Run(ctx context.Context) error {
	if h.interval <= 0 {
		return nil
	}
	failing := false
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		err := h.beat(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				h.log.Warn("heartbeat failed; retrying at the next interval", "error", err, "interval", h.interval)
			}
			failing = true
		case err == nil && failing:
			h.log.Info("heartbeat recovered")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *Heartbeat) beat(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, max(h.interval, 5*time.Second))
	defer cancel()
	var lsn string
	if err := h.pool.QueryRow(cctx, `SELECT pg_logical_emit_message(false, $1, now()::text)::text`, HeartbeatPrefix).Scan(&lsn); err != nil {
		return fmt.Errorf("emit heartbeat: %w", redact(err))
	}
	h.log.Debug("heartbeat", "lsn", lsn)
	return nil
}
