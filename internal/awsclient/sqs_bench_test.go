package awsclient

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// sqsStandIn answers ReceiveMessage with n messages of the sink bench's
// size (with their MD5s, as SQS sends them) and DeleteMessageBatch with
// every entry deleted: the SDK's side of the sink's two calls per batch,
// without a queue's own cost.
func sqsStandIn(tb testing.TB, n int) string {
	type msg struct {
		MessageId, ReceiptHandle, MD5OfBody, Body string
		Attributes                                map[string]string
	}
	var msgs []msg
	for i := range n {
		body := fmt.Sprintf(`{"specversion":"1.0","id":"2/%X-1","source":"baitoru/baitoru","type":"baitoru.applications.insert","subject":"%d","time":"2026-12-07T01:00:00Z","datacontenttype":"application/json","table":"public.applications","op":"insert","lsn":"2/%X","xid":1234,"data":{"application_id":%d,"company_id":%d,"applied_at":"2026-12-07T01:00:00Z","status":"applied"}}`, i, i, i, i, i%50)
		sum := md5.Sum([]byte(body))
		msgs = append(msgs, msg{
			MessageId: fmt.Sprintf("8f0c6d2e-0000-4000-8000-%012d", i), ReceiptHandle: strings.Repeat("r", 180) + strconv.Itoa(i),
			MD5OfBody: hex.EncodeToString(sum[:]), Body: body,
			Attributes: map[string]string{"ApproximateReceiveCount": "1", "MessageGroupId": strconv.Itoa(i % 50)},
		})
	}
	received, err := json.Marshal(map[string]any{"Messages": msgs})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch r.Header.Get("X-Amz-Target") {
		case "AmazonSQS.ReceiveMessage":
			io.Copy(io.Discard, r.Body)
			w.Write(received)
		case "AmazonSQS.DeleteMessageBatch":
			var in struct{ Entries []struct{ Id string } }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var ok []map[string]string
			for _, e := range in.Entries {
				ok = append(ok, map[string]string{"Id": e.Id})
			}
			json.NewEncoder(w).Encode(map[string]any{"Successful": ok})
		default:
			http.Error(w, "unexpected call", http.StatusBadRequest)
		}
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkSQSBatch measures the SQS client of the sink per batch of 10:
// one ReceiveMessage and one DeleteMessageBatch against an in-process
// stand-in (its CPU is in the figure, the same for both clients): "sdk" is
// the SDK's client as it comes (with this package's HTTP client), "sink"
// the one SQS builds.
//
//	go test ./internal/awsclient -run '^$' -bench SQSBatch -count 6
func BenchmarkSQSBatch(b *testing.B) {
	testCredentials(b)
	url := sqsStandIn(b, 10)
	o := Options{Region: "us-east-1", Endpoint: url}
	tuned, err := SQS(b.Context(), o)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(b.Context(), config.WithRegion(o.Region))
	if err != nil {
		b.Fatal(err)
	}
	plain := awssqs.NewFromConfig(cfg, func(so *awssqs.Options) {
		so.BaseEndpoint = aws.String(url)
		so.HTTPClient = memoryBodies{next: so.HTTPClient}
	})
	for _, c := range []struct {
		name   string
		client *awssqs.Client
	}{{"sdk", plain}, {"sink", tuned}} {
		b.Run(c.name, func(b *testing.B) { sqsBatches(b, c.client, url+"/000000000000/bench") })
	}
}

func sqsBatches(b *testing.B, c *awssqs.Client, queue string) {
	ctx := b.Context()
	b.ReportAllocs()
	began := processCPU(b)
	for b.Loop() {
		out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 20,
			MessageAttributeNames: []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameMessageGroupId,
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Messages) != 10 {
			b.Fatalf("received %d messages, want 10", len(out.Messages))
		}
		entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		del, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(queue), Entries: entries})
		if err != nil {
			b.Fatal(err)
		}
		if len(del.Successful) != 10 {
			b.Fatalf("deleted %d messages, want 10", len(del.Successful))
		}
	}
	b.ReportMetric(float64(processCPU(b)-began)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time the test process has used (user and system):
// the figure a shared machine's load distorts least.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
