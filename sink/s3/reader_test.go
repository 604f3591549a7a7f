package s3_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	sinks3 "github.com/baitoru/baitoru-cdc/sink/s3"
)

// The compile-time check lives here, not in the package: a package-level
// reference would make the deploy/ IAM analysis count s3:GetObject for
// every binary that links the package (the connector's too).
var _ sink.PayloadStore = (*sinks3.Reader)(nil)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestReaderGet: an object is read whole; a missing object or bucket wraps
// sink.ErrPayloadMissing; an object over the limit sink.ErrPayloadTooLarge.
func TestReaderGet(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (S3 emulator)")
	}
	ctx := t.Context()
	emu := testenv.Emu(t)
	bucket := "reader-" + strings.ToLower(time.Now().UTC().Format("150405.000000"))
	bucket = strings.ReplaceAll(bucket, ".", "-")
	if err := emu.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("イベント", 1000)
	if _, err := emu.S3().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k/1"), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	r := sinks3.New(emu.S3())
	for _, tc := range []struct {
		name, bucket, key string
		max               int64
		want              error
	}{
		{"whole", bucket, "k/1", int64(len(body)), nil},
		{"missing key", bucket, "k/2", 1 << 20, sink.ErrPayloadMissing},
		{"missing bucket", bucket + "-gone", "k/1", 1 << 20, sink.ErrPayloadMissing},
		{"over the limit", bucket, "k/1", int64(len(body)) - 1, sink.ErrPayloadTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Get(ctx, tc.bucket, tc.key, tc.max)
			if !errors.Is(err, tc.want) || (tc.want == nil && string(got) != body) {
				t.Fatalf("Get: %d bytes, %v; want %v", len(got), err, tc.want)
			}
		})
	}
}
