package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector"
)

// The catalog readers take a Querier: a connection, a pool or a
// transaction.
var (
	_ Querier = (*pgx.Conn)(nil)
	_ Querier = (*pgxpool.Pool)(nil)
)

// poolSize bounds the regular connections: the subscription holds one
// while it streams; the slot monitor, the publication watch, the heartbeat
// and the backfill runner each borrow one for a query or a chunk now and
// then; dba.Prepare borrows one at start.
const poolSize = 5

// NewPool returns the small pool of regular connections the connector keeps
// to the source database beside its replication connection: the
// subscription's catalog connection (column types, row filters evaluated by
// the connector), the slot monitor, the publication watch, the heartbeat,
// backfill's chunks and state, and dba.Prepare at start. Its connections
// carry the stream's session settings, so a value read by a query has the
// text form the stream gives it. It does not connect: connections are opened when
// first needed and replaced when they break (pgxpool checks one that was
// idle before lending it), so the parts that use it carry no reconnection
// code of their own. Close it once they all returned.
func NewPool(dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse source dsn: %w: %w", redact(err), connector.ErrPermanent)
	}
	for k, v := range sessionParams {
		if k == "application_name" && cfg.ConnConfig.RuntimeParams[k] != "" {
			continue // the DSN's name wins
		}
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	cfg.ConnConfig.RuntimeParams["standard_conforming_strings"] = "on"
	cfg.MaxConns = poolSize
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("source database pool: %w", redact(err))
	}
	return pool, nil
}

// Acquire borrows a connection of a pool made by NewPool (Release it); an
// failed connection is a ConnectError (permanent when a person must fix it).
func Acquire(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Conn, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return nil, ConnectError(ctx, err, &pool.Config().ConnConfig.Config)
	}
	return c, nil
}
