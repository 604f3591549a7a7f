package sink

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// scanCases are inputs at the edges of the JSON grammar: the hand-written
// scanner must either decline them or read them as the json.Decoder does.
var scanCases = []string{
	`{}`, ` { } `, "\t{\"a\":1}\r\n", `{"a":1,"b":"x","c":null,"d":true,"e":false,"f":[],"g":{},"h":-0.5e+10}`,
	`{"a":[1,[2,{"b":[]}],"\u00e9\n\"\\\/\b\f\r\t"]}`, `{"a" : 1 , "b" :2}`, `{"a":"日本語"}`,
	`{"a":1,}`, `{"a":1`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`, `{"a":tru}`,
	`{"a":truex}`, `{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", `{"a":1}x`,
	`{"a":1}{}`, `{"a":1} 2`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, "{\"a\xff\":1,\"a\xfe\":2}", `{"é":1}`,
	`{a:1}`, `{"a" 1}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b"}}`, `{"a":{"b":1,}}`, `[]`, `"x"`, `1`, `null`, ``,
	` `, `{`, `}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", "\ufeff{}", `{"a":1}` + "\x00",
	`{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, 100) + `1` + strings.Repeat("}", 100) + `}`,
}

func TestScanObjectMatchesDecoder(t *testing.T) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "sink", "parse", "*", "message.json"))
	cases := slicesOf(scanCases)
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, b)
	}
	scanned := 0
	for _, b := range cases {
		if checkScanObject(t, b) {
			scanned++
		}
	}
	// The normal events must take the fast path.
	if scanned < len(cases)/4 {
		t.Errorf("the scanner took %d of %d inputs", scanned, len(cases))
	}
	for _, b := range []string{`{"a":1,"b":"x"}`, syntheticEvent} {
		if _, ok := scanObject([]byte(b)); !ok {
			t.Errorf("scanner declined %s", b)
		}
	}
}

const syntheticEvent = `{"specversion":"1.0","id":"2/1000200-1","source":"baitoru/baitoru","type":"baitoru.applications.insert","subject":"2","time":"2026-11-25T10:00:00.000000Z","datacontenttype":"application/json","table":"public.applications","op":"insert","lsn":"2/1000200","xid":100001,"data":{"application_id":5000001,"company_id":2,"posting_id":100001,"status":"applied","channel":"web","answers":{"days":["mon","thu"],"note":"よろしくお願いします","available_from":"2026-12-01","experience_years":1},"applied_at":"2026-11-25T10:00:00.000000Z"}}`

func slicesOf(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// checkScanObject fails t when scanObject accepts b with another result
// than decodeObjectMembers, or objectMembers differs from it; it reports
// whether the scanner took b.
func checkScanObject(t *testing.T, b []byte) bool {
	t.Helper()
	want, wantErr := decodeObjectMembers(b)
	got, gotErr := objectMembers(b)
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Fatalf("%q: objectMembers error %v, decoder %v", b, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: objectMembers %q, decoder %q", b, got, want)
	}
	m, ok := scanObject(b)
	if !ok {
		return false
	}
	if wantErr != nil {
		t.Fatalf("%q: scanner accepted what the decoder rejects (%v)", b, wantErr)
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("%q: scanner %q, decoder %q", b, m, want)
	}
	return true
}

func TestPlainString(t *testing.T) {
	for _, raw := range []string{`"abc"`, `"日本語"`, `"a\"b"`, `"a\u0062"`, "\"a\xffb\"", `""`, `"x\\"`} {
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		if got, ok := plainString(json.RawMessage(raw)); ok && got != want {
			t.Errorf("plainString(%s) = %q, json.Unmarshal %q", raw, got, want)
		}
	}
	if _, ok := plainString(json.RawMessage(`"a\"b"`)); ok {
		t.Error("plainString took an escaped string")
	}
}

// FuzzScanObject compares the hand-written scanner with the json.Decoder
// path on arbitrary input.
func FuzzScanObject(f *testing.F) {
	for _, s := range scanCases {
		f.Add([]byte(s))
	}
	f.Add([]byte(syntheticEvent))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScanObject(t, b)
		if _, ok := scanObject(b); ok && !json.Valid(bytes.TrimSpace(b)) {
			t.Fatalf("%q: scanner accepted invalid JSON", b)
		}
	})
}

func BenchmarkParseMessage(b *testing.B) {
	msg := []byte(syntheticEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInternName: a member name is copied once, not per message: the same
// bytes give the same string, which does not change when the bytes do.
func TestInternName(t *testing.T) {
	b := []byte("intern_test_column")
	s1 := internName(b)
	b[0] = 'I'
	if s1 != "intern_test_column" {
		t.Fatalf("the interned name changed with its bytes: %q", s1)
	}
	s2 := internName([]byte("intern_test_column"))
	if s2 != s1 || unsafe.StringData(s1) != unsafe.StringData(s2) {
		t.Errorf("the same name was copied again")
	}
	if s := internName(b); s != "Intern_test_column" {
		t.Errorf("internName(%q) = %q", b, s)
	}
	msg := []byte(syntheticEvent)
	if _, err := ParseMessage(msg); err != nil {
		t.Fatal(err)
	}
	// Per message: the two member maps, the event and the strings it keeps,
	// not one string per member name (19 in this message).
	if n := testing.AllocsPerRun(20, func() { _, _ = ParseMessage(msg) }); n > 24 {
		t.Errorf("ParseMessage made %.0f allocations, want ≤ 24", n)
	}
}
