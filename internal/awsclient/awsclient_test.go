package awsclient

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// testCredentials makes the default chain find static test credentials and
// nothing else (no shared files, no instance metadata).
func testCredentials(t testing.TB) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// failing is an endpoint answering every request 500, counting them.
func failing(t *testing.T) (url string, calls *atomic.Int64) {
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// TestRetries checks the one deliberate difference between the clients:
// the SNS client built for the publisher makes one attempt per call, the
// SQS client keeps the SDK's three.
func TestRetries(t *testing.T) {
	testCredentials(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name    string
		retries Retries
		call    func(url string, r Retries) error
		want    int64
	}{
		{"sns, caller retries", CallerRetries, func(url string, r Retries) error {
			c, err := SNS(ctx, Options{Region: "us-east-1", Endpoint: url, RegionKey: "sns.region", Retries: r})
			if err != nil {
				return err
			}
			_, err = c.GetTopicAttributes(ctx, &awssns.GetTopicAttributesInput{TopicArn: aws.String("arn:aws:sns:us-east-1:000000000000:t")})
			return err
		}, 1},
		{"sqs, sdk retries", SDKRetries, func(url string, r Retries) error {
			c, err := SQS(ctx, Options{Region: "us-east-1", Endpoint: url, RegionKey: "sink.sqs.region", Retries: r})
			if err != nil {
				return err
			}
			_, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url + "/000000000000/q")})
			return err
		}, 3},
		{"s3, caller retries", CallerRetries, func(url string, r Retries) error {
			c, err := S3(ctx, Options{Region: "us-east-1", Endpoint: url, RegionKey: "s3.region", Retries: r})
			if err != nil {
				return err
			}
			_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("x")})
			return err
		}, 1},
		{"s3, sdk retries", SDKRetries, func(url string, r Retries) error {
			c, err := S3(ctx, Options{Region: "us-east-1", Endpoint: url, RegionKey: "sink.s3.region", Retries: r})
			if err != nil {
				return err
			}
			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
			return err
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, calls := failing(t)
			if err := tc.call(url, tc.retries); err == nil {
				t.Fatal("a call answered 500 succeeded")
			}
			if n := calls.Load(); n != tc.want {
				t.Errorf("%d requests for one call, want %d", n, tc.want)
			}
		})
	}
}

func TestNoRegion(t *testing.T) {
	testCredentials(t)
	_, err := SQS(t.Context(), Options{RegionKey: "sink.sqs.region"})
	if err == nil || !strings.Contains(err.Error(), "set sink.sqs.region in the config or AWS_REGION") {
		t.Fatalf("no region: %v", err)
	}
}

// TestS3PathStyle: with an endpoint override the bucket is in the path, so
// an emulator on localhost answers it.
func TestS3PathStyle(t *testing.T) {
	testCredentials(t)
	var host, path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		path.Store(r.URL.Path)
	}))
	defer srv.Close()
	c, err := S3(t.Context(), Options{Region: "us-east-1", Endpoint: srv.URL, RegionKey: "s3.region", Retries: CallerRetries})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("payloads"), Key: aws.String("a/0/16B3748-3"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if got, want := path.Load(), "/payloads/a/0/16B3748-3"; got != want {
		t.Errorf("request path %v, want %s", got, want)
	}
	if got := host.Load().(string); strings.HasPrefix(got, "payloads.") {
		t.Errorf("virtual-hosted request to %s", got)
	}
}

// imdsStandIn is an EC2 instance metadata service that gives no role: it
// answers 403 to everything (as where no instance profile is attached, or
// outside EC2 behind a proxy), which makes the SDK fall back to IMDSv1 and
// log that it does.
func imdsStandIn(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// noCredentials makes the default chain find nothing before the instance
// metadata service at imds.
func noCredentials(t *testing.T, imds string) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
}

// TestNoCredentials: a call made without credentials fails with a
// *CredentialsError that says what to set (and, with an endpoint override,
// that any keys do), and the SDK's own log lines go to the logger at debug
// level, never to standard error.
func TestNoCredentials(t *testing.T) {
	noCredentials(t, imdsStandIn(t))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a request without credentials reached the service")
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer api.Close()

	// Standard error, where the SDK's default logger writes.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = stderr }()

	for _, tc := range []struct {
		name, endpoint string
		wantFix        []string
	}{
		{"emulator", api.URL, []string{"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", "against a local emulator (sns.endpoint " + api.URL + ") any keys do"}},
		{"aws", "", []string{"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged strings.Builder
			log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := SNS(t.Context(), Options{Region: "us-east-1", Endpoint: tc.endpoint, RegionKey: "sns.region", EndpointKey: "sns.endpoint", Retries: CallerRetries, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err = c.GetTopicAttributes(ctx, &awssns.GetTopicAttributesInput{TopicArn: aws.String("arn:aws:sns:us-east-1:000000000000:t")})
			var ce *CredentialsError
			if !errors.Is(err, ErrNoCredentials) || !errors.As(err, &ce) {
				t.Fatalf("call without credentials: %v, want a *CredentialsError", err)
			}
			if want := "no AWS credentials found: none in the environment (AWS_ACCESS_KEY_ID), no profile (AWS_PROFILE, ~/.aws), and no role from the EC2 instance metadata service (it answered HTTP 403)"; ce.Problem() != want {
				t.Errorf("problem %q, want %q", ce.Problem(), want)
			}
			for _, want := range tc.wantFix {
				if !strings.Contains(ce.Fix(), want) {
					t.Errorf("fix %q: no %q", ce.Fix(), want)
				}
			}
			if tc.endpoint == "" && strings.Contains(ce.Fix(), "emulator") {
				t.Errorf("fix without an endpoint speaks of an emulator: %q", ce.Fix())
			}
			if !strings.Contains(logged.String(), "level=DEBUG") || !strings.Contains(logged.String(), "aws sdk: falling back to IMDSv1") {
				t.Errorf("the SDK's line did not reach the logger at debug level:\n%s", logged.String())
			}
		})
	}
	w.Close()
	os.Stderr = stderr
	if out, _ := io.ReadAll(r); len(out) > 0 {
		t.Errorf("the SDK wrote to standard error:\n%s", out)
	}
}

// TestIdleConns: an SQS client making n calls at once, round after round,
// keeps its n connections with IdleConns n; with the SDK's default it keeps
// 10 and opens the others anew every round.
func TestIdleConns(t *testing.T) {
	testCredentials(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const n, rounds = 16, 5
	for _, tc := range []struct {
		name   string
		idle   int
		lo, hi int64 // connections opened
	}{
		{"IdleConns 16", n, n, n + 3},
		{"SDK default", 0, n + (rounds-1)*(n-10) - 6, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opened atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				time.Sleep(20 * time.Millisecond) // the n calls overlap
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				_, _ = io.WriteString(w, `{"Attributes":{"QueueArn":"arn:aws:sqs:us-east-1:000000000000:q"}}`)
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			c, err := SQS(ctx, Options{Region: "us-east-1", Endpoint: srv.URL, RegionKey: "sink.sqs.region", IdleConns: tc.idle})
			if err != nil {
				t.Fatal(err)
			}
			for range rounds {
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						if _, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(srv.URL + "/000000000000/q")}); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				time.Sleep(20 * time.Millisecond) // the connections are back in the pool
			}
			t.Logf("%d connections opened", opened.Load())
			if got := opened.Load(); got < tc.lo || got > tc.hi {
				t.Errorf("%d connections opened for %d rounds of %d calls at once, want %d to %d", got, rounds, n, tc.lo, tc.hi)
			}
		})
	}
}

// TestIntegrityFromTransport checks where the SQS client leaves out the
// SDK's MD5 check of received messages: only where the transport already
// guarantees their integrity.
func TestIntegrityFromTransport(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		want     bool
	}{
		{"", true}, // AWS's own endpoint: HTTPS
		{"https://sqs.ap-northeast-1.amazonaws.com", true},
		{"HTTPS://vpce-0123.sqs.ap-northeast-1.vpce.amazonaws.com", true},
		{"http://localhost:4566", true},
		{"http://127.0.0.1:4566", true},
		{"http://[::1]:4566", true},
		{"http://sqs-proxy.internal:8080", false},
		{"http://10.0.0.5:4566", false},
		{"http://[fe80::1", false}, // unparsable: keep the check
	} {
		if got := integrityFromTransport(tc.endpoint); got != tc.want {
			t.Errorf("integrityFromTransport(%q) = %v, want %v", tc.endpoint, got, tc.want)
		}
	}
}
