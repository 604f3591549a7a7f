package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/child"
)

// The connector's log messages of a table that leaves the publication and
// comes back (dba.Watch).
const (
	msgTableLost = "a mapped table is not in the publication: PostgreSQL leaves its changes out of the stream and they are NOT published"
	msgTableBack = "a mapped table is in the publication again; its changes in between were NOT published"
)

// lossPostings is how many job_postings rows the scenario writes while the
// table is out of the publication (lost to the stream, and reported), and
// after it is back (published).
const lossPostings, backPostings = 3, 2

// 8: a DBA drops a column of job_postings that is in the publication's
// column list, with CASCADE: PostgreSQL takes the whole table out of the
// publication. The running connector must say so (an ERROR naming the
// table and the position from which its changes are missing), turn
// /readyz not ready and the metric on, record the gap, and keep streaming
// applications (the suite's own measurement: nothing of applications lost).
// The operator's fix (the column removed from the config, setup) puts the
// table back: the connector closes the gap with its end position; the rows
// written in between are not published (the gap covers them) and the rows
// after the restart with the fixed config are. The job_postings rows are of
// an unlinked company: Kobot gets none of them.
func tableLoss(ctx context.Context, st *stage, sc scale, r *result) error {
	conn, err := pgx.Connect(ctx, st.srcDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	lsn := func() (string, error) {
		var s string
		err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s)
		return s, err
	}
	insertPostings := func(n int, title string) error {
		_, err := conn.Exec(ctx, `INSERT INTO job_postings (company_id, title, employment_type, wage)
			SELECT 4, $1 || ' ' || g, 'part_time', 1100 FROM generate_series(1, $2) g`, title, n)
		return err
	}
	// An unlinked company of the link plan (companies is not mapped).
	if _, err := conn.Exec(ctx, `INSERT INTO companies (company_id, name, prefecture) VALUES (4, 'Unlinked KK', 'Tokyo') ON CONFLICT DO NOTHING`); err != nil {
		return fmt.Errorf("company 4: %w", err)
	}
	metrics := envURL(st.conn)

	before, err := lsn()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE job_postings DROP COLUMN location CASCADE`); err != nil {
		return fmt.Errorf("drop column location: %w", err)
	}
	dropped := time.Now()
	st.logf("dropped job_postings.location with CASCADE at %s", before)
	if err := insertPostings(lossPostings, "written while out of the publication"); err != nil {
		return err
	}
	after, err := lsn()
	if err != nil {
		return err
	}

	line, seen, err := st.conn.WaitLog(regexp.QuoteMeta(msgTableLost), 30*time.Second)
	if err != nil {
		return fmt.Errorf("the connector did not report the table out of the publication: %w", err)
	}
	if line["level"] != "ERROR" || line["table"] != "public.job_postings" || line["missing_from_lsn"] == nil || line["recover"] == nil {
		return fmt.Errorf("the report does not name the table, the position and the recovery at ERROR: %v", line)
	}
	r.note("reported %s after the DROP: %v, missing from %v", seen.Sub(dropped).Round(time.Millisecond), line["level"], line["missing_from_lsn"])
	code, body, err := get(metrics + "/readyz")
	if err != nil {
		return err
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "public.job_postings") {
		return fmt.Errorf("/readyz while the table is out: %d %s; want 503 naming the table", code, body)
	}
	if _, m, err := get(metrics + "/metrics"); err != nil {
		return err
	} else if !regexp.MustCompile(`(?m)^baitoru_cdc_table_unpublished\{kind="table",table="public\.job_postings"\} 1$`).MatchString(m) {
		return fmt.Errorf("baitoru_cdc_table_unpublished of public.job_postings is not 1")
	}
	var open int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM baitoru_cdc.gaps WHERE slot = $1 AND table_name = 'public.job_postings' AND to_lsn IS NULL`, st.slot).Scan(&open); err != nil || open != 1 {
		return fmt.Errorf("open gaps of public.job_postings: %d (%v); want 1", open, err)
	}
	// Applications keep streaming meanwhile: the writer goes on, and the
	// suite's measurement finds every row.
	sleepCtx(ctx, sc.warmup)
	if st.conn.Exited() {
		return fmt.Errorf("the connector stopped on the loss: %v\n%s", st.conn.Err(), st.conn.Tail(5))
	}

	// The operator's fix: the column out of the config, setup puts the
	// table back with the new column list.
	shipped, err := os.ReadFile(st.config)
	if err != nil {
		return err
	}
	const col = "      - column: location\n"
	if strings.Count(string(shipped), col) != 1 {
		return fmt.Errorf("config.yaml: want exactly one %q line to drop", strings.TrimSpace(col))
	}
	fixed := filepath.Join(st.dir, "config-without-location.yaml")
	if err := os.WriteFile(fixed, []byte(strings.Replace(string(shipped), col, "", 1)), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	setup := exec.CommandContext(ctx, st.e.bin, "setup", "--config", fixed)
	setup.Env = st.env(addr)
	if out, err := setup.CombinedOutput(); err != nil {
		return fmt.Errorf("setup with the fixed config: %v\n%s", err, out)
	}
	line, _, err = st.conn.WaitLog(regexp.QuoteMeta(msgTableBack), 30*time.Second)
	if err != nil {
		return fmt.Errorf("the connector did not report the table back: %w", err)
	}
	var from, to string
	if err := conn.QueryRow(ctx, `SELECT from_lsn::text, coalesce(to_lsn::text, '') FROM baitoru_cdc.gaps
		WHERE slot = $1 AND table_name = 'public.job_postings' AND from_lsn <= $2::pg_lsn AND to_lsn >= $3::pg_lsn`,
		st.slot, before, after).Scan(&from, &to); err != nil {
		return fmt.Errorf("no closed gap of public.job_postings spanning %s..%s (the rows written while it was out): %w", before, after, err)
	}
	r.note("gap recorded %s..%s, covering the %d job_postings rows written while the table was out (%s..%s)", from, to, lossPostings, before, after)

	// Restart with the fixed config (a mapping change needs a restart);
	// the rows written from now on are published.
	if err := st.conn.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop the connector: %w", err)
	}
	p, err := st.startConnectorWith(fixed, true)
	if err != nil {
		return err
	}
	st.conn = p
	st.faultEnded()
	if err := insertPostings(backPostings, "written after the fix"); err != nil {
		return err
	}
	st.otherEvents += backPostings
	if _, _, err := p.WaitLog(regexp.QuoteMeta(msgTableLost), 3*time.Second); err == nil {
		return fmt.Errorf("the restarted connector reports the table lost again: %s", p.Tail(3))
	}
	if code, body, err := get(envURL(p) + "/readyz"); err != nil || code != http.StatusOK {
		return fmt.Errorf("/readyz after the fix: %d %s (%v)", code, body, err)
	}
	return nil
}

// envURL is the base URL of a connector's monitoring endpoint.
func envURL(p *child.Process) string {
	return "http://" + envValue(p, "BAITORU_CDC_METRICS_LISTEN")
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
