package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// largeTx is the size of TestLargeTransactionUnderMemoryCap's transaction
// (its rows' bytes): lean in make test, 1GiB in make reliability
// (go test ./cmd/baitoru-cdc -run TestLargeTransactionUnderMemoryCap -args -large-tx=1GiB).
var largeTx = flag.String("large-tx", "64MiB", "size of the transaction of TestLargeTransactionUnderMemoryCap (e.g. 1GiB)")

// The memory bounds of the connector under test.
const (
	largeTxInflight = 8 << 20 // publisher.max_inflight_bytes
	largeTxStream   = 1 << 20 // source.stream_memory_bytes
	largeTxRowBytes = 1024    // bytes of one row's pad
	// largeTxMaxRSS bounds the connector's peak RSS, whatever the size of
	// the transaction (the target of make bench, item 5 and 7).
	largeTxMaxRSS = 64 << 20
)

// TestLargeTransactionUnderMemoryCap: a transaction larger than the
// connector's memory bounds (source.stream_memory_bytes,
// publisher.max_inflight_bytes) is streamed to it before its commit
// (source.streaming, logical_decoding_work_mem at 64kB): the connector
// spills it to its file (seen growing past the memory bound among the
// process's open files), publishes nothing of it before the commit, then
// every event exactly once; its peak RSS stays under 64 MiB and under the
// transaction's size; and the slot's confirmed position never covers the
// commit before the last of its events was written.
func TestLargeTransactionUnderMemoryCap(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	size, err := config.ParseByteSize(*largeTx)
	if err != nil || size < 4*largeTxStream {
		t.Fatalf("-large-tx %q: want a byte size of at least 4MiB (%v)", *largeTx, err)
	}
	rows := int(size / largeTxRowBytes)
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE big (id bigint PRIMARY KEY, pad text NOT NULL)`)
	testenv.MustExec(t, dsn, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET logical_decoding_work_mem = ''64kB''', current_database()); END $$`)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `source:
  dsn: %s
  slot: cdc
  publication: cdc
  status_interval: 100ms
  streaming: true
  stream_memory_bytes: %d
publisher:
  kind: stdout
  max_inflight_bytes: %d
log:
  format: json
tables:
  - table: public.big
    columns:
      - column: id
      - column: pad
`, dsn, largeTxStream, largeTxInflight), 0o600); err != nil {
		t.Fatal(err)
	}
	spillDir := t.TempDir()
	out := newEventCounter()
	p, err := child.Start(child.Spec{Name: "baitoru-cdc run", Path: buildBinary(t), Args: []string{"run", "--config", cfg},
		Env: child.Env("TMPDIR=" + spillDir), Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("connector output:\n%s", p.Tail(40))
		}
	})
	if err := p.WaitOutput(`"msg":"streaming"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	admin, writer := connectT(t, dsn), connectT(t, dsn)
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// In chunks, watching the spill file between them.
	var spilled int64
	const chunk = 8192
	for from := 1; from <= rows; from += chunk {
		to := min(from+chunk-1, rows)
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO big SELECT g, repeat(md5(g::text), %d) FROM generate_series(%d, %d) g`, largeTxRowBytes/32, from, to)); err != nil {
			t.Fatal(err)
		}
		spilled = max(spilled, spillBytes(p.Pid(), spillDir))
	}
	var inTx pglogrepl.LSN
	if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&inTx); err != nil {
		t.Fatal(err)
	}
	// Before the commit: streamed, spilled past the memory bound, nothing
	// published.
	deadline := time.Now().Add(2 * time.Minute)
	for spilled <= largeTxStream {
		if time.Now().After(deadline) {
			t.Fatalf("the connector's spill file reached %d bytes, not past source.stream_memory_bytes (%d): the transaction was not streamed to it", spilled, largeTxStream)
		}
		time.Sleep(50 * time.Millisecond)
		spilled = max(spilled, spillBytes(p.Pid(), spillDir))
	}
	if n := streamTxns(t, admin); n == 0 {
		t.Fatal("pg_stat_replication_slots.stream_txns is 0: nothing was streamed")
	}
	if n, _ := out.counts(); n > 0 {
		t.Fatalf("%d events published before the commit", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()

	// Until the slot confirmed the commit: whenever its confirmed position
	// covers the transaction, every event of it was already written.
	early := 0
	deadline = time.Now().Add(5*time.Minute + time.Duration(rows/2000)*time.Second)
	for {
		var confirmed pglogrepl.LSN
		if err := admin.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'`).Scan(&confirmed); err != nil {
			t.Fatal(err)
		}
		n, _ := out.counts()
		if confirmed > inTx {
			if n < rows {
				early++
				t.Errorf("the slot confirmed %s, past the transaction, when %d of its %d events were written", confirmed, n, rows)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d events written, the slot confirmed %s (the transaction is before %s)", time.Since(committed).Round(time.Second), n, rows, confirmed, inTx)
		}
		select {
		case <-p.Done():
			t.Fatalf("the connector exited: %v", p.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	rss := statusBytes(t, p.Pid(), "VmHWM")
	n, dups := out.counts()
	t.Logf("%d rows (%d MiB) in one transaction: spill file %.1f MiB, connector peak RSS %.1f MiB, commit → confirmed %s",
		rows, size>>20, float64(spilled)/(1<<20), float64(rss)/(1<<20), time.Since(committed).Round(10*time.Millisecond))
	if n != rows || dups != 0 {
		t.Errorf("%d distinct events, %d written twice; want %d, each once", n, dups, rows)
	}
	if rss > largeTxMaxRSS || rss > size {
		t.Errorf("connector peak RSS %.1f MiB for a %d MiB transaction: over %d MiB or over the transaction's size (is it held in memory?)",
			float64(rss)/(1<<20), size>>20, largeTxMaxRSS>>20)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the connector did not stop after SIGTERM")
	}
}

func connectT(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func streamTxns(t *testing.T, conn *pgx.Conn) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name = 'cdc'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// spillBytes is the size of the open files of process pid in dir (the
// spill files are unlinked when made: they are found among its open files).
func spillBytes(pid int, dir string) int64 {
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fds)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fds, e.Name()))
		if err != nil || !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(fds, e.Name())); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// statusBytes reads a "kB" field of /proc/<pid>/status, in bytes.
func statusBytes(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// eventCounter is the stdout publisher's output: it counts the distinct
// event ids and those written more than once, keeping nothing else.
type eventCounter struct {
	mu      sync.Mutex
	seen    map[string]bool
	dups    int
	partial []byte
}

func newEventCounter() *eventCounter { return &eventCounter{seen: map[string]bool{}} }

func (c *eventCounter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, b...)
	for {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			break
		}
		data = rest
		_, after, found := bytes.Cut(line, []byte(`"id":"`))
		id, _, closed := bytes.Cut(after, []byte(`"`))
		if !found || !closed {
			continue
		}
		if c.seen[string(id)] {
			c.dups++
		} else {
			c.seen[string(id)] = true
		}
	}
	c.partial = append(c.partial[:0], data...)
	return len(b), nil
}

// counts returns the distinct events and the re-written ones.
func (c *eventCounter) counts() (distinct, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.dups
}
