package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestRunStreamedSIGKILL: with source.streaming, the connector process is
// killed (SIGKILL) while a large transaction is streamed to it, before its
// commit; started again, it receives the transaction again from its start
// (the slot's stream_txns counts it a second time) and every row reaches
// the queue, a re-sent event with the same id and body.
func TestRunStreamedSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := newE2E(t, testenv.PG(t))
	// The minimum, so that a transaction of a few hundred rows streams.
	testenv.MustExec(t, e.dsn, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET logical_decoding_work_mem = ''64kB''', current_database()); END $$`)
	env := []string{"BAITORU_CDC_SOURCE_STREAMING=true"}
	p := startProcEnv(t, env, "run", "--config", e.config)
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	streamed := func() int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name = 'cdc'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	writer, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(ctx)
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, insertApps(1, 1500)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for streamed() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the transaction was not streamed before its commit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait(t, 10*time.Second)
	if _, err := tx.Exec(ctx, insertApps(1501, 2000)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	p = startProcEnv(t, env, "run", "--config", e.config)
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	c, err := e.emu.Collect(ctx, e.queue, 2000, 2*time.Minute)
	if err != nil {
		t.Error(err)
	}
	checkApps(t, c, 2000)
	if n := streamed(); n < 2 {
		t.Errorf("stream_txns %d: the transaction was not streamed again after the restart", n)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.output())
	}
}
