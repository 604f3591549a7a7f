package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// fuzzOIDs are the types FuzzEncode selects from (selector modulo length).
var fuzzOIDs = []uint32{
	pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.NumericOID, pgtype.Float8OID, pgtype.BoolOID,
	pgtype.TextOID, pgtype.UUIDOID, pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID,
	pgtype.JSONOID, pgtype.JSONBOID, pgtype.ByteaOID, pgtype.IntervalOID, pgtype.Int4rangeOID,
	pgtype.Int4ArrayOID, pgtype.TextArrayOID, pgtype.JSONBArrayOID, pgtype.ByteaArrayOID,
	pgtype.TimestamptzArrayOID, pgtype.NumericArrayOID, pgtype.Float8ArrayOID, pgtype.BoxArrayOID,
	pgtype.DateArrayOID, pgtype.BoolArrayOID,
	testEnumOID, testEnumArrOID, testDomainOID, testDomainArrOID, testCompArrOID, testUnknownOID,
}

// FuzzEncode feeds arbitrary text to the encoder of a selected type. An
// encoder must never panic; without an error it must append valid JSON
// (valid UTF-8, no raw U+2028/U+2029) and keep dst's prefix; with an error
// it must append nothing and the error must wrap ErrInvalidValue.
func FuzzEncode(f *testing.F) {
	for i, oid := range fuzzOIDs {
		for _, c := range encodeCases {
			if c.oid != oid {
				continue
			}
			for _, tc := range c.cases {
				f.Add(uint8(i), []byte(tc.in))
			}
		}
	}
	types := testTypes()
	f.Fuzz(func(t *testing.T, sel uint8, text []byte) {
		oid := fuzzOIDs[int(sel)%len(fuzzOIDs)]
		in := bytes.Clone(text)
		prefix := []byte(`{"v":`)
		out, err := types.Encoder(oid)(bytes.Clone(prefix), text)
		if !bytes.Equal(text, in) {
			t.Fatalf("%s: encoder modified its input", types.Name(oid))
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("%s %q: prefix lost: %q", types.Name(oid), text, out)
		}
		got := out[len(prefix):]
		if err != nil {
			if !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("%s %q: error %v does not wrap ErrInvalidValue", types.Name(oid), text, err)
			}
			if len(got) != 0 {
				t.Fatalf("%s %q: appended %q with error %v", types.Name(oid), text, got, err)
			}
			return
		}
		if !json.Valid(got) {
			t.Fatalf("%s %q: invalid JSON %q", types.Name(oid), text, got)
		}
		if !utf8.Valid(got) || bytes.ContainsRune(got, '\u2028') || bytes.ContainsRune(got, '\u2029') {
			t.Fatalf("%s %q: invalid UTF-8 or raw U+2028/9 in %q", types.Name(oid), text, got)
		}
		switch oid {
		case pgtype.TextOID, testEnumOID, testUnknownOID:
			var s string
			if err := json.Unmarshal(got, &s); err != nil {
				t.Fatalf("%s %q: %v", types.Name(oid), text, err)
			}
			if s != validRunes(string(text)) {
				t.Fatalf("%s %q: round trip gives %q", types.Name(oid), text, s)
			}
		case pgtype.TimestamptzOID:
			var s string
			if err := json.Unmarshal(got, &s); err != nil {
				t.Fatalf("%s %q: %v", types.Name(oid), text, err)
			}
			if s == "infinity" || s == "-infinity" || s[0] == '+' || s[0] == '-' {
				return
			}
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
				t.Fatalf("%s %q: %q is not RFC 3339 UTC: %v", types.Name(oid), text, s, err)
			}
		}
	})
}
