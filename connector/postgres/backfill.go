package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector"
)

// BackfillSchema is the schema of what backfill keeps in the source
// database (package dba creates it): the requests table, published alone by
// the backfill publication so the connector reads requests from its stream,
// and the state table, written only by the connector.
const BackfillSchema = "baitoru_cdc"

// Backfill tables, schema-qualified.
const (
	BackfillRequestsTable = BackfillSchema + ".backfill_requests"
	BackfillStateTable    = BackfillSchema + ".backfills"
)

// BackfillPublication is the publication of the requests table for the
// mapped tables' publication pub.
func BackfillPublication(pub string) string { return pub + "_backfill" }

// BackfillSource implements connector.BackfillSource on the source
// database, over connections borrowed from the connector's pool (NewPool:
// made with the stream's session settings, so that values read by a chunk
// have exactly the text form the stream gives them). Its methods are
// called from the runner's goroutine only.
type BackfillSource struct {
	pool     *pgxpool.Pool
	slot     string
	mu       sync.Mutex // guards mappings (SetMappings)
	mappings map[string]*connector.Mapping
	log      *slog.Logger
	types    *Types
	server   int
	unset    bool // the tables are missing (said once)
}

var _ connector.BackfillSource = (*BackfillSource)(nil)

// NewBackfillSource returns the source side of backfill for slot, reading
// through pool (made by NewPool); it does not connect.
func NewBackfillSource(pool *pgxpool.Pool, slot string, mappings []*connector.Mapping, log *slog.Logger) *BackfillSource {
	s := &BackfillSource{pool: pool, slot: slot, log: log, types: NewTypes()}
	s.SetMappings(mappings)
	return s
}

// SetMappings replaces the mapped tables a backfill may read (a reload of
// the configuration); backfills prepared from then on use them. Safe for
// concurrent use.
func (s *BackfillSource) SetMappings(mappings []*connector.Mapping) {
	m := make(map[string]*connector.Mapping, len(mappings))
	for _, mp := range mappings {
		m[mp.Table] = mp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mappings = m
}

func (s *BackfillSource) mapping(table string) *connector.Mapping {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mappings[table]
}

// db borrows a connection of the pool (call release when done); the
// first one tells the server's version.
func (s *BackfillSource) db(ctx context.Context) (conn *pgx.Conn, release func(), err error) {
	pooled, err := Acquire(ctx, s.pool)
	if err != nil {
		return nil, nil, err
	}
	if s.server == 0 {
		if s.server, err = ServerVersion(ctx, pooled.Conn()); err != nil {
			pooled.Release()
			return nil, nil, err
		}
	}
	return pooled.Conn(), pooled.Release, nil
}

const stateColumns = `backfill_id, table_name, coalesce(filter, ''), coalesce(key_field, ''), coalesce(key_value, ''), status, last_key, max_key,
	rows_done, coalesce(rows_estimated, 0), chunks, coalesce(chunk_size, 0), coalesce(error, ''), coalesce(requested_by, ''),
	coalesce(requested_at, started_at), started_at, updated_at, coalesce(finished_at, 'epoch')`

// ScanBackfill reads one row of stateColumns.
func scanBackfill(row pgx.Row) (*connector.BackfillState, error) {
	st := &connector.BackfillState{}
	var status string
	err := row.Scan(&st.ID, &st.Table, &st.Where, &st.KeyField, &st.KeyValue, &status, &st.LastKey, &st.MaxKey,
		&st.RowsDone, &st.RowsEstimated, &st.Chunks, &st.ChunkSize, &st.Error, &st.RequestedBy,
		&st.RequestedAt, &st.StartedAt, &st.UpdatedAt, &st.FinishedAt)
	st.Status = connector.BackfillStatus(status)
	if st.FinishedAt.Unix() == 0 {
		st.FinishedAt = time.Time{}
	}
	return st, err
}

// Claim applies cancel requests, starts the start requests not yet started
// (for this slot, or for any slot when the request names none), and
// returns the running backfills of this slot, oldest first.
func (s *BackfillSource) Claim(ctx context.Context) ([]*connector.BackfillState, error) {
	conn, release, err := s.db(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `UPDATE `+BackfillStateTable+` s SET status = 'cancelled', updated_at = now(), finished_at = now()
		FROM `+BackfillRequestsTable+` r WHERE r.action = 'cancel' AND r.backfill_id = s.backfill_id AND s.status = 'running' AND s.slot = $1`, s.slot); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000" || pgErr.Code == "42501") {
			if !s.unset {
				s.unset = true
				s.log.Warn("backfill is unavailable: "+BackfillRequestsTable+" is missing or this role may not use it; run baitoru-cdc setup and grant what its script's role comments list; streaming is not affected", "error", pgErr.Message)
			}
			return nil, nil
		}
		return nil, fmt.Errorf("apply cancel requests: %w", err)
	}
	s.unset = false
	if _, err := tx.Exec(ctx, `INSERT INTO `+BackfillStateTable+` (backfill_id, slot, table_name, filter, key_field, key_value, status, requested_by, requested_at, finished_at)
		SELECT r.backfill_id, $1, r.table_name, r.filter, r.key_field, r.key_value,
		       CASE WHEN c.backfill_id IS NULL THEN 'running' ELSE 'cancelled' END, r.requested_by, r.requested_at,
		       CASE WHEN c.backfill_id IS NULL THEN NULL ELSE now() END
		FROM `+BackfillRequestsTable+` r LEFT JOIN `+BackfillRequestsTable+` c ON c.backfill_id = r.backfill_id AND c.action = 'cancel'
		WHERE r.action = 'start' AND (r.slot IS NULL OR r.slot = $1)
		  AND NOT EXISTS (SELECT 1 FROM `+BackfillStateTable+` s WHERE s.backfill_id = r.backfill_id)
		ORDER BY r.request_id
		ON CONFLICT (backfill_id) DO NOTHING`, s.slot); err != nil {
		return nil, fmt.Errorf("start requested backfills: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+stateColumns+` FROM `+BackfillStateTable+` WHERE slot = $1 AND status = 'running' ORDER BY started_at, backfill_id`, s.slot)
	if err != nil {
		return nil, fmt.Errorf("read backfills: %w", err)
	}
	states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*connector.BackfillState, error) { return scanBackfill(r) })
	if err != nil {
		return nil, fmt.Errorf("read backfills: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return states, nil
}

// Save stores st's progress and reports whether a cancel of st was
// requested, in one statement.
func (s *BackfillSource) Save(ctx context.Context, st *connector.BackfillState) (cancelled bool, err error) {
	conn, release, err := s.db(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	var msg *string
	if st.Error != "" {
		msg = &st.Error
	}
	err = conn.QueryRow(ctx, `WITH saved AS (UPDATE `+BackfillStateTable+` SET status = $3, last_key = $4, max_key = $5, rows_done = $6, rows_estimated = $7,
		chunks = $8, chunk_size = $9, error = $10, updated_at = now(), finished_at = CASE WHEN $3 = 'running' THEN NULL ELSE now() END
		WHERE backfill_id = $1 AND slot = $2 AND status <> 'cancelled')
		SELECT EXISTS (SELECT 1 FROM `+BackfillRequestsTable+` WHERE backfill_id = $1 AND action = 'cancel')`,
		st.ID, s.slot, string(st.Status), st.LastKey, st.MaxKey, st.RowsDone, st.RowsEstimated, st.Chunks, st.ChunkSize, msg).Scan(&cancelled)
	if err != nil {
		return false, fmt.Errorf("save backfill %s: %w", st.ID, err)
	}
	return cancelled, nil
}

// Cancelled reports whether a cancel of id was requested.
func (s *BackfillSource) Cancelled(ctx context.Context, id string) (bool, error) {
	conn, release, err := s.db(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	var yes bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+BackfillRequestsTable+` WHERE backfill_id = $1 AND action = 'cancel')`, id).Scan(&yes)
	return yes, err
}

// LagBytes is how far the slot's confirmed position is behind the WAL end.
func (s *BackfillSource) LagBytes(ctx context.Context) (int64, error) {
	conn, release, err := s.db(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	var lag int64
	err = conn.QueryRow(ctx, `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return lag, err
}

// Watermark writes w as a transactional logical decoding message (its own
// transaction: decoded in commit order, between the changes before and
// after it).
func (s *BackfillSource) Watermark(ctx context.Context, w connector.Watermark) error {
	conn, release, err := s.db(ctx)
	if err != nil {
		return err
	}
	defer release()
	body, _ := json.Marshal(w)
	_, err = conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2::text)`, connector.WatermarkPrefix, string(body))
	return err
}

// backfillQuery is a plan's compiled query (BackfillPlan.Source).
type backfillQuery struct {
	rel      *connector.Relation
	keyIdx   []int    // positions of the key columns in rel
	keyTypes []string // format_type of the key columns
	from     string   // quoted table
	where    string   // the mapping's where: and the backfill's filter, ANDed; "" for none
	columns  string   // the select list
	order    string   // the key columns, quoted, comma-separated
}

// Prepare checks st: the table is mapped and has a primary key, whose
// columns are published; the predicate names only published fields; the
// link key is a published field; the server carries watermarks (14+).
func (s *BackfillSource) Prepare(ctx context.Context, st *connector.BackfillState) (*connector.BackfillPlan, error) {
	conn, release, err := s.db(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if !Supports(s.server, FeatureBackfill) {
		return nil, fmt.Errorf("PostgreSQL %s cannot carry the backfill's watermarks (logical messages in the stream need 14 or later; 13 is out of support): upgrade the server: %w",
			versionText(s.server), connector.ErrBackfillRefused)
	}
	mp := s.mapping(st.Table)
	if mp == nil {
		return nil, fmt.Errorf("table %s is not mapped in this connector's configuration: add it to tables: (and to the publication with setup), or name a mapped table: %w", st.Table, connector.ErrBackfillRefused)
	}
	schema, name, _ := strings.Cut(st.Table, ".")
	var oid uint32
	if err := conn.QueryRow(ctx, `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, schema, name).Scan(&oid); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("table %s does not exist: %w", st.Table, connector.ErrBackfillRefused)
		}
		return nil, fmt.Errorf("look up %s: %w", st.Table, err)
	}
	type col struct {
		name, typ string
		oid       uint32
	}
	rows, err := conn.Query(ctx, `SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod)
		FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)`, oid)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", st.Table, err)
	}
	key, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.name, &c.oid, &c.typ)
	})
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", st.Table, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("table %s has no primary key: a backfill reads in primary-key order (add a primary key, e.g. ALTER TABLE %s ADD PRIMARY KEY (...)): %w",
			st.Table, pgx.Identifier{schema, name}.Sanitize(), connector.ErrBackfillRefused)
	}
	rows, err = conn.Query(ctx, `SELECT attname, atttypid FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", st.Table, err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.name, &c.oid)
	})
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", st.Table, err)
	}
	// The published columns (all when the mapping lists none), and the
	// fields a predicate may name.
	fields := map[string]string{}
	published := map[string]bool{}
	for _, c := range mp.Columns {
		fields[c.Name] = c.Column
		fields[c.Column] = c.Column
		published[c.Column] = true
	}
	if len(mp.Columns) == 0 {
		for _, c := range all {
			fields[c.name] = c.name
			published[c.name] = true
		}
	}
	for _, k := range key {
		if !published[k.name] {
			return nil, fmt.Errorf("primary-key column %s of %s is not published: a backfill needs it to interleave with the stream; add it to the mapping's columns: %w", k.name, st.Table, connector.ErrBackfillRefused)
		}
	}
	q := &backfillQuery{from: pgx.Identifier{schema, name}.Sanitize()}
	rel := &connector.Relation{Schema: schema, Name: name, Table: st.Table}
	var oids []uint32
	var sel []string
	for _, c := range all {
		if !published[c.name] {
			continue
		}
		oids = append(oids, c.oid)
		isKey := false
		for _, k := range key {
			isKey = isKey || k.name == c.name
		}
		rel.Columns = append(rel.Columns, connector.Column{Name: c.name, TypeOID: c.oid, Key: isKey})
		sel = append(sel, pgx.Identifier{c.name}.Sanitize())
	}
	if err := s.types.Resolve(ctx, conn, oids); err != nil {
		return nil, fmt.Errorf("resolve column types of %s: %w", st.Table, err)
	}
	for i := range rel.Columns {
		rel.Columns[i].TypeName = s.types.Name(rel.Columns[i].TypeOID)
		rel.Columns[i].Encode = s.types.Encoder(rel.Columns[i].TypeOID)
	}
	var order []string
	for _, k := range key {
		for i, c := range rel.Columns {
			if c.Name == k.name {
				q.keyIdx = append(q.keyIdx, i)
			}
		}
		q.keyTypes = append(q.keyTypes, k.typ)
		order = append(order, pgx.Identifier{k.name}.Sanitize())
	}
	q.rel, q.columns, q.order = rel, strings.Join(sel, ", "), strings.Join(order, ", ")
	var conds []string
	if mp.Where != "" {
		conds = append(conds, "("+mp.Where+")")
	}
	if st.Where != "" {
		w, err := CompileWhere(st.Where, fields)
		if err != nil {
			return nil, err
		}
		conds = append(conds, "("+w+")")
	}
	if st.KeyField != "" {
		c, ok := fields[st.KeyField]
		if !ok {
			return nil, fmt.Errorf("link key field %s is not a published field of %s: %w", st.KeyField, st.Table, connector.ErrBackfillRefused)
		}
		conds = append(conds, pgx.Identifier{c}.Sanitize()+" = "+quoteLiteral(st.KeyValue))
	}
	q.where = strings.Join(conds, " AND ")
	plan := &connector.BackfillPlan{Table: st.Table, Source: q, MaxKey: st.MaxKey}
	for _, k := range key {
		plan.Key = append(plan.Key, k.name)
	}
	if st.Chunks > 0 || st.MaxKey != nil {
		return plan, nil
	}
	// The scan's bound and the estimate, read-only.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	var keyText []string
	for _, o := range order {
		keyText = append(keyText, o+"::text")
	}
	where := ""
	if q.where != "" {
		where = " WHERE " + q.where
	}
	err = tx.QueryRow(ctx, `SELECT ARRAY[`+strings.Join(keyText, ", ")+`] FROM `+q.from+where+` ORDER BY `+desc(order)+` LIMIT 1`).Scan(&plan.MaxKey)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, s.refusedOrFail(st, err)
	}
	var explain []byte
	if err := tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT 1 FROM `+q.from+where).Scan(&explain); err == nil {
		var p []struct {
			Plan struct {
				Rows float64 `json:"Plan Rows"`
			} `json:"Plan"`
		}
		if json.Unmarshal(explain, &p) == nil && len(p) == 1 {
			plan.RowsEstimated = int64(p[0].Plan.Rows)
		}
	}
	// The planner's figure is far off for rows written since the table's
	// last ANALYZE (a company's postings of today: estimated 1), so up to
	// exactCountRows rows are counted, within a short statement timeout;
	// past either, the planner's figure stands (at least exactCountRows).
	// Last in the transaction: a timeout only aborts this read-only one.
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = `+strconv.Itoa(int(exactCountTimeout.Milliseconds()))); err == nil {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+q.from+where+` LIMIT `+strconv.Itoa(exactCountRows+1)+`) r`).Scan(&n); err == nil {
			if n <= exactCountRows {
				plan.RowsEstimated = n
			} else {
				plan.RowsEstimated = max(plan.RowsEstimated, n)
			}
		}
	}
	return plan, nil
}

// A backfill's rows are counted exactly up to exactCountRows, if that
// takes less than exactCountTimeout (see Prepare).
const (
	exactCountRows    = 200_000
	exactCountTimeout = time.Second
)

// refusedOrFail turns an error of PostgreSQL about the request (a value
// that does not fit the column's type) into a refusal.
func (s *BackfillSource) refusedOrFail(st *connector.BackfillState, err error) error {
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.SQLState(), "22") || strings.HasPrefix(pgErr.SQLState(), "42")) {
		return fmt.Errorf("backfill %s of %s: PostgreSQL refused the filter: %s: %w", st.ID, st.Table, err, connector.ErrBackfillRefused)
	}
	return fmt.Errorf("backfill %s of %s: %w", st.ID, st.Table, err)
}

func desc(cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c + " DESC"
	}
	return strings.Join(out, ", ")
}

// keyRow renders "(k1, k2) > ('v1'::text::t1, 'v2'::text::t2)", the values
// quoted by quoteLiteral (the pool's sessions have
// standard_conforming_strings on).
func keyRow(order string, types []string, cmp string, values []string) string {
	lit := make([]string, len(types))
	for i, t := range types {
		lit[i] = quoteLiteral(values[i]) + "::text::" + t
	}
	return "(" + order + ") " + cmp + " (" + strings.Join(lit, ", ") + ")"
}

// ReadChunk reads up to limit rows after after, in key order, in a
// read-only REPEATABLE READ transaction whose snapshot it returns, in text
// form (the stream's), handing each row to each straight from the
// driver's receive buffer (no copy). The transaction, the snapshot, the
// SELECT and the commit are sent as one message (a round trip instead of
// four; the key bounds as quoted constants, see keyRow).
func (s *BackfillSource) ReadChunk(ctx context.Context, p *connector.BackfillPlan, after []string, limit int, each connector.RowFunc) (*connector.BackfillChunk, error) {
	q := p.Source.(*backfillQuery)
	conn, release, err := s.db(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	conds := []string{}
	if q.where != "" {
		conds = append(conds, q.where)
	}
	if after != nil {
		conds = append(conds, keyRow(q.order, q.keyTypes, ">", after))
	}
	conds = append(conds, keyRow(q.order, q.keyTypes, "<=", p.MaxKey))
	sql := `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_current_snapshot()::text; ` +
		`SELECT ` + q.columns + ` FROM ` + q.from + ` WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY ` + q.order + ` LIMIT ` + strconv.Itoa(limit) +
		`; COMMIT`
	start := time.Now()
	pc := conn.PgConn()
	c := &connector.BackfillChunk{Rel: q.rel, Keys: make([]string, 0, limit)}
	err = readChunk(pc.Exec(ctx, sql), q, c, each)
	if pc.TxStatus() != 'I' && !pc.IsClosed() {
		// A failure inside the transaction: end it before the connection
		// goes back to the pool (even when ctx ended; a server that does
		// not answer within rollbackWithin has the connection closed).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackWithin)
		if rerr := pc.Exec(rctx, "ROLLBACK").Close(); rerr != nil {
			_ = pc.Close(rctx)
		}
		cancel()
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p.Table, err)
	}
	c.Took = time.Since(start)
	return c, nil
}

// rollbackWithin bounds the ROLLBACK of a chunk's read that failed.
const rollbackWithin = 5 * time.Second

// readChunk reads ReadChunk's four results: BEGIN, the snapshot, the rows,
// COMMIT.
func readChunk(mrr *pgconn.MultiResultReader, q *backfillQuery, c *connector.BackfillChunk, each connector.RowFunc) (err error) {
	defer func() {
		if cerr := mrr.Close(); err == nil {
			err = cerr
		}
	}()
	for step := 0; mrr.NextResult(); step++ {
		rr := mrr.ResultReader()
		switch step {
		case 1:
			var snap string
			if rr.NextRow() {
				snap = string(rr.Values()[0])
			}
			if _, err := rr.Close(); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			if c.Snapshot, err = parseSnapshot(snap); err != nil {
				return err
			}
		case 2:
			if err := handRows(rr, q, c, each); err != nil {
				return err
			}
		default:
			if _, err := rr.Close(); err != nil {
				return err
			}
		}
		if step == 3 {
			return nil
		}
	}
	if err := mrr.Close(); err != nil {
		return err
	}
	return fmt.Errorf("the server answered fewer than 4 results")
}

// handRows hands the rows of rr to each, in order, and records their keys
// in c (Keys, LastKey). An error of each ends the read and is returned, as
// is the query's.
func handRows(rr *pgconn.ResultReader, q *backfillQuery, c *connector.BackfillChunk, each connector.RowFunc) error {
	var row []connector.Datum
	key := make([]string, len(q.keyIdx))
	for rr.NextRow() {
		raw := rr.Values()
		row = row[:0]
		for _, v := range raw {
			if v == nil {
				row = append(row, connector.Datum{Kind: connector.DatumNull})
				continue
			}
			row = append(row, connector.Datum{Kind: connector.DatumText, Value: v})
		}
		for i, j := range q.keyIdx {
			key[i] = string(raw[j])
		}
		k := connector.RowKey(key)
		if err := each(q.rel, row, k); err != nil {
			_, _ = rr.Close()
			return err
		}
		c.Keys = append(c.Keys, k)
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	if len(c.Keys) > 0 {
		c.LastKey = slices.Clone(key)
	}
	return nil
}

// parseSnapshot parses pg_snapshot's text form "xmin:xmax:xip,xip".
func parseSnapshot(s string) (connector.Snapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return connector.Snapshot{}, fmt.Errorf("snapshot %q: not xmin:xmax:xip", s)
	}
	var snap connector.Snapshot
	var err error
	if snap.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return snap, fmt.Errorf("snapshot %q: %w", s, err)
	}
	if snap.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return snap, fmt.Errorf("snapshot %q: %w", s, err)
	}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return snap, fmt.Errorf("snapshot %q: %w", s, err)
			}
			snap.Xip = append(snap.Xip, v)
		}
	}
	return snap, nil
}
