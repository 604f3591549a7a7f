package kobot

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's published test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorHeaders(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	key, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, vectorID, time.Unix(vectorTS, 0), []byte(vectorBody)); got != vectorSig {
		t.Fatalf("Sign = %s, want %s", got, vectorSig)
	}
}

func TestVerify(t *testing.T) {
	key, _ := ParseSecret(vectorSecret)
	other, _ := ParseSecret("whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=")
	ts := strconv.Itoa(vectorTS)
	now := time.Unix(vectorTS, 0)
	tests := []struct {
		name string
		key  Secret
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		{"vector", key, vectorHeaders(vectorID, ts, vectorSig), vectorBody, now, nil},
		{"within tolerance", key, vectorHeaders(vectorID, ts, vectorSig), vectorBody, now.Add(4 * time.Minute), nil},
		{"second of two signatures", key, vectorHeaders(vectorID, ts, "v1,AAAA "+vectorSig), vectorBody, now, nil},
		{"unknown version ignored", key, vectorHeaders(vectorID, ts, "v1a,"+vectorSig[3:]), vectorBody, now, ErrSignature},
		{"body changed", key, vectorHeaders(vectorID, ts, vectorSig), `{"test": 2432232315}`, now, ErrSignature},
		{"id changed", key, vectorHeaders("msg_other", ts, vectorSig), vectorBody, now, ErrSignature},
		{"wrong key", other, vectorHeaders(vectorID, ts, vectorSig), vectorBody, now, ErrSignature},
		{"timestamp changed", key, vectorHeaders(vectorID, strconv.Itoa(vectorTS+1), vectorSig), vectorBody, now, ErrSignature},
		{"too old", key, vectorHeaders(vectorID, ts, vectorSig), vectorBody, now.Add(6 * time.Minute), ErrTimestampOutside},
		{"from the future", key, vectorHeaders(vectorID, ts, vectorSig), vectorBody, now.Add(-6 * time.Minute), ErrTimestampOutside},
		{"timestamp not a number", key, vectorHeaders(vectorID, "yesterday", vectorSig), vectorBody, now, ErrTimestamp},
		{"no signature", key, vectorHeaders(vectorID, ts, ""), vectorBody, now, ErrMissingHeaders},
		{"no id", key, vectorHeaders("", ts, vectorSig), vectorBody, now, ErrMissingHeaders},
		{"signature not base64", key, vectorHeaders(vectorID, ts, "v1,@@@"), vectorBody, now, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.key, tt.h, []byte(tt.body), tt.now, DefaultTolerance)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		size int
	}{
		{vectorSecret, true, 24},
		{"whsec_c2VjcmV0", true, 6},            // unpadded
		{"  " + vectorSecret + "\n", true, 24}, // from a file
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false, 0},
		{"whsec_", false, 0},
		{"whsec_not base64!", false, 0},
		{"", false, 0},
	}
	for _, tt := range tests {
		k, err := ParseSecret(tt.in)
		if (err == nil) != tt.ok || len(k) != tt.size {
			t.Errorf("ParseSecret(%q) = %d bytes, %v; want ok=%v, %d bytes", tt.in, len(k), err, tt.ok, tt.size)
		}
		if err != nil && len(tt.in) > 8 && strings.Contains(err.Error(), tt.in[6:]) {
			t.Errorf("error %q shows the secret", err)
		}
	}
	if s := Secret("key").String(); strings.Contains(s, "key") {
		t.Errorf("Secret.String() = %q shows the key", s)
	}
}

// FuzzVerifySignature checks that Verify never panics, accepts what Sign
// produced for any id, timestamp and body, and rejects it after any change
// of the body.
func FuzzVerifySignature(f *testing.F) {
	f.Add(vectorID, int64(vectorTS), []byte(vectorBody), "v1,AAAA", []byte("x"))
	f.Add("0/16B3748-3", int64(1764039600), []byte(`{"specversion":"1.0"}`), "v1, v2,", []byte{})
	f.Add("", int64(-1), []byte{}, "", []byte{0xff})
	key, _ := ParseSecret(vectorSecret)
	f.Fuzz(func(t *testing.T, id string, ts int64, body []byte, junkSig string, suffix []byte) {
		now := time.Unix(ts, 0)
		// Arbitrary headers must never panic, nor verify unless they
		// happen to hold the right signature.
		h := vectorHeaders(id, strconv.FormatInt(ts, 10), junkSig)
		if err := Verify(key, h, body, now, DefaultTolerance); err == nil {
			if !strings.Contains(junkSig, Sign(key, id, now, body)[3:]) {
				t.Fatalf("verified %q, which does not hold the signature", junkSig)
			}
		}
		if id == "" || !validHeader(id) {
			return
		}
		sig := Sign(key, id, now, body)
		h = vectorHeaders(id, strconv.FormatInt(ts, 10), junkSig+" "+sig)
		if err := Verify(key, h, body, now, DefaultTolerance); err != nil {
			t.Fatalf("Verify of a signed request: %v", err)
		}
		if len(suffix) > 0 {
			if err := Verify(key, h, append(append([]byte{}, body...), suffix...), now, DefaultTolerance); !errors.Is(err, ErrSignature) {
				t.Fatalf("Verify of a changed body = %v, want ErrSignature", err)
			}
		}
	})
}

// validHeader reports whether http.Header keeps s as is (no surrounding
// space, no control characters).
func validHeader(s string) bool {
	h := http.Header{}
	h.Set("x", s)
	return h.Get("x") == s && len(s) > 0 && s[0] != ' ' && s[len(s)-1] != ' '
}
