// Package requester is the sink's client of Baitoru's database for link
// histories (sink.BackfillRequester): it inserts backfill start and cancel
// requests into baitoru_cdc.backfill_requests and reads their progress
// from baitoru_cdc.backfills, connected as the least-privilege requester
// role of setup's script (sink.history.dsn), which may do nothing else.
// The connector streaming the slot reads the requests from its stream;
// package sink's doc says why this is the transport.
package requester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/sink"
)

// Requester requests backfills in Baitoru's database. Safe for concurrent
// use; connections are made on first use and remade after a failure.
type Requester struct {
	pool   *pgxpool.Pool
	slot   string
	logger *slog.Logger
}

var _ sink.BackfillRequester = (*Requester)(nil)

// New returns a requester for dsn (Baitoru's database as the requester
// role); slot names the connector that runs the backfills, empty for any.
// It does not connect. Errors never contain the password.
func New(dsn, slot string, logger *slog.Logger) (*Requester, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("parse sink.history.dsn: invalid connection string")
	}
	pc.MaxConns = 2
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "baitoru-cdc-sink-history"
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("open Baitoru's database: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Requester{pool: pool, slot: slot, logger: logger}, nil
}

// Close closes the connections.
func (r *Requester) Close() { r.pool.Close() }

func (r *Requester) with(ctx context.Context, f func(*pgx.Conn) error) error {
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to Baitoru's database (sink.history.dsn): %w", err)
	}
	defer c.Release()
	return f(c.Conn())
}

// RequestBackfills inserts one start request per history, in one
// transaction: the rows of h.Table whose h.Field (a published field) is
// the link key. A request whose id exists changes nothing.
func (r *Requester) RequestBackfills(ctx context.Context, hs []sink.History) error {
	return r.with(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, h := range hs {
				if _, err := postgres.RequestBackfill(ctx, tx.Conn(), postgres.BackfillRequest{
					ID: h.BackfillID, Table: h.Table, KeyField: h.Field, KeyValue: h.Key, Slot: r.slot,
				}); err != nil {
					return fmt.Errorf("request %s: %w", h.BackfillID, err)
				}
			}
			return nil
		})
	})
}

// CancelBackfills inserts a cancel request per id.
func (r *Requester) CancelBackfills(ctx context.Context, ids []string) error {
	return r.with(ctx, func(conn *pgx.Conn) error {
		for _, id := range ids {
			err := postgres.CancelBackfill(ctx, conn, id)
			if err != nil && !errors.Is(err, postgres.ErrNoBackfill) {
				return fmt.Errorf("cancel %s: %w", id, err)
			}
		}
		return nil
	})
}

// BackfillProgress returns the state and rows of the backfills of ids
// that Baitoru's database knows.
func (r *Requester) BackfillProgress(ctx context.Context, ids []string) (map[string]sink.HistoryProgress, error) {
	out := map[string]sink.HistoryProgress{}
	err := r.with(ctx, func(conn *pgx.Conn) error {
		list, err := postgres.BackfillsOf(ctx, conn, ids)
		if err != nil {
			return fmt.Errorf("read backfill progress: %w", err)
		}
		for _, st := range list {
			p := sink.HistoryProgress{
				Table: st.Table, BackfillID: st.ID, State: string(st.Status),
				RowsDone: st.RowsDone, RowsEstimated: st.RowsEstimated, Error: st.Error,
			}
			if !st.UpdatedAt.IsZero() {
				t := st.UpdatedAt.UTC().Truncate(time.Millisecond)
				p.UpdatedAt = &t
			}
			out[st.ID] = p
		}
		return nil
	})
	return out, err
}
