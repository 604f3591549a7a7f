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
//     wants; a failed receive is retried by the consumer's loop.
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
package awsclient

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
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
	// Retries says who retries a failed call (see the package
	// documentation).
	Retries Retries
}

// Config loads the SDK configuration for o: the default credential chain,
// o's region and retry policy. It fails when no region is set. It reads the
// environment and the shared config files; it makes no network call.
func Config(ctx context.Context, o Options) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if o.Retries == CallerRetries {
		opts = append(opts, config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
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
	return cfg, nil
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

// SQS builds an SQS client for o.
func SQS(ctx context.Context, o Options) (*awssqs.Client, error) {
	cfg, err := Config(ctx, o)
	if err != nil {
		return nil, err
	}
	return awssqs.NewFromConfig(cfg, func(so *awssqs.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
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
