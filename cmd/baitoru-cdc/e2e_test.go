package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// loadSchema runs the SQL files of testdata/schema (Baitoru's schema,
// its sample data) on dsn, in order.
func loadSchema(t *testing.T, dsn string, files ...string) {
	t.Helper()
	for _, f := range files {
		sql, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "testdata", "schema", f))
		if err != nil {
			t.Fatal(err)
		}
		testenv.MustExec(t, dsn, string(sql))
	}
}

// TestEndToEndKobot runs the real binaries with the shipped config.yaml
// (pointed at throwaway servers through BAITORU_CDC_* overrides): rows
// inserted into the sample Baitoru schema reach the linked Kobot account,
// signed, and rows of an unlinked company do not.
func TestEndToEndKobot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	pg, emu := testenv.PG(t), testenv.Emu(t)
	src, sinkDB := pg.NewDatabase(t), pg.NewDatabase(t)
	loadSchema(t, src, "baitoru.sql")

	name := fmt.Sprintf("e2e-%d", time.Now().UnixNano()%1e6)
	fan, err := emu.CreateFanout(ctx, name, testenv.QueueOptions{MaxReceiveCount: 3, VisibilityTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	topic, queueURL, dlqURL := fan.TopicARN, fan.QueueURL, fan.DLQURL
	// Events over SNS's limit go through this bucket (large_payloads).
	if err := emu.CreateBucket(ctx, name); err != nil {
		t.Fatal(err)
	}

	const secret = "whsec_ZTJlLWtvYm90LXRlc3Qtc2VjcmV0LTAxMjM0NTY3"
	recv := startKobot(t, secret)

	apiAddr := freeAddr(t)
	const token = "e2e-links-token-0123456789"
	env := []string{
		"BAITORU_CDC_SOURCE_DSN=" + src,
		"BAITORU_CDC_SOURCE_STATUS_INTERVAL=200ms",
		"BAITORU_CDC_SNS_REGION=" + emu.Region,
		"BAITORU_CDC_SNS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SNS_TOPIC_ARN=" + topic,
		"BAITORU_CDC_S3_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_S3_REGION=" + emu.Region,
		"BAITORU_CDC_PUBLISHER_LARGE_PAYLOADS_BUCKET=" + name,
		"BAITORU_CDC_SINK_S3_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SINK_S3_REGION=" + emu.Region,
		"BAITORU_CDC_METRICS_LISTEN=" + freeAddr(t),
		"BAITORU_CDC_LOG_FORMAT=json",
		"BAITORU_CDC_SINK_DSN=" + sinkDB,
		"BAITORU_CDC_SINK_SQS_REGION=" + emu.Region,
		"BAITORU_CDC_SINK_SQS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SINK_SQS_QUEUE_URL=" + queueURL,
		"BAITORU_CDC_SINK_SQS_DLQ_URL=" + dlqURL,
		"BAITORU_CDC_SINK_SQS_WAIT_TIME=1s",
		"BAITORU_CDC_SINK_KOBOT_ENDPOINT=" + recv.URL(),
		"BAITORU_CDC_SINK_KOBOT_SECRET=" + secret,
		"BAITORU_CDC_SINK_API_LISTEN=" + apiAddr,
		"BAITORU_CDC_SINK_API_TOKEN=" + token,
	}
	shipped := filepath.Join(testenv.ModuleRoot(), "config.yaml")
	conn := startProcEnv(t, env, "run", "--config", shipped)
	conn.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	snk := startProcEnv(t, env, "sink", "--config", shipped)
	waitHTTP(t, "http://"+apiAddr+"/readyz", snk)

	// Kobot starts a link for company 1 only.
	req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/v1/links", strings.NewReader(`{"kobot_account":"kobot-acme","link_key":"1"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("start link: %d %s", resp.StatusCode, b)
	}
	resp.Body.Close()

	loadSchema(t, src, "sample_data.sql")
	for i := 0; i < 20; i++ {
		testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers, status)
			SELECT p.company_id, p.posting_id, 'E2E %d', 'e2e%d@example.jp', '{"q":"yes"}', 'applied'
			FROM job_postings p WHERE p.company_id IN (1, 2) ORDER BY p.posting_id LIMIT 2`, i, i))
	}

	// One application too large for SNS (a 300 KB answer): the connector
	// stores it in S3, the sink reads it back and pushes it whole.
	bigAnswer := strings.Repeat("長文の回答です。", 12500)
	testenv.MustExec(t, src, `INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers, status)
		SELECT p.company_id, p.posting_id, 'E2E big', 'big@example.jp', jsonb_build_object('essay', '`+bigAnswer+`'), 'applied'
		FROM job_postings p WHERE p.company_id = 1 ORDER BY p.posting_id LIMIT 1`)

	// What Kobot should get: every application and job posting event of
	// company 1, as counted in the database.
	var want int
	db, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	err = db.QueryRow(ctx, `SELECT (SELECT count(*) FROM applications WHERE company_id = 1) + (SELECT count(*) FROM job_postings WHERE company_id = 1)`).Scan(&want)
	db.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(recv.got()) < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything unlinked that would wrongly arrive
	got := recv.got()
	if bad := recv.Bad(); len(bad) > 0 {
		t.Fatalf("pushes that failed Kobot's verification: %v", bad)
	}
	ids := map[string]bool{}
	var lat []time.Duration
	for _, r := range got {
		var data map[string]any
		if err := json.Unmarshal(r.Data, &data); err != nil {
			t.Fatalf("event %s: data %s: %v", r.ID, r.Data, err)
		}
		if c := fmt.Sprint(data["company_id"]); c != "1" {
			t.Fatalf("Kobot got an event of unlinked company %s: %+v", c, r)
		}
		if r.Account != "kobot-acme" {
			t.Fatalf("kobotaccount = %q", r.Account)
		}
		if _, leaked := data["applicant_email"]; leaked {
			t.Fatalf("applicant contact published: %s", r.Data)
		}
		if ids[r.ID] {
			t.Fatalf("event %s delivered twice", r.ID)
		}
		ids[r.ID] = true
		lat = append(lat, r.ReceivedAt.Sub(r.CommitTime))
	}
	if len(got) != want {
		t.Fatalf("Kobot got %d events of company 1, want %d", len(got), want)
	}
	var bigSeen int
	for _, r := range got {
		if bytes.Contains(r.Data, []byte(bigAnswer)) {
			bigSeen++
		}
	}
	stored, err := emu.ListObjects(ctx, name, "baitoru-cdc/baitoru_cdc/")
	var events []string
	for _, k := range stored {
		if !strings.HasSuffix(k, ".baitoru-cdc-check") {
			events = append(events, k)
		}
	}
	if bigSeen != 1 || err != nil || len(events) != 1 {
		t.Fatalf("the large application: pushed whole %d times (want 1); objects in S3 %v (%v), want one event besides the start probe", bigSeen, stored, err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%d events delivered to Kobot; commit→Kobot latency p50 %s, max %s",
		len(lat), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))

	for _, p := range []*proc{snk, conn} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t, 30*time.Second); err != nil {
			t.Fatalf("%s exit after SIGTERM: %v\n%s", p.cmd.Args[1], err, p.output())
		}
		for _, s := range []string{secret, token} {
			if strings.Contains(p.output(), s) {
				t.Fatalf("%s logged a secret", p.cmd.Args[1])
			}
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func waitHTTP(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("process exited (%v):\n%s", p.Err(), p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", url, err, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
