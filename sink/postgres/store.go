// Package postgres is the sink's own PostgreSQL database: the links table,
// the delivery log, the schema migrations that create them, and the
// LISTEN/NOTIFY watcher that keeps a sink.LinkCache current.
//
// Migrations are plain versioned SQL files (migrations/NNNN_name.sql,
// embedded) recorded in schema_migrations, applied in one transaction under
// an advisory lock. That is all golang-migrate would give us here, without
// its database/sql driver layer, its dirty-state handling (PostgreSQL DDL is
// transactional, so a failed upgrade leaves nothing half-applied) or another
// dependency to keep current.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/internal/pgconnect"
	"github.com/baitoru/baitoru-cdc/sink"
)

// Channel is the NOTIFY channel of link changes; the payload is the link key.
const Channel = "baitoru_cdc_links"

// applicationName marks the sink's connections in pg_stat_activity.
const applicationName = "baitoru-cdc-sink"

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the sink's database. Safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	listen *pgx.ConnConfig // for the dedicated LISTEN connection
	logger *slog.Logger
	// reloadMu serialises link cache reloads (watcher and RefreshLinks).
	reloadMu sync.Mutex
	// historyPrefix and history: what StartLink records for a new link's
	// history (SetHistory).
	historyPrefix string
	history       []sink.HistoryTable
}

var (
	_ sink.LinkStore   = (*Store)(nil)
	_ sink.DeliveryLog = (*Store)(nil)
	_ sink.LinkSource  = (*Store)(nil)
	_ sink.HistoryLog  = (*Store)(nil)
)

// Open parses dsn and creates a connection pool (connections are made
// lazily; Ping checks the database). Errors never contain the password.
func Open(dsn string, logger *slog.Logger) (*Store, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("parse sink dsn: invalid connection string")
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	lc := pc.ConnConfig.Copy()
	lc.RuntimeParams["application_name"] = applicationName + "-listen"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("open sink database: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, listen: lc, logger: logger}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.explain(ctx, fmt.Errorf("ping sink database: %w", err))
	}
	return nil
}

// explain returns err as what is wrong with the sink database and the fix
// when a person must act: a failed connection (pgconnect.Explain, in
// terms of sink.dsn and sink.password) or a role that may not create the
// sink's tables. Any other error is returned as it is.
func (s *Store) explain(ctx context.Context, err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("sink database: %w", pgconnect.Explain(ctx, err, &s.listen.Config, pgconnect.Sink))
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		role, db := quoteIdent(s.listen.User), quoteIdent(s.listen.Database)
		return fmt.Errorf("sink database: role %s may not create or use the sink's tables in database %s (PostgreSQL: %s); "+
			"fix: let the role own the database (as a DBA: ALTER DATABASE %s OWNER TO %s; the sink creates its tables itself), or GRANT CREATE, USAGE ON SCHEMA public TO %s; then start the sink again",
			role, db, pgErr.Message, db, role, role)
	}
	return err
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Migration is one embedded schema migration.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order
// (migrations/NNNN_name.sql).
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", n)
		}
		b, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := range ms {
		if ms[i].Version != i+1 {
			return nil, fmt.Errorf("migration versions must be 1..%d without gaps; found %d", len(ms), ms[i].Version)
		}
	}
	return ms, nil
}

// migrateLock is the pg_advisory_xact_lock key serialising migrations of
// concurrently starting sinks.
const migrateLock = 0x62616974_63646331 // "baitcdc1"

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, all in one transaction under an advisory lock, so
// replicas starting together apply each migration once. It returns the
// versions it applied. A database at a newer version than this binary
// knows is an error (an older sink must not run against it).
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var applied []int
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLock)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > len(ms) {
			return fmt.Errorf("database schema is at version %d, this sink knows only %d: run a newer sink", current, len(ms))
		}
		for _, m := range ms[current:] {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("record migration %d: %w", m.Version, err)
			}
			applied = append(applied, m.Version)
		}
		return nil
	})
	if err != nil {
		return nil, s.explain(ctx, fmt.Errorf("migrate sink database: %w", err))
	}
	if len(applied) > 0 {
		s.logger.Info("sink database migrated", "applied", applied)
	}
	return applied, nil
}

const linkColumns = "id, kobot_account, link_key, status, created_at, ended_at"

func scanLink(row pgx.Row) (sink.Link, error) {
	var l sink.Link
	err := row.Scan(&l.ID, &l.Account, &l.Key, &l.Status, &l.CreatedAt, &l.EndedAt)
	l.CreatedAt = l.CreatedAt.UTC()
	if l.EndedAt != nil {
		t := l.EndedAt.UTC()
		l.EndedAt = &t
	}
	return l, err
}

func collectLinks(rows pgx.Rows) ([]sink.Link, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (sink.Link, error) { return scanLink(r) })
}

// StartLink returns the active link of (account, key), creating it if
// needed. The partial unique index makes concurrent starts of the same pair
// return the same link. A link it creates gets its histories (SetHistory)
// in the same transaction, so a crash cannot leave a link without them.
func (s *Store) StartLink(ctx context.Context, account, key string) (sink.Link, bool, error) {
	for range 3 {
		var l sink.Link
		created := false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			l, err = scanLink(tx.QueryRow(ctx, `INSERT INTO links (kobot_account, link_key) VALUES ($1, $2)
				ON CONFLICT (kobot_account, link_key) WHERE status = 'active' DO NOTHING
				RETURNING `+linkColumns, account, key))
			if err != nil {
				return err
			}
			created = true
			return s.recordHistory(ctx, tx, l.ID)
		})
		if err == nil {
			return l, created, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return sink.Link{}, false, fmt.Errorf("insert link: %w", err)
		}
		l, err = scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links
			WHERE kobot_account = $1 AND link_key = $2 AND status = 'active'`, account, key))
		if err == nil {
			return l, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return sink.Link{}, false, fmt.Errorf("read link: %w", err)
		}
		// Stopped between the two statements: try again.
	}
	return sink.Link{}, false, errors.New("start link: conflicting concurrent stop")
}

// SetHistory makes StartLink record, for every link it creates, a history
// per table (sink.HistoryID with prefix names its backfill). Call it before
// serving; without it links get no history.
func (s *Store) SetHistory(prefix string, tables []sink.HistoryTable) {
	s.historyPrefix, s.history = prefix, slices.Clone(tables)
}

func (s *Store) recordHistory(ctx context.Context, tx pgx.Tx, linkID int64) error {
	if len(s.history) == 0 {
		return nil
	}
	tables, fields, ids := make([]string, len(s.history)), make([]string, len(s.history)), make([]string, len(s.history))
	for i, h := range s.history {
		tables[i], fields[i], ids[i] = h.Table, h.Field, sink.HistoryID(s.historyPrefix, linkID, h.Table)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO link_history (link_id, table_name, key_field, backfill_id)
		SELECT $1, t, f, b FROM unnest($2::text[], $3::text[], $4::text[]) AS u(t, f, b)`, linkID, tables, fields, ids); err != nil {
		return fmt.Errorf("record link history: %w", err)
	}
	return nil
}

const historyColumns = "h.link_id, l.link_key, h.table_name, h.key_field, h.backfill_id, h.requested_at IS NOT NULL"

func collectHistory(rows pgx.Rows) ([]sink.History, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (sink.History, error) {
		var h sink.History
		err := r.Scan(&h.LinkID, &h.Key, &h.Table, &h.Field, &h.BackfillID, &h.Requested)
		return h, err
	})
}

// PendingHistory returns up to limit histories of active links that
// Baitoru's database has not taken yet, oldest first.
func (s *Store) PendingHistory(ctx context.Context, limit int) ([]sink.History, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+historyColumns+` FROM link_history h JOIN links l ON l.id = h.link_id
		WHERE h.requested_at IS NULL AND l.status = 'active' ORDER BY h.created_at, h.link_id, h.table_name LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read pending link history: %w", err)
	}
	return collectHistory(rows)
}

// MarkRequested records that Baitoru's database holds these backfills.
func (s *Store) MarkRequested(ctx context.Context, backfillIDs []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE link_history SET requested_at = now() WHERE backfill_id = ANY($1) AND requested_at IS NULL`, backfillIDs)
	if err != nil {
		return fmt.Errorf("record link history requested: %w", err)
	}
	return nil
}

// LinkHistory returns a link's histories by table.
func (s *Store) LinkHistory(ctx context.Context, linkID int64) ([]sink.History, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+historyColumns+` FROM link_history h JOIN links l ON l.id = h.link_id
		WHERE h.link_id = $1 ORDER BY h.table_name`, linkID)
	if err != nil {
		return nil, fmt.Errorf("read link history: %w", err)
	}
	return collectHistory(rows)
}

// StopLink stops a link; stopping a stopped link returns it unchanged.
func (s *Store) StopLink(ctx context.Context, id int64) (sink.Link, error) {
	l, err := scanLink(s.pool.QueryRow(ctx, `UPDATE links SET status = 'stopped', ended_at = now()
		WHERE id = $1 AND status = 'active' RETURNING `+linkColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.Link(ctx, id)
	}
	if err != nil {
		return sink.Link{}, fmt.Errorf("stop link %d: %w", id, err)
	}
	return l, nil
}

// Link returns one link.
func (s *Store) Link(ctx context.Context, id int64) (sink.Link, error) {
	l, err := scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return sink.Link{}, sink.ErrLinkNotFound
	}
	if err != nil {
		return sink.Link{}, fmt.Errorf("read link %d: %w", id, err)
	}
	return l, nil
}

// ListLinks returns links matching f in id order.
func (s *Store) ListLinks(ctx context.Context, f sink.LinkFilter) ([]sink.Link, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+linkColumns+` FROM links
		WHERE ($1 = '' OR kobot_account = $1)
		  AND ($2 = '' OR link_key = $2)
		  AND ($3 = '' OR status = $3)
		  AND id > $4
		ORDER BY id LIMIT $5`, f.Account, f.Key, f.Status, f.AfterID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	ls, err := collectLinks(rows)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return ls, nil
}

// ActiveLinks returns the active links of keys with one query (Lambda's
// LinkSource; the long-running sink uses the cache).
func (s *Store) ActiveLinks(ctx context.Context, keys []string) (map[string][]sink.Link, error) {
	out := map[string][]sink.Link{}
	if len(keys) == 0 {
		return out, nil
	}
	ls, err := activeLinks(ctx, s.pool, keys)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		out[l.Key] = append(out[l.Key], l)
	}
	return out, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// activeLinks loads the active links of keys, or of every key when keys is nil.
func activeLinks(ctx context.Context, q querier, keys []string) ([]sink.Link, error) {
	var rows pgx.Rows
	var err error
	if keys == nil {
		rows, err = q.Query(ctx, `SELECT `+linkColumns+` FROM links WHERE status = 'active' ORDER BY id`)
	} else {
		rows, err = q.Query(ctx, `SELECT `+linkColumns+` FROM links WHERE status = 'active' AND link_key = ANY($1) ORDER BY id`, keys)
	}
	if err != nil {
		return nil, fmt.Errorf("load active links: %w", err)
	}
	ls, err := collectLinks(rows)
	if err != nil {
		return nil, fmt.Errorf("load active links: %w", err)
	}
	return ls, nil
}

// Claim claims the pushes of keys for lease (see sink.DeliveryLog): one
// statement upserts a 'pending' row per pair, or takes over a row that is
// neither delivered nor claimed by a live claim; the pairs it did not get
// are then read back as delivered or busy. Concurrent claims of one pair
// serialise on its row: exactly one wins.
func (s *Store) Claim(ctx context.Context, keys []sink.DeliveryKey, lease time.Duration) (map[sink.DeliveryKey]sink.ClaimState, error) {
	out := make(map[sink.DeliveryKey]sink.ClaimState, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b sink.DeliveryKey) int {
		return cmp.Or(cmp.Compare(a.EventID, b.EventID), cmp.Compare(a.LinkID, b.LinkID))
	})
	keys = slices.Compact(keys) // ON CONFLICT cannot touch a row twice
	ids, links := make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		ids[i], links[i] = k.EventID, k.LinkID
		out[k] = sink.ClaimBusy
	}
	rows, err := s.pool.Query(ctx, `INSERT INTO deliveries AS d (event_id, link_id, status, attempts, claimed_until)
		SELECT e, l, 'pending', 0, now() + $3::bigint * interval '1 microsecond'
		FROM unnest($1::text[], $2::bigint[]) AS u(e, l)
		ON CONFLICT (event_id, link_id) DO UPDATE SET claimed_until = excluded.claimed_until, updated_at = now()
			WHERE d.status <> 'delivered' AND (d.claimed_until IS NULL OR d.claimed_until < now())
		RETURNING event_id, link_id`, ids, links, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	for rows.Next() {
		var k sink.DeliveryKey
		if err := rows.Scan(&k.EventID, &k.LinkID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		out[k] = sink.ClaimOwned
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var lostIDs []string
	var lostLinks []int64
	for _, k := range keys {
		if out[k] != sink.ClaimOwned {
			lostIDs, lostLinks = append(lostIDs, k.EventID), append(lostLinks, k.LinkID)
		}
	}
	if len(lostIDs) == 0 {
		return out, nil
	}
	rows, err = s.pool.Query(ctx, `SELECT d.event_id, d.link_id FROM deliveries d
		JOIN unnest($1::text[], $2::bigint[]) AS u(e, l) ON d.event_id = u.e AND d.link_id = u.l
		WHERE d.status = 'delivered'`, lostIDs, lostLinks)
	if err != nil {
		return nil, fmt.Errorf("read delivery log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k sink.DeliveryKey
		if err := rows.Scan(&k.EventID, &k.LinkID); err != nil {
			return nil, fmt.Errorf("read delivery log: %w", err)
		}
		out[k] = sink.ClaimDelivered
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read delivery log: %w", err)
	}
	return out, nil
}

// RecordDeliveries upserts a batch of outcomes with one statement: attempts
// add up, and a delivered row stays delivered. ds must not repeat a key.
func (s *Store) RecordDeliveries(ctx context.Context, ds []sink.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ds = slices.Clone(ds)
	sink.SortDeliveries(ds)
	n := len(ds)
	ids, links, statuses, errs := make([]string, n), make([]int64, n), make([]string, n), make([]string, n)
	attempts, codes := make([]int32, n), make([]int32, n)
	lat := make([]float64, n)
	at := make([]*time.Time, n)
	for i, d := range ds {
		ids[i], links[i], statuses[i], errs[i] = d.EventID, d.LinkID, d.Status, d.LastError
		attempts[i], codes[i] = int32(d.Attempts), int32(d.HTTPStatus)
		lat[i] = float64(d.Latency) / float64(time.Millisecond)
		if !d.DeliveredAt.IsZero() {
			t := d.DeliveredAt
			at[i] = &t
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO deliveries AS d
			(event_id, link_id, status, attempts, http_status, last_error, latency_ms, delivered_at)
		SELECT e, l, s, a, NULLIF(c, 0), NULLIF(m, ''), ms, t
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::int[], $6::text[], $7::float8[], $8::timestamptz[])
			AS u(e, l, s, a, c, m, ms, t)
		ON CONFLICT (event_id, link_id) DO UPDATE SET
			attempts     = d.attempts + excluded.attempts,
			status       = CASE WHEN d.status = 'delivered' THEN d.status ELSE excluded.status END,
			http_status  = CASE WHEN d.status = 'delivered' THEN d.http_status ELSE excluded.http_status END,
			last_error   = CASE WHEN d.status = 'delivered' THEN d.last_error ELSE excluded.last_error END,
			latency_ms   = CASE WHEN d.status = 'delivered' THEN d.latency_ms ELSE excluded.latency_ms END,
			delivered_at = coalesce(d.delivered_at, excluded.delivered_at),
			claimed_until = NULL,
			updated_at   = now()`,
		ids, links, statuses, attempts, codes, errs, lat, at)
	if err != nil {
		return fmt.Errorf("write delivery log: %w", err)
	}
	return nil
}
