package config

import (
	"reflect"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// TestLargePayloadsResolved: publisher.large_payloads applies to every
// table, a table's own keys override it one by one, and each mapping gets
// the result (nil: none); s3.region follows sns.region.
func TestLargePayloadsResolved(t *testing.T) {
	const file = `
source:
  dsn: postgres://cdc@localhost:5432/baitoru
  slot: cdc_a
sns:
  region: ap-northeast-1
  topic_arn: arn:aws:sns:ap-northeast-1:123456789012:baitoru-events
publisher:
  large_payloads:
    bucket: baitoru-large
tables:
  - table: public.applications
    columns: [{column: application_id}]
  - table: public.job_postings
    columns: [{column: posting_id}]
    large_payloads:
      threshold: 200KiB
      prefix: postings/
  - table: public.companies
    columns: [{column: company_id}]
    large_payloads:
      bucket: other-bucket
`
	for _, tc := range []struct {
		name, kind string
		want       []*connector.LargePayloads
	}{
		{"sns", "sns", []*connector.LargePayloads{
			{Bucket: "baitoru-large", Prefix: "baitoru-cdc/cdc_a/", Threshold: 262144},
			{Bucket: "baitoru-large", Prefix: "postings/", Threshold: 200 << 10},
			{Bucket: "other-bucket", Prefix: "baitoru-cdc/cdc_a/", Threshold: 262144},
		}},
		{"stdout", "stdout", []*connector.LargePayloads{nil, nil, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("BAITORU_CDC_PUBLISHER_KIND", tc.kind)
			cfg := mustLoad(t, writeConfig(t, file))
			var got []*connector.LargePayloads
			for _, m := range cfg.Mappings() {
				got = append(got, m.LargePayloads)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("resolved\n %v\nwant\n %v", got, tc.want)
			}
			if cfg.S3.Region != "ap-northeast-1" {
				t.Errorf("s3.region = %q, want sns.region", cfg.S3.Region)
			}
			if want := tc.kind == "sns"; cfg.LargePayloadsUsed() != want {
				t.Errorf("LargePayloadsUsed = %v, want %v", !want, want)
			}
		})
	}
	cfg := mustLoad(t, writeConfig(t, file))
	want := []connector.LargePayloads{
		{Bucket: "baitoru-large", Prefix: "baitoru-cdc/cdc_a/", Threshold: 262144},
		{Bucket: "baitoru-large", Prefix: "postings/", Threshold: 200 << 10},
		{Bucket: "other-bucket", Prefix: "baitoru-cdc/cdc_a/", Threshold: 262144},
	}
	if got := cfg.Buckets(); !reflect.DeepEqual(got, want) {
		t.Errorf("Buckets() = %v, want %v", got, want)
	}
}

// TestLargePayloadsOff: without a bucket nothing goes through S3.
func TestLargePayloadsOff(t *testing.T) {
	cfg := mustLoad(t, writeConfig(t, minimal))
	for _, m := range cfg.Mappings() {
		if m.LargePayloads != nil {
			t.Errorf("%s: large payloads %v without a bucket", m.Table, m.LargePayloads)
		}
	}
	if cfg.LargePayloadsUsed() {
		t.Error("LargePayloadsUsed without a bucket")
	}
}
