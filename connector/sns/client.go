// Package sns publishes events to AWS SNS topics with PublishBatch.
//
// The Publisher owns every retry: the SDK client built by NewClient makes
// exactly one attempt per call (awsclient.CallerRetries, whose
// documentation says why), so throttling, 5xx answers, network errors and
// per-entry failures are all retried by Publish itself, with its own
// backoff, logged, and for as long as the caller's context allows.
package sns

import (
	"context"
	"fmt"
	"log/slog"

	awssns "github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/baitoru/baitoru-cdc/internal/awsclient"
)

// API is the part of the SNS client the Publisher uses. *sns.Client from
// aws-sdk-go-v2 satisfies it; tests may wrap it.
type API interface {
	PublishBatch(ctx context.Context, in *awssns.PublishBatchInput, optFns ...func(*awssns.Options)) (*awssns.PublishBatchOutput, error)
	GetTopicAttributes(ctx context.Context, in *awssns.GetTopicAttributesInput, optFns ...func(*awssns.Options)) (*awssns.GetTopicAttributesOutput, error)
}

var _ API = (*awssns.Client)(nil)

// NewClient builds an SNS client from the default AWS credential chain.
// region overrides the configured region; endpoint, when set, replaces the
// AWS endpoint (an emulator such as fauxqs). The client does not retry: the
// Publisher does (see the package documentation). The SDK's own log lines go
// to log at debug level (nil: nowhere).
func NewClient(ctx context.Context, region, endpoint string, log *slog.Logger) (*awssns.Client, error) {
	c, err := awsclient.SNS(ctx, awsclient.Options{
		Region: region, Endpoint: endpoint, RegionKey: "sns.region", EndpointKey: "sns.endpoint",
		Retries: awsclient.CallerRetries, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("sns: %w", err)
	}
	return c, nil
}
