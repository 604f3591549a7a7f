// Package s3 reads, for the sink, the events that a producer stored in S3
// because they were too large for SNS (sink.PayloadStore over the AWS SDK's
// S3 client). It only reads (s3:GetObject): objects are shared by every
// subscriber of the topic and expire by the bucket's lifecycle rule.
package s3

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
	"github.com/baitoru/baitoru-cdc/sink"
)

// API is the part of the S3 client the Reader calls.
type API interface {
	GetObject(ctx context.Context, in *awss3.GetObjectInput, optFns ...func(*awss3.Options)) (*awss3.GetObjectOutput, error)
}

var _ API = (*awss3.Client)(nil)

// NewClient builds the S3 client of sink.s3 (region, endpoint), with the
// SDK's retries: a read that still fails leaves the message for
// redelivery.
func NewClient(ctx context.Context, c config.SinkS3, log *slog.Logger) (*awss3.Client, error) {
	cl, err := awsclient.S3(ctx, awsclient.Options{
		Region: c.Region, Endpoint: c.Endpoint, RegionKey: "sink.s3.region", EndpointKey: "sink.s3.endpoint",
		Retries: awsclient.SDKRetries, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return cl, nil
}

// Reader reads stored events.
type Reader struct {
	api API
}

// New returns a Reader over api.
func New(api API) *Reader { return &Reader{api: api} }

// Get returns the object bucket/key, at most max bytes: a missing bucket or
// object wraps sink.ErrPayloadMissing, a larger object
// sink.ErrPayloadTooLarge (read no further than max+1 bytes).
func (r *Reader) Get(ctx context.Context, bucket, key string, max int64) ([]byte, error) {
	out, err := r.api.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		switch awsclient.ErrorCode(err) {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return nil, fmt.Errorf("%w: %w", sink.ErrPayloadMissing, err)
		}
		return nil, err
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength > max {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", sink.ErrPayloadTooLarge, *out.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%w: over %d bytes", sink.ErrPayloadTooLarge, max)
	}
	return body, nil
}
