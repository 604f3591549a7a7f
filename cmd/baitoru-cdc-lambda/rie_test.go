package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// rieModule is the emulator's main package, pinned by tools/rie/go.mod.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// stampedVersion is what the test stamps into the bootstrap, as make lambda
// does, to find it in the function's first log line.
const stampedVersion = "v0.0.0-rie-test"

// buildLambda builds the bootstrap as make lambda does (static, -tags
// lambda.norpc, version stamped; for this machine's architecture) and the
// Runtime Interface Emulator from tools/rie.
func buildLambda(t *testing.T) (bootstrap, rie string) {
	t.Helper()
	dir := t.TempDir()
	bootstrap, rie = filepath.Join(dir, "bootstrap"), filepath.Join(dir, "aws-lambda-rie")
	run := func(cmd *exec.Cmd) {
		t.Helper()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	run(exec.Command("go", "build", "-trimpath", "-tags", "lambda.norpc",
		"-ldflags", "-s -w -X github.com/baitoru/baitoru-cdc/internal/buildinfo.version="+stampedVersion,
		"-o", bootstrap, "."))
	run(exec.Command("go", "build", "-C", "../../tools/rie", "-o", rie, rieModule))
	return bootstrap, rie
}

// function is a Lambda function running under the emulator.
type function struct {
	url    string
	cmd    *exec.Cmd
	mu     sync.Mutex
	output bytes.Buffer // the emulator's and the function's output
}

func (f *function) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.output.Write(p)
}

func (f *function) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.output.String()
}

// startFunction runs bootstrap under the emulator with the handler
// setting and environment given, on a free loopback port.
func startFunction(t *testing.T, rie, bootstrap, handler string, env []string) *function {
	t.Helper()
	addr, runtimeAPI := freeAddr(t), freeAddr(t)
	f := &function{url: "http://" + addr + "/2015-03-31/functions/function/invocations"}
	// Like Lambda: the handler setting is the last argument; the emulator
	// starts the bootstrap lazily, on the first invocation (the cold start).
	f.cmd = exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAPI, bootstrap, handler)
	f.cmd.Dir = filepath.Dir(bootstrap)
	f.cmd.Env = child.Env(env...)
	f.cmd.Stdout, f.cmd.Stderr = f, f
	if err := child.StartCmd(f.cmd, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL) // the emulator and the function it started
		f.cmd.Wait()
		if t.Failed() {
			t.Logf("%s function output:\n%s", handler, f.log())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator does not listen on %s: %v\n%s", addr, err, f.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr is a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// invoke sends one event and returns the function's response body.
func (f *function) invoke(t *testing.T, event any) []byte {
	t.Helper()
	body, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(f.url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: %s %v: %s\n%s", resp.Status, err, out, f.log())
	}
	return out
}

// maxRSS is the peak resident memory (VmHWM) of the emulator's child, the
// function's process, in KiB.
func (f *function) maxRSS(t *testing.T) int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", f.cmd.Process.Pid))
	for _, c := range tasks {
		b, _ := os.ReadFile(c)
		for _, pid := range strings.Fields(string(b)) {
			status, err := os.ReadFile("/proc/" + pid + "/status")
			if err != nil {
				continue
			}
			if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status); m != nil {
				n, _ := strconv.Atoi(string(m[1]))
				return n
			}
		}
	}
	t.Fatal("no function process under the emulator")
	return 0
}

// sqsRecord is one record as Lambda's SQS event source mapping delivers it.
func sqsRecord(id, body string, receives int) events.SQSMessage {
	sent := strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
	return events.SQSMessage{
		MessageId:     id,
		ReceiptHandle: "AQEB" + base64.StdEncoding.EncodeToString([]byte("receipt-"+id)),
		Body:          body,
		Md5OfBody:     fmt.Sprintf("%x", body),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          strconv.Itoa(receives),
			"SentTimestamp":                    sent,
			"SenderId":                         "AIDAIENQZJOLO23YVJ4VO",
			"ApproximateFirstReceiveTimestamp": sent,
		},
		MessageAttributes: map[string]events.SQSMessageAttribute{},
		EventSource:       "aws:sqs",
		EventSourceARN:    "arn:aws:sqs:us-east-1:000000000000:baitoru-kobot",
		AWSRegion:         "us-east-1",
	}
}

// cloudEvent is an event as the connector publishes it (raw delivery: the
// queue's message body is the CloudEvent).
func cloudEvent(id string, company int) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"baitoru/baitoru","type":"baitoru.applications.insert",`+
		`"subject":"%d","time":%q,"datacontenttype":"application/json","table":"public.applications","op":"insert",`+
		`"lsn":"0/16B3748","xid":1234,"data":{"application_id":42,"company_id":%d,"status":"new"}}`,
		id, company, time.Now().UTC().Format(time.RFC3339Nano), company)
}

// TestLambdaUnderRuntimeInterfaceEmulator runs the Lambda package as Lambda
// would: the static bootstrap built with -tags lambda.norpc, started by the
// AWS Lambda Runtime Interface Emulator, invoked with SQS event payloads
// against a real PostgreSQL (links, delivery log), the SQS emulator (the
// DLQ) and a Kobot stand-in that verifies signatures. Linked events are
// pushed; unlinked ones dropped; poison messages and Kobot's 4xx go to the
// DLQ; Kobot's 5xx come back in batchItemFailures. The cold start (the
// emulator's Init Duration and the first invocation) and the function's
// peak memory are logged (go test -v). The links API handler is invoked
// with a function URL request.
func TestLambdaUnderRuntimeInterfaceEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bootstrap and the emulator, starts PostgreSQL and the SQS emulator; run without -short")
	}
	ctx := t.Context()
	bootstrap, rie := buildLambda(t)

	dsn := testenv.PG(t).NewDatabase(t)
	store, err := postgres.Open(dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"7", "8", "9"} {
		if _, _, err := store.StartLink(ctx, "kobot-"+k, k); err != nil {
			t.Fatal(err)
		}
	}

	emu := testenv.Emu(t)
	dlqURL, _, err := emu.CreateQueue(ctx, "rie-dlq", testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := emu.AWSConfig().Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}

	key := make([]byte, 32)
	rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	var mu sync.Mutex
	pushes := map[string]int{} // account -> pushes
	kob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		k, _ := kobot.ParseSecret(secret)
		if err := kobot.Verify(k, r.Header, body, time.Now(), kobot.DefaultTolerance); err != nil {
			t.Errorf("Kobot: signature: %v", err)
		}
		account := regexp.MustCompile(`"kobot-\d+"`).FindString(string(body))
		mu.Lock()
		pushes[strings.Trim(account, `"`)]++
		mu.Unlock()
		switch account {
		case `"kobot-8"`:
			w.WriteHeader(http.StatusServiceUnavailable)
		case `"kobot-9"`:
			w.WriteHeader(http.StatusUnprocessableEntity)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer kob.Close()

	token := base64.RawURLEncoding.EncodeToString(key[:24])
	cfg := filepath.Join(filepath.Dir(bootstrap), "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`log:
  level: info
  format: json
sink:
  dsn: %[1]s
  sqs:
    region: %[2]s
    endpoint: %[3]s
    queue_url: %[4]s/000000000000/rie-queue
    dlq_url: %[5]s
  s3:
    region: %[2]s
    endpoint: %[3]s
  kobot:
    endpoint: %[6]s
    secret: ${KOBOT_WEBHOOK_SECRET}
    max_attempts: 2
    retry: {initial: 10ms, max: 50ms}
  api:
    token: ${LINKS_API_TOKEN}
  links:
    - table: public.applications
      field: company_id
`, dsn, emu.Region, emu.Endpoint, emu.Endpoint, dlqURL, kob.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"BAITORU_CDC_CONFIG=" + cfg,
		"KOBOT_WEBHOOK_SECRET=" + secret,
		"LINKS_API_TOKEN=" + token,
		"AWS_REGION=" + emu.Region,
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		"AWS_LAMBDA_FUNCTION_NAME=baitoru-cdc-sink",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60",
	}

	// An event too large for SNS, stored in S3: the record is a pointer
	// with its size attribute.
	stored := cloudEvent("0/16B3748-6", 7)
	if err := emu.CreateBucket(ctx, "rie-large"); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.S3().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("rie-large"), Key: aws.String("cdc/0/16B3748-6"), Body: strings.NewReader(stored)}); err != nil {
		t.Fatal(err)
	}
	pointer := sqsRecord("m-s3", string(s3pointer.Encode(s3pointer.Pointer{Bucket: "rie-large", Key: "cdc/0/16B3748-6"})), 1)
	size := strconv.Itoa(len(stored))
	pointer.MessageAttributes[s3pointer.SizeAttribute] = events.SQSMessageAttribute{DataType: "Number", StringValue: &size}

	fn := startFunction(t, rie, bootstrap, "sink", env)
	batch := events.SQSEvent{Records: []events.SQSMessage{
		pointer,
		sqsRecord("m-linked", cloudEvent("0/16B3748-1", 7), 1),
		sqsRecord("m-unlinked", cloudEvent("0/16B3748-2", 100), 1),
		sqsRecord("m-kobot-5xx", cloudEvent("0/16B3748-3", 8), 1),
		sqsRecord("m-kobot-4xx", cloudEvent("0/16B3748-4", 9), 1),
		sqsRecord("m-poison", `{"specversion":"1.0","id":`, 1),
	}}
	start := time.Now()
	out := fn.invoke(t, batch)
	cold := time.Since(start)
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if !slices.Equal(failed, []string{"m-kobot-5xx"}) {
		t.Fatalf("batchItemFailures %v, want [m-kobot-5xx] (response %s)", failed, out)
	}
	ms, err := emu.ReceiveAll(ctx, dlqURL, 2, 10*time.Second)
	if err != nil || len(ms) != 2 {
		t.Fatalf("DLQ: %d messages, %v; want the poison message and Kobot's 4xx", len(ms), err)
	}
	codes := map[string]string{}
	for _, m := range ms {
		codes[aws.ToString(m.MessageAttributes[sqs.AttrSourceMessageID].StringValue)] = aws.ToString(m.MessageAttributes[sqs.AttrReasonCode].StringValue)
	}
	if codes["m-kobot-4xx"] != sink.CodeKobotRejected || codes["m-poison"] != sink.CodeInvalidJSON {
		t.Fatalf("DLQ reason codes %v", codes)
	}
	mu.Lock()
	got := fmt.Sprint(pushes)
	mu.Unlock()
	if got != "map[kobot-7:2 kobot-8:2 kobot-9:1]" { // 5xx: max_attempts 2; kobot-7: one event inline, one from S3
		t.Fatalf("Kobot received %s, want map[kobot-7:2 kobot-8:2 kobot-9:1] (nothing for the unlinked company)", got)
	}

	// A warm invocation: Lambda redelivers the failed record together with
	// a copy of the delivered one; the delivered link is not pushed again.
	start = time.Now()
	out = fn.invoke(t, events.SQSEvent{Records: []events.SQSMessage{
		sqsRecord("m-linked", cloudEvent("0/16B3748-1", 7), 2),
	}})
	warm := time.Since(start)
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery: %s %v", out, err)
	}
	mu.Lock()
	if pushes["kobot-7"] != 2 {
		t.Errorf("the redelivered event was pushed again: %v", pushes)
	}
	mu.Unlock()

	logs := fn.log()
	if !strings.Contains(logs, `"msg":"baitoru-cdc-lambda starting"`) || !strings.Contains(logs, stampedVersion) {
		t.Errorf("the function's first log line does not show its version %s:\n%s", stampedVersion, logs)
	}
	initMS := "?"
	if m := regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`).FindStringSubmatch(logs); m != nil {
		initMS = m[1]
	}
	t.Logf("cold start: init %s ms (the emulator's INIT REPORT: config, database, migrations), first invocation %v (init, 5 records, 4 pushes, 2 DLQ sends); warm invocation %v; peak memory %d KiB",
		initMS, cold.Round(time.Millisecond), warm.Round(time.Millisecond), fn.maxRSS(t))

	// The links API, as a function URL invokes it.
	api := startFunction(t, rie, bootstrap, "links-api", env)
	status, body := api.urlRequest(t, "POST", "/v1/links", token, `{"kobot_account":"kobot-10","link_key":"10"}`)
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("POST /v1/links: %d %s", status, body)
	}
	status, body = api.urlRequest(t, "GET", "/v1/links", token, "")
	if status != http.StatusOK || !strings.Contains(body, "kobot-10") || !strings.Contains(body, "kobot-7") {
		t.Fatalf("GET /v1/links: %d %s", status, body)
	}
	if status, _ = api.urlRequest(t, "GET", "/v1/links", "wrong-token", ""); status != http.StatusUnauthorized {
		t.Fatalf("GET /v1/links with a wrong token: %d, want 401", status)
	}
	if active, err := store.ActiveLinks(ctx, []string{"10"}); err != nil || len(active["10"]) != 1 {
		t.Fatalf("the link made through the function URL: %v %v", active, err)
	}
}

// urlRequest invokes the function with a Lambda function URL request and
// decodes the streamed response (a JSON prelude with the status, eight NUL
// bytes, the body).
func (f *function) urlRequest(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req := events.LambdaFunctionURLRequest{
		Version:        "2.0",
		RawPath:        path,
		Headers:        map[string]string{"authorization": "Bearer " + token, "content-type": "application/json"},
		Body:           body,
		RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "127.0.0.1"}},
	}
	out := f.invoke(t, req)
	prelude, rest, ok := bytes.Cut(out, make([]byte, 8))
	if !ok {
		t.Fatalf("%s %s: not a streamed function URL response: %q", method, path, out)
	}
	var head struct {
		StatusCode int `json:"statusCode"`
	}
	if err := json.NewDecoder(bufio.NewReader(bytes.NewReader(prelude))).Decode(&head); err != nil {
		t.Fatalf("%s %s: prelude %q: %v", method, path, prelude, err)
	}
	return head.StatusCode, string(rest)
}
