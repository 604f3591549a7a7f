package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
)

// reloader applies the configuration file's tables to the running
// connector on SIGHUP. An invalid file changes nothing. A valid one is
// applied in the order that loses nothing: the publication grows first
// (tables, columns and operations added), then the pipeline switches the
// mappings at the next transaction boundary, and only once it has switched
// does the publication shrink. A publication change the connector may not
// make (source.create false, or its role does not own a table) refuses the
// reload and logs the SQL for a DBA. Only tables are reloaded; a change
// elsewhere in the file is reported as needing a restart.
type reloader struct {
	cfg      *config.Config
	mappings []*connector.Mapping
	pipe     *connector.Pipeline
	follow   []mappingsFollower // told the new mappings: the publication watch, backfill
	addTable func(string)
	reloads  interface{ Reloaded(result string) }
	log      *slog.Logger
}

// mappingsFollower is a part that works from the mapped tables.
type mappingsFollower interface {
	SetMappings(mappings []*connector.Mapping)
}

func newReloader(cfg *config.Config, mappings []*connector.Mapping, pipe *connector.Pipeline, follow []mappingsFollower,
	reloads interface{ Reloaded(result string) }, addTable func(string), log *slog.Logger) *reloader {
	return &reloader{cfg: cfg, mappings: mappings, pipe: pipe, follow: follow, addTable: addTable, log: log, reloads: reloads}
}

// transition is a reload applied to the publication and handed to the
// pipeline whose end (the publication shrunk to the new mappings) waits
// for the pipeline to switch and for the transactions open when the
// publication changed (encoded by the old mappings) to end.
type transition struct {
	applied <-chan struct{}
	open    []uint32
	shrink  []*connector.Mapping
}

// Run reloads on every value of hup until ctx ends. A SIGHUP during a
// transition is answered once it ended.
func (r *reloader) Run(ctx context.Context, hup <-chan os.Signal) error {
	var cur *transition
	var switched, deferred bool
	tick := time.NewTicker(max(r.cfg.Source.StatusInterval/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		var applied <-chan struct{}
		if cur != nil && !switched {
			applied = cur.applied
		}
		select {
		case <-ctx.Done():
			return nil
		case <-applied:
			switched = true
		case <-tick.C:
			if cur == nil || !switched {
				continue
			}
			if !r.ended(ctx, cur.open) {
				continue
			}
			if _, _, err := r.publication(ctx, r.cfg, cur.shrink); err != nil {
				r.log.Warn("the publication keeps tables or columns the mappings no longer use (their changes are read and dropped; nothing is lost)",
					"reason", userMessage(err), "sql", sqlOf(err))
			}
			cur, switched = nil, false
			if deferred {
				deferred = false
				cur = r.reload(ctx)
			}
		case <-hup:
			if cur != nil {
				deferred = true
				r.log.Info("configuration reload waits for the previous one to finish (transactions open when the publication changed)")
				continue
			}
			cur = r.reload(ctx)
		}
	}
}

// ended reports whether the transactions open have ended, and tells the
// pipeline from which position the mappings before the reload are no
// longer needed.
func (r *reloader) ended(ctx context.Context, open []uint32) bool {
	conn, err := connectSource(ctx, r.cfg, "")
	if err != nil {
		r.log.Debug("configuration reload: cannot look at open transactions; trying again", "error", err)
		return false
	}
	defer conn.Close(context.Background())
	if ok, err := dba.Ended(ctx, conn, open); err != nil || !ok {
		return false
	}
	lsn, _, err := dba.OpenTransactions(ctx, conn)
	if err != nil {
		return false
	}
	r.pipe.TransitionEnded(lsn)
	return true
}

// reload reads the file and applies it; it returns the transition begun
// (nil: nothing changed).
func (r *reloader) reload(ctx context.Context) *transition {
	file := r.cfg.File
	next, err := config.LoadConnector(file)
	if err != nil {
		r.reloads.Reloaded("invalid")
		r.log.Error("configuration not reloaded: the file is invalid; the running mappings are kept",
			"file", file, "problems", err.Error(), "version", connector.MappingVersion(r.mappings))
		return nil
	}
	if keys := restartKeys(r.cfg, next); len(keys) > 0 {
		r.log.Warn("configuration reload applies tables only; restart to apply the other changes", "file", file, "changed", strings.Join(keys, ", "))
	}
	nextMaps := next.Mappings()
	oldVersion, version := connector.MappingVersion(r.mappings), connector.MappingVersion(nextMaps)
	if oldVersion == version {
		r.reloads.Reloaded("unchanged")
		r.log.Info("configuration reloaded: the mappings are unchanged", "file", file, "version", version)
		return nil
	}
	after, open, err := r.publication(ctx, next, mergeMappings(r.mappings, nextMaps))
	if err != nil {
		r.reloads.Reloaded("refused")
		r.log.Error("configuration not reloaded: the publication must change first and the connector may not change it; the running mappings are kept. A DBA runs the SQL (or baitoru-cdc setup), then reload again",
			"file", file, "reason", userMessage(err), "sql", sqlOf(err), "version", oldVersion)
		return nil
	}
	applied := r.pipe.Reload(nextMaps, version, after, open)
	var changes []string
	for _, c := range connector.DiffMappings(r.mappings, nextMaps) {
		changes = append(changes, c.Table)
		if c.Kind == connector.TableAdded {
			r.addTable(c.Table)
		}
	}
	for _, f := range r.follow {
		f.SetMappings(nextMaps)
	}
	r.reloads.Reloaded("applied")
	r.log.Info("configuration reloaded; the new mappings apply from the next transaction",
		"file", file, "version", version, "previous_version", oldVersion, "tables_changed", strings.Join(changes, ", "),
		"open_transactions", len(open))
	r.cfg, r.mappings = next, nextMaps
	r.nudge(ctx)
	return &transition{applied: applied, open: open, shrink: nextMaps}
}

// nudge commits a transaction of one heartbeat message, so that the
// pipeline switches at once on an idle database.
func (r *reloader) nudge(ctx context.Context) {
	conn, err := connectSource(ctx, r.cfg, "")
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, 'reload')`, postgres.HeartbeatPrefix); err != nil {
		r.log.Debug("configuration reload: no heartbeat; the new mappings apply at the next transaction", "error", err)
	}
}

// refusal is a publication change the connector did not make, with its SQL.
type refusal struct {
	reason string
	sql    []string
}

func (e *refusal) Error() string { return e.reason }

func sqlOf(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return strings.Join(r.sql, ";\n") + ";"
	}
	return ""
}

// publication makes the publication carry maps, when the connector may. It
// returns the server's WAL position once the publication is as maps need
// and the transactions open then: a transaction not among them that
// commits after the position is streamed with the publication as maps
// need.
func (r *reloader) publication(ctx context.Context, cfg *config.Config, maps []*connector.Mapping) (connector.LSN, []uint32, error) {
	conn, err := connectSource(ctx, cfg, "")
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close(context.Background())
	plan, cur, drift, err := dba.DiffPublication(ctx, conn, cfg.Source.Publication, maps)
	if err != nil {
		return 0, nil, err
	}
	var stmts []dba.Statement
	if cur == nil {
		stmts = plan.CreateStatements()
	} else {
		stmts = plan.AlterStatements(drift)
	}
	if len(stmts) > 0 {
		sql := make([]string, len(stmts))
		for i, st := range stmts {
			sql[i] = st.SQL
		}
		if !cfg.Source.Create {
			return 0, nil, &refusal{reason: "source.create is false: the connector does not change publication " + cfg.Source.Publication, sql: sql}
		}
		if _, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{Publication: cfg.Source.Publication, Mappings: maps}); err != nil {
			return 0, nil, &refusal{reason: err.Error(), sql: sql}
		}
		r.log.Info("publication changed for the reload", "publication", cfg.Source.Publication, "sql", strings.Join(sql, ";\n")+";")
	}
	return dba.OpenTransactions(ctx, conn)
}

// mergeMappings is the publication-side union of two sets of mappings: every
// table of either, with the operations and columns of both (the new row
// filter), so that nothing either version maps is missing from the stream
// while the pipeline switches.
func mergeMappings(old, new []*connector.Mapping) []*connector.Mapping {
	out := make([]*connector.Mapping, 0, len(new)+len(old))
	byTable := map[string]*connector.Mapping{}
	for _, m := range new {
		c := *m
		c.Ops = slices.Clone(m.Ops)
		c.Columns = slices.Clone(m.Columns)
		byTable[m.Table] = &c
		out = append(out, &c)
	}
	for _, m := range old {
		n := byTable[m.Table]
		if n == nil {
			out = append(out, m)
			continue
		}
		for _, op := range m.Ops {
			if !slices.Contains(n.Ops, op) {
				n.Ops = append(n.Ops, op)
			}
		}
		if len(n.Columns) == 0 {
			continue // every column already
		}
		if len(m.Columns) == 0 {
			n.Columns = nil
			continue
		}
		for _, col := range m.Columns {
			if !slices.ContainsFunc(n.Columns, func(c connector.MappedColumn) bool { return c.Column == col.Column }) {
				n.Columns = append(n.Columns, col)
			}
		}
	}
	return out
}

// restartKeys lists the sections other than tables that differ.
func restartKeys(a, b *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name string
		x, y any
	}{
		{"source", a.Source, b.Source}, {"sns", a.SNS, b.SNS}, {"publisher", a.Publisher, b.Publisher},
		{"metrics", a.Metrics, b.Metrics}, {"log", a.Log, b.Log},
	} {
		if !reflect.DeepEqual(s.x, s.y) {
			out = append(out, s.name)
		}
	}
	return out
}
