package postgres_test

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// updateGolden reads the -update flag, defined by the package's internal tests.
func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func TestMain(m *testing.M) { testenv.Main(m) }

const zooDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE public.type_zoo (
	id bigint PRIMARY KEY,
	i2 smallint, i4 integer, i8 bigint,
	num numeric, f4 real, f8 double precision,
	b boolean, t text, vc varchar(20), ch char(3), u uuid,
	d date, ts timestamp, tstz timestamptz, tm time, iv interval,
	j json, jb jsonb, by bytea,
	arr_int int[], arr_text text[], arr2d int[], arr_jb jsonb[],
	m mood, arr_mood mood[], ip inet, dom posint, big text,
	hidden text
);
ALTER TABLE type_zoo ALTER COLUMN big SET STORAGE EXTERNAL;`

const zooRows = `
INSERT INTO type_zoo VALUES
 (1, 1, 2, 9007199254740993, 12345678901234567890.123456789, 1.5, 3.141592653589793,
  true, 'hello', 'varchar', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '2026-11-25', '2026-11-25 03:00:00.123456', '2026-11-25 12:00:00.5+09', '13:14:15', '1 year 2 months 3 days 04:05:06',
  '{"a": [1, 2]}', '{"b": {"c": null}}', '\x00ff10',
  '{1,2,3}', '{"a b","c\"d",NULL,"NULL",""}', '{{1,2},{3,4}}', ARRAY['{"x":1}'::jsonb, '[]'::jsonb],
  'happy', '{sad,ok}', '192.168.0.1/24', 7, 'small', 'not published'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -32768, -2147483648, -9223372036854775808, 'NaN', 'Infinity', '-Infinity',
  false, E'tab\there\nnewline "quoted" \\ back 日本語 \u2028', '', '   ', '00000000-0000-0000-0000-000000000000',
  'infinity', '-infinity', 'infinity', '00:00:00', '-1 days',
  '[]', '"string"', '', '{}', '{}', '{}', '{}', 'sad', '{}', '::1', 1, repeat('x', 100000), NULL);
UPDATE type_zoo SET i4 = 99 WHERE id = 3;
DELETE FROM type_zoo WHERE id = 2;
`

// connectorUnderTest runs a subscription and pipeline publishing to SNS.
type connectorUnderTest struct {
	cancel context.CancelFunc
	done   chan error
	pipe   *connector.Pipeline
	sub    *postgres.Subscription
}

func (c *connectorUnderTest) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("connector: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("connector did not stop")
	}
}

func startConnector(t *testing.T, dsn, topic string, tables []config.Table, emu *testenv.Emulator, opts connector.PipelineOptions) *connectorUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := testLogger(t)
	ms := compile(t, tables...)
	// What run gives the parts with the default configuration; the
	// fields opts sets win.
	d := config.Defaults()
	pub := sns.New(emu.SNS(), sns.Options{DefaultTopic: topic, RetryInitial: d.Publisher.Retry.Initial, RetryMax: d.Publisher.Retry.Max}, log)
	opts.Lanes = cmp.Or(opts.Lanes, d.Publisher.Lanes)
	opts.MaxBatch = cmp.Or(opts.MaxBatch, sns.MaxBatchEntries)
	opts.MaxInflightEvents = cmp.Or(opts.MaxInflightEvents, d.Publisher.MaxInflightEvents)
	opts.MaxInflightBytes = cmp.Or(opts.MaxInflightBytes, d.Publisher.MaxInflightBytes)
	opts.ShutdownGrace = cmp.Or(opts.ShutdownGrace, d.Publisher.ShutdownGrace)
	pipe := connector.NewPipeline(connector.NewMapper("baitoru/test", ms), pub, opts, nil, log)
	if err := dba.Prepare(ctx, dba.PrepareOptions{Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", Create: true, Mappings: ms}, log); err != nil {
		t.Fatal(err)
	}
	sub := postgres.New(postgres.Options{
		DSN: dsn, Pool: newPool(t, dsn), Slot: "cdc", Publication: "cdc", Mappings: ms, ShutdownGrace: d.Publisher.ShutdownGrace, Acked: pipe.Acked,
		StatusInterval: 200 * time.Millisecond, ReconnectInitial: 100 * time.Millisecond, ReconnectMax: time.Second,
	}, pipe.Handle, log)
	c := &connectorUnderTest{cancel: cancel, done: make(chan error, 1), pipe: pipe, sub: sub}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- pipe.Run(ctx) }()
	go func() {
		defer wg.Done()
		err := sub.Run(ctx)
		if err != nil {
			cancel()
		}
		errs <- err
	}()
	go func() {
		wg.Wait()
		close(errs)
		var first error
		for err := range errs {
			if err != nil && first == nil {
				first = err
			}
		}
		c.done <- first
	}()
	t.Cleanup(func() { cancel() })
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func exec(t *testing.T, dsn string, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range sqls {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// pipe sets up a topic with a raw-delivery queue subscribed.
func pipeTopic(t *testing.T, emu *testenv.Emulator, fifo bool) (topicARN, queueURL string) {
	t.Helper()
	ctx := context.Background()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	name = fmt.Sprintf("%s-%d", strings.Trim(name, "-"), time.Now().UnixNano()%1e6)
	if fifo {
		name += ".fifo"
	}
	topicARN, err := emu.CreateTopic(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	queueURL, queueARN, err := emu.CreateQueue(ctx, name, testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Subscribe(ctx, topicARN, queueARN, true); err != nil {
		t.Fatal(err)
	}
	return topicARN, queueURL
}

var zooColumns = []string{"id", "i2", "i4", "i8", "num", "f4", "f8", "b", "t", "vc", "ch", "u", "d", "ts", "tstz", "tm", "iv",
	"j", "jb", "by", "arr_int", "arr_text", "arr2d", "arr_jb", "m", "arr_mood", "ip", "dom", "big"}

func zooMapping() config.Table {
	tb := config.Table{Table: "public.type_zoo", Operations: []string{"insert", "update", "delete"}, Key: []string{"id"},
		Attributes: []config.Attribute{{Column: "i4", Name: "i4", Type: "Number"}, {Column: "m", Name: "mood"}}}
	for _, c := range zooColumns {
		col := config.Column{Column: c}
		if c == "by" {
			col.Rename = "bytes"
		}
		tb.Columns = append(tb.Columns, col)
	}
	return tb
}

// TestStreamAllTypes streams every supported column type, an unchanged
// TOAST value and a key-only delete through SNS into SQS and compares the
// received events with golden files.
func TestStreamAllTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	testStreamAllTypes(t, testenv.PG(t))
}

// testStreamAllTypes is TestStreamAllTypes on pg's server (the version
// suite runs it on every version: the events must be the same).
func testStreamAllTypes(t *testing.T, pg *testenv.Postgres) {
	emu := testenv.Emu(t)
	dsn := pg.NewDatabase(t)
	exec(t, dsn, zooDDL)
	topic, queue := pipeTopic(t, emu, false)
	c := startConnector(t, dsn, topic, []config.Table{zooMapping()}, emu, connector.PipelineOptions{})
	waitStreaming(t, c)
	exec(t, dsn, zooRows)

	msgs, err := emu.ReceiveAll(context.Background(), queue, 5, 30*time.Second)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("received %d messages, want 5 (%v)", len(msgs), err)
	}
	var events []map[string]any
	for _, m := range msgs {
		var ev map[string]any
		dec := json.NewDecoder(strings.NewReader(*m.Body))
		dec.UseNumber()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, *m.Body)
		}
		attrs := map[string]string{}
		for k, v := range m.MessageAttributes {
			attrs[k] = *v.DataType + ":" + *v.StringValue
		}
		ev["_attributes"] = attrs
		events = append(events, ev)
	}
	got := normalize(t, events)
	golden(t, filepath.Join("testdata", "stream", "all_types", "events.json"), got)
	c.stop(t)
}

// normalize replaces run-dependent fields (LSN, xid, commit time) with
// placeholders, checking their shape, and orders events by id.
func normalize(t *testing.T, events []map[string]any) []byte {
	t.Helper()
	lsnRE := regexp.MustCompile(`^[0-9A-F]+/[0-9A-F]+$`)
	sort.Slice(events, func(i, j int) bool {
		a, b := events[i]["id"].(string), events[j]["id"].(string)
		return lsnKey(a) < lsnKey(b)
	})
	commits := map[string]string{}
	for _, ev := range events {
		lsn, _ := ev["lsn"].(string)
		if !lsnRE.MatchString(lsn) {
			t.Fatalf("lsn %q is not an LSN", lsn)
		}
		if _, ok := commits[lsn]; !ok {
			commits[lsn] = fmt.Sprintf("TX%d", len(commits)+1)
		}
		id, _ := ev["id"].(string)
		if !strings.HasPrefix(id, lsn+"-") {
			t.Fatalf("id %q does not start with commit LSN %s", id, lsn)
		}
		ev["id"] = commits[lsn] + strings.TrimPrefix(id, lsn)
		ev["lsn"] = commits[lsn]
		if _, err := time.Parse(time.RFC3339Nano, ev["time"].(string)); err != nil {
			t.Fatalf("time %q: %v", ev["time"], err)
		}
		ev["time"] = "TIME"
		ev["xid"] = "XID"
		if d, ok := ev["data"].(map[string]any); ok {
			if s, ok := d["big"].(string); ok && len(s) > 40 {
				d["big"] = fmt.Sprintf("%s... (%d bytes)", s[:10], len(s))
			}
		}
	}
	out, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lsnKey(id string) string {
	lsn, seq, _ := strings.Cut(id, "-")
	hi, lo, _ := strings.Cut(lsn, "/")
	return fmt.Sprintf("%08s/%08s-%06s", hi, lo, seq)
}

func waitStreaming(t *testing.T, c *connectorUnderTest) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !c.sub.Streaming() {
		select {
		case err := <-c.done:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("connector did not start streaming")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updateGolden() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(string(got)) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// drain collects want distinct events from the queue and fails the test
// on an event re-sent with a different body.
func drain(t *testing.T, emu *testenv.Emulator, queueURL string, want int, timeout time.Duration) (bodies []string, byID map[string]string) {
	t.Helper()
	c, err := emu.Collect(context.Background(), queueURL, want, timeout)
	if err != nil {
		t.Error(err)
	}
	if len(c.Conflicts) > 0 {
		t.Errorf("events re-sent with a different body: %v", c.Conflicts)
	}
	return c.Bodies, c.ByID
}

const appsDDL = `
CREATE TABLE public.apps (
	application_id bigint PRIMARY KEY,
	company_id bigint NOT NULL,
	applicant_email text,
	answers jsonb,
	applied_at timestamptz NOT NULL DEFAULT now()
);`

func appsMapping() config.Table {
	return config.Table{Table: "public.apps", Key: []string{"company_id"},
		Columns:    []config.Column{{Column: "application_id"}, {Column: "company_id"}, {Column: "answers"}},
		Attributes: []config.Attribute{{Column: "company_id", Name: "company_id", Type: "Number"}}}
}

// checkApps asserts that every application id in [1, n] arrived once as an
// event whose data matches what was inserted.
func checkApps(t *testing.T, byID map[string]string, n int) {
	t.Helper()
	seen := make(map[int64]string, n)
	for id, body := range byID {
		var ev struct {
			Data struct {
				ApplicationID int64           `json:"application_id"`
				CompanyID     int64           `json:"company_id"`
				Answers       json.RawMessage `json:"answers"`
			}
			Subject string
		}
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatalf("bad body: %v", err)
		}
		a := ev.Data.ApplicationID
		if prev, dup := seen[a]; dup {
			t.Fatalf("application %d published under two ids: %s and %s", a, prev, id)
		}
		seen[a] = id
		if ev.Data.CompanyID != a%97 || ev.Subject != fmt.Sprint(a%97) || string(ev.Data.Answers) != fmt.Sprintf(`{"n":%d}`, a) {
			t.Fatalf("event %s does not match row %d: %s", id, a, body)
		}
	}
	var missing []int64
	for a := int64(1); a <= int64(n); a++ {
		if _, ok := seen[a]; !ok {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d rows never arrived (first: %v)", len(missing), n, missing[:min(10, len(missing))])
	}
}

func insertApps(from, to int) string {
	return fmt.Sprintf(`INSERT INTO apps (application_id, company_id, answers)
		SELECT g, g %% 97, jsonb_build_object('n', g) FROM generate_series(%d, %d) g`, from, to)
}

// TestStreamLargeTransactionAndMany streams one transaction of 50,000 rows
// and 250 small transactions, with a small in-flight window so memory stays
// bounded, and checks every row arrived exactly as inserted.
func TestStreamLargeTransactionAndMany(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg, emu := testenv.PG(t), testenv.Emu(t)
	dsn := pg.NewDatabase(t)
	exec(t, dsn, appsDDL)
	topic, queue := pipeTopic(t, emu, false)
	c := startConnector(t, dsn, topic, []config.Table{appsMapping()}, emu, connector.PipelineOptions{MaxInflightEvents: 2000})
	waitStreaming(t, c)

	const big = 50000
	exec(t, dsn, insertApps(1, big))
	for i := 0; i < 250; i++ {
		exec(t, dsn, insertApps(big+1+i*4, big+4+i*4))
	}
	n := big + 1000
	// SNS accepted everything once the slot is confirmed up to the last
	// commit; only then is a row missing from the queue lost (a busy
	// machine only makes the wait longer).
	waitConfirmedWithin(t, dsn, c, 15*time.Minute)
	got, err := emu.CollectAll(context.Background(), queue, 5*time.Second, 5*time.Minute)
	if err != nil {
		t.Error(err)
	}
	if len(got.Conflicts) > 0 {
		t.Errorf("events re-sent with a different body: %v", got.Conflicts)
	}
	checkApps(t, got.ByID, n)
	c.stop(t)
}

// waitConfirmed waits until the slot's confirmed_flush_lsn reaches the
// current WAL position, i.e. the connector acknowledged everything.
func waitConfirmed(t *testing.T, dsn string, c *connectorUnderTest) {
	t.Helper()
	waitConfirmedWithin(t, dsn, c, 30*time.Second)
}

// waitConfirmedWithin is waitConfirmed with its own deadline.
func waitConfirmedWithin(t *testing.T, dsn string, c *connectorUnderTest, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var target string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'`, target).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot did not confirm %s (pipeline acked %s)", target, c.pipe.Acked())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStreamSurvivesPostgresRestart restarts PostgreSQL (fast and
// immediate) while rows are written and streamed; the connector reconnects
// with backoff and every committed row arrives.
func TestStreamSurvivesPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			pg := testenv.OwnPG(t, testenv.PostgresOptions{})
			emu := testenv.Emu(t)
			dsn := pg.NewDatabase(t)
			exec(t, dsn, appsDDL)
			topic, queue := pipeTopic(t, emu, false)
			c := startConnector(t, dsn, topic, []config.Table{appsMapping()}, emu, connector.PipelineOptions{})
			waitStreaming(t, c)

			next := 1
			write := func(txs int) {
				for i := 0; i < txs; i++ {
					exec(t, dsn, insertApps(next, next+99))
					next += 100
				}
			}
			write(20)
			if err := pg.Stop(mode); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
			write(20)
			deadline := time.Now().Add(30 * time.Second)
			for !c.sub.Streaming() && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			write(10)
			_, byID := drain(t, emu, queue, next-1, 2*time.Minute)
			checkApps(t, byID, next-1)
			c.stop(t)
		})
	}
}
