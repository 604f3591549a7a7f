package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestSinkCommand runs `baitoru-cdc sink` as a process: it serves the links
// API, delivers a linked event, and on SIGTERM finishes the push under way,
// deletes its message and exits 0, without logging its secrets.
func TestSinkCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SQS emulator); run without -short")
	}
	const (
		token    = "sink-cmd-token-0123456789"
		secret   = "whsec_c2luay1jbWQtdGVzdC1zZWNyZXQtMDEyMzQ1Njc="
		password = "pw-that-must-not-leak"
	)
	pg := testenv.PG(t)
	dsn := strings.Replace(pg.NewDatabase(t), "postgres@", "postgres:"+password+"@", 1)
	emu := testenv.Emu(t)
	ctx := t.Context()
	name := fmt.Sprintf("sink-cmd-%d", time.Now().UnixNano()%1e6)
	queue, dlq, err := emu.CreateQueueWithDLQ(ctx, name, testenv.QueueOptions{MaxReceiveCount: 3, VisibilityTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var pushes atomic.Int32
	release := make(chan struct{})
	kobot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if pushes.Add(1) == 2 {
			<-release // hold the second push until SIGTERM was sent
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer kobot.Close()

	cfg := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
sink:
  dsn: %s
  sqs:
    region: %s
    endpoint: %s
    queue_url: %s
    dlq_url: %s
    concurrency: 2
    wait_time: 1s
    visibility_timeout: 5s
  kobot:
    endpoint: %s
    secret: ${KOBOT_SECRET}
    timeout: 5s
  api:
    listen: 127.0.0.1:0
    token: ${SINK_TOKEN}
  links:
    - table: public.applications
      field: company_id
log:
  level: debug
  format: json
`, dsn, emu.Region, emu.Endpoint, queue, dlq, kobot.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KOBOT_SECRET", secret)
	t.Setenv("SINK_TOKEN", token)
	t.Setenv("GOGC", "") // the configuration's collector setting, not the caller's
	t.Setenv("GOMEMLIMIT", "")
	p := startProc(t, "sink", "--config", cfg)
	p.waitLog(t, `"msg":"sink ready"`, 60*time.Second)
	// sink.gc's defaults are in force.
	p.waitLog(t, `"gc_percent":"400","gc_memory_limit":"268435456"`, time.Second)
	api := sinkAPI(t, p)

	// Links API with and without the token.
	post := func(tok string) int { return startLink7(t, api, tok) }
	if st := post("wrong"); st != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", st)
	}
	if st := post(token); st != http.StatusCreated {
		t.Fatalf("start link: %d", st)
	}

	send := func(id string) {
		body := `{"specversion":"1.0","id":"` + id + `","source":"baitoru/baitoru","type":"baitoru.applications.insert",` +
			`"time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","table":"public.applications","op":"insert","data":{"company_id":7}}`
		if _, err := emu.SQS().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send("0/1-1")
	deadline := time.Now().Add(15 * time.Second)
	for pushes.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no push:\n%s", p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	send("0/1-2")
	for pushes.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second push:\n%s", p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// SIGTERM while the second push is under way.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.output())
	}
	out := p.output()
	if !strings.Contains(out, `"msg":"sink stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", out)
	}
	for _, s := range []string{token, password, strings.TrimPrefix(secret, "whsec_")} {
		if strings.Contains(out, s) {
			t.Errorf("the log shows a secret (%.6s...)", s)
		}
	}
	got, err := emu.SQS().GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(queue),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range got.Attributes {
		if v != "0" {
			t.Errorf("queue %s = %s after shutdown: the finished push's message was not deleted", k, v)
		}
	}
	if n := pushes.Load(); n != 2 {
		t.Errorf("Kobot got %d pushes, want 2", n)
	}
}

// TestSinkCommandBadConfig: an invalid sink section is reported with file,
// line and key, before anything runs, and exits 1.
func TestSinkCommandBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(cfg, []byte("sink:\n  sqs:\n    batch_size: 50\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "sink", "--config", cfg)
	err := p.wait(t, 30*time.Second)
	if code := sinkExitCode(err); code != 1 || !strings.Contains(p.output(), "sink.sqs.batch_size") || !strings.Contains(p.output(), cfg+":3") {
		t.Fatalf("exit %v, output:\n%s", err, p.output())
	}
}

// sinkExitCode is the process exit code of a Wait error (-1: not an exit).
func sinkExitCode(err error) int {
	if err == nil {
		return 0
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return xe.ExitCode()
	}
	return -1
}

// TestSinkCommandWrongSecret runs `baitoru-cdc sink` signing with a secret
// Kobot does not verify with: its log says so once with the fix however
// many pushes Kobot refuses, /metrics counts them under
// problem="signature_refused" with the fix, and every message reaches the
// DLQ with that reason (nothing lost: a redrive delivers them once fixed).
func TestSinkCommandWrongSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SQS emulator); run without -short")
	}
	const token = "sink-cmd-token-0123456789"
	kobot := startKobot(t, "") // verifies with a secret of its own
	dsn := testenv.PG(t).NewDatabase(t)
	emu := testenv.Emu(t)
	ctx := t.Context()
	name := fmt.Sprintf("sink-secret-%d", time.Now().UnixNano()%1e6)
	queue, dlq, err := emu.CreateQueueWithDLQ(ctx, name, testenv.QueueOptions{MaxReceiveCount: 3, VisibilityTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
sink:
  dsn: %s
  sqs: {region: %s, endpoint: %s, queue_url: %s, dlq_url: %s, wait_time: 1s, visibility_timeout: 5s}
  kobot: {endpoint: %s, secret: "whsec_c2luay1jbWQtd3Jvbmctc2VjcmV0LTAxMjM=", max_attempts: 1}
  api: {listen: 127.0.0.1:0, token: %s}
  links:
    - table: public.applications
      field: company_id
log:
  format: json
`, dsn, emu.Region, emu.Endpoint, queue, dlq, kobot.URL(), token)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "sink", "--config", cfg)
	p.waitLog(t, `"msg":"sink ready"`, 60*time.Second)
	api := sinkAPI(t, p)
	if st := startLink7(t, api, token); st != http.StatusCreated {
		t.Fatalf("start link: %d", st)
	}
	const events = 3
	for i := range events {
		body := fmt.Sprintf(`{"specversion":"1.0","id":"0/2-%d","source":"baitoru/baitoru","type":"baitoru.applications.insert","time":"%s","table":"public.applications","op":"insert","data":{"company_id":7}}`,
			i+1, time.Now().UTC().Format(time.RFC3339Nano))
		if _, err := emu.SQS().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := emu.ReceiveAll(ctx, dlq, events, 30*time.Second)
	if err != nil || len(ms) != events {
		t.Fatalf("%d messages in the DLQ (%v), want %d:\n%s", len(ms), err, events, p.output())
	}
	const fix = "check that sink.kobot.secret is the signing secret Kobot verifies with, restart the sink, then redrive the DLQ"
	for _, msg := range ms {
		if r := msg.MessageAttributes["reason"]; r.StringValue == nil || !strings.Contains(*r.StringValue, "Kobot refused the push's signature or credentials (401 Unauthorized") ||
			!strings.Contains(*r.StringValue, fix) {
			t.Errorf("DLQ message without the reason and fix: %+v", msg.MessageAttributes)
		}
	}
	var said []string
	for _, l := range strings.Split(p.output(), "\n") {
		if strings.Contains(l, `"msg":"Kobot push failed"`) {
			said = append(said, l)
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], `"problem":"signature_refused"`) || !strings.Contains(said[0], `"fix":"`+fix+`"`) ||
		!strings.Contains(said[0], `the message goes to the DLQ (nothing is lost: redrive the DLQ once fixed)`) {
		t.Errorf("want one log line saying the signature was refused, with the fix; got %d:\n%s", len(said), strings.Join(said, "\n"))
	}
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := regexp.MustCompile(`baitoru_cdc_sink_kobot_failures_total\{fix="` + regexp.QuoteMeta(fix) + `",problem="signature_refused"\} (\d+)`)
	if g := want.FindSubmatch(metrics); g == nil || string(g[1]) != fmt.Sprint(events) {
		t.Errorf("/metrics does not count %d refused signatures with the fix:\n%s", events, regexp.MustCompile(`(?m)^baitoru_cdc_sink_kobot_failures_total.*$`).FindAll(metrics, -1))
	}
}

// sinkAPI is the links API's base URL, from the sink's JSON log.
func sinkAPI(t *testing.T, p *proc) string {
	t.Helper()
	m := regexp.MustCompile(`"api":"(127\.0\.0\.1:\d+)"`).FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no API address in the log:\n%s", p.output())
	}
	return "http://" + m[1]
}

// startLink7 starts a link of company 7 for kobot-acme with token and
// returns the answer's status.
func startLink7(t *testing.T, api, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/links", strings.NewReader(`{"kobot_account":"kobot-acme","link_key":"7"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
