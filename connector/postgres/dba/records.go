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

// The connector's own records live in a schema of their own in the source
// database (postgres.Schema): the gaps in the stream and the publication
// state the connector last saw (see package postgres). setup creates the
// schema and the tables that are missing in one transaction (printed as a
// block of the script, checked and rolled back in a dry run), moves the
// gap table of an earlier version there, and grants the connector's role
// what it needs on them; check reports what is missing; teardown drops
// them. Anything else that baitoru-cdc keeps in the database belongs in
// the same schema and follows the same way: a description in ownTables.

// ownTable is one table of the connector's schema.
type ownTable struct {
	name    string // inside postgres.Schema
	ddl     string // CREATE TABLE; %s is the quoted schema
	comment string // above the statement in the script
	// columns are those the connector relies on ("name type"), compared
	// with an existing table of that name.
	columns []string
	// privs are what the connector's role needs on it.
	privs []string
	// purpose names what the role does with it, for the grant's comment.
	purpose string
}

var ownTables = []ownTable{
	{
		name: "gaps",
		ddl: `CREATE TABLE %s.gaps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot        text        NOT NULL,
    publication text        NOT NULL,
    table_name  text        NOT NULL,
    kind        text        NOT NULL DEFAULT 'table',
    from_lsn    pg_lsn      NOT NULL,
    from_time   timestamptz,
    to_lsn      pg_lsn,
    to_time     timestamptz,
    reason      text        NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now()
)`,
		comment: "Gaps: spans of WAL in which changes of a mapped table were not published because the publication left them out (table, kind: table, insert, update, delete, columns or row filter; from/to LSN and time). Written by the connector; read by check and backfill; delete a row once its changes were re-sent.",
		columns: []string{"id bigint", "slot text", "publication text", "table_name text", "kind text", "from_lsn pg_lsn", "from_time timestamp with time zone",
			"to_lsn pg_lsn", "to_time timestamp with time zone", "reason text", "detected_at timestamp with time zone"},
		privs:   []string{"SELECT", "INSERT", "UPDATE"},
		purpose: "records gaps",
	},
	{
		name: "publication_state",
		ddl: `CREATE TABLE %s.publication_state (
    slot        text        NOT NULL,
    publication text        NOT NULL,
    table_name  text        NOT NULL,
    kind        text        NOT NULL,
    state       text        NOT NULL,
    seen_lsn    pg_lsn      NOT NULL,
    seen_at     timestamptz NOT NULL,
    PRIMARY KEY (slot, table_name, kind)
)`,
		comment: "Publication state: what the publication carried of each mapped table when the connector last looked (and at which LSN), so that a connector starting after a change made while none ran records the gap from there.",
		columns: []string{"slot text", "publication text", "table_name text", "kind text", "state text", "seen_lsn pg_lsn", "seen_at timestamp with time zone"},
		privs:   []string{"SELECT", "INSERT", "UPDATE"},
		purpose: "keeps the publication state it saw",
	},
}

func schemaSQL() string { return pgx.Identifier{postgres.Schema}.Sanitize() }

func (t ownTable) quoted() string { return pgx.Identifier{postgres.Schema, t.name}.Sanitize() }

// RecordsOptions configure ApplyRecords.
type RecordsOptions struct {
	// Role is the connector's role (the user of source.dsn), granted what
	// it needs on the tables. Empty, or a role that does not exist (yet):
	// the grants are printed but not run.
	Role   string
	DryRun bool
}

// RecordsResult reports ApplyRecords.
type RecordsResult struct {
	// Statements run (or, in a dry run, to run) in one transaction; none
	// when everything exists as it should.
	Statements []Statement
	// Migrated reports that the gap table of an earlier version
	// (postgres.LegacyGapTable) was moved into the schema.
	Migrated bool
	// NoRole reports that Role does not exist: its grants were not run.
	NoRole bool
}

// ApplyRecords creates what is missing of the connector's schema and its
// tables, moves an earlier version's gap table into it, and grants Role
// what it lacks on them, in one transaction (rolled back in a dry run).
// It is idempotent: a second call runs nothing. A table of the same name
// with other columns is refused (a *PlanError wrapping ErrRefused): it was
// made by something else, and setup does not touch it.
func ApplyRecords(ctx context.Context, conn *pgx.Conn, o RecordsOptions) (*RecordsResult, error) {
	res := &RecordsResult{}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	st, err := readRecords(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := st.shapeError(); err != nil {
		return nil, err
	}
	run := func(s Statement) error {
		res.Statements = append(res.Statements, s)
		if err := execAlone(ctx, tx.Conn(), s.SQL); err != nil {
			return permanentIfSQL(fmt.Errorf("%s: %w", strings.TrimSuffix(s.Comment, "."), err))
		}
		return nil
	}
	if !st.schema {
		if err := run(Statement{
			Comment: fmt.Sprintf("Schema %s: what baitoru-cdc keeps in this database (its own records, below); nothing else is put there.", postgres.Schema),
			SQL:     "CREATE SCHEMA " + schemaSQL(),
		}); err != nil {
			return nil, err
		}
	}
	for _, t := range ownTables {
		if st.columns[t.name] != nil {
			continue
		}
		if t.name == "gaps" && st.legacy {
			// An earlier version kept the gaps in public: move the table
			// (rows, ids and grants with it) and add what it lacked.
			res.Migrated = true
			for _, s := range []Statement{
				{Comment: fmt.Sprintf("Gaps: move %s (an earlier version's) into schema %s, with its rows.", postgres.LegacyGapTable, postgres.Schema),
					SQL: "ALTER TABLE public.baitoru_cdc_gaps SET SCHEMA " + schemaSQL()},
				{Comment: "Gaps: its name in the schema.", SQL: "ALTER TABLE " + pgx.Identifier{postgres.Schema, "baitoru_cdc_gaps"}.Sanitize() + " RENAME TO gaps"},
				{Comment: "Gaps: what was lost (the earlier version recorded only tables that left the publication).", SQL: "ALTER TABLE " + t.quoted() + " ADD COLUMN kind text NOT NULL DEFAULT 'table'"},
			} {
				if err := run(s); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := run(Statement{Comment: t.comment, SQL: fmt.Sprintf(t.ddl, schemaSQL())}); err != nil {
			return nil, err
		}
	}
	if st.legacy && st.columns["gaps"] != nil {
		// Both exist (a connector of this version created the new one
		// before setup ran): copy the old rows over, then drop the old.
		res.Migrated = true
		for _, s := range []Statement{
			{Comment: fmt.Sprintf("Gaps: copy the rows of %s (an earlier version's) into %s.", postgres.LegacyGapTable, postgres.GapTable),
				SQL: "INSERT INTO " + ownTables[0].quoted() + " (slot, publication, table_name, kind, from_lsn, from_time, to_lsn, to_time, reason, detected_at)\n" +
					"  SELECT slot, publication, table_name, 'table', from_lsn, from_time, to_lsn, to_time, reason, detected_at FROM public.baitoru_cdc_gaps ORDER BY id"},
			{Comment: fmt.Sprintf("Gaps: drop %s, now empty of anything not in %s.", postgres.LegacyGapTable, postgres.GapTable), SQL: "DROP TABLE public.baitoru_cdc_gaps"},
		} {
			if err := run(s); err != nil {
				return nil, err
			}
		}
	}
	if o.Role != "" {
		grants, noRole, err := recordGrants(ctx, tx, o.Role)
		if err != nil {
			return nil, err
		}
		res.NoRole = noRole
		for _, g := range grants {
			if noRole {
				res.Statements = append(res.Statements, g)
				continue
			}
			if err := run(g); err != nil {
				return nil, err
			}
		}
	}
	if o.DryRun || len(res.Statements) == 0 {
		return res, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("schema %s: commit: %w", postgres.Schema, err)
	}
	return res, nil
}

// recordGrants are the statements granting role what it lacks on the
// connector's tables (all of them when the role does not exist: noRole).
func recordGrants(ctx context.Context, q postgres.Querier, role string) (grants []Statement, noRole bool, err error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("role %s: %w", role, err)
	}
	r := pgx.Identifier{role}.Sanitize()
	usage := false
	if exists {
		if err := q.QueryRow(ctx, `SELECT coalesce((SELECT has_schema_privilege($1, oid, 'USAGE') FROM pg_namespace WHERE nspname = $2), false)`,
			role, postgres.Schema).Scan(&usage); err != nil {
			return nil, false, fmt.Errorf("privileges of %s: %w", role, err)
		}
	}
	if !usage {
		grants = append(grants, Statement{
			Comment: fmt.Sprintf("The connector's role %s uses the schema.", role),
			SQL:     "GRANT USAGE ON SCHEMA " + schemaSQL() + " TO " + r,
		})
	}
	for _, t := range ownTables {
		var lacking []string
		for _, p := range t.privs {
			has := false
			if exists {
				if err := q.QueryRow(ctx, `SELECT coalesce((SELECT has_table_privilege($1, c.oid, $4) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					WHERE n.nspname = $2 AND c.relname = $3), false)`, role, postgres.Schema, t.name, p).Scan(&has); err != nil {
					return nil, false, fmt.Errorf("privileges of %s: %w", role, err)
				}
			}
			if !has {
				lacking = append(lacking, p)
			}
		}
		if len(lacking) > 0 {
			grants = append(grants, Statement{
				Comment: fmt.Sprintf("The connector's role %s %s.", role, t.purpose),
				SQL:     "GRANT " + strings.Join(lacking, ", ") + " ON " + t.quoted() + " TO " + r,
			})
		}
	}
	return grants, !exists, nil
}

// recordsState is what exists of the connector's schema.
type recordsState struct {
	schema bool
	// columns of each own table ("name type"), nil when it does not exist.
	columns map[string][]string
	// legacy: postgres.LegacyGapTable exists.
	legacy bool
}

func readRecords(ctx context.Context, q postgres.Querier) (*recordsState, error) {
	st := &recordsState{columns: map[string][]string{}}
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), to_regclass($2) IS NOT NULL`,
		postgres.Schema, postgres.LegacyGapTable).Scan(&st.schema, &st.legacy); err != nil {
		return nil, fmt.Errorf("look up schema %s: %w", postgres.Schema, err)
	}
	for _, t := range ownTables {
		rows, err := q.Query(ctx, `
			SELECT a.attname || ' ' || format_type(a.atttypid, NULL)
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, postgres.Schema, t.name)
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", t.quoted(), err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", t.quoted(), err)
		}
		if len(cols) > 0 {
			st.columns[t.name] = cols
		}
	}
	return st, nil
}

// shapeError reports an own table that exists without a column the
// connector needs.
func (st *recordsState) shapeError() error {
	var problems []Problem
	for _, t := range ownTables {
		have := st.columns[t.name]
		if have == nil {
			continue
		}
		var missing []string
		for _, c := range t.columns {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, Problem{Table: postgres.Schema + "." + t.name,
				Reason: "exists without column " + strings.Join(missing, ", ") + ": it was not made by this version of baitoru-cdc",
				Fix:    "rename or drop it (it holds only baitoru-cdc's records), then run setup again"})
		}
	}
	if len(problems) > 0 {
		return &PlanError{Publication: postgres.Schema, Problems: problems}
	}
	return nil
}

// checkRecords reports the connector's schema: its tables (a warning when
// missing: a loss is then reported but not recorded durably) and the
// connector role's privileges on them.
func (c *checker) checkRecords(ctx context.Context) error {
	st, err := readRecords(ctx, c.conn)
	if err != nil {
		return err
	}
	name := "records " + postgres.Schema
	fix := c.o.SetupCommand + " (creates them; `--dry-run` shows the SQL)"
	var missing []string
	for _, t := range ownTables {
		if st.columns[t.name] == nil {
			missing = append(missing, t.name)
		}
	}
	switch {
	case st.shapeError() != nil:
		var pe *PlanError
		errors.As(st.shapeError(), &pe)
		for _, p := range pe.Problems {
			c.add(name, CheckWarn, p.Table+" "+p.Reason, p.Fix)
		}
		return nil
	case st.legacy:
		c.add(name, CheckWarn, "the gaps are in "+postgres.LegacyGapTable+" (an earlier version's table)", c.o.SetupCommand+" moves it into schema "+postgres.Schema)
		return nil
	case !st.schema || len(missing) > 0:
		what := "schema " + postgres.Schema + " does not exist"
		if st.schema {
			what = "no table " + strings.Join(missing, ", ") + " in schema " + postgres.Schema
		}
		c.add(name, CheckWarn, what+": a publication change that loses changes is reported, but not recorded durably (a restart or a standby forgets it)", fix)
		return nil
	}
	c.add(name, CheckOK, "tables "+strings.Join(tableNames(), " and ")+" exist", "")
	if c.noRole || c.super {
		return nil
	}
	grants, _, err := recordGrants(ctx, c.conn, c.role)
	if err != nil {
		return err
	}
	if len(grants) > 0 {
		c.add(name+" grants", CheckWarn, c.role+" may not write its records: a loss is reported but not recorded durably",
			strings.Join(sqlOf(grants), "; ")+" (or "+c.o.SetupCommand+")")
	}
	return nil
}

// RecordTables names the connector's tables in postgres.Schema.
func RecordTables() []string { return tableNames() }

func tableNames() []string {
	out := make([]string, len(ownTables))
	for i, t := range ownTables {
		out[i] = t.name
	}
	return out
}

// RecordsTeardown says what TeardownRecords did.
type RecordsTeardown struct {
	// Gaps are the slot's gaps that were deleted (their changes may not
	// have been re-sent).
	Gaps []postgres.Gap
	// Dropped reports whether the tables were dropped (and the schema,
	// when nothing else was in it).
	Dropped, SchemaDropped bool
	// Kept names the other slots whose records are still in the tables
	// (which were then kept).
	Kept []string
}

// TeardownRecords deletes slot's records (gaps, publication state); then,
// when no other slot has records there, drops the tables, the gap table of
// an earlier version, and the schema when nothing else is in it. One
// transaction.
func TeardownRecords(ctx context.Context, conn *pgx.Conn, slot string) (*RecordsTeardown, error) {
	res := &RecordsTeardown{}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	st, err := readRecords(ctx, tx)
	if err != nil {
		return nil, err
	}
	var tables []string
	for _, t := range ownTables {
		if st.columns[t.name] != nil && st.shapeError() == nil {
			tables = append(tables, t.quoted())
		}
	}
	if st.legacy {
		tables = append(tables, "public.baitoru_cdc_gaps")
	}
	if len(tables) == 0 {
		return res, nil
	}
	if st.columns["gaps"] != nil {
		if res.Gaps, err = postgres.Gaps(ctx, tx, slot); err != nil {
			return nil, err
		}
	}
	others := map[string]bool{}
	for _, t := range tables {
		if _, err := tx.Exec(ctx, "DELETE FROM "+t+" WHERE slot = $1", slot); err != nil {
			return nil, fmt.Errorf("delete the records of slot %s from %s: %w", slot, t, err)
		}
		rows, err := tx.Query(ctx, "SELECT DISTINCT slot FROM "+t)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t, err)
		}
		slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t, err)
		}
		for _, s := range slots {
			others[s] = true
		}
	}
	if len(others) > 0 {
		for s := range others {
			res.Kept = append(res.Kept, s)
		}
		slices.Sort(res.Kept)
	} else {
		for _, t := range tables {
			if _, err := tx.Exec(ctx, "DROP TABLE "+t); err != nil {
				return nil, fmt.Errorf("drop table %s: %w", t, err)
			}
		}
		res.Dropped = true
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
			AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)
			AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1)
			AND NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1)`, postgres.Schema).Scan(&empty); err != nil {
			return nil, fmt.Errorf("look into schema %s: %w", postgres.Schema, err)
		}
		if empty {
			if _, err := tx.Exec(ctx, "DROP SCHEMA "+schemaSQL()); err != nil {
				return nil, fmt.Errorf("drop schema %s: %w", postgres.Schema, err)
			}
			res.SchemaDropped = true
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("teardown records: commit: %w", err)
	}
	return res, nil
}
