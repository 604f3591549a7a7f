package dba

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// checkFailover checks what a failover of the primary means for the slot.
// Before PostgreSQL 17 a promoted standby has no copy of it: check says
// what happens then. From 17 on it checks the slot's failover flag, the
// primary's synchronized_standby_slots against its standbys' physical
// slots, and, for every other host of the DSN that is a standby, the
// standby side: sync_replication_slots, hot_standby_feedback,
// primary_slot_name, and the synchronised copy of the slot.
func (c *checker) checkFailover(ctx context.Context) error {
	var physical []string // physical slots on this server: its standbys'
	rows, err := c.conn.Query(ctx, `SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("physical slots: %w", err)
	}
	physical, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("physical slots: %w", err)
	}
	var standbys int
	if err := c.conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE NOT EXISTS (
		SELECT 1 FROM pg_replication_slots s WHERE s.active_pid = pg_stat_replication.pid AND s.slot_type = 'logical')`).Scan(&standbys); err != nil {
		return fmt.Errorf("standbys: %w", err)
	}
	if !postgres.Supports(c.server, postgres.FeatureFailoverSlots) {
		obs := "PostgreSQL " + versionText(c.server) + " has no failover slots (17+): slot " + c.o.Slot + " exists on this server only. " +
			"If a standby is promoted, the new primary has no slot: the connector stops with an error naming the last position it confirmed, and the rows changed from then until a new slot exists must be backfilled (docs/dba.md, Failover)"
		switch {
		case standbys > 0 || len(physical) > 0:
			c.add("failover", CheckWarn, fmt.Sprintf("%d streaming standby(s), physical slots %s. %s", standbys, orNone(strings.Join(physical, ", ")), obs),
				"upgrade to PostgreSQL 17 or later for failover slots; until then, after a failover follow docs/dba.md (Failover: without failover slots)")
		default:
			c.add("failover", CheckOK, "no streaming standby. "+obs, "")
		}
		return nil
	}
	slotName := "slot " + c.o.Slot + " failover"
	si, err := postgres.LookupSlot(ctx, c.conn, c.o.Slot)
	if err != nil {
		return err
	}
	switch {
	case si == nil:
		c.add(slotName, CheckOK, "the slot does not exist yet; setup (or run with source.create: true) creates it with failover", "")
	case si.Failover:
		c.add(slotName, CheckOK, "failover: standbys with sync_replication_slots keep a copy", "")
	default:
		c.add(slotName, CheckWarn, "created without failover: a promoted standby has no copy of it",
			fmt.Sprintf(`psql "dbname=%s replication=database" -c 'ALTER_REPLICATION_SLOT %s (FAILOVER true)' (as a role with REPLICATION, while no connector streams the slot)`, c.db, c.o.Slot))
	}
	sss, err := c.setting(ctx, "synchronized_standby_slots")
	if err != nil {
		return err
	}
	listed := splitList(sss)
	switch {
	case len(physical) == 0 && standbys == 0:
		c.add("failover standby", CheckOK, "no streaming standby (no physical slot, nothing in pg_stat_replication): nothing to fail over to on this server's own replication (a managed service's storage-level standby keeps the slot with the disk)", "")
		return nil
	case len(listed) == 0:
		c.add("synchronized_standby_slots", CheckWarn, "empty: the connector may receive, publish and confirm changes no standby has yet; after a failover the new primary may lack rows already published, and its copy of the slot may be behind",
			fmt.Sprintf("ALTER SYSTEM SET synchronized_standby_slots = '%s'; SELECT pg_reload_conf(); -- the physical slots of the standbys a failover may promote", strings.Join(physical, ", ")))
	default:
		var missing []string
		for _, s := range listed {
			if !slices.Contains(physical, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			c.add("synchronized_standby_slots", CheckFail, sss+": no physical slot "+strings.Join(missing, ", ")+" on this server: logical decoding waits for it, the connector receives nothing",
				"create the standby's slot (SELECT pg_create_physical_replication_slot('<name>')) and set it as the standby's primary_slot_name, or remove it: ALTER SYSTEM SET synchronized_standby_slots = '...'; SELECT pg_reload_conf()")
		} else {
			c.add("synchronized_standby_slots", CheckOK, sss+": the connector receives only what these standbys have", "")
		}
	}
	c.checkStandbys(ctx, listed, physical)
	return nil
}

// checkStandbys checks, on every other host of the connection's DSN that
// is a standby, what keeps the slot there.
func (c *checker) checkStandbys(ctx context.Context, listed, physical []string) {
	cfg := c.conn.Config()
	hosts := []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))))
	}
	here := c.conn.PgConn().Conn().RemoteAddr().String()
	checked := 0
	for _, h := range slices.Compact(hosts) {
		if h == here {
			continue
		}
		st, err := c.standbyRows(ctx, h, listed, physical)
		if err != nil {
			c.add("standby "+h, CheckWarn, "cannot check it: "+postgres.Redact(err.Error()), "make it reachable with source.dsn's role, or remove it from source.dsn")
			continue
		}
		if st {
			checked++
		}
	}
	if checked == 0 {
		c.add("failover standby", CheckOK, "the standby side is not checked: source.dsn names no standby. "+
			"List the standbys after the primary (postgres://user@primary,standby/db?target_session_attrs=read-write): the connector then follows a promotion by itself, and check verifies them", "")
	}
}

// standbyRows checks one host; it reports false when the host is not a
// standby (another primary, or this one under another name).
func (c *checker) standbyRows(ctx context.Context, host string, listed, physical []string) (bool, error) {
	cfg := c.conn.Config().Copy()
	h, p, _ := net.SplitHostPort(host)
	port, _ := strconv.Atoi(p)
	cfg.Host, cfg.Port, cfg.Fallbacks, cfg.ValidateConnect = h, uint16(port), nil, nil
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var recovery bool
	if err := conn.QueryRow(cctx, `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil {
		return false, err
	}
	if !recovery {
		return false, nil
	}
	name := "standby " + host
	setting := func(n string) (string, error) {
		var v string
		err := conn.QueryRow(cctx, `SELECT setting FROM pg_settings WHERE name = $1`, n).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil
		}
		return v, err
	}
	var problems, fixes []string
	for _, want := range []string{"sync_replication_slots", "hot_standby_feedback"} {
		v, err := setting(want)
		if err != nil {
			return true, err
		}
		if v != "on" {
			problems = append(problems, want+" is "+orNone(v))
			fixes = append(fixes, "ALTER SYSTEM SET "+want+" = on")
		}
	}
	slot, err := setting("primary_slot_name")
	if err != nil {
		return true, err
	}
	switch {
	case slot == "":
		problems = append(problems, "primary_slot_name is empty: the primary keeps no WAL for this standby and cannot wait for it")
		fixes = append(fixes, "on the primary: SELECT pg_create_physical_replication_slot('<name>'); here: ALTER SYSTEM SET primary_slot_name = '<name>'")
	case !slices.Contains(physical, slot):
		problems = append(problems, "primary_slot_name "+slot+" is not a physical slot of the primary")
		fixes = append(fixes, "on the primary: SELECT pg_create_physical_replication_slot('"+escapeLiteral(slot)+"')")
	case !slices.Contains(listed, slot):
		problems = append(problems, "its slot "+slot+" is not in the primary's synchronized_standby_slots")
		fixes = append(fixes, "on the primary: ALTER SYSTEM SET synchronized_standby_slots = '"+strings.Join(append(slices.Clone(listed), slot), ", ")+"'; SELECT pg_reload_conf()")
	}
	if len(problems) > 0 {
		c.add(name, CheckFail, strings.Join(problems, "; ")+": a promotion of this standby loses slot "+c.o.Slot,
			strings.Join(fixes, "; ")+"; then SELECT pg_reload_conf() on the standby (primary_conninfo must name a dbname too: slot synchronisation needs it)")
		return true, nil
	}
	si, err := postgres.LookupSlot(cctx, conn, c.o.Slot)
	if err != nil {
		return true, err
	}
	switch {
	case si == nil:
		c.add(name, CheckFail, "configured (sync_replication_slots, hot_standby_feedback, primary_slot_name "+slot+"), but it has no copy of slot "+c.o.Slot+": a promotion now loses it",
			"check that the slot has failover (above), that primary_conninfo names a dbname, and the standby's log (slot sync worker)")
	case !si.Synced || si.Temporary:
		c.add(name, CheckWarn, "its copy of slot "+c.o.Slot+" is not synchronised yet (temporary until the standby caught up with the primary's slot): a promotion now loses it",
			"wait for the connector to confirm a position (it does once it streams), then run check again")
	default:
		c.add(name, CheckOK, fmt.Sprintf("keeps slot %s (synchronised, confirmed %s; primary_slot_name %s, sync_replication_slots and hot_standby_feedback on)", c.o.Slot, si.ConfirmedFlush, slot), "")
	}
	return true, nil
}

// splitList splits a comma-separated setting into its names.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"`); p != "" {
			out = append(out, p)
		}
	}
	return out
}
