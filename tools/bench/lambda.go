package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// LambdaRun is one measurement of item 9: the sink's Lambda function under
// the AWS Lambda Runtime Interface Emulator, invoked one SQS event after
// another with batches of BatchSize records (one function instance, as one
// concurrent invocation of an event source mapping).
type LambdaRun struct {
	BatchSize   int     `json:"batch_size"`
	Run         int     `json:"run"`
	Messages    int     `json:"messages"`
	Delivered   int     `json:"delivered"`
	Invocations int     `json:"invocations"`
	Seconds     float64 `json:"seconds"` // first invocation sent to last answer
	PerSec      float64 `json:"deliveries_per_sec"`
	CPUSeconds  float64 `json:"cpu_seconds"` // the function's process, during the invocations
	CPUPerMsgUS float64 `json:"cpu_us_per_message"`
	Failures    int     `json:"batch_item_failures"`
}

// rieModule is the emulator's main package, pinned by tools/rie/go.mod.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// lambdaBatches are the batch sizes of item 9: the event source mapping's
// default, and 100 (with a maximum batching window).
var lambdaBatches = []int{10, 100}

// lambdaPhase is item 9: the sink's Lambda function (built from this tree)
// under the Runtime Interface Emulator, pushing to the same local Kobot
// receiver with the same links and sink database as item 6. Each -repeat
// round invokes it with SinkMessages/2 messages in batches of 10 and of
// 100 (the order alternating), after a warm-up invocation that takes the
// cold start; deliveries/s is from the first invocation to the last
// answer, CPU is the function process's own (the emulator's is not in it).
func (b *bench) lambdaPhase(ctx context.Context) error {
	if b.o.skipped(itemLambda) || !b.hasSink {
		return nil
	}
	rcv, dlqURL, err := b.sinkWorld(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(b.out, "bin")
	bootstrap, rie := filepath.Join(dir, "bootstrap"), filepath.Join(dir, "aws-lambda-rie")
	b.logf("building the Lambda bootstrap and the Runtime Interface Emulator")
	root := testenv.ModuleRoot()
	if root == "" {
		return errors.New("cannot find the baitoru-cdc module root (run from inside the repository)")
	}
	if err := goBuildPkg(ctx, root, bootstrap, "./cmd/baitoru-cdc-lambda", "-tags", "lambda.norpc"); err != nil {
		return err
	}
	if err := goBuildPkg(ctx, filepath.Join(root, "tools", "rie"), rie, rieModule); err != nil {
		return err
	}
	cfg := filepath.Join(b.out, "config", "lambda.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`log:
  level: warn
sink:
  dsn: %q
  sqs:
    region: %s
    endpoint: %s
    queue_url: %s/000000000000/bench-lambda
    dlq_url: %s
  kobot:
    endpoint: %s
    secret: ${BENCH_KOBOT_SECRET}
    timeout: 5s
  api:
    token: ${BENCH_LINKS_TOKEN}
  links:
    - table: public.applications
      field: company_id
`, b.sinkDSN, b.emu.Region, b.emu.Endpoint, b.emu.Endpoint, dlqURL, rcv.url)), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	runtimeAPI, err := freeAddr()
	if err != nil {
		return err
	}
	env := append(envList(awsEnv()), "BAITORU_CDC_CONFIG="+cfg, "BENCH_KOBOT_SECRET="+b.secret, "BENCH_LINKS_TOKEN="+linksToken,
		"AWS_LAMBDA_FUNCTION_NAME=baitoru-cdc-sink", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512", "AWS_LAMBDA_FUNCTION_TIMEOUT=300")
	p, err := startProcess("lambda", b.logs, rie, []string{"--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAPI, bootstrap, "sink"}, env, nil)
	if err != nil {
		return err
	}
	defer p.stop(10 * time.Second)
	fn := &lambdaFunction{url: "http://" + addr + "/2015-03-31/functions/function/invocations", rie: p}
	if err := fn.waitListening(ctx, addr); err != nil {
		return err
	}
	offset := b.o.SinkMessages * 100 // event ids apart from the sink drains'
	// The cold start: the emulator starts the function on the first
	// invocation (migrations, link lookups, clients).
	if _, err := fn.invoke(ctx, lambdaEvent(offset, 10, b.o.Companies)); err != nil {
		return fmt.Errorf("warm-up invocation: %w (log %s)", err, p.LogPath())
	}
	offset += 10
	n := max(b.o.SinkMessages/2, 100)
	for r := 1; r <= b.o.Repeat; r++ {
		sizes := lambdaBatches
		if r%2 == 0 {
			sizes = []int{lambdaBatches[1], lambdaBatches[0]}
		}
		for _, size := range sizes {
			run, err := b.lambdaRun(ctx, fn, rcv, size, n, offset)
			if err != nil {
				return fmt.Errorf("batches of %d: %w (log %s)", size, err, p.LogPath())
			}
			run.Run = r
			offset += n
			b.res.Lambda = append(b.res.Lambda, *run)
		}
	}
	return nil
}

// lambdaRun invokes fn with n messages in batches of size and measures it.
func (b *bench) lambdaRun(ctx context.Context, fn *lambdaFunction, rcv *receiver, size, n, offset int) (*LambdaRun, error) {
	pid := fn.pid()
	if pid == 0 {
		return nil, errors.New("no function process under the emulator")
	}
	evs := make([][]byte, 0, (n+size-1)/size)
	for from := 0; from < n; from += size {
		evs = append(evs, lambdaEvent(offset+from, min(size, n-from), b.o.Companies))
	}
	rec := newRecorder(n)
	rcv.setRecorder(rec)
	res := &LambdaRun{BatchSize: size, Messages: n, Invocations: len(evs)}
	cpuBefore := procCPU(pid)
	start := time.Now()
	for _, ev := range evs {
		failed, err := fn.invoke(ctx, ev)
		if err != nil {
			return nil, err
		}
		res.Failures += failed
	}
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = (procCPU(pid) - cpuBefore).Seconds()
	res.Delivered = rec.count()
	res.PerSec = float64(res.Delivered) / res.Seconds
	res.CPUPerMsgUS = res.CPUSeconds * 1e6 / float64(max(res.Delivered, 1))
	b.logf("lambda, batches of %d: %d of %d delivered in %.2fs = %.0f deliveries/s, function CPU %.2fs (%.0f µs/message), %d batch item failures",
		size, res.Delivered, n, res.Seconds, res.PerSec, res.CPUSeconds, res.CPUPerMsgUS, res.Failures)
	if res.Delivered < n || res.Failures > 0 {
		return res, fmt.Errorf("%d of %d delivered, %d batch item failures", res.Delivered, n, res.Failures)
	}
	return res, nil
}

// lambdaEvent is an SQS event of size records: the sink workload's events
// from offset on, as an event source mapping delivers them.
func lambdaEvent(offset, size, companies int) []byte {
	now := time.Now().UTC()
	sent := strconv.FormatInt(now.UnixMilli(), 10)
	ev := events.SQSEvent{Records: make([]events.SQSMessage, size)}
	for i := range size {
		id := "lambda-" + strconv.Itoa(offset+i)
		ev.Records[i] = events.SQSMessage{
			MessageId:     id,
			ReceiptHandle: "AQEB" + id,
			Body:          syntheticEvent(offset+i, companies, now),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          "1",
				"SentTimestamp":                    sent,
				"ApproximateFirstReceiveTimestamp": sent,
			},
			EventSource:    "aws:sqs",
			EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:bench-lambda",
			AWSRegion:      "us-east-1",
		}
	}
	b, _ := json.Marshal(ev)
	return b
}

// lambdaFunction is the function under the emulator.
type lambdaFunction struct {
	url string
	rie *proc
}

func (f *lambdaFunction) waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if f.rie.Exited() {
			return f.rie.exitErr()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the runtime interface emulator does not listen on %s: %v", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// invoke sends one event and returns the number of batch item failures.
func (f *lambdaFunction) invoke(ctx context.Context, ev []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(ev))
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var out events.SQSEventResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		return 0, fmt.Errorf("invoke: %s: %.300s", resp.Status, body)
	}
	return len(out.BatchItemFailures), nil
}

// pid is the function's process: the emulator's child (0 if none).
func (f *lambdaFunction) pid() int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", f.rie.Pid()))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				return pid
			}
		}
	}
	return 0
}
