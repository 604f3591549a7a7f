package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/baitoru/baitoru-cdc/sink"
)

// Watch tuning.
const (
	// watchPing is how long the LISTEN connection may be silent before it
	// is pinged, so a dead connection is noticed.
	watchPing = 10 * time.Second
	// maxCoalesce bounds the keys reloaded with one query.
	maxCoalesce = 1000
	// The waits before reconnecting double from reconnectInitial to
	// reconnectMax, and start again after a connection that lasted
	// reconnectResetAfter.
	reconnectInitial    = 100 * time.Millisecond
	reconnectMax        = 5 * time.Second
	reconnectResetAfter = time.Minute
)

// WatchLinks keeps cache equal to the active links of the database until ctx
// ends, and returns nil then. On a dedicated connection it runs LISTEN, then
// loads every active link (cache.SetAll), then reloads the keys named by
// each NOTIFY (links changed through the API or by hand), coalescing bursts
// into one query. When the connection is lost it marks the cache unsynced
// (lookups fail, so deliveries pause rather than use stale links),
// reconnects with backoff, and loads everything again. reloaded, if not nil,
// is told each reload's scope ("all" or "keys").
func (s *Store) WatchLinks(ctx context.Context, cache *sink.LinkCache, reloaded func(scope string)) error {
	if reloaded == nil {
		reloaded = func(string) {}
	}
	bo := &backoff.ExponentialBackOff{
		InitialInterval: reconnectInitial,
		Multiplier:      2,
		MaxInterval:     reconnectMax,
	}
	bo.Reset()
	for {
		start := time.Now()
		err := s.watch(ctx, cache, reloaded)
		cache.Unsync()
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > reconnectResetAfter {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		s.logger.Warn("link watcher lost its connection; deliveries pause until it reconnects", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (s *Store) watch(ctx context.Context, cache *sink.LinkCache, reloaded func(string)) error {
	cfg := s.listen.Copy()
	// Time out waits by a read deadline instead of pgx's default cancel
	// request, which would open a connection per timed-out wait.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return s.explain(ctx, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// LISTEN comes first: a change committed while loading is notified.
	count, err := s.reload(ctx, conn, cache, nil)
	if err != nil {
		return err
	}
	reloaded("all")
	s.logger.Info("link cache loaded", "active_links", count)

	for {
		n, err := waitNotification(ctx, conn, watchPing)
		if err != nil {
			return err
		}
		if n == nil { // silent for a while: make sure the connection lives
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		}
		keys, full := []string{n.Payload}, n.Payload == ""
		seen := map[string]bool{n.Payload: true}
		for len(keys) < maxCoalesce { // take what else is already queued
			n, err := waitNotification(ctx, conn, time.Millisecond)
			if err != nil {
				return err
			}
			if n == nil {
				break
			}
			full = full || n.Payload == ""
			if !seen[n.Payload] {
				seen[n.Payload] = true
				keys = append(keys, n.Payload)
			}
		}
		if full {
			keys = nil
		}
		count, err := s.reload(ctx, conn, cache, keys)
		if err != nil {
			return err
		}
		if full {
			reloaded("all")
			continue
		}
		reloaded("keys")
		s.logger.Debug("link cache reloaded keys", "keys", len(keys), "links", count)
	}
}

// reload loads the active links of keys (nil: all) and puts them in cache.
// Reloads are serialised, so the one applied last has also read last: a
// slow reload can never overwrite a newer one.
func (s *Store) reload(ctx context.Context, q querier, cache *sink.LinkCache, keys []string) (int, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	ls, err := activeLinks(ctx, q, keys)
	if err != nil {
		return 0, err
	}
	if keys == nil {
		cache.SetAll(ls)
	} else {
		cache.SetKeys(keys, ls)
	}
	return len(ls), nil
}

// RefreshLinks reloads the links of keys into cache now. The links API calls
// it after a change, so that this sink's deliveries follow the change before
// the API answers; other sinks follow it through NOTIFY within milliseconds.
func (s *Store) RefreshLinks(ctx context.Context, cache *sink.LinkCache, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := s.reload(ctx, s.pool, cache, keys)
	return err
}

// waitNotification waits up to d; it returns (nil, nil) on timeout and an
// error when ctx ended or the connection failed.
func waitNotification(ctx context.Context, conn *pgx.Conn, d time.Duration) (*pgconn.Notification, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	switch {
	case n != nil:
		return n, nil
	case err == nil:
		return nil, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
		return nil, nil
	default:
		return nil, fmt.Errorf("wait for notification: %w", err)
	}
}
