package dba

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// Online backfill keeps two small tables in a schema of its own in the
// source database, and one publication:
//
//   - <schema>.backfill_requests: what people and the sink ask for, one row
//     per start or cancel of a backfill, inserted (never updated) by
//     `baitoru-cdc backfill start|cancel` and by the sink's links API. It
//     is published (inserts only) by a publication of its own, so the
//     running connector reads every request from its replication stream,
//     in commit order, whichever replica streams the slot;
//   - <schema>.backfills: the state of each backfill, written only by the
//     connector (progress is saved once SNS accepted a chunk) and read by
//     `backfill list|status` and the links API. It is not published.
//
// The publication of the requests is apart from the mapped tables' one:
// publish = 'insert' there changes nothing for them (a publication's
// publish applies to all its tables), and dropping it stops backfills
// without touching the stream.

// RequesterRole is the name setup's comments give the least-privilege role
// that requests backfills.
const RequesterRole = "baitoru_cdc_requester"

// Backfill table names, inside BackfillObjects.Schema.
const (
	RequestsTable = "backfill_requests"
	StateTable    = "backfills"
)

// requestsDDL and stateDDL create the two tables; %s is the quoted schema.
// The connector (connector/postgres) reads and writes these columns.
const requestsDDL = `CREATE TABLE %s.backfill_requests (
    request_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backfill_id  text        NOT NULL CHECK (backfill_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$'),
    action       text        NOT NULL CHECK (action IN ('start', 'cancel')),
    table_name   text        CHECK (length(table_name) BETWEEN 3 AND 300),
    filter       text        CHECK (length(filter) <= 4000),
    key_field    text        CHECK (length(key_field) <= 200),
    key_value    text        CHECK (length(key_value) <= 1000),
    slot         text        CHECK (length(slot) <= 63),
    requested_by text        NOT NULL DEFAULT current_user,
    requested_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (backfill_id, action),
    CHECK (action = 'cancel' OR table_name IS NOT NULL),
    CHECK ((key_field IS NULL) = (key_value IS NULL))
)`

const stateDDL = `CREATE TABLE %s.backfills (
    backfill_id    text        PRIMARY KEY,
    slot           text        NOT NULL,
    table_name     text        NOT NULL,
    filter         text,
    key_field      text,
    key_value      text,
    status         text        NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
    last_key       text[],
    max_key        text[],
    rows_done      bigint      NOT NULL DEFAULT 0,
    rows_estimated bigint,
    chunks         bigint      NOT NULL DEFAULT 0,
    chunk_size     integer,
    error          text,
    requested_by   text,
    requested_at   timestamptz,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
)`

// requestsColumns and stateColumns are the columns (and types) the
// connector relies on; check compares the server's tables with them.
var (
	requestsColumns = []string{"request_id bigint", "backfill_id text", "action text", "table_name text", "filter text", "key_field text", "key_value text", "slot text", "requested_by text", "requested_at timestamp with time zone"}
	stateColumns    = []string{"backfill_id text", "slot text", "table_name text", "filter text", "key_field text", "key_value text", "status text", "last_key text[]", "max_key text[]", "rows_done bigint", "rows_estimated bigint", "chunks bigint", "chunk_size integer", "error text", "requested_by text", "requested_at timestamp with time zone", "started_at timestamp with time zone", "updated_at timestamp with time zone", "finished_at timestamp with time zone"}
)

// BackfillObjects names what online backfill keeps in the source database.
type BackfillObjects struct {
	// Schema holds the two tables, e.g. baitoru_cdc.
	Schema string
	// Publication publishes the requests table's inserts, e.g.
	// baitoru_cdc_backfill. The connector streams it with the mapped
	// tables' publication.
	Publication string
	// Role is the connector's role (the user of source.dsn), whose grants
	// on the tables check checks. Empty: not checked.
	Role string
}

// Requests is the quoted requests table.
func (o BackfillObjects) Requests() string { return pgx.Identifier{o.Schema, RequestsTable}.Sanitize() }

// State is the quoted state table.
func (o BackfillObjects) State() string { return pgx.Identifier{o.Schema, StateTable}.Sanitize() }

func (o BackfillObjects) schemaSQL() string { return pgx.Identifier{o.Schema}.Sanitize() }

// connectorGrants are the privileges `run` needs: read requests (and
// insert them, so that `backfill start` works with source.dsn), keep state.
var connectorGrants = []struct {
	table string
	privs []string
}{
	{RequestsTable, []string{"SELECT", requestInsert}},
	{StateTable, []string{"SELECT", "INSERT", "UPDATE"}},
}

// requestInsert is the INSERT privilege on the requests table: the
// requested columns only, so that requested_by and requested_at always
// take their defaults (the role that inserted, the time).
const requestInsert = "INSERT (backfill_id, action, table_name, filter, key_field, key_value, slot)"

// BackfillResult reports ApplyBackfill.
type BackfillResult struct {
	// Statements run (or, in a dry run, to run) in one transaction; none
	// when everything exists as it should.
	Statements []Statement
	// Server is server_version_num.
	Server int
}

// ApplyBackfill creates what online backfill keeps in the database when it
// is missing: the schema, the two tables and the requests' publication; it
// aligns a publication that exists with other tables or operations; and
// when o.Role exists, it grants that role what it lacks on the tables (the
// statements of BackfillRoleNotes, which setup prints for a role created
// later: setup run again then grants them). It runs in one transaction
// (rolled back in a dry run) and is idempotent: a second call runs nothing. A table
// that exists with other columns is an error (ErrRefused): it was made by
// something else, and setup does not touch it.
func ApplyBackfill(ctx context.Context, conn *pgx.Conn, o BackfillObjects, dryRun bool) (*BackfillResult, error) {
	res := &BackfillResult{}
	var err error
	if res.Server, err = serverVersion(ctx, conn); err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	st, err := readBackfill(ctx, tx, o)
	if err != nil {
		return nil, err
	}
	if err := st.shapeError(o); err != nil {
		return nil, err
	}
	schema := o.schemaSQL()
	if !st.schema {
		res.Statements = append(res.Statements, Statement{
			Comment: fmt.Sprintf("Schema %s: what baitoru-cdc keeps in this database (online backfill: requests and progress, below).", o.Schema),
			SQL:     "CREATE SCHEMA IF NOT EXISTS " + schema,
		})
	}
	if st.requests == nil {
		res.Statements = append(res.Statements, Statement{
			Comment: "Backfill requests: one row per `backfill start` or `cancel` (by ops, or by the sink when Kobot starts a link); inserted, never updated; read by the connector from its replication stream.",
			SQL:     fmt.Sprintf(requestsDDL, schema),
		})
	}
	if st.state == nil {
		res.Statements = append(res.Statements, Statement{
			Comment: "Backfill state: progress of each backfill (last key read, rows, status), written only by the connector once SNS accepted a chunk; not published.",
			SQL:     fmt.Sprintf(stateDDL, schema),
		})
	}
	pub := pgx.Identifier{o.Publication}.Sanitize()
	switch {
	case !st.pubExists:
		res.Statements = append(res.Statements, Statement{
			Comment: fmt.Sprintf("Publication %s: the inserts of the requests table only, so the connector reads each request in commit order from its stream.", o.Publication),
			SQL:     "CREATE PUBLICATION " + pub + " FOR TABLE " + o.Requests() + " WITH (publish = 'insert')",
		})
	default:
		if !st.pubOnlyRequests {
			res.Statements = append(res.Statements, Statement{
				Comment: fmt.Sprintf("Publication %s: publish the requests table only.", o.Publication),
				SQL:     "ALTER PUBLICATION " + pub + " SET TABLE " + o.Requests(),
			})
		}
		if !st.pubInsertOnly {
			res.Statements = append(res.Statements, Statement{
				Comment: fmt.Sprintf("Publication %s: publish inserts only.", o.Publication),
				SQL:     "ALTER PUBLICATION " + pub + " SET (publish = 'insert')",
			})
		}
	}
	if o.Role != "" {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, o.Role).Scan(&exists); err != nil {
			return nil, fmt.Errorf("role %s: %w", o.Role, err)
		}
		if exists {
			grants, err := missingGrants(ctx, tx, o, st)
			if err != nil {
				return nil, err
			}
			res.Statements = append(res.Statements, grants...)
		}
	}
	for _, s := range res.Statements {
		if err := execAlone(ctx, tx.Conn(), s.SQL); err != nil {
			return nil, permanentIfSQL(fmt.Errorf("backfill objects: %s: %w", strings.TrimSuffix(s.Comment, "."), err))
		}
	}
	if dryRun || len(res.Statements) == 0 {
		return res, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("backfill objects: commit: %w", err)
	}
	return res, nil
}

// missingGrants returns the GRANT statements the connector role lacks.
func missingGrants(ctx context.Context, q querier, o BackfillObjects, st *backfillState) ([]Statement, error) {
	role := pgx.Identifier{o.Role}.Sanitize()
	var out []Statement
	usage := false
	if st.schema {
		if err := q.QueryRow(ctx, `SELECT has_schema_privilege($1, $2, 'USAGE')`, o.Role, o.Schema).Scan(&usage); err != nil {
			return nil, fmt.Errorf("privileges of %s: %w", o.Role, err)
		}
	}
	if !usage {
		out = append(out, Statement{
			Comment: fmt.Sprintf("The connector's role %s uses the schema.", o.Role),
			SQL:     "GRANT USAGE ON SCHEMA " + o.schemaSQL() + " TO " + role,
		})
	}
	for _, g := range connectorGrants {
		lacking := g.privs
		if (g.table == RequestsTable && st.requests != nil) || (g.table == StateTable && st.state != nil) {
			lacking = nil
			for _, p := range g.privs {
				ok, err := hasPrivilege(ctx, q, o.Role, o.Schema, g.table, p)
				if err != nil {
					return nil, fmt.Errorf("privileges of %s: %w", o.Role, err)
				}
				if !ok {
					lacking = append(lacking, p)
				}
			}
		}
		if len(lacking) == 0 {
			continue
		}
		what := "reads the requests (and inserts them for `backfill start` run with source.dsn)"
		if g.table == StateTable {
			what = "keeps the backfills' progress"
		}
		out = append(out, Statement{
			Comment: fmt.Sprintf("The connector's role %s %s.", o.Role, what),
			SQL:     "GRANT " + strings.Join(lacking, ", ") + " ON " + pgx.Identifier{o.Schema, g.table}.Sanitize() + " TO " + role,
		})
	}
	return out, nil
}

// BackfillRoleNotes are the grants the connector's role needs on the
// backfill tables, as statements for the role comments setup prints.
func BackfillRoleNotes(o BackfillObjects, role string) []string {
	r := pgx.Identifier{role}.Sanitize()
	out := []string{fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", o.schemaSQL(), r)}
	for _, g := range connectorGrants {
		out = append(out, fmt.Sprintf("GRANT %s ON %s TO %s;", strings.Join(g.privs, ", "), pgx.Identifier{o.Schema, g.table}.Sanitize(), r))
	}
	return out
}

// hasPrivilege reports whether role holds priv on schema.table: "SELECT",
// or "INSERT (a, b)" for column privileges (held on every column named).
// The table is found by name in the catalogs, so that a role without USAGE
// on the schema can be asked about (it gets false, not an error).
func hasPrivilege(ctx context.Context, q querier, role, schema, table, priv string) (bool, error) {
	kind, cols, listed := strings.Cut(priv, " (")
	var names []string
	if listed {
		names = strings.Split(strings.TrimSuffix(cols, ")"), ", ")
	}
	var has bool
	err := q.QueryRow(ctx, `
		SELECT coalesce(has_schema_privilege($1, n.oid, 'USAGE') AND CASE WHEN $5 THEN
		           (SELECT bool_and(has_column_privilege($1, c.oid, col, $4)) FROM unnest($6::text[]) col)
		       ELSE has_table_privilege($1, c.oid, $4) END, false)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $2 AND c.relname = $3`, role, schema, table, kind, listed, names).Scan(&has)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return has, err
}

// RequesterNotes describe, as comments, a least-privilege role for those
// who only request backfills and read their progress: the sink's links API
// (sink.backfill.dsn) and people running `backfill start`.
func RequesterNotes(o BackfillObjects, database string) []string {
	r := pgx.Identifier{RequesterRole}.Sanitize()
	return []string{
		fmt.Sprintf("CREATE ROLE %s WITH LOGIN;  -- then \\password %s; no other attribute", r, r),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s;", pgx.Identifier{database}.Sanitize(), r),
		fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", o.schemaSQL(), r),
		fmt.Sprintf("GRANT SELECT, %s ON %s TO %s;  -- request (start, cancel)", requestInsert, o.Requests(), r),
		fmt.Sprintf("GRANT SELECT ON %s TO %s;  -- read progress", o.State(), r),
	}
}

// backfillState is what exists of the backfill objects.
type backfillState struct {
	schema          bool
	requests, state []string // "name type" columns; nil: the table does not exist
	pubExists       bool
	pubOnlyRequests bool
	pubInsertOnly   bool
	// otherPubs are other publications that publish the requests table
	// (other connectors of the same database).
	otherPubs []string
}

func readBackfill(ctx context.Context, q querier, o BackfillObjects) (*backfillState, error) {
	st := &backfillState{}
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, o.Schema).Scan(&st.schema); err != nil {
		return nil, fmt.Errorf("look up schema %s: %w", o.Schema, err)
	}
	var err error
	if st.schema {
		if st.requests, err = tableColumns(ctx, q, o.Schema, RequestsTable); err != nil {
			return nil, err
		}
		if st.state, err = tableColumns(ctx, q, o.Schema, StateTable); err != nil {
			return nil, err
		}
	}
	var pubTables []string
	err = q.QueryRow(ctx, `
		SELECT p.pubinsert AND NOT (p.pubupdate OR p.pubdelete OR p.pubtruncate),
		       array(SELECT n.nspname || '.' || c.relname FROM pg_publication_rel pr
		             JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		             WHERE pr.prpubid = p.oid ORDER BY 1),
		       p.puballtables
		FROM pg_publication p WHERE p.pubname = $1`, o.Publication).Scan(&st.pubInsertOnly, &pubTables, new(bool))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("look up publication %s: %w", o.Publication, err)
	default:
		st.pubExists = true
		st.pubOnlyRequests = slices.Equal(pubTables, []string{o.Schema + "." + RequestsTable})
	}
	if st.requests != nil {
		rows, err := q.Query(ctx, `
			SELECT p.pubname FROM pg_publication p
			WHERE p.pubname <> $1 AND (p.puballtables OR EXISTS (SELECT 1 FROM pg_publication_rel pr
			      JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			      WHERE pr.prpubid = p.oid AND n.nspname = $2 AND c.relname = $3))
			ORDER BY 1`, o.Publication, o.Schema, RequestsTable)
		if err != nil {
			return nil, fmt.Errorf("publications of %s: %w", o.Requests(), err)
		}
		if st.otherPubs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, fmt.Errorf("publications of %s: %w", o.Requests(), err)
		}
	}
	return st, nil
}

// tableColumns returns the columns of schema.name as "name type", nil when
// the table does not exist.
func tableColumns(ctx context.Context, q querier, schema, name string) ([]string, error) {
	rows, err := q.Query(ctx, `
		SELECT a.attname || ' ' || format_type(a.atttypid, NULL)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, schema, name)
	if err != nil {
		return nil, fmt.Errorf("describe %s.%s: %w", schema, name, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("describe %s.%s: %w", schema, name, err)
	}
	if len(cols) == 0 {
		return nil, nil
	}
	return cols, nil
}

// shapeError reports a table that exists with columns the connector does
// not know.
func (st *backfillState) shapeError(o BackfillObjects) error {
	var problems []Problem
	for _, t := range []struct {
		name       string
		have, want []string
	}{{RequestsTable, st.requests, requestsColumns}, {StateTable, st.state, stateColumns}} {
		if t.have == nil {
			continue
		}
		if missing := lackingColumns(t.have, t.want); len(missing) > 0 {
			problems = append(problems, Problem{Table: o.Schema + "." + t.name,
				Reason: "exists without column " + strings.Join(missing, ", ") + ": it was not made by this version of baitoru-cdc",
				Fix:    "rename or drop it (it holds only backfill requests and progress), or set backfill.schema to another schema; then run setup again"})
		}
	}
	if len(problems) > 0 {
		return &PlanError{Publication: o.Publication, Problems: problems}
	}
	return nil
}

func lackingColumns(have, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

func serverVersion(ctx context.Context, q querier) (int, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&n); err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	return n, nil
}

// CheckBackfill returns the preflight rows of online backfill: the schema,
// the tables, the requests' publication, the connector role's grants, and
// whether the server can carry watermarks. Backfill is optional: what is
// missing is a warning, never blocking (streaming works without it).
func CheckBackfill(ctx context.Context, q querier, o BackfillObjects, setupCommand string) ([]CheckResult, error) {
	var out []CheckResult
	add := func(name string, st CheckStatus, observed, fix string) {
		out = append(out, CheckResult{Check: name, Status: st, Observed: observed, Fix: fix})
	}
	server, err := serverVersion(ctx, q)
	if err != nil {
		return nil, err
	}
	st, err := readBackfill(ctx, q, o)
	if err != nil {
		return nil, err
	}
	if !postgres.Supports(server, postgres.FeatureBackfill) {
		// Backfill is refused there; a warning only when it was set up.
		status := CheckOK
		if st.schema {
			status = CheckWarn
		}
		add("backfill", status, "unavailable on PostgreSQL "+versionText(server)+": pgoutput carries logical decoding messages (the backfill's watermarks) from 14 on; streaming is not affected",
			"upgrade to PostgreSQL 14 or later (13 is out of support)")
		return out, nil
	}
	fix := setupCommand + " (creates them; `--dry-run` shows the SQL)"
	name := "backfill schema " + o.Schema
	switch {
	case !st.schema:
		add(name, CheckWarn, "does not exist: `backfill start` and link start with history are unavailable", fix)
		return out, nil
	case st.shapeError(o) != nil:
		var pe *PlanError
		errors.As(st.shapeError(o), &pe)
		for _, p := range pe.Problems {
			add("backfill table "+p.Table, CheckWarn, p.Reason, p.Fix)
		}
		return out, nil
	case st.requests == nil || st.state == nil:
		var missing []string
		if st.requests == nil {
			missing = append(missing, RequestsTable)
		}
		if st.state == nil {
			missing = append(missing, StateTable)
		}
		add(name, CheckWarn, "has no table "+strings.Join(missing, ", ")+": backfills are unavailable", fix)
		return out, nil
	}
	var pending, running int
	if err := q.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+o.State()+` WHERE status = 'running'),
		(SELECT count(*) FROM `+o.Requests()+` r WHERE action = 'start' AND NOT EXISTS (SELECT 1 FROM `+o.State()+` s WHERE s.backfill_id = r.backfill_id))`).Scan(&running, &pending); err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && pgErr.SQLState() == "42501" {
			add(name, CheckOK, "tables "+RequestsTable+" and "+StateTable+" exist (this role may not read them)", "")
		} else {
			return nil, fmt.Errorf("backfill tables: %w", err)
		}
	} else {
		add(name, CheckOK, fmt.Sprintf("tables %s and %s exist; %d running, %d requested and not started", RequestsTable, StateTable, running, pending), "")
	}
	name = "backfill publication " + o.Publication
	switch {
	case !st.pubExists:
		add(name, CheckWarn, "does not exist: the connector cannot read backfill requests", fix)
	case !st.pubOnlyRequests || !st.pubInsertOnly:
		add(name, CheckWarn, "does not publish exactly the inserts of "+o.Schema+"."+RequestsTable, fix)
	default:
		add(name, CheckOK, "publishes the inserts of "+o.Schema+"."+RequestsTable, "")
	}
	if o.Role != "" {
		var exists, super bool
		if err := q.QueryRow(ctx, `SELECT true, rolsuper FROM pg_roles WHERE rolname = $1`, o.Role).Scan(&exists, &super); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("role %s: %w", o.Role, err)
		}
		if exists && !super {
			grants, err := missingGrants(ctx, q, o, st)
			if err != nil {
				return nil, err
			}
			if len(grants) == 0 {
				add("backfill grants", CheckOK, o.Role+" may read requests and keep progress", "")
			} else {
				add("backfill grants", CheckWarn, o.Role+" lacks privileges on the backfill tables", strings.Join(sqlOf(grants), "; ")+" (or "+setupCommand+")")
			}
		}
	}
	return out, nil
}

// BackfillTeardown says what TeardownBackfill dropped.
type BackfillTeardown struct {
	Publication bool // the requests' publication
	// Deleted is the number of this slot's backfill states deleted (when
	// the tables are kept for other connectors).
	Deleted int64
	// Tables reports whether the tables and the schema were dropped.
	Tables bool
	// Kept names the publications of other connectors that still use the
	// requests table (the tables were then kept).
	Kept []string
}

// TeardownBackfill drops the requests' publication; then, when no other
// connector's publication uses the requests table, the two tables and the
// schema (left in place when something else is in it), else only the
// state rows of slot. One transaction.
func TeardownBackfill(ctx context.Context, conn *pgx.Conn, o BackfillObjects, slot string) (*BackfillTeardown, error) {
	res := &BackfillTeardown{}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	st, err := readBackfill(ctx, tx, o)
	if err != nil {
		return nil, err
	}
	if st.pubExists {
		if _, err := tx.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{o.Publication}.Sanitize()); err != nil {
			return nil, fmt.Errorf("drop publication %s: %w", o.Publication, err)
		}
		res.Publication = true
	}
	switch {
	case len(st.otherPubs) > 0:
		res.Kept = st.otherPubs
		if st.state != nil {
			tag, err := tx.Exec(ctx, "DELETE FROM "+o.State()+" WHERE slot = $1", slot)
			if err != nil {
				return nil, fmt.Errorf("delete backfill state of slot %s: %w", slot, err)
			}
			res.Deleted = tag.RowsAffected()
		}
	case st.schema:
		for _, t := range []struct {
			cols []string
			name string
		}{{st.requests, o.Requests()}, {st.state, o.State()}} {
			if t.cols == nil {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+t.name); err != nil {
				return nil, fmt.Errorf("drop table %s: %w", t.name, err)
			}
			res.Tables = true
		}
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)
			AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1)
			AND NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1)`, o.Schema).Scan(&empty); err != nil {
			return nil, fmt.Errorf("look into schema %s: %w", o.Schema, err)
		}
		if empty {
			if _, err := tx.Exec(ctx, "DROP SCHEMA "+o.schemaSQL()); err != nil {
				return nil, fmt.Errorf("drop schema %s: %w", o.Schema, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("teardown backfill objects: commit: %w", err)
	}
	return res, nil
}
