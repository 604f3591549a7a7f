package dba_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestWaitVisible: the watch waits for a transaction the stream decoded
// until its own snapshots see it: not while it is open, at once after it
// ended (committed or rolled back), and not at all for xid 0.
func TestWaitVisible(t *testing.T) {
	integration(t)
	dsn := testenv.PG(t).NewDatabase(t)
	ctx := context.Background()
	writer := connect(t, dsn)
	for _, end := range []string{"COMMIT", "ROLLBACK"} {
		t.Run(end, func(t *testing.T) {
			if _, err := writer.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			var full int64
			if err := writer.QueryRow(ctx, "SELECT txid_current()").Scan(&full); err != nil {
				t.Fatal(err)
			}
			xid := uint32(full)      // the stream's 32-bit id
			watch := connect(t, dsn) // closed by pgx at the deadline
			if _, open, err := dba.OpenTransactions(ctx, watch); err != nil || !slices.Contains(open, xid) {
				t.Fatalf("open transactions %v (%v), want %d among them", open, err, xid)
			}
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err := dba.WaitVisible(short, watch, xid)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("open transaction %d: err = %v, want it to wait until the deadline", xid, err)
			}
			if _, err := writer.Exec(ctx, end); err != nil {
				t.Fatal(err)
			}
			if err := dba.WaitVisible(ctx, connect(t, dsn), xid); err != nil {
				t.Fatalf("ended transaction %d: %v", xid, err)
			}
		})
	}
	if err := dba.WaitVisible(ctx, writer, 0); err != nil {
		t.Fatalf("xid 0: %v", err)
	}
}
