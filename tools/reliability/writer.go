package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// companies is the number of Baitoru companies the writer spreads rows
// over (company ids 1..companies); see links for which are linked.
const companies = 6

// writer commits transactions of applications rows, one after the other,
// on one connection, reconnecting when the database goes away. Commits are
// sequential, so application ids grow in commit order and "every row
// committed before time T" is "every id up to lastID(T)".
type writer struct {
	dsn       string
	rowsPerTx int
	interval  time.Duration

	mu      sync.Mutex
	marks   []commitMark // every commit, in order
	errors  int
	lastErr error
}

type commitMark struct {
	at     time.Time
	lastID int64
}

// run writes until ctx ends.
func (w *writer) run(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	company := 0
	for ctx.Err() == nil {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.Connect(cctx, w.dsn)
			cancel()
			if err != nil {
				w.fail(err)
				sleepCtx(ctx, 200*time.Millisecond)
				continue
			}
			conn = c
		}
		// One statement: one transaction of rowsPerTx rows, companies in
		// turn.
		var last int64
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := conn.QueryRow(qctx, `WITH ins AS (
			INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers)
			SELECT ((g + $1) % $2) + 1, 100 + g, 'Reliability ' || g, 'r' || g || '@example.jp', jsonb_build_object('n', g)
			FROM generate_series(1, $3) g
			RETURNING application_id)
			SELECT max(application_id) FROM ins`, company, companies, w.rowsPerTx).Scan(&last)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The commit may or may not have happened: the database is
			// the truth, read at the end.
			w.fail(err)
			conn.Close(context.Background())
			conn = nil
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		company = (company + w.rowsPerTx) % companies
		w.mu.Lock()
		w.marks = append(w.marks, commitMark{at: time.Now(), lastID: last})
		w.mu.Unlock()
		sleepCtx(ctx, w.interval)
	}
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	w.errors++
	w.lastErr = err
	w.mu.Unlock()
}

// firstIDAfter is the highest application id of the first commit that
// returned after t, or the last id when none did.
func (w *writer) firstIDAfter(t time.Time) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var id int64
	for _, m := range w.marks {
		id = m.lastID
		if m.at.After(t) {
			break
		}
	}
	return id
}

// stats returns the number of commits and of failed attempts.
func (w *writer) stats() (commits, errors int, last error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.marks), w.errors, w.lastErr
}

func (w *writer) String() string {
	c, e, _ := w.stats()
	return fmt.Sprintf("%d commits, %d failed attempts", c, e)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
