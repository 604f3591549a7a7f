package dba

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// CheckStatus is the outcome of one preflight check.
type CheckStatus string

// Check outcomes: ok, a warning (works, but a DBA should look), a blocking
// problem.
const (
	CheckOK   CheckStatus = "ok"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
)

// CheckResult is one row of the preflight: what was checked, what was
// observed, and how to fix it when it is not ok.
type CheckResult struct {
	Check    string      `json:"check"`
	Status   CheckStatus `json:"status"`
	Observed string      `json:"observed"`
	Fix      string      `json:"fix,omitempty"`
}

// CheckOptions configure Check.
type CheckOptions struct {
	Slot, Publication string
	// Mappings are the mapped tables (package config resolves them).
	Mappings []*connector.Mapping
	// Create is source.create: run creates what is missing.
	Create bool
	// MaxLagBytes is source.max_lag_bytes (0: no threshold).
	MaxLagBytes int64
	// SetupCommand is how the fixes name setup, e.g.
	// "baitoru-cdc setup --config config.yaml".
	SetupCommand string
	// BackfillCommand is how the fixes name backfill start, e.g.
	// "baitoru-cdc backfill start --config config.yaml"; empty: derived
	// from SetupCommand.
	BackfillCommand string
	// Role is the connector's role (the user of source.dsn): its
	// attributes, grants and privileges are checked whoever runs check.
	// Empty: the connected role.
	Role string
	// MaxMessageBytes is the destination's message size limit (SNS's
	// 262144 bytes); 0: none (publisher.kind stdout). A mapped table
	// without LargePayloads whose columns can make an event over it gets
	// a warning row.
	MaxMessageBytes int
	// WhereKey says where a table's row filter is configured, e.g.
	// "config.yaml:12, tables[0].where", for the rows that find it
	// wrong. Nil: the rows name the table only.
	WhereKey func(table string) string
}

// Check runs the database part of the preflight on conn (the connector's
// own role, ideally): server, role, tables, publication, slot. It only
// reads (the write probes are EXPLAINs in a read-only transaction). An
// error means the checks could not run (connection lost); problems found
// are rows.
func Check(ctx context.Context, conn *pgx.Conn, o CheckOptions) ([]CheckResult, error) {
	c := &checker{conn: conn, o: o}
	if o.SetupCommand == "" {
		c.o.SetupCommand = "baitoru-cdc setup --config FILE"
	}
	for _, step := range []func(context.Context) error{c.checkServer, c.checkCapacity, c.checkRole, c.checkTables, c.checkPublication, c.checkSlot, c.checkFailover, c.checkRecords, c.checkGaps} {
		if err := step(ctx); err != nil {
			return c.rows, err
		}
	}
	return c.rows, nil
}

type checker struct {
	conn   *pgx.Conn
	o      CheckOptions
	rows   []CheckResult
	server int
	db     string
	role   string // the connector's role (CheckOptions.Role, or the connected one)
	super  bool   // role is a superuser
	// noRole: the role does not exist; its grants are not checked.
	noRole bool
	info   map[string]*TableInfo
	plan   *Plan
	slotSt *postgres.SlotStatus
}

func (c *checker) add(name string, st CheckStatus, observed, fix string) {
	c.rows = append(c.rows, CheckResult{Check: name, Status: st, Observed: observed, Fix: fix})
}

func (c *checker) setting(ctx context.Context, name string) (string, error) {
	var v string
	err := c.conn.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", name, err)
	}
	return v, nil
}

func (c *checker) checkServer(ctx context.Context) error {
	var version string
	if err := c.conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int, current_database(), current_user`).
		Scan(&version, &c.server, &c.db, &c.role); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if c.o.Role != "" {
		c.role = c.o.Role
	}
	// What the version means, from the feature table the connector
	// decides with (docs/dba.md's support matrix).
	obs := "PostgreSQL " + version
	if notes := postgres.FeatureNotes(c.server); len(notes) > 0 {
		obs += ": " + strings.Join(notes, "; ")
	} else {
		obs += ": every feature of docs/dba.md's support matrix"
	}
	switch {
	case c.server < 100000:
		c.add("server version", CheckFail, "PostgreSQL "+version+": no logical replication with pgoutput", "upgrade to PostgreSQL 17 or later (13 to 18 are supported)")
	case postgres.MajorVersion(c.server) < postgres.OldestSupported:
		c.add("server version", CheckWarn, obs+"; not supported (13 to 18 are)", "upgrade to PostgreSQL 17 or later")
	case !postgres.Supports(c.server, postgres.FeatureColumnLists):
		c.add("server version", CheckWarn, obs, "upgrade to PostgreSQL 15 or later (17 or later for failover slots)")
	default:
		c.add("server version", CheckOK, obs, "")
	}
	walLevel, err := c.setting(ctx, "wal_level")
	if err != nil {
		return err
	}
	if walLevel == "logical" {
		c.add("wal_level", CheckOK, walLevel, "")
	} else {
		c.add("wal_level", CheckFail, walLevel+": logical decoding needs logical",
			"ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (the setting needs a restart)")
	}
	return nil
}

func (c *checker) checkCapacity(ctx context.Context) error {
	var maxSlots, usedSlots, maxSenders, usedSenders int
	var ours, oursActive bool
	if err := c.conn.QueryRow(ctx, `
		SELECT current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots),
		       current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication),
		       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
		       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active)`, c.o.Slot).
		Scan(&maxSlots, &usedSlots, &maxSenders, &usedSenders, &ours, &oursActive); err != nil {
		return fmt.Errorf("replication capacity: %w", err)
	}
	obs := fmt.Sprintf("%d of max_replication_slots = %d in use", usedSlots, maxSlots)
	switch {
	case ours:
		c.add("replication slots", CheckOK, obs+" (slot "+c.o.Slot+" included)", "")
	case usedSlots < maxSlots:
		c.add("replication slots", CheckOK, obs+fmt.Sprintf(", %d free; 1 needed", maxSlots-usedSlots), "")
	default:
		c.add("replication slots", CheckFail, obs+": none free for slot "+c.o.Slot,
			"raise max_replication_slots (ALTER SYSTEM SET max_replication_slots = ...; restart), or drop an unused slot: SELECT pg_drop_replication_slot('<name>')")
	}
	obs = fmt.Sprintf("%d of max_wal_senders = %d in use", usedSenders, maxSenders)
	switch {
	case oursActive:
		c.add("wal senders", CheckOK, obs+" (one streams slot "+c.o.Slot+")", "")
	case usedSenders < maxSenders:
		c.add("wal senders", CheckOK, obs+fmt.Sprintf(", %d free; 1 needed", maxSenders-usedSenders), "")
	default:
		c.add("wal senders", CheckFail, obs+": none free for the connector",
			"raise max_wal_senders (ALTER SYSTEM SET max_wal_senders = ...; restart)")
	}
	return nil
}

func (c *checker) checkRole(ctx context.Context) error {
	var login, repl bool
	err := c.conn.QueryRow(ctx, `SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = $1`, c.role).
		Scan(&login, &repl, &c.super)
	r := pgx.Identifier{c.role}.Sanitize()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		c.noRole = true
		c.add("role "+c.role, CheckFail, "does not exist (the user of source.dsn)",
			"CREATE ROLE "+r+" WITH LOGIN REPLICATION; plus the grants `"+c.o.SetupCommand+" --dry-run` lists (docs/dba.md, The role to create)")
		return nil
	case err != nil:
		return fmt.Errorf("role: %w", err)
	}
	switch {
	case !login:
		c.add("role "+c.role, CheckFail, "no LOGIN attribute: the connector cannot connect as it", "ALTER ROLE "+r+" LOGIN")
	case c.super:
		c.add("role "+c.role, CheckWarn, "superuser",
			"run the connector as a dedicated role: CREATE ROLE baitoru_cdc WITH LOGIN REPLICATION, plus the grants `"+c.o.SetupCommand+" --dry-run` lists; keep superusers for setup")
	case !repl:
		c.add("role "+c.role, CheckFail, "no REPLICATION attribute: it cannot stream a replication slot",
			"ALTER ROLE "+r+" REPLICATION")
	default:
		c.add("role "+c.role, CheckOK, "LOGIN REPLICATION, not a superuser", "")
	}
	return nil
}

func (c *checker) checkTables(ctx context.Context) error {
	var err error
	if c.info, err = ReadTables(ctx, c.conn, c.server, TableNames(c.o.Mappings)); err != nil {
		return err
	}
	types := postgres.NewTypes()
	var oids []uint32
	for _, info := range c.info {
		for _, col := range info.Columns {
			oids = append(oids, col.TypeOID)
		}
	}
	if err := types.Resolve(ctx, c.conn, oids); err != nil {
		return fmt.Errorf("resolve column types: %w", err)
	}
	pubOps := Operations(c.o.Mappings)
	pubUD := slices.Contains(pubOps, "update") || slices.Contains(pubOps, "delete")
	for _, m := range c.o.Mappings {
		t := m.Table
		info := c.info[t]
		name := "table " + t
		if info == nil || !info.Exists {
			c.add(name, CheckFail, "does not exist", "create it, or remove it from tables: (names are case-sensitive: schema.table)")
			continue
		}
		if info.Kind != 'r' {
			c.add(name, CheckFail, "is not a plain table (relkind "+string(info.Kind)+")", "map plain tables (for a partitioned table, its partitions)")
			continue
		}
		cols := m.ColumnNames()
		if len(cols) == 0 {
			cols = columnNames(info)
		}
		var missing, fallback, generated []string
		for _, col := range cols {
			ci := info.Column(col)
			switch {
			case ci == nil:
				missing = append(missing, col)
			case ci.Generated:
				generated = append(generated, col)
			case !types.Handled(ci.TypeOID):
				fallback = append(fallback, fmt.Sprintf("%s (%s)", col, ci.TypeName))
			}
		}
		switch {
		case len(missing) > 0:
			c.add(name, CheckFail, "no column "+strings.Join(missing, ", ")+" (it has: "+strings.Join(columnNames(info), ", ")+")",
				"fix the column names under columns: (case-sensitive), or add the columns to the table")
		case len(generated) > 0:
			c.add(name, CheckFail, "generated column "+strings.Join(generated, ", ")+": PostgreSQL does not replicate generated columns",
				"remove it from columns:")
		case len(fallback) > 0:
			c.add(name, CheckWarn, fmt.Sprintf("%d mapped columns; no native JSON encoding for %s: published as the text form (a JSON string)", len(cols), strings.Join(fallback, ", ")),
				"accept the text form, or map a column of a handled type (see docs/config.md)")
		default:
			c.add(name, CheckOK, fmt.Sprintf("%d mapped columns, every type encoded natively", len(cols)), "")
		}
		c.largeRows(m, info, cols)
		if !pubUD {
			continue
		}
		id := "replica identity " + t
		mapsUD := m.Publishes(connector.OpUpdate) || m.Publishes(connector.OpDelete)
		switch {
		case info.hasIdentity():
			obs := info.identityText()
			if mapsUD && info.ReplicaIdentity != 'f' {
				obs += ": old rows of update/delete events carry only these columns"
			}
			c.add(id, CheckOK, obs, "")
		default:
			qt := QuoteTable(t)
			c.add(id, CheckFail, info.identityText()+", and the publication publishes "+strings.Join(intersect(pubOps, []string{"update", "delete"}), " and ")+": UPDATE/DELETE on it would fail",
				"add a primary key, or ALTER TABLE "+qt+" REPLICA IDENTITY USING INDEX <unique index>, or ALTER TABLE "+qt+" REPLICA IDENTITY FULL; or map only insert for every table")
		}
	}
	return nil
}

func (c *checker) checkPublication(ctx context.Context) error {
	plan, err := PlanPublication(c.o.Publication, c.o.Mappings, c.server, c.info)
	var pe *PlanError
	switch {
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			c.add("publication plan "+p.Table, CheckFail, p.Reason, p.Fix)
		}
	case err != nil:
		return err
	}
	c.plan = plan
	tx, err := c.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	badWhere, err := c.checkWheres(ctx, tx)
	if err != nil {
		return err
	}
	cur, err := ReadPublication(ctx, tx, c.server, c.o.Publication)
	if err != nil {
		return err
	}
	setup := c.o.SetupCommand
	if cur == nil {
		if c.o.Create {
			c.add("publication "+c.o.Publication, CheckWarn, "does not exist; run creates it at start (source.create: true)", setup+" (to create it now, reviewed)")
		} else {
			c.add("publication "+c.o.Publication, CheckFail, "does not exist", setup)
		}
		c.privileges(ctx, true)
		return nil
	}
	c.add("publication "+c.o.Publication, CheckOK, fmt.Sprintf("exists: %d %s, publish %s", len(cur.Tables), plural(len(cur.Tables), "table", "tables"), orNone(strings.Join(cur.Operations(), ", "))), "")
	drifted := false
	if plan != nil {
		if _, err := tx.Exec(ctx, `SAVEPOINT baitoru_cdc_check`); err != nil {
			return fmt.Errorf("publication: %w", err)
		}
		cmp := CompareFilters(tx)
		unknown := map[string]bool{}
		safeCmp := func(ctx context.Context, table, a, b string) (bool, error) {
			if badWhere[table] {
				return true, nil // its row filter row says what is wrong
			}
			eq, err := cmp(ctx, table, a, b)
			var pgErr *pgconn.PgError
			if err != nil && errors.As(err, &pgErr) && pgErr.Code == "42501" {
				unknown[table] = true
				if _, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT baitoru_cdc_check`); rerr != nil {
					return false, rerr
				}
				cmp = CompareFilters(tx)
				return true, nil
			}
			return eq, err
		}
		drift, err := plan.Diff(ctx, cur, safeCmp)
		if err != nil {
			return err
		}
		for table := range unknown {
			c.add("publication filter "+table, CheckWarn, fmt.Sprintf("cannot compare: the role may not read the filtered columns (server: %s, config: (%s))", filterText(cur.Tables[table].Where), plan.table(table).Where),
				"GRANT SELECT on the published and filtered columns to "+c.role+" (see setup --dry-run), or run check as the DBA")
		}
		if len(drift) == 0 {
			c.add("publication matches config", CheckOK, "same tables, columns, row filters and operations as the config", "")
		} else {
			drifted = true
			fix := setup + " (runs: " + strings.Join(sqlOf(plan.AlterStatements(drift)), "; ") + ")"
			if cur.AllTables {
				fix = "DROP PUBLICATION " + pgx.Identifier{c.o.Publication}.Sanitize() + " (it is FOR ALL TABLES), then " + setup
			}
			for _, d := range drift {
				c.add("publication drift", CheckFail, d.String(), fix)
			}
		}
	}
	problems := UnsafeForWrites(cur, c.info)
	if len(problems) == 0 && (cur.Update || cur.Delete) {
		var names []string
		for n := range cur.Tables {
			names = append(names, n)
		}
		slices.Sort(names)
		probe, _, err := ProbeWrites(ctx, tx, c.info, names, c.o.Publication)
		if err != nil {
			return err
		}
		problems = probe
	}
	switch {
	case len(problems) > 0:
		for _, p := range problems {
			c.add("writes on "+p.Table, CheckFail, "the publication makes "+p.Reason, p.Fix)
		}
	case cur.Update || cur.Delete:
		c.add("writes", CheckOK, "UPDATE and DELETE on the published tables pass the publication's replica identity checks", "")
	default:
		c.add("writes", CheckOK, "the publication publishes no update/delete: it cannot block UPDATE or DELETE", "")
	}
	c.privileges(ctx, drifted)
	return nil
}

// checkWheres adds a row per row filter: PostgreSQL parses it against its
// table (syntax, columns, types, a boolean result), or says what is wrong
// with it. The rules PostgreSQL adds for publications (built-in immutable
// functions only, no subqueries) are checked where a publication is made:
// setup and run. It returns the tables whose filter is refused.
func (c *checker) checkWheres(ctx context.Context, tx pgx.Tx) (map[string]bool, error) {
	refused, unreadable, err := CheckWheres(ctx, tx, c.o.Mappings, c.info)
	if err != nil {
		return nil, err
	}
	bad := map[string]bool{}
	for _, we := range refused {
		bad[we.Table] = true
	}
	for _, m := range c.o.Mappings {
		if m.Where == "" || c.info[m.Table] == nil || !c.info[m.Table].Exists {
			continue
		}
		name := "row filter " + m.Table
		switch {
		case bad[m.Table]:
			for _, we := range refused {
				if we.Table == m.Table {
					at := ""
					if c.o.WhereKey != nil {
						at = " (" + c.o.WhereKey(m.Table) + ")"
					}
					c.add(name, CheckFail, "where: "+m.Where+at+": "+we.Problem, we.Fix)
				}
			}
		case slices.Contains(unreadable, m.Table):
			c.add(name, CheckWarn, "where: "+m.Where+": not tested: the role may not read the columns it reads",
				"the GRANT SELECT the grants row lists, or run check as the DBA (--dsn)")
		default:
			c.add(name, CheckOK, "where: "+m.Where+": a condition on the table's columns", "")
		}
	}
	return bad, nil
}

func sqlOf(sts []Statement) []string {
	out := make([]string, len(sts))
	for i, s := range sts {
		out[i] = strings.Join(strings.Fields(s.SQL), " ")
	}
	return out
}

func (p *Plan) table(name string) PlannedTable {
	for _, t := range p.Tables {
		if t.Table == name {
			return t
		}
	}
	return PlannedTable{Table: name}
}

// privileges checks what the role needs besides REPLICATION: with
// source.create, the right to create/alter the publication; the SELECT
// grants that let check compare row filters.
func (c *checker) privileges(ctx context.Context, mustChange bool) {
	if c.noRole {
		return
	}
	if c.o.Create && !c.super {
		var notOwned []string
		for _, t := range TableNames(c.o.Mappings) {
			if info := c.info[t]; info != nil && info.Exists {
				var owns bool
				if err := c.conn.QueryRow(ctx, `SELECT pg_has_role($1, relowner, 'USAGE') FROM pg_class WHERE oid = $2::regclass`, c.role, QuoteTable(t)).Scan(&owns); err == nil && !owns {
					notOwned = append(notOwned, t)
				}
			}
		}
		var canCreate bool
		_ = c.conn.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'CREATE')`, c.role).Scan(&canCreate)
		if len(notOwned) > 0 || !canCreate {
			why := "the role does not own " + strings.Join(notOwned, ", ")
			if !canCreate {
				why = "the role has no CREATE on database " + c.db
			}
			if mustChange {
				c.add("privileges", CheckFail, "source.create is true but "+why+": run cannot create or alter the publication, and it must",
					"let a DBA run "+c.o.SetupCommand+", and set source.create: false")
			} else {
				// Nothing to create or alter: run only checks them.
				c.add("privileges", CheckOK, "the publication matches the config, so run changes nothing ("+why+", so a config change that alters the publication needs "+c.o.SetupCommand+" by a DBA)", "")
			}
		} else {
			c.add("privileges", CheckOK, "may create and alter the publication (source.create: true)", "")
		}
	}
	if c.plan == nil || c.super {
		return
	}
	var lacking, grants []string
	filters := false
	for _, t := range c.plan.Tables {
		if t.Where != "" {
			filters = true
		}
		cols := t.Columns
		if cols == nil {
			if info := c.info[t.Table]; info != nil {
				cols = columnNames(info)
			}
		}
		var missing []string
		for _, col := range cols {
			var ok bool
			if err := c.conn.QueryRow(ctx, `SELECT has_column_privilege($1, $2::regclass, $3, 'SELECT')`, c.role, QuoteTable(t.Table), col).Scan(&ok); err == nil && !ok {
				lacking = append(lacking, t.Table+"."+col)
				missing = append(missing, col)
			}
		}
		if len(missing) > 0 {
			grants = append(grants, fmt.Sprintf("GRANT SELECT (%s) ON %s TO %s", quoteList(missing), QuoteTable(t.Table), pgx.Identifier{c.role}.Sanitize()))
		}
	}
	switch {
	case len(lacking) == 0:
		c.add("grants", CheckOK, "SELECT on the published columns", "")
	case filters:
		c.add("grants", CheckWarn, "no SELECT on "+strings.Join(lacking, ", ")+": check cannot compare row filters",
			strings.Join(grants, "; ")+" (as a DBA; setup --dry-run lists every grant the role needs)")
	default:
		c.add("grants", CheckOK, "no SELECT on the mapped tables: streaming needs none (no row filters to compare)", "")
	}
}

func (c *checker) checkSlot(ctx context.Context) error {
	si, err := postgres.LookupSlot(ctx, c.conn, c.o.Slot)
	if err != nil {
		return err
	}
	name := "slot " + c.o.Slot
	if si == nil {
		if c.o.Create {
			c.add(name, CheckWarn, "does not exist; run creates it at start (source.create: true)", c.o.SetupCommand+" (to create it now)")
		} else {
			c.add(name, CheckFail, "does not exist", c.o.SetupCommand)
		}
	} else {
		switch {
		case si.Plugin != "pgoutput":
			c.add(name, CheckFail, "plugin "+si.Plugin+", not pgoutput", "drop it (SELECT pg_drop_replication_slot('"+escapeLiteral(c.o.Slot)+"')) and run setup, or choose another source.slot")
		case si.Database != c.db:
			c.add(name, CheckFail, "belongs to database "+si.Database+", not "+c.db, "choose another source.slot")
		case si.ActivePID != 0:
			c.add(name, CheckOK, fmt.Sprintf("pgoutput, active (streamed by pid %d)", si.ActivePID), "")
		default:
			c.add(name, CheckOK, "pgoutput, inactive (no connector streams it now; it keeps WAL until one does)", "")
		}
		st, err := postgres.ReadSlotStatus(ctx, c.conn, c.o.Slot)
		if err != nil {
			return err
		}
		if st != nil {
			c.slotSt = st
			c.slotRows(st)
		}
	}
	keep, err := c.setting(ctx, "max_slot_wal_keep_size")
	if err != nil {
		return err
	}
	switch keep {
	case "":
		c.add("max_slot_wal_keep_size", CheckWarn, "not available before PostgreSQL 13: nothing limits the WAL a slot keeps", "upgrade; meanwhile alert on baitoru_cdc_slot_retained_wal_bytes")
	case "-1":
		c.add("max_slot_wal_keep_size", CheckWarn, "-1 (unlimited): a stalled or abandoned slot keeps WAL until the disk is full",
			"ALTER SYSTEM SET max_slot_wal_keep_size = '<size>'; SELECT pg_reload_conf(); -- size it for the longest connector outage you accept (docs/dba.md)")
	default:
		mb, _ := strconv.ParseInt(keep, 10, 64)
		obs := HumanBytes(mb << 20)
		if c.slotSt != nil && c.slotSt.SafeWALSize >= 0 {
			obs += ", " + HumanBytes(c.slotSt.SafeWALSize) + " more WAL before the slot is invalidated"
		}
		c.add("max_slot_wal_keep_size", CheckOK, obs, "")
	}
	return nil
}

// checkGaps lists the recorded gaps of the slot (postgres.Gaps): changes
// the publication leaves out now (✗), or changes that were not published
// and not yet re-sent (!).
func (c *checker) checkGaps(ctx context.Context) error {
	gaps, err := postgres.Gaps(ctx, c.conn, c.o.Slot)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		c.add("gaps", CheckWarn, "this role may not read "+postgres.GapTable+": recorded gaps are not shown", "run check as the connector's role or the DBA; "+c.o.SetupCommand+" grants the connector's role")
		return nil
	}
	if err != nil {
		return err
	}
	fills, err := postgres.GapFills(ctx, c.conn, gaps)
	if err != nil {
		return err
	}
	backfill := c.o.BackfillCommand
	if backfill == "" {
		backfill = strings.Replace(c.o.SetupCommand, " setup", " backfill start", 1)
	}
	for _, g := range gaps {
		del := fmt.Sprintf("DELETE FROM %s WHERE id = %d", postgres.GapTable, g.ID)
		since := g.FromLSN.String()
		if !g.FromTime.IsZero() {
			since += " (" + g.FromTime.Format(time.RFC3339) + ")"
		}
		resend := "re-send its changes"
		if g.Kind == postgres.LossDelete {
			resend = "its deletes cannot be re-sent (a backfill re-sends rows that exist): tell the consumers which rows to check"
		}
		if g.Open() {
			put := c.o.SetupCommand + " puts it back (or ALTER PUBLICATION ... ADD TABLE)"
			if g.Kind != postgres.LossTable {
				put = c.o.SetupCommand + " aligns the publication with the config"
			}
			c.add("gap "+g.Table, CheckFail,
				fmt.Sprintf("%s since %s: its changes are not published (gap %d)", g.Reason, since, g.ID),
				put+"; then "+resend+" since "+g.FromLSN.String()+" (backfill) and "+del)
			continue
		}
		until := g.ToLSN.String()
		if !g.ToTime.IsZero() {
			until += " (" + g.ToTime.Format(time.RFC3339) + ")"
		}
		obs := fmt.Sprintf("changes from %s to %s were not published: %s (gap %d)", since, until, g.Reason, g.ID)
		fill, filling := fills[g.ID]
		switch {
		case filling && fill.Status == string(connector.BackfillDone):
			c.add("gap "+g.Table, CheckOK,
				fmt.Sprintf("%s; filled: backfill %s re-sent %d rows (done %s)", obs, fill.Backfill, fill.RowsDone, fill.FinishedAt.Format(time.RFC3339)),
				"nothing left to re-send; "+del+" to clear it")
		case filling && (fill.Status == "requested" || fill.Status == string(connector.BackfillRunning)):
			c.add("gap "+g.Table, CheckWarn,
				fmt.Sprintf("%s; being filled: backfill %s %s, %d rows so far", obs, fill.Backfill, fill.Status, fill.RowsDone),
				"wait for it to end (baitoru-cdc backfill status "+fill.Backfill+"), then "+del)
		case filling:
			c.add("gap "+g.Table, CheckWarn,
				fmt.Sprintf("%s; backfill %s %s", obs, fill.Backfill, fill.Status),
				fmt.Sprintf("see why (baitoru-cdc backfill status %s), then start it again: %s --gap %d", fill.Backfill, backfill, g.ID))
		case g.Kind == postgres.LossDelete:
			c.add("gap "+g.Table, CheckWarn, obs, resend+", then "+del)
		default:
			c.add("gap "+g.Table, CheckWarn, obs,
				fmt.Sprintf("re-send them: %s --gap %d; then %s", backfill, g.ID, del))
		}
	}
	return nil
}

func (c *checker) slotRows(st *postgres.SlotStatus) {
	safe := "unlimited"
	if st.SafeWALSize >= 0 {
		safe = HumanBytes(st.SafeWALSize)
	}
	switch st.WALStatus {
	case "reserved":
		c.add("slot wal_status", CheckOK, "reserved (safe_wal_size "+safe+")", "")
	case "extended":
		c.add("slot wal_status", CheckWarn, "extended: the slot keeps WAL beyond max_wal_size (safe_wal_size "+safe+")",
			"start the connector (or find why it is behind); watch retained WAL")
	case "unreserved":
		c.add("slot wal_status", CheckWarn, "unreserved: the server will invalidate the slot at the next checkpoint unless the connector catches up",
			"start the connector now; if it cannot catch up, plan the recovery in docs/dba.md")
	case "lost":
		c.add("slot wal_status", CheckFail, "lost: the server removed WAL the slot needed; changes after "+st.ConfirmedFlush.String()+" cannot be streamed",
			"baitoru-cdc teardown --yes, then "+c.o.SetupCommand+", then backfill rows committed since "+st.ConfirmedFlush.String()+" (docs/dba.md, Recovering a lost slot)")
		return
	default:
		c.add("slot wal_status", CheckWarn, st.WALStatus, "")
	}
	over := func(n int64) bool { return c.o.MaxLagBytes > 0 && n > c.o.MaxLagBytes }
	limit := "no threshold (source.max_lag_bytes: 0)"
	if c.o.MaxLagBytes > 0 {
		limit = "source.max_lag_bytes " + HumanBytes(c.o.MaxLagBytes)
	}
	obs := fmt.Sprintf("%s (current %s - restart_lsn %s); %s", HumanBytes(st.Retained()), st.Current, st.RestartLSN, limit)
	if over(st.Retained()) {
		c.add("slot retained WAL", CheckWarn, obs, "start the connector or find why it is behind (its log, baitoru_cdc_slot_retained_wal_bytes); the WAL is freed as it confirms")
	} else {
		c.add("slot retained WAL", CheckOK, obs, "")
	}
	obs = fmt.Sprintf("%s (current %s - confirmed_flush_lsn %s)", HumanBytes(st.ConfirmedLag()), st.Current, st.ConfirmedFlush)
	if over(st.ConfirmedLag()) {
		c.add("slot confirmed-flush lag", CheckWarn, obs, "start the connector or find why it does not confirm (SNS errors in its log)")
	} else {
		c.add("slot confirmed-flush lag", CheckOK, obs, "")
	}
}

// HumanBytes formats a byte count with binary units, e.g. "12.5 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
