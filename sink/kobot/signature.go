package kobot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks 1.0 header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts every Standard Webhooks signing secret.
const secretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock before Verify rejects the request (replay protection).
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify and ParseSecret.
var (
	ErrSecret           = errors.New("signing secret must be whsec_ followed by base64")
	ErrMissingHeaders   = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrTimestamp        = errors.New("webhook-timestamp is not unix seconds")
	ErrTimestampOutside = errors.New("webhook-timestamp outside the tolerance")
	ErrSignature        = errors.New("no matching webhook signature")
)

// Secret is a parsed signing secret: the bytes of the HMAC key. Its String
// method never prints the key, so a Secret is safe in logs and errors.
type Secret []byte

func (Secret) String() string { return "whsec_<redacted>" }

// ParseSecret decodes "whsec_<base64>" into the HMAC key. The error never
// contains the secret.
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), secretPrefix)
	if !ok || b64 == "" {
		return nil, ErrSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Some generators drop the padding.
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil || len(key) == 0 {
		return nil, ErrSecret
	}
	return Secret(key), nil
}

// Sign returns the webhook-signature header value, "v1,<base64>", of the
// HMAC-SHA256 over "<id>.<unix seconds>.<body>".
func Sign(key Secret, id string, ts time.Time, body []byte) string {
	return signature(key, id, strconv.FormatInt(ts.Unix(), 10), body)
}

// signature is Sign with the timestamp already formatted as unix seconds.
func signature(key Secret, id, ts string, body []byte) string {
	return signaturePrefix + base64.StdEncoding.EncodeToString(mac(key, id, ts, body))
}

// signaturePrefix starts a version 1 signature.
const signaturePrefix = "v1,"

func mac(key Secret, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	writeSigned(h, id, ts, body)
	return h.Sum(nil)
}

// writeSigned writes what a signature covers, "<id>.<ts>.<body>", to h.
func writeSigned(h hash.Hash, id, ts string, body []byte) {
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
}

// Verify checks a received webhook the way Standard Webhooks receivers do:
// the three headers are present, the timestamp is within tolerance of now,
// and one of the space-separated "v1,<base64>" signatures matches (compared
// in constant time). It is what Kobot should run; the sink's tests use it to
// check what the sink sends.
func Verify(key Secret, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s", ErrTimestampOutside, d.Round(time.Second))
	}
	want := mac(key, id, ts, body)
	for sig := range strings.FieldsSeq(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}
