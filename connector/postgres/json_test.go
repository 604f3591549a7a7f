package postgres

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/baitoru/baitoru-cdc/connector"
)

// encodeJSONReference is encodeJSON as it was before the one-pass
// jsonCompactor: json.Valid, then a compaction pass. The compactor must
// give the same bytes for every input.
func encodeJSONReference(dst, text []byte) []byte {
	if !json.Valid(text) {
		return connector.AppendJSONString(dst, text)
	}
	inString := false
	start := 0
	for i := 0; i < len(text); {
		c := text[i]
		if !inString {
			switch c {
			case ' ', '\t', '\n', '\r':
				dst = append(dst, text[start:i]...)
				i++
				start = i
				continue
			case '"':
				inString = true
			}
			i++
			continue
		}
		switch {
		case c == '"':
			inString = false
			i++
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(text[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, text[start:i]...)
				dst = append(dst, `\ufffd`...)
				start = i + 1
			case r == '\u2028' || r == '\u2029':
				dst = append(dst, text[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
				start = i + size
			}
			i += size
		}
	}
	return append(dst, text[start:]...)
}

// jsonCases are edge cases of the JSON grammar: valid ones are compacted,
// invalid ones become strings.
var jsonCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `[ ]`, `null`, `true`, `false`, `nul`, `truex`, `[true,false,null]`,
	`0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.25e-3`, `2.`, `[1,]`, `{"a":1,}`,
	`{"a": {"b": [1, 2, {"c": "d"}]}, "e": "f g"}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `[1 2]`, `"x"`, `"`, `"\"`,
	`"\u00e9\n\t\"\\\/\b\f\r"`, `"\u12"`, `"\u12G4"`, `"\x"`, "\"a\tb\"", "\"\x01\"", "\"\x7f\"",
	"\"\xff\xfe\"", "[\"\xe2\x80\xa8\xe2\x80\xa9\"]", "\"日本語 よろしく\"", "\xef\xbb\xbf{}", "{}\x00", "{} {}", "[1]]",
	`{"available_from": "2026-12-01", "days": ["mon", "thu"], "experience_years": 3, "note": "よろしくお願いします"}`,
	strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
	strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth),
	strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
}

func TestEncodeJSONMatchesReference(t *testing.T) {
	for _, in := range jsonCases {
		name := in
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			prefix := []byte(`{"v":`)
			got, err := encodeJSON(bytes.Clone(prefix), []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			want := encodeJSONReference(bytes.Clone(prefix), []byte(in))
			if !bytes.Equal(got, want) {
				t.Fatalf("encodeJSON(%q) = %q, want %q", in, got, want)
			}
			if !json.Valid(got[len(prefix):]) {
				t.Fatalf("encodeJSON(%q) = %q: invalid JSON", in, got)
			}
		})
	}
}

// FuzzEncodeJSONMatchesReference: the one-pass compactor agrees with
// json.Valid plus compaction on any input.
func FuzzEncodeJSONMatchesReference(f *testing.F) {
	for _, in := range jsonCases {
		if len(in) < 1000 {
			f.Add([]byte(in))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := encodeJSON(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		if want := encodeJSONReference(nil, in); !bytes.Equal(got, want) {
			t.Fatalf("encodeJSON(%q) = %q, want %q", in, got, want)
		}
	})
}

// BenchmarkEncodeJSON encodes the jsonb answers column of the bench table,
// as the server sends it.
func BenchmarkEncodeJSON(b *testing.B) {
	in := []byte(`{"days": ["mon", "thu"], "note": "よろしくお願いします", "available_from": "2026-12-01", "experience_years": 3}`)
	b.Run("compactor", func(b *testing.B) {
		var dst []byte
		for b.Loop() {
			dst, _ = encodeJSON(dst[:0], in)
		}
	})
	b.Run("reference", func(b *testing.B) {
		var dst []byte
		for b.Loop() {
			dst = encodeJSONReference(dst[:0], in)
		}
	})
}
