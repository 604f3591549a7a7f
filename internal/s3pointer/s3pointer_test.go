package s3pointer

import (
	"errors"
	"strings"
	"testing"
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		p    Pointer
		want string
	}{
		{Pointer{"baitoru-large", "baitoru-cdc/baitoru_cdc/0/16B3748-3"},
			`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"baitoru-large","s3Key":"baitoru-cdc/baitoru_cdc/0/16B3748-3"}]`},
		{Pointer{"b", `k"\`}, `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k\"\\"}]`},
	} {
		got := string(Encode(tc.p))
		if got != tc.want {
			t.Errorf("Encode(%v)\n got %s\nwant %s", tc.p, got, tc.want)
		}
		back, err := Parse([]byte(got))
		if err != nil || back != tc.p {
			t.Errorf("Parse(Encode(%v)) = %v, %v", tc.p, back, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       Pointer
		err        string
	}{
		{"current", `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}]`, Pointer{"b", "k"}, ""},
		{"legacy class", `["com.amazon.sqs.javamessaging.MessageS3Pointer",{"s3BucketName":"b","s3Key":"k"}]`, Pointer{"b", "k"}, ""},
		{"python spacing", `["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "b", "s3Key": "k"}]`, Pointer{"b", "k"}, ""},
		{"not json", `[`, Pointer{}, "not a JSON array"},
		{"object", `{"s3BucketName":"b"}`, Pointer{}, "not a JSON array"},
		{"three elements", `["software.amazon.payloadoffloading.PayloadS3Pointer",{},1]`, Pointer{}, "3 elements"},
		{"other class", `["java.lang.String",{"s3BucketName":"b","s3Key":"k"}]`, Pointer{}, `class "java.lang.String"`},
		{"class not a string", `[1,{"s3BucketName":"b","s3Key":"k"}]`, Pointer{}, "not a class name"},
		{"no key", `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b"}]`, Pointer{}, "empty"},
		{"pointer not an object", `["software.amazon.payloadoffloading.PayloadS3Pointer","b/k"]`, Pointer{}, "not an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !IsPointer([]byte(tc.body)) && tc.err == "" {
				t.Errorf("IsPointer(%s) = false", tc.body)
			}
			p, err := Parse([]byte(tc.body))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid)):
				t.Fatalf("Parse error %v, want one containing %q wrapping ErrInvalid", err, tc.err)
			case p != tc.want:
				t.Fatalf("Parse = %v, want %v", p, tc.want)
			}
		})
	}
}

func TestIsPointer(t *testing.T) {
	for body, want := range map[string]bool{
		`["x"]`: true, " \n[": true, `{"specversion":"1.0"}`: false, "": false, "  ": false,
	} {
		if got := IsPointer([]byte(body)); got != want {
			t.Errorf("IsPointer(%q) = %v, want %v", body, got, want)
		}
	}
}

func TestSize(t *testing.T) {
	attrs := func(m map[string]string) func(string) (string, bool) {
		return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
	}
	for _, tc := range []struct {
		attrs map[string]string
		want  string
		ok    bool
	}{
		{map[string]string{"ExtendedPayloadSize": "300000"}, "300000", true},
		{map[string]string{"SQSLargePayloadSize": "12"}, "12", true},
		{map[string]string{"ExtendedPayloadSize": "1", "SQSLargePayloadSize": "2"}, "1", true},
		{map[string]string{"table": "x"}, "", false},
	} {
		v, ok := Size(attrs(tc.attrs))
		if v != tc.want || ok != tc.ok {
			t.Errorf("Size(%v) = %q, %v; want %q, %v", tc.attrs, v, ok, tc.want, tc.ok)
		}
	}
	for v, want := range map[string]int64{"0": 0, "300000": 300000} {
		if n, err := ParseSize(v); err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v", v, n, err)
		}
	}
	for _, v := range []string{"", "-1", "1.5", "1e6", "x"} {
		if _, err := ParseSize(v); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSize(%q) = %v, want ErrInvalid", v, err)
		}
	}
}
