package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/tools/internal/faultproxy"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// clients returns SNS and SQS clients that talk to the emulator through
// the proxy and make one attempt per call.
func clients(emu *testenv.Emulator, url string) (*sns.Client, *sqs.Client) {
	cfg := emu.AWSConfig()
	cfg.BaseEndpoint = aws.String(url)
	cfg.RetryMaxAttempts = 1
	return sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
}

// TestProxyFaults drives real SNS and SQS clients through the proxy to the
// emulator: calls pass, then a throttled proxy answers every call with the
// errors the clients classify as AWS throttling and unavailability, then a
// refusing proxy is unreachable, and after Restore the same URL works again.
func TestProxyFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (SNS/SQS emulator)")
	}
	emu := testenv.Emu(t)
	p, err := faultproxy.New(emu.Endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	url := p.URL()
	snsc, sqsc := clients(emu, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := fmt.Sprintf("faultproxy-%d", time.Now().UnixNano()%1e9)
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("create topic through the proxy: %v", err)
	}
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("create queue through the proxy: %v", err)
	}
	send := func() error {
		_, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("m")})
		return err
	}
	publish := func() error {
		_, err := snsc.Publish(ctx, &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String("m")})
		return err
	}
	if err := send(); err != nil {
		t.Fatalf("send through the proxy: %v", err)
	}
	if err := publish(); err != nil {
		t.Fatalf("publish through the proxy: %v", err)
	}

	p.Throttle(1)
	codes := map[string]int{}
	for i := 0; i < 40; i++ {
		for _, call := range []func() error{send, publish} {
			err := call()
			var ae smithy.APIError
			var re *awshttp.ResponseError
			if !errors.As(err, &ae) || !errors.As(err, &re) {
				t.Fatalf("throttled call: %v, want an AWS API error", err)
			}
			switch {
			case ae.ErrorCode() == "Throttling" && re.HTTPStatusCode() == http.StatusBadRequest:
			case ae.ErrorCode() == "ServiceUnavailable" && re.HTTPStatusCode() == http.StatusServiceUnavailable:
			default:
				t.Fatalf("throttled call: code %q status %d", ae.ErrorCode(), re.HTTPStatusCode())
			}
			codes[ae.ErrorCode()]++
		}
	}
	if codes["Throttling"] == 0 || codes["ServiceUnavailable"] == 0 {
		t.Fatalf("error mix %v, want both Throttling and ServiceUnavailable", codes)
	}
	p.Throttle(0.5)
	failed := 0
	for i := 0; i < 100; i++ {
		if publish() != nil {
			failed++
		}
	}
	if failed < 25 || failed > 75 {
		t.Fatalf("Throttle(0.5): %d of 100 calls failed", failed)
	}

	p.Refuse()
	// The first call may go out on a pooled keep-alive connection that
	// Refuse closed (broken pipe, reset); it must fail all the same. A new
	// connection is then refused.
	if err := publish(); err == nil {
		t.Fatal("publish while refused succeeded")
	}
	err = publish()
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("publish while refused: %v, want connection refused", err)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	if p.URL() != url {
		t.Fatalf("URL changed from %s to %s", url, p.URL())
	}
	if err := publish(); err != nil {
		t.Fatalf("publish after Restore: %v", err)
	}
	// Throttling was cleared by Restore.
	for i := 0; i < 20; i++ {
		if err := send(); err != nil {
			t.Fatalf("send after Restore: %v", err)
		}
	}
	s := p.Stats()
	if s.Refusals != 1 || s.Throttled == 0 || s.Unavailable == 0 || s.Forwarded < 25 {
		t.Fatalf("stats %+v", s)
	}
}
