package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Limits of large_payloads.
const (
	// MaxThreshold is SNS's message size limit, the default and largest
	// large_payloads.threshold.
	MaxThreshold = 262144
	// MinThreshold is the smallest threshold: below it nearly every event
	// would go through S3.
	MinThreshold = 1024
	// maxPrefix bounds a key prefix, leaving room in S3's 1024-byte keys
	// for the event id.
	maxPrefix = 512
)

var (
	bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	prefixRe = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/-]*$`)
)

// applyLargePayloadDefaults gives large_payloads and the S3 sections their
// defaults that depend on other keys: publisher.large_payloads.prefix from
// source.slot, each table's keys from the publisher's, s3.region from
// sns.region and sink.s3.region from sink.sqs.region.
func (c *Config) applyLargePayloadDefaults() {
	lp := &c.Publisher.LargePayloads
	if !c.meta.has("publisher.large_payloads.prefix") {
		lp.Prefix = "baitoru-cdc/" + c.Source.Slot + "/"
	}
	if lp.Threshold == 0 && !c.meta.has("publisher.large_payloads.threshold") {
		lp.Threshold = MaxThreshold
	}
	for i := range c.Tables {
		t := &c.Tables[i].LargePayloads
		p := fmt.Sprintf("tables[%d].large_payloads", i)
		if !c.meta.has(p + ".bucket") {
			t.Bucket = lp.Bucket
		}
		if !c.meta.has(p + ".prefix") {
			t.Prefix = lp.Prefix
		}
		if !c.meta.has(p + ".threshold") {
			t.Threshold = lp.Threshold
		}
	}
	if c.S3.Region == "" && !c.meta.has("s3.region") {
		c.S3.Region = c.SNS.Region
	}
	if c.Sink.S3.Region == "" && !c.meta.has("sink.s3.region") {
		c.Sink.S3.Region = c.Sink.SQS.Region
	}
}

// LargePayloadsUsed reports whether some table sends large events through
// S3 (publisher.kind sns and a bucket set).
func (c *Config) LargePayloadsUsed() bool {
	if c.Publisher.Kind != "sns" {
		return false
	}
	for _, t := range c.Tables {
		if t.LargePayloads.Enabled() {
			return true
		}
	}
	return false
}

// Buckets lists each distinct (bucket, prefix) the tables store large
// events under, in table order (for check's write probe).
func (c *Config) Buckets() []connector.LargePayloads {
	var out []connector.LargePayloads
	seen := map[[2]string]bool{}
	for _, t := range c.Tables {
		lp := t.LargePayloads
		if !lp.Enabled() || seen[[2]string{lp.Bucket, lp.Prefix}] {
			continue
		}
		seen[[2]string{lp.Bucket, lp.Prefix}] = true
		out = append(out, connector.LargePayloads{Bucket: lp.Bucket, Prefix: lp.Prefix, Threshold: int(lp.Threshold)})
	}
	return out
}

// largePayloads checks publisher.large_payloads, the tables' own and the
// s3 section. With publisher.kind stdout they are not used and not
// checked.
func (k *checker) largePayloads() {
	c := k.c
	if c.Publisher.Kind != "sns" {
		return
	}
	k.largePayloadsAt("publisher.large_payloads", c.Publisher.LargePayloads, true)
	for i, t := range c.Tables {
		p := fmt.Sprintf("tables[%d].large_payloads", i)
		if c.meta.has(p) || c.meta.has(p+".bucket") || c.meta.has(p+".prefix") || c.meta.has(p+".threshold") {
			k.largePayloadsAt(p, t.LargePayloads, false)
		}
	}
	if !c.LargePayloadsUsed() {
		return
	}
	if c.S3.Region != "" && !regionRe.MatchString(c.S3.Region) {
		k.add("s3.region", "%q is not an AWS region (e.g. ap-northeast-1)", c.S3.Region)
	}
	if c.S3.Endpoint != "" {
		k.httpURL("s3.endpoint", c.S3.Endpoint, "http://localhost:4566")
	}
}

// largePayloadsAt checks one large_payloads block; top is the publisher's.
// A table's keys taken from the publisher are checked there, not again.
func (k *checker) largePayloadsAt(p string, lp LargePayloads, top bool) {
	has := k.c.meta.has
	own := func(key string) bool { return top || has(p+"."+key) }
	if !lp.Enabled() {
		if has(p + ".bucket") {
			k.add(p+".bucket", "empty; name the S3 bucket that stores events over the threshold, or remove large_payloads")
		} else if has(p+".prefix") || has(p+".threshold") {
			where := p + ".bucket"
			if !top {
				where += " (or publisher.large_payloads.bucket)"
			}
			k.add(p, "no bucket: set %s, the S3 bucket that stores events over the threshold", where)
		}
		return
	}
	if msg := bucketProblem(lp.Bucket); msg != "" && own("bucket") {
		k.add(p+".bucket", "%q %s", lp.Bucket, msg)
	}
	switch {
	case !own("prefix"):
	case len(lp.Prefix) > maxPrefix:
		k.add(p+".prefix", "%d bytes, at most %d (S3 keys are at most 1024 bytes and the event id follows the prefix)", len(lp.Prefix), maxPrefix)
	case !prefixRe.MatchString(lp.Prefix):
		k.add(p+".prefix", "%q: use letters, digits and !-_.*'()/ only, so that object keys need no escaping (e.g. baitoru-cdc/prod/)", lp.Prefix)
	case strings.HasPrefix(lp.Prefix, "/"):
		k.add(p+".prefix", "%q starts with '/': S3 keys have no leading slash; remove it", lp.Prefix)
	}
	switch {
	case !own("threshold"):
	case lp.Threshold > MaxThreshold:
		k.add(p+".threshold", "%d bytes, over SNS's limit of %d: an event that big cannot be published; use at most %d (the default)", lp.Threshold, MaxThreshold, MaxThreshold)
	case lp.Threshold < MinThreshold:
		k.add(p+".threshold", "%d bytes, under %d: use %d to %d (the default, SNS's limit)", lp.Threshold, MinThreshold, MinThreshold, MaxThreshold)
	}
}

// bucketProblem applies S3's rules for general purpose bucket names.
func bucketProblem(b string) string {
	switch {
	case strings.HasPrefix(b, "s3://") || strings.HasPrefix(b, "arn:"):
		return "is not a bucket name: write the name alone, e.g. baitoru-large-events"
	case !bucketRe.MatchString(b):
		return "is not a valid S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
	case strings.Contains(b, ".."):
		return "is not a valid S3 bucket name: it must not contain \"..\""
	case net.ParseIP(b) != nil:
		return "is not a valid S3 bucket name: it must not look like an IP address"
	}
	return ""
}

// resolveLargePayloads is a table's LargePayloads in its resolved form
// (nil: none), as the connector's ClaimCheck reads it.
func (c *Config) resolveLargePayloads(t Table) *connector.LargePayloads {
	if c.Publisher.Kind != "sns" || !t.LargePayloads.Enabled() {
		return nil
	}
	lp := t.LargePayloads
	return &connector.LargePayloads{Bucket: lp.Bucket, Prefix: lp.Prefix, Threshold: int(lp.Threshold)}
}

// sinkS3 checks sink.s3.
func (k *checker) sinkS3() {
	s := k.c.Sink.S3
	if s.Region != "" && !regionRe.MatchString(s.Region) {
		k.add("sink.s3.region", "%q is not an AWS region (e.g. ap-northeast-1)", s.Region)
	}
	if s.Endpoint != "" {
		k.httpURL("sink.s3.endpoint", s.Endpoint, "http://localhost:4566")
	}
	if s.MaxEventBytes < MaxThreshold {
		k.add("sink.s3.max_event_bytes", "%d bytes, under %d (SNS's limit): events stored in S3 are larger than that; use at least %d, e.g. \"16MiB\" (the default)", s.MaxEventBytes, MaxThreshold, MaxThreshold)
	}
}
