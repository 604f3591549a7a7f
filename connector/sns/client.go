// Package sns publishes events to AWS SNS topics with PublishBatch.
//
// The Publisher owns every retry: the SDK client built by NewClient makes
// exactly one attempt per call, so throttling, 5xx answers, network errors
// and per-entry failures are all retried by Publish itself, with its own
// backoff, logged, and for as long as the caller's context allows. (The
// SDK's standard retryer would give up after 3 attempts, retry whole
// batches whose entries partly succeeded, and stop retrying altogether once
// its client-side retry quota is spent: none of that suits a connector that
// must not move past an event SNS has not accepted.)
package sns

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
)

// API is the part of the SNS client the Publisher uses. *sns.Client from
// aws-sdk-go-v2 satisfies it; tests may wrap it.
type API interface {
	PublishBatch(ctx context.Context, in *awssns.PublishBatchInput, optFns ...func(*awssns.Options)) (*awssns.PublishBatchOutput, error)
	GetTopicAttributes(ctx context.Context, in *awssns.GetTopicAttributesInput, optFns ...func(*awssns.Options)) (*awssns.GetTopicAttributesOutput, error)
}

var _ API = (*awssns.Client)(nil)

// NewClient builds an SNS client from the default AWS credential chain
// (environment, shared config and credentials files, web identity, ECS and
// EC2 roles). region overrides the configured region; endpoint, when set,
// replaces the AWS endpoint (an emulator such as fauxqs). The client does
// not retry: the Publisher does (see the package documentation).
func NewClient(ctx context.Context, region, endpoint string) (*awssns.Client, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("sns: no AWS region: set sns.region in the config or AWS_REGION")
	}
	return awssns.NewFromConfig(cfg, func(o *awssns.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}
