package testenv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (needs PostgreSQL and the emulator); run without -short")
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func queryString(t *testing.T, dsn, sql string, args ...any) string {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestMissingDependencies(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Setenv("BAITORU_PG_BINDIR", t.TempDir())
		_, err := testenv.StartPostgres(testenv.PostgresOptions{})
		if err == nil || !strings.Contains(err.Error(), "apt-get install -y postgresql-15") {
			t.Fatalf("err = %v, want install hint", err)
		}
	})
	t.Run("emulator", func(t *testing.T) {
		_, err := testenv.StartEmulator(testenv.EmulatorOptions{Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "make deps") {
			t.Fatalf("err = %v, want install hint", err)
		}
	})
}

func TestModuleRoot(t *testing.T) {
	root := testenv.ModuleRoot()
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv", "testenv.go")); err != nil {
		t.Fatalf("ModuleRoot() = %q: %v", root, err)
	}
}

func TestPostgresLogical(t *testing.T) {
	integration(t)
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)

	if got := queryString(t, dsn, "SHOW wal_level"); got != "logical" {
		t.Fatalf("wal_level = %s, want logical", got)
	}
	if got := queryString(t, dsn, "SELECT current_user"); got != "postgres" {
		t.Fatalf("current_user = %s, want postgres", got)
	}
	// A slot cannot be created in a transaction that wrote: separate calls.
	testenv.MustExec(t, dsn, `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t`)
	testenv.MustExec(t, dsn, `SELECT pg_create_logical_replication_slot('s', 'pgoutput')`)
	testenv.MustExec(t, dsn, `INSERT INTO t VALUES (1, 'a')`)
	// The insert is decodable through the slot.
	n := queryString(t, dsn, `SELECT count(*)::text FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL,
		'proto_version', '1', 'publication_names', 'p')`)
	if n == "0" {
		t.Fatal("slot s decoded no changes after an insert")
	}

	// A replication connection is accepted (pg_hba replication line).
	ctx := ctxT(t, 30*time.Second)
	rc, err := pgconn.Connect(ctx, dsn+"&replication=database")
	if err != nil {
		t.Fatalf("replication connect: %v", err)
	}
	defer rc.Close(context.Background())
	res, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("IDENTIFY_SYSTEM: %v %v", res, err)
	}
}

// startStreaming makes slot active by starting logical replication on a
// replication connection, which is left open.
func startStreaming(t *testing.T, dsn, slot, publication string) *pgconn.PgConn {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	rc, err := pgconn.Connect(ctx, dsn+"&replication=database")
	if err != nil {
		t.Fatalf("replication connect: %v", err)
	}
	rc.Frontend().Send(&pgproto3.Query{String: fmt.Sprintf(
		"START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names '%s')", slot, publication)})
	if err := rc.Frontend().Flush(); err != nil {
		t.Fatalf("start replication: %v", err)
	}
	msg, err := rc.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("start replication: %v", err)
	}
	if _, ok := msg.(*pgproto3.CopyBothResponse); !ok {
		t.Fatalf("start replication: got %T, want CopyBothResponse", msg)
	}
	return rc
}

func TestNewDatabaseCleanup(t *testing.T) {
	integration(t)
	pg := testenv.PG(t)
	var name string
	t.Run("Inner/Name With Spaces", func(t *testing.T) {
		dsn := pg.NewDatabase(t)
		name = queryString(t, dsn, "SELECT current_database()")
		if !strings.HasPrefix(name, "testnewdatabasecleanup_inner_name_with_spaces_") {
			t.Errorf("database name %q not derived from the test name", name)
		}
		testenv.MustExec(t, dsn, `CREATE TABLE t (id int); CREATE PUBLICATION p FOR TABLE t`)
		testenv.MustExec(t, dsn, `SELECT pg_create_logical_replication_slot('active_slot', 'pgoutput');
			SELECT pg_create_logical_replication_slot('idle_slot', 'pgoutput')`)
		startStreaming(t, dsn, "active_slot", "p") // left streaming: cleanup must end it
		if got := queryString(t, dsn, "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'active_slot'"); got != "true" {
			t.Fatalf("active_slot active = %s, want true", got)
		}
	})
	if name == "" {
		t.Fatal("subtest did not run")
	}
	admin := pg.DSN("postgres")
	if got := queryString(t, admin, "SELECT count(*)::text FROM pg_database WHERE datname = $1", name); got != "0" {
		t.Errorf("database %s still exists after cleanup", name)
	}
	if got := queryString(t, admin, "SELECT count(*)::text FROM pg_replication_slots WHERE database = $1", name); got != "0" {
		t.Errorf("%s slots of %s left after cleanup", got, name)
	}
}

func TestPostgresStopStart(t *testing.T) {
	integration(t)
	pg := testenv.OwnPG(t, testenv.PostgresOptions{})
	dsn := pg.NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE t (id int PRIMARY KEY)`)
	testenv.MustExec(t, dsn, `SELECT pg_create_logical_replication_slot('s', 'pgoutput')`)
	for i, mode := range []string{"fast", "immediate"} {
		testenv.MustExec(t, dsn, "INSERT INTO t VALUES ($1)", i)
		start := time.Now()
		if err := pg.Stop(mode); err != nil {
			t.Fatalf("stop %s: %v", mode, err)
		}
		stopped := time.Since(start)
		if err := testenv.Exec(ctxT(t, 5*time.Second), dsn, "SELECT 1"); err == nil {
			t.Fatalf("after stop %s: query succeeded", mode)
		}
		start = time.Now()
		if err := pg.Start(); err != nil {
			t.Fatalf("start after %s stop: %v", mode, err)
		}
		t.Logf("stop %s took %v, restart %v", mode, stopped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if got, want := queryString(t, dsn, "SELECT count(*)::text FROM t"), fmt.Sprint(i+1); got != want {
			t.Fatalf("after %s restart: %s rows, want %s", mode, got, want)
		}
		if got := queryString(t, dsn, "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = 's'"); got != "1" {
			t.Fatalf("after %s restart: slot s missing", mode)
		}
	}
	if err := pg.Stop("sideways"); err == nil {
		t.Fatal("Stop with an unknown mode succeeded")
	}
}

func TestPostgresSettings(t *testing.T) {
	integration(t)
	pg := testenv.OwnPG(t, testenv.PostgresOptions{Settings: map[string]string{
		"wal_level":              "replica",
		"max_slot_wal_keep_size": "1MB",
	}})
	dsn := pg.DSN("postgres")
	if got := queryString(t, dsn, "SHOW wal_level"); got != "replica" {
		t.Fatalf("wal_level = %s, want replica", got)
	}
	if got := queryString(t, dsn, "SHOW max_slot_wal_keep_size"); got != "1MB" {
		t.Fatalf("max_slot_wal_keep_size = %s, want 1MB", got)
	}
	err := testenv.Exec(ctxT(t, 10*time.Second), dsn, "SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
	if err == nil || !strings.Contains(err.Error(), "wal_level") {
		t.Fatalf("creating a logical slot with wal_level=replica: err = %v, want a wal_level error", err)
	}
}

func TestPostgresBadSettingReportsLog(t *testing.T) {
	integration(t)
	_, err := testenv.StartPostgres(testenv.PostgresOptions{Settings: map[string]string{"wal_level": "nonsense"}})
	if err == nil || !strings.Contains(err.Error(), "wal_level") {
		t.Fatalf("err = %v, want the server log naming wal_level", err)
	}
}

// newPipe creates a topic, a queue and a subscription with unique names.
func newPipe(t *testing.T, emu *testenv.Emulator, fifo, raw bool) (topicARN, queueURL string) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "-")
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
	if err := emu.Subscribe(ctx, topicARN, queueARN, raw); err != nil {
		t.Fatal(err)
	}
	return topicARN, queueURL
}

func bodies(ms []sqstypes.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, aws.ToString(m.Body))
	}
	sort.Strings(out)
	return out
}

func TestEmulatorDelivery(t *testing.T) {
	integration(t)
	emu := testenv.Emu(t)
	for _, raw := range []bool{true, false} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			topic, queue := newPipe(t, emu, false, raw)
			body := `{"specversion":"1.0","id":"0/16B3748-1"}`
			_, err := emu.SNS().Publish(ctx, &sns.PublishInput{
				TopicArn: aws.String(topic),
				Message:  aws.String(body),
				MessageAttributes: map[string]snstypes.MessageAttributeValue{
					"table": {DataType: aws.String("String"), StringValue: aws.String("public.applications")},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := emu.ReceiveAll(ctx, queue, 1, 10*time.Second)
			if err != nil || len(got) != 1 {
				t.Fatalf("received %d messages (%v), want 1", len(got), err)
			}
			if raw {
				if b := aws.ToString(got[0].Body); b != body {
					t.Errorf("body = %s, want %s", b, body)
				}
				if a := got[0].MessageAttributes["table"]; aws.ToString(a.StringValue) != "public.applications" {
					t.Errorf("message attribute table = %+v", a)
				}
			} else {
				var env struct{ Type, Message, TopicArn string }
				if err := json.Unmarshal([]byte(aws.ToString(got[0].Body)), &env); err != nil {
					t.Fatalf("envelope: %v", err)
				}
				if env.Type != "Notification" || env.Message != body || env.TopicArn != topic {
					t.Errorf("envelope = %+v", env)
				}
			}
			// Received messages were deleted.
			if more, err := emu.ReceiveAll(ctx, queue, 0, 1500*time.Millisecond); err != nil || len(more) != 0 {
				t.Errorf("queue not empty after ReceiveAll: %d (%v)", len(more), err)
			}
		})
	}
}

func TestEmulatorPublishBatch(t *testing.T) {
	integration(t)
	emu := testenv.Emu(t)
	ctx := ctxT(t, 60*time.Second)
	topic, queue := newPipe(t, emu, false, true)
	var entries []snstypes.PublishBatchRequestEntry
	var want []string
	for i := range 10 {
		b := fmt.Sprintf(`{"n":%d}`, i)
		want = append(want, b)
		entries = append(entries, snstypes.PublishBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), Message: aws.String(b)})
	}
	out, err := emu.SNS().PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: aws.String(topic), PublishBatchRequestEntries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 10 || len(out.Failed) != 0 {
		t.Fatalf("PublishBatch: %d successful, %d failed", len(out.Successful), len(out.Failed))
	}
	got, err := emu.ReceiveAll(ctx, queue, 10, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	if g := bodies(got); strings.Join(g, ",") != strings.Join(want, ",") {
		t.Fatalf("received %v, want %v", g, want)
	}
	// An 11-entry batch is refused, as by AWS.
	entries = append(entries, snstypes.PublishBatchRequestEntry{Id: aws.String("10"), Message: aws.String("x")})
	if _, err := emu.SNS().PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: aws.String(topic), PublishBatchRequestEntries: entries}); err == nil {
		t.Error("PublishBatch of 11 entries accepted")
	}
}

func TestEmulatorFIFODedup(t *testing.T) {
	integration(t)
	emu := testenv.Emu(t)
	ctx := ctxT(t, 60*time.Second)
	topic, queue := newPipe(t, emu, true, true)
	publish := func(body, dedup string) {
		t.Helper()
		_, err := emu.SNS().Publish(ctx, &sns.PublishInput{
			TopicArn:               aws.String(topic),
			Message:                aws.String(body),
			MessageGroupId:         aws.String("public.applications"),
			MessageDeduplicationId: aws.String(dedup),
		})
		if err != nil {
			t.Fatalf("publish %s: %v", body, err)
		}
	}
	publish("first", "0/16B3748-1")
	publish("resent", "0/16B3748-1") // same event id: dropped
	publish("second", "0/16B3748-2")
	// Batch with a repeated id, as after a connector restart.
	_, err := emu.SNS().PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: aws.String(topic), PublishBatchRequestEntries: []snstypes.PublishBatchRequestEntry{
		{Id: aws.String("a"), Message: aws.String("resent2"), MessageGroupId: aws.String("public.applications"), MessageDeduplicationId: aws.String("0/16B3748-2")},
		{Id: aws.String("b"), Message: aws.String("third"), MessageGroupId: aws.String("public.applications"), MessageDeduplicationId: aws.String("0/16B3748-3")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// FIFO: one in-flight message per group, and ReceiveAll deletes as it
	// goes, so the order is the publish order.
	got, err := emu.ReceiveAll(ctx, queue, 3, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := emu.ReceiveAll(ctx, queue, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, extra...)
	var order []string
	for _, m := range got {
		order = append(order, aws.ToString(m.Body))
	}
	if g := strings.Join(order, ","); g != "first,second,third" {
		t.Fatalf("received %s, want first,second,third (duplicates dropped)", g)
	}
}

func TestEmulatorDLQ(t *testing.T) {
	integration(t)
	emu := testenv.Emu(t)
	ctx := ctxT(t, 60*time.Second)
	dlqURL, dlqARN, err := emu.CreateQueue(ctx, "TestEmulatorDLQ-dlq", testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url, _, err := emu.CreateQueue(ctx, "TestEmulatorDLQ", testenv.QueueOptions{DLQArn: dlqARN, MaxReceiveCount: 2, VisibilityTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.SQS().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	// Receive without deleting, as a failing consumer would.
	for i := 1; i <= 2; i++ {
		out, err := emu.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), WaitTimeSeconds: 3,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("receive %d: %d messages (%v)", i, len(out.Messages), err)
		}
		if c := out.Messages[0].Attributes["ApproximateReceiveCount"]; c != fmt.Sprint(i) {
			t.Fatalf("receive %d: ApproximateReceiveCount = %s", i, c)
		}
	}
	// The next receive past maxReceiveCount moves it to the DLQ, as in AWS.
	if rest, err := emu.ReceiveAll(ctx, url, 0, 2500*time.Millisecond); err != nil || len(rest) != 0 {
		t.Fatalf("source queue delivered %v (%v) after maxReceiveCount", bodies(rest), err)
	}
	got, err := emu.ReceiveAll(ctx, dlqURL, 1, 5*time.Second)
	if err != nil || len(got) != 1 || aws.ToString(got[0].Body) != "poison" {
		t.Fatalf("DLQ received %v (%v), want the poison message", bodies(got), err)
	}
}

func TestEmulatorStopStart(t *testing.T) {
	integration(t)
	emu := testenv.OwnEmu(t, testenv.EmulatorOptions{})
	ctx := ctxT(t, 90*time.Second)
	topic, queue := newPipe(t, emu, false, true)
	publish := func(body string) error {
		_, err := emu.SNS().Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String(body)})
		return err
	}
	if err := publish("before"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(start)
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := emu.SNS().Publish(shortCtx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String("during")},
		func(o *sns.Options) { o.RetryMaxAttempts = 1 })
	cancel()
	if err == nil {
		t.Fatal("publish while stopped succeeded")
	}
	start = time.Now()
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("emulator stop took %v, restart %v", stopped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// The topic, subscription and queued message survived.
	if err := publish("after"); err != nil {
		t.Fatal(err)
	}
	got, err := emu.ReceiveAll(ctx, queue, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(bodies(got), ","); g != "after,before" {
		t.Fatalf("received %s, want after,before", g)
	}
}

func TestEmulatorInMemoryLosesState(t *testing.T) {
	integration(t)
	emu := testenv.OwnEmu(t, testenv.EmulatorOptions{InMemory: true})
	ctx := ctxT(t, 60*time.Second)
	if _, err := emu.CreateTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := emu.SNS().ListTopics(ctx, &sns.ListTopicsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Topics) != 0 {
		t.Fatalf("in-memory emulator kept %d topics across a restart", len(out.Topics))
	}
}

// TestPostgresVersions: every supported version starts from the pinned
// binaries (make deps) with logical decoding, and says which it is. A
// missing version fails with the install hint, never skips.
func TestPostgresVersions(t *testing.T) {
	integration(t)
	for _, v := range testenv.Versions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			t.Parallel()
			pg := testenv.OwnPG(t, testenv.PostgresOptions{Version: v})
			if pg.Version() != v {
				t.Fatalf("Version() = %d, want %d", pg.Version(), v)
			}
			dsn := pg.DSN("postgres")
			if got := queryString(t, dsn, "SELECT current_setting('server_version_num')::int / 10000"); got != fmt.Sprint(v) {
				t.Fatalf("server is %s, want %d", got, v)
			}
			testenv.MustExec(t, dsn, `SELECT pg_create_logical_replication_slot('s', 'pgoutput')`)
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Setenv("BAITORU_PG_VERSIONS_DIR", t.TempDir())
		_, err := testenv.StartPostgres(testenv.PostgresOptions{Version: 12})
		if err == nil || !strings.Contains(err.Error(), "make deps") {
			t.Fatalf("err = %v, want install hint", err)
		}
	})
}

// TestStandbyPromote: a standby made from a base backup streams the
// primary's writes through its physical slot, stays read-only, and after
// the primary stopped (immediate) and the standby was promoted accepts
// writes with everything the primary had committed.
func TestStandbyPromote(t *testing.T) {
	integration(t)
	primary := testenv.OwnPG(t, testenv.PostgresOptions{Version: 17})
	dsn := primary.DSN("postgres")
	testenv.MustExec(t, dsn, `CREATE TABLE t (id int PRIMARY KEY)`)
	testenv.MustExec(t, dsn, `INSERT INTO t SELECT generate_series(1, 100)`)
	standby := testenv.OwnStandby(t, primary, testenv.StandbyOptions{Slot: "replica1", Settings: map[string]string{"hot_standby_feedback": "on"}})
	if standby.Version() != 17 || standby.Port == primary.Port {
		t.Fatalf("standby version %d port %d (primary port %d)", standby.Version(), standby.Port, primary.Port)
	}
	sdsn := standby.DSN("postgres")
	if got := queryString(t, sdsn, "SELECT pg_is_in_recovery()::text"); got != "true" {
		t.Fatalf("standby in recovery = %s", got)
	}
	if got := queryString(t, dsn, "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'replica1'"); got != "true" {
		t.Fatalf("physical slot replica1 active = %s, want true", got)
	}
	testenv.MustExec(t, dsn, `INSERT INTO t SELECT generate_series(101, 200)`)
	deadline := time.Now().Add(30 * time.Second)
	for queryString(t, sdsn, "SELECT count(*)::text FROM t") != "200" {
		if time.Now().After(deadline) {
			t.Fatal("standby did not replay the primary's insert within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := testenv.Exec(ctxT(t, 10*time.Second), sdsn, `INSERT INTO t VALUES (0)`); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write on the standby: %v, want read-only error", err)
	}
	if err := primary.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, sdsn, `INSERT INTO t VALUES (201)`)
	if got := queryString(t, sdsn, "SELECT count(*)::text FROM t"); got != "201" {
		t.Fatalf("after promotion: %s rows, want 201", got)
	}
}
