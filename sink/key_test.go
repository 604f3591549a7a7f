package sink

import (
	"strings"
	"testing"
)

// canonicalGeneral is CanonicalKey without its fast path.
func canonicalGeneral(s string) (string, bool) {
	if ValidateKey(s) != nil {
		return "", false
	}
	m := numberSyntax.FindStringSubmatch(s)
	if m == nil {
		return s, true
	}
	c, err := canonicalNumber(s, m[2], m[3])
	if err != nil || len(c) > MaxLinkKeyBytes {
		return "", false
	}
	return c, true
}

func TestCanonicalFastAgrees(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "7", "-7", "42", "123456789012345678901234567890", "-98765",
		"007", "-007", "00", "-", "--1", "7.0", "-7.50", "7e0", "70E-1", "1e3", "-0.000",
		"a", "A", "abc-1", "company-7", " 7", "7 ", "+7", ".5", "é", "7a", "-a", "0x10",
		strings.Repeat("9", MaxLinkKeyBytes), "-" + strings.Repeat("9", MaxLinkKeyBytes-1),
	} {
		want, wantOK := canonicalGeneral(s)
		got, err := CanonicalKey(s)
		if (err == nil) != wantOK || got != want {
			t.Errorf("CanonicalKey(%q) = %q, %v; the general path gives %q, valid %v", s, got, err, want, wantOK)
		}
		if c, ok := canonicalFast(s); ok && (!wantOK || c != want) {
			t.Errorf("canonicalFast(%q) = %q; the general path gives %q, valid %v", s, c, want, wantOK)
		}
	}
}

func BenchmarkCanonicalKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalKey("12345"); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCanonicalKey: CanonicalKey agrees with its general path on any key.
func FuzzCanonicalKey(f *testing.F) {
	for _, s := range []string{"7", "-0", "007", "7.0", "1e3", "company-7", "-a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantOK := canonicalGeneral(s)
		got, err := CanonicalKey(s)
		if (err == nil) != wantOK || got != want {
			t.Errorf("CanonicalKey(%q) = %q, %v; the general path gives %q, valid %v", s, got, err, want, wantOK)
		}
	})
}
