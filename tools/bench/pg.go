package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

const (
	sourceDB    = "baitoru"
	publication = "bench"
)

// pgSettings tune the throwaway cluster for bulk loading: no checkpoint in
// the middle of a measured read (the readers never write, but a checkpoint
// competes for the disk and the CPU).
var pgSettings = map[string]string{
	"max_wal_size":       "8GB",
	"checkpoint_timeout": "30min",
	"shared_buffers":     "256MB",
}

// setupSource creates the source database with the sample Baitoru schema
// and the publication of public.applications (inserts).
func (b *bench) setupSource(ctx context.Context) error {
	if err := testenv.Exec(ctx, b.pg.DSN("postgres"), "CREATE DATABASE "+sourceDB); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	b.dsn = b.pg.DSN(sourceDB)
	schema, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "testdata", "schema", "baitoru.sql"))
	if err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if err := testenv.Exec(ctx, b.dsn, string(schema)); err != nil {
		return fmt.Errorf("load schema: %w", err)
	}
	if err := testenv.Exec(ctx, b.dsn, "CREATE PUBLICATION "+publication+" FOR TABLE public.applications WITH (publish = 'insert')"); err != nil {
		return fmt.Errorf("create publication: %w", err)
	}
	if b.o.DecodingMem != "" {
		// A walsender of the database applies it (as every new session).
		if err := testenv.Exec(ctx, b.dsn, "ALTER DATABASE "+sourceDB+" SET logical_decoding_work_mem = '"+strings.ReplaceAll(b.o.DecodingMem, "'", "''")+"'"); err != nil {
			return fmt.Errorf("set logical_decoding_work_mem: %w", err)
		}
	}
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return err
	}
	b.meta = conn
	return conn.QueryRow(ctx, "SHOW server_version").Scan(&b.res.Machine.PostgreSQL)
}

// createSlot creates a permanent pgoutput slot at the current WAL position.
func (b *bench) createSlot(ctx context.Context, name string) error {
	_, err := b.meta.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", name)
	if err != nil {
		return fmt.Errorf("create slot %s: %w", name, err)
	}
	return nil
}

// dropSlots drops the slots once no process streams them any more.
func (b *bench) dropSlots(ctx context.Context, names ...string) {
	for _, name := range names {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := b.meta.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				if err != nil {
					b.logf("drop slot %s: %v", name, err)
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// slotState returns whether a process streams the slot and its confirmed
// position.
func (b *bench) slotState(ctx context.Context, name string) (active bool, confirmed pglogrepl.LSN, err error) {
	var lsn *string
	err = b.meta.QueryRow(ctx, `SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&active, &lsn)
	if err != nil {
		return false, 0, fmt.Errorf("slot %s: %w", name, err)
	}
	if lsn != nil {
		confirmed, _ = pglogrepl.ParseLSN(*lsn)
	}
	return active, confirmed, nil
}

// waitSlot polls the slot every 10ms until cond holds, the deadline passes
// or abort returns an error (a child that exited). It returns when cond held.
func (b *bench) waitSlot(ctx context.Context, name string, timeout time.Duration, abort func() error,
	cond func(active bool, confirmed pglogrepl.LSN) bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		active, confirmed, err := b.slotState(ctx, name)
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		if cond(active, confirmed) {
			return now, nil
		}
		if abort != nil {
			if err := abort(); err != nil {
				return time.Time{}, err
			}
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("slot %s: condition not reached after %s (active %v, confirmed %s)", name, timeout, active, confirmed)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Workload is a set of committed inserts into public.applications.
type Workload struct {
	Name          string  `json:"name"`
	Rows          int     `json:"rows"`
	Txs           int     `json:"transactions"`
	WALBytes      int64   `json:"wal_bytes"`
	InsertSeconds float64 `json:"insert_seconds"`
	// lastTxLSN is an insert position inside the last transaction, before
	// its commit: a slot has confirmed the whole workload once its
	// confirmed position is past it.
	lastTxLSN pglogrepl.LSN
	// committed is when the last transaction's COMMIT returned.
	committed time.Time
}

// done reports whether a slot confirmed position covers the workload.
func (w *Workload) done(confirmed pglogrepl.LSN) bool { return confirmed > w.lastTxLSN }

// defaultNote is the SQL expression of the answers' note of every row but
// item 8's.
const defaultNote = `'よろしくお願いします'`

// rowsSQL inserts the rows numbered from..to (inclusive): realistic
// application rows (11 columns: bigint ids, Japanese text, jsonb answers,
// an enum, timestamptz). company is the SQL expression of company_id, note
// that of the answers' note (over the row number g), which sets the size
// of the event.
func rowsSQL(from, to int64, company, note string) string {
	return fmt.Sprintf(`INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email,
	applicant_phone, answers, status, source, applied_at, updated_at)
SELECT %s, 100000 + g %% 5000, '応募者 ' || g, 'applicant' || g || '@example.jp',
	'090-' || lpad((g %% 10000)::text, 4, '0') || '-' || lpad((g %% 9973)::text, 4, '0'),
	jsonb_build_object('available_from', '2026-12-01', 'days', jsonb_build_array('mon', 'thu'),
		'experience_years', g %% 7, 'note', %s),
	(enum_range(NULL::application_status))[1 + g %% 3], (ARRAY['web', 'app', 'agent'])[1 + g %% 3],
	now(), now()
FROM generate_series(%d, %d) g`, company, note, from, to)
}

// spreadCompanies is the company_id expression spreading rows over n
// companies (1..n).
func spreadCompanies(n int) string {
	return fmt.Sprintf("1 + g %% %d", n)
}

// insert commits rows in txs transactions of (nearly) equal size.
func (b *bench) insert(ctx context.Context, name string, rows, txs int) (*Workload, error) {
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	w := &Workload{Name: name, Rows: rows, Txs: txs}
	var startLSN, endLSN pglogrepl.LSN
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(lsnScanner{&startLSN}); err != nil {
		return nil, err
	}
	start := time.Now()
	size := func(i int) int64 { // rows of transaction i
		n := int64(rows / txs)
		if i < rows%txs {
			n++
		}
		return n
	}
	var next int64 = b.rowSeq + 1
	// All but the last transaction: many per round trip (each BEGIN..COMMIT
	// is its own transaction in a multi-statement simple query).
	const perTrip = 50
	var sb strings.Builder
	flush := func() error {
		if sb.Len() == 0 {
			return nil
		}
		_, err := conn.Exec(ctx, sb.String())
		sb.Reset()
		return err
	}
	for i := 0; i < txs-1; i++ {
		n := size(i)
		sb.WriteString("BEGIN;")
		sb.WriteString(rowsSQL(next, next+n-1, spreadCompanies(b.o.Companies), b.rowNote()))
		sb.WriteString(";COMMIT;")
		next += n
		if (i+1)%perTrip == 0 {
			if err := flush(); err != nil {
				return nil, fmt.Errorf("insert %s: %w", name, err)
			}
		}
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("insert %s: %w", name, err)
	}
	// The last one alone, to learn a position inside it.
	n := size(txs - 1)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, rowsSQL(next, next+n-1, spreadCompanies(b.o.Companies), b.rowNote())); err != nil {
		tx.Rollback(ctx)
		return nil, fmt.Errorf("insert %s: %w", name, err)
	}
	if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(lsnScanner{&w.lastTxLSN}); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	w.committed = time.Now()
	next += n
	b.rowSeq = next - 1
	w.InsertSeconds = time.Since(start).Seconds()
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(lsnScanner{&endLSN}); err != nil {
		return nil, err
	}
	w.WALBytes = int64(endLSN - startLSN)
	b.res.Workloads = append(b.res.Workloads, w)
	b.logf("workload %s: %d rows in %d transactions, %s of WAL, inserted in %.1fs",
		name, rows, txs, mib(w.WALBytes), w.InsertSeconds)
	return w, nil
}

// steadyInsert commits txSize-row transactions at rate rows/s for d, each
// for one random company, from 4 connections (so that one slow commit does
// not hold the schedule back). It returns the rows committed and the 99th
// percentile of how late transactions started (ms).
func (b *bench) steadyInsert(ctx context.Context, rate, txSize int, d time.Duration) (rows int, delayP99 float64, err error) {
	const workers = 4
	type tick struct {
		from int64
		at   time.Time
	}
	ticks := make(chan tick, 1<<16)
	var (
		mu     sync.Mutex
		delays []time.Duration
		errs   []error
	)
	var wg sync.WaitGroup
	for range workers {
		conn, err := pgx.Connect(ctx, b.dsn)
		if err != nil {
			return 0, 0, err
		}
		wg.Go(func() {
			defer conn.Close(context.Background())
			for t := range ticks {
				late := time.Since(t.at)
				sql := rowsSQL(t.from, t.from+int64(txSize)-1, fmt.Sprint(1+rand.IntN(b.o.Companies)), b.rowNote())
				_, err := conn.Exec(ctx, sql)
				mu.Lock()
				delays = append(delays, late)
				if err != nil {
					errs = append(errs, err)
				} else {
					rows += txSize
				}
				mu.Unlock()
			}
		})
	}
	interval := time.Duration(float64(time.Second) * float64(txSize) / float64(rate))
	start := time.Now()
	end := start.Add(d)
	for next := start; next.Before(end) && ctx.Err() == nil; next = next.Add(interval) {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		ticks <- tick{from: b.rowSeq + 1, at: next}
		b.rowSeq += int64(txSize)
	}
	close(ticks)
	wg.Wait()
	if len(errs) > 0 {
		return rows, 0, fmt.Errorf("steady insert: %d transactions failed, first: %w", len(errs), errs[0])
	}
	if err := ctx.Err(); err != nil {
		return rows, 0, err
	}
	slices.Sort(delays)
	if len(delays) > 0 {
		delayP99 = float64(delays[(len(delays)*99+99)/100-1]) / 1e6
	}
	if delayP99 > float64(interval)/1e6 {
		b.logf("steady insert: p99 start delay %.1fms, over the %s interval: the database could not keep the rate", delayP99, interval)
	}
	return rows, delayP99, nil
}

// lsnScanner scans a pg_lsn text into a pglogrepl.LSN.
type lsnScanner struct{ l *pglogrepl.LSN }

func (s lsnScanner) Scan(src any) error {
	str, ok := src.(string)
	if !ok {
		return errors.New("lsn: not text")
	}
	l, err := pglogrepl.ParseLSN(str)
	*s.l = l
	return err
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// rowNote is the note expression of the rows inserted now: b.note, or
// defaultNote.
func (b *bench) rowNote() string {
	if b.note == "" {
		return defaultNote
	}
	return b.note
}
