// Package awsclient builds every AWS SDK client baitoru-cdc makes: the
// connector's SNS and S3 clients and the sink's SQS and S3 clients (the sink
// server and the Lambda function). Credentials come from the default AWS chain
// (environment, shared config and credentials files, web identity, ECS and
// EC2 roles); the region and an endpoint override come from the
// configuration.
//
// The clients differ in one deliberate way, chosen by Options.Retries: who
// retries a failed call.
//
//   - The connector's SNS client makes one attempt per call (CallerRetries):
//     the SNS publisher retries throttling, 5xx answers, network errors and
//     the failed entries of a batch itself, for as long as its context
//     allows. The SDK's standard retryer would give up after 3 attempts,
//     resend entries that had already succeeded, and stop retrying
//     altogether once its client-side retry quota is spent; none of that
//     suits a connector that must not move past an event SNS has not
//     accepted.
//   - The sink's SQS client keeps the SDK's standard retryer (SDKRetries: up
//     to 3 attempts with jittered backoff): the consumer makes each delete,
//     visibility change and dead-letter send once, after its pushes, and a
//     transient failure there costs a redelivery (the delivery log keeps it
//     from being pushed twice), so the SDK's few quick retries are what it
//     wants; a failed receive is retried by the consumer's loop. The
//     retryer has no client-side retry quota (the SDK's default token
//     bucket, which stops every retry of the client once about 100 have
//     failed, until successes refill it): a sink makes a bounded number of
//     calls at once, each retried at most twice with backoff, so the quota
//     would only turn a long outage's deletes into redeliveries, and it
//     costs a lock per call. AWS_MAX_ATTEMPTS still applies; AWS_RETRY_MODE
//     does not.
//   - The connector's S3 client (large events stored in S3) makes one
//     attempt per call, for the SNS client's reasons: the payload store
//     retries, as long as its context allows, because the event behind it
//     may not be acknowledged before the object is written. The sink's S3
//     client keeps the SDK's retries: a read that still fails leaves the
//     message for redelivery.
//
// An Endpoint override (an emulator such as fauxqs) makes the S3 client
// address buckets in the path (http://host:port/bucket/key), since an
// emulator on localhost cannot answer bucket.host names.
//
// Two things the SDK would show a person raw are translated here:
//
//   - The SDK's own log lines (e.g. "falling back to IMDSv1", printed to
//     standard error with an "SDK" prefix by default) go to Options.Logger at
//     debug level, or nowhere: what matters to the user reaches them as the
//     error of the call.
//   - When the default chain finds no credentials, it ends at the EC2
//     instance metadata service, and a call fails with that service's error
//     ("no EC2 IMDS role found, ... StatusCode: 403"), which says nothing of
//     the cause. Such a call fails with a *CredentialsError instead: no
//     credentials found, and how to provide them.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Retries says who retries a failed call.
type Retries int

const (
	// SDKRetries keeps the SDK's standard retryer (3 attempts).
	SDKRetries Retries = iota
	// CallerRetries makes one attempt per call: the caller retries.
	CallerRetries
)

// Options say which client to build.
type Options struct {
	// Region overrides the region of the default chain (AWS_REGION, the
	// shared config file).
	Region string
	// Endpoint, when set, replaces the AWS endpoint (an emulator such as
	// fauxqs); it wins over AWS_ENDPOINT_URL* in the environment.
	Endpoint string
	// RegionKey is the configuration key of Region (e.g. "sns.region"),
	// named in the error when no region is set anywhere.
	RegionKey string
	// EndpointKey is the configuration key of Endpoint (e.g.
	// "sns.endpoint"), named in the error when no credentials are found.
	EndpointKey string
	// Logger receives the SDK's own log lines at debug level; nil
	// discards them.
	Logger *slog.Logger
	// Retries says who retries a failed call (see the package
	// documentation).
	Retries Retries
	// IdleConns is how many connections to the service the client keeps
	// open between calls: at least as many as the calls it makes at once,
	// or every call beyond them opens a connection and closes it after its
	// answer. 0 keeps the SDK's default (10).
	IdleConns int
}

// Config loads the SDK configuration for o: the default credential chain,
// o's region and retry policy. It fails when no region is set. It reads the
// environment and the shared config files; it makes no network call.
func Config(ctx context.Context, o Options) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithLogger(sdkLogger{o.Logger})}
	switch o.Retries {
	case CallerRetries:
		opts = append(opts, config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	case SDKRetries:
		opts = append(opts, config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) { so.RateLimiter = ratelimit.None })
		}))
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set %s in the config or AWS_REGION", o.RegionKey)
	}
	if aws.IsCredentialsProvider(cfg.Credentials, (*ec2rolecreds.Provider)(nil)) {
		// Nothing in the environment or the shared files: the chain
		// ended at the instance metadata service.
		cfg.Credentials = lastResort{cfg.Credentials, o}
	}
	return cfg, nil
}

// ErrNoCredentials is wrapped by every *CredentialsError.
var ErrNoCredentials = errors.New("no AWS credentials found")

// CredentialsError is the error of a call made without credentials: the
// default chain found none in the environment or the shared files, and the
// EC2 instance metadata service gave no role (not on EC2, or no role
// attached). Its message says what to set.
type CredentialsError struct {
	// Endpoint and EndpointKey are the client's endpoint override and its
	// configuration key (an emulator takes any keys).
	Endpoint, EndpointKey string
	// Cause is the instance metadata service's error.
	Cause error
}

// Problem says what is wrong.
func (e *CredentialsError) Problem() string {
	return "no AWS credentials found: none in the environment (AWS_ACCESS_KEY_ID), no profile (AWS_PROFILE, ~/.aws), and no role from the EC2 instance metadata service (" + imdsCause(e.Cause) + ")"
}

// Fix says what to do about it.
func (e *CredentialsError) Fix() string {
	fix := "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role (ECS task role, EC2 instance profile)"
	if e.Endpoint != "" {
		key := e.EndpointKey
		if key == "" {
			key = "the endpoint"
		}
		fix += "; against a local emulator (" + key + " " + e.Endpoint + ") any keys do, e.g. AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
	}
	return fix
}

func (e *CredentialsError) Error() string { return e.Problem() + "; fix: " + e.Fix() }

// Unwrap returns ErrNoCredentials and the cause.
func (e *CredentialsError) Unwrap() []error { return []error{ErrNoCredentials, e.Cause} }

// lastResort is the chain's last provider, the instance metadata service:
// its failure means that no credentials were found anywhere.
type lastResort struct {
	aws.CredentialsProvider
	o Options
}

func (p lastResort) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &CredentialsError{Endpoint: p.o.Endpoint, EndpointKey: p.o.EndpointKey, Cause: err}
	}
	return c, err
}

// imdsCause says in a few words why the instance metadata service gave no
// role.
func imdsCause(err error) string {
	var re *smithyhttp.ResponseError
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil:
		return "no answer"
	case errors.As(err, &re):
		return fmt.Sprintf("it answered HTTP %d", re.HTTPStatusCode())
	case errors.As(err, &ne) && ne.Timeout():
		return "it did not answer"
	case errors.As(err, &oe):
		return "it cannot be reached: " + oe.Err.Error()
	case strings.Contains(err.Error(), "disabled"):
		return "disabled by AWS_EC2_METADATA_DISABLED"
	}
	return err.Error()
}

// sdkLogger hands the SDK's log lines to a slog logger at debug level.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if l.log == nil {
		return
	}
	l.log.Debug("aws sdk: "+fmt.Sprintf(format, v...), "classification", string(c))
}

// SNS builds an SNS client for o.
func SNS(ctx context.Context, o Options) (*awssns.Client, error) {
	cfg, err := Config(ctx, o)
	if err != nil {
		return nil, err
	}
	return awssns.NewFromConfig(cfg, func(so *awssns.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}

// SQS builds an SQS client for o. Its requests are sent with their bodies
// in memory (memoryBodies says why). It does not check received messages
// against their MD5 digests when the transport already guarantees their
// integrity (integrityFromTransport): HTTPS, as to every AWS endpoint, or a
// local emulator.
func SQS(ctx context.Context, o Options) (*awssqs.Client, error) {
	cfg, err := Config(ctx, o)
	if err != nil {
		return nil, err
	}
	return awssqs.NewFromConfig(cfg, func(so *awssqs.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.HTTPClient = memoryBodies{next: withIdleConns(so.HTTPClient, o.IdleConns)}
		so.DisableMessageChecksumValidation = integrityFromTransport(aws.ToString(so.BaseEndpoint))
	}), nil
}

// withIdleConns returns hc keeping n idle connections per host, when hc is
// the SDK's own client and n > 0; else hc.
func withIdleConns(hc aws.HTTPClient, n int) aws.HTTPClient {
	b, ok := hc.(*awshttp.BuildableClient)
	if !ok || n <= 0 {
		return hc
	}
	return b.WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = n
		t.MaxIdleConns = max(t.MaxIdleConns, n)
	})
}

// S3 builds an S3 client for o. With an Endpoint it uses path-style
// addressing (see the package documentation).
func S3(ctx context.Context, o Options) (*awss3.Client, error) {
	cfg, err := Config(ctx, o)
	if err != nil {
		return nil, err
	}
	return awss3.NewFromConfig(cfg, func(so *awss3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	}), nil
}
