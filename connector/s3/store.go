// Package s3 stores the bodies of events too large for SNS in an S3 bucket
// (connector.PayloadStore), for the claim-check publisher
// (connector.ClaimCheck).
//
// The Store owns every retry: the SDK client built by NewClient makes
// exactly one attempt per call (awsclient.CallerRetries), so throttling,
// 5xx answers and network errors are retried by Put itself, with its own
// backoff, logged, for as long as the caller's context allows, exactly as
// the SNS publisher retries; the event behind an object is not
// acknowledged before the object is written.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cenkalti/backoff/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
)

// API is the part of the S3 client the Store uses. *s3.Client from
// aws-sdk-go-v2 satisfies it; tests may wrap it.
type API interface {
	PutObject(ctx context.Context, in *awss3.PutObjectInput, optFns ...func(*awss3.Options)) (*awss3.PutObjectOutput, error)
}

var _ API = (*awss3.Client)(nil)

// NewClient builds an S3 client from the default AWS credential chain.
// region overrides the configured region; endpoint, when set, replaces the
// AWS endpoint (an emulator such as fauxqs; buckets are then addressed in
// the path). The client does not retry: the Store does. The SDK's own log
// lines go to log at debug level (nil: nowhere).
func NewClient(ctx context.Context, region, endpoint string, log *slog.Logger) (*awss3.Client, error) {
	c, err := awsclient.S3(ctx, awsclient.Options{
		Region: region, Endpoint: endpoint, RegionKey: "s3.region", EndpointKey: "s3.endpoint",
		Retries: awsclient.CallerRetries, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return c, nil
}

// Options tune a Store.
type Options struct {
	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts: publisher.retry, resolved by package config (zero: retry
	// at once), as for the SNS publisher. The store applies no default of
	// its own.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// CallTimeout bounds one PutObject attempt; a call that takes longer
	// is abandoned and retried (default 60s).
	CallTimeout time.Duration
	// Observer, when set, is told about retries (metrics), with the topic
	// argument "s3://<bucket>".
	Observer connector.RetryObserver
}

func (o *Options) defaults() {
	o.RetryMax = max(o.RetryMax, o.RetryInitial)
	if o.CallTimeout <= 0 {
		o.CallTimeout = 60 * time.Second
	}
}

// ContentType of the stored objects: the event's CloudEvents JSON
// document, byte for byte.
const ContentType = "application/cloudevents+json; charset=utf-8"

// Store writes objects to S3. It is a connector.PayloadStore; safe for
// concurrent use, it keeps no state between calls.
type Store struct {
	api  API
	opts Options
	log  *slog.Logger
}

var _ connector.PayloadStore = (*Store)(nil)

// New returns a Store writing through client.
func New(client API, opts Options, log *slog.Logger) *Store {
	opts.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{api: client, opts: opts, log: log}
}

// Put writes body as bucket/key (overwriting), retrying throttling, 5xx
// answers, network errors and timeouts until ctx ends. Any other answer
// (NoSuchBucket, AccessDenied, a KMS key that cannot be used...) is
// permanent: the error wraps connector.ErrPermanent and says what to fix.
func (s *Store) Put(ctx context.Context, bucket, key string, body []byte) error {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     s.opts.RetryInitial,
		RandomizationFactor: 0.3,
		Multiplier:          2,
		MaxInterval:         s.opts.RetryMax,
	}
	bo.Reset()
	for attempt := 1; ; attempt++ {
		err := s.put(ctx, bucket, key, body)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("put object: %w", ctx.Err())
		}
		code := awsclient.ErrorCode(err)
		if !awsclient.Retryable(err) {
			msg := "put object"
			if h := Hint(code); h != "" {
				msg += " (" + h + ")"
			}
			return fmt.Errorf("%s: %w: %w", msg, err, connector.ErrPermanent)
		}
		s.log.Warn("s3 put failed; retrying", "bucket", bucket, "key", key, "attempt", attempt, "code", code, "error", err)
		if s.opts.Observer != nil {
			s.opts.Observer.Retried("s3://"+bucket, code, 1)
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("put object: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// put makes one PutObject attempt, bounded by CallTimeout.
func (s *Store) put(ctx context.Context, bucket, key string, body []byte) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	_, err := s.api.PutObject(cctx, &awss3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(ContentType),
	})
	return err
}

// Hint tells the operator what a permanent S3 error code usually means.
func Hint(code string) string {
	switch {
	case code == "NoSuchBucket":
		return "the bucket does not exist: create it, or fix large_payloads.bucket and s3.region"
	case code == "AccessDenied" || code == "AllAccessDisabled" || code == "AccountProblem":
		return "the connector's AWS identity may not write there: allow s3:PutObject on arn:aws:s3:::<bucket>/<prefix>* (and check the bucket policy)"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException":
		return "the bucket is in another region: set s3.region to the bucket's region"
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken":
		return "AWS refused the credentials: check the connector's AWS credentials and s3.region"
	case strings.HasPrefix(code, "KMS"):
		return "the bucket's KMS key cannot be used: check the key's state and the connector's kms:GenerateDataKey permission"
	case code == "InvalidBucketName":
		return "fix large_payloads.bucket: 3 to 63 lowercase letters, digits, dots and hyphens"
	}
	return ""
}

// ErrProbe is wrapped by the error of Probe.
var ErrProbe = errors.New("bucket not writable")

// ProbeKey is the object Probe writes under a prefix.
const ProbeKey = ".baitoru-cdc-check"

// Probe checks that the connector can write to bucket under prefix: it
// writes the small object prefix + ProbeKey, once (no retry), within
// timeout. It needs nothing but s3:PutObject, as the connector itself;
// the object stays (the bucket's lifecycle rule expires it). A nil error
// means the bucket exists, is reachable, and takes objects there. For
// `check`.
func (s *Store) Probe(ctx context.Context, bucket, prefix string, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body := []byte("written by baitoru-cdc check at " + time.Now().UTC().Format(time.RFC3339) + "\n")
	_, err := s.api.PutObject(cctx, &awss3.PutObjectInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(prefix + ProbeKey),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("text/plain; charset=utf-8"),
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	return nil
}
