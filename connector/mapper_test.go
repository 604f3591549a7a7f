package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files")

func rawJSON(dst, text []byte) ([]byte, error) { return append(dst, text...), nil }

var appsRel = &Relation{ID: 7, Schema: "public", Name: "applications", Columns: []Column{
	{Name: "application_id", Key: true, Encode: rawJSON},
	{Name: "company_id", Encode: rawJSON},
	{Name: "applicant_email", Encode: EncodeString},
	{Name: "answers", Encode: rawJSON},
	{Name: "status", Encode: EncodeString},
	{Name: "score", Encode: EncodeString},
}}

func text(s string) Datum { return Datum{Kind: DatumText, Value: []byte(s)} }

var (
	null      = Datum{Kind: DatumNull}
	unchanged = Datum{Kind: DatumUnchanged}
)

func TestMapperGolden(t *testing.T) {
	ms := []*Mapping{{
		Table:      "public.applications",
		Ops:        []Op{OpInsert, OpUpdate, OpDelete},
		TypePrefix: "baitoru.applications",
		Columns: []MappedColumn{
			{Column: "application_id", Name: "application_id"}, {Column: "company_id", Name: "company_id"},
			{Column: "answers", Name: "answers_json"}, {Column: "status", Name: "status"}, {Column: "score", Name: "score"},
		},
		Attributes: []MappedAttribute{{Column: "company_id", Name: "company_id", Type: "Number"}, {Column: "status", Name: "status", Type: "String"}, {Column: "score", Name: "score_n", Type: "Number"}},
		Key:        []string{"company_id"},
	}}
	tx := &Tx{XID: 1234, CommitLSN: 0x16B3748, CommitTime: time.Date(2026, 11, 25, 3, 0, 0, 123456000, time.UTC)}
	cases := []struct {
		name string
		c    Change
	}{
		{"insert", Change{Seq: 3, Op: OpInsert, New: []Datum{text("42"), text("7"), text("a@b.jp"), text(`{"q":"なぜ?"}`), text("applied"), text("12.5")}}},
		{"insert_nulls", Change{Seq: 1, Op: OpInsert, New: []Datum{text("43"), null, null, null, text(`say "hi"\n`), null}}},
		{"update_unchanged_toast", Change{Seq: 2, Op: OpUpdate, New: []Datum{text("42"), text("7"), text("a@b.jp"), unchanged, text("screening"), text("NaN")}}},
		{"update_with_old_key", Change{Seq: 4, Op: OpUpdate, OldIsKey: true,
			Old: []Datum{text("41"), null, null, null, null, null},
			New: []Datum{text("42"), text("7"), text("a@b.jp"), text("[]"), text("offer"), null}}},
		{"delete_key_only", Change{Seq: 5, Op: OpDelete, OldIsKey: true, Old: []Datum{text("42"), null, null, null, null, null}}},
		{"delete_full", Change{Seq: 6, Op: OpDelete, Old: []Datum{text("42"), text("7"), text("x"), text("{}"), text("hired"), text("1")}}},
		{"read", Change{Seq: 7, Op: OpRead, New: []Datum{text("42"), text("7"), text("a@b.jp"), text(`{"q":"なぜ?"}`), text("applied"), text("12.5")}}},
		{"read_nulls", Change{Seq: 8, Op: OpRead, New: []Datum{text("43"), text("8"), null, null, text(`say "hi"\n`), null}}},
	}
	m := NewMapper("baitoru/baitoru", ms)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.Tx, c.Rel = tx, appsRel
			var ev *Event
			var err error
			if c.Op == OpRead {
				ev, err = m.MapRead(&c, "bf-1", string(c.New[0].Value))
			} else {
				ev, err = m.Map(&c)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(ev.Body) {
				t.Fatalf("invalid JSON: %s", ev.Body)
			}
			var body any
			_ = json.Unmarshal(ev.Body, &body)
			got, _ := json.MarshalIndent(map[string]any{
				"body": body, "raw": string(ev.Body), "attributes": ev.Attributes, "key": ev.Key, "type": ev.Type, "id": ev.ID,
			}, "", "  ")
			golden(t, filepath.Join("testdata", "mapper", tc.name, "event.json"), got)
		})
	}
}

// TestEncodeReadAssemble: a read encoded before its high watermark on a
// Mapper of its own (the backfill's runner) and assembled with another's
// transaction parts (the stream's reader) is the event MapRead returns,
// attributes and strings included (they move with the bytes).
func TestEncodeReadAssemble(t *testing.T) {
	ms := []*Mapping{{
		Table: "public.applications", Ops: []Op{OpInsert}, TypePrefix: "baitoru.applications", Topic: "arn:topic",
		Columns:    []MappedColumn{{Column: "application_id", Name: "application_id"}, {Column: "status", Name: "status"}, {Column: "score", Name: "score"}},
		Attributes: []MappedAttribute{{Column: "company_id", Name: "company_id", Type: "Number"}, {Name: "origin", Type: "String", Value: "baitoru"}, {Column: "status", Name: "status", Type: "String"}},
		Key:        []string{"status"},
	}}
	tx := &Tx{XID: 99, CommitLSN: 0x2A00, CommitTime: time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC)}
	rows := [][]Datum{
		{text("42"), text("7"), text("a@b.jp"), text("[]"), text("applied"), text("1.5")},
		{text("43"), null, null, null, text(`"quoted"`), null},
		{text("44"), text("8"), null, null, text(`a\b`), text("NaN")},
	}
	runner, reader, direct := NewMapper("baitoru/x", ms), NewMapper("baitoru/x", ms), NewMapper("baitoru/x", ms)
	// A chunk's rows are all encoded (their bytes side by side in the
	// runner's arena) before the first is assembled.
	reads := make([]*ReadEvent, len(rows))
	encs := make([]string, len(rows))
	type strs struct {
		id, key string
		attrs   []Attribute
	}
	encoded := make([]strs, len(rows)) // copies of the strings as encoded
	for i, row := range rows {
		r, err := runner.EncodeRead(appsRel, row, "bf", string(row[0].Value))
		if err != nil {
			t.Fatal(err)
		}
		reads[i], encs[i] = r, string(r.Body) // assemble reuses r's bytes
		encoded[i] = strs{id: strings.Clone(r.ID), key: strings.Clone(r.Key)}
		for _, a := range r.Attributes {
			encoded[i].attrs = append(encoded[i].attrs, Attribute{Name: a.Name, Type: a.Type, Value: strings.Clone(a.Value)})
		}
	}
	for i, row := range rows {
		r, enc := reads[i], encs[i]
		before := enc[:r.timeAt]
		time, head := reader.txParts(tx)
		got := r.assemble(tx, time, head)
		want, err := direct.MapRead(&Change{Tx: tx, Rel: appsRel, Op: OpRead, New: row}, "bf", string(row[0].Value))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Body) != string(want.Body) || got.ID != want.ID || got.Key != want.Key || got.Type != want.Type ||
			got.Topic != want.Topic || got.Table != want.Table || got.Op != want.Op ||
			!got.CommitTime.Equal(want.CommitTime) || got.CommitLSN != want.CommitLSN || !slices.Equal(got.Attributes, want.Attributes) {
			t.Errorf("assembled %+v\nwant      %+v", got, want)
		}
		if strings.Contains(before, `"time"`) || strings.Contains(enc, `"lsn"`) {
			t.Errorf("the encoding before the high watermark holds the transaction's parts: %s", enc)
		}
		if !strings.HasPrefix(string(got.Body), before) {
			t.Errorf("the body's start moved: %s", got.Body)
		}
	}
	// Every event's bytes are still its own once all are assembled, and
	// assembling changed none of the strings encoded.
	for i, row := range rows {
		want, _ := direct.MapRead(&Change{Tx: tx, Rel: appsRel, Op: OpRead, New: row}, "bf", string(row[0].Value))
		got := &reads[i].Event
		if string(got.Body) != string(want.Body) {
			t.Errorf("row %d after assembling the chunk: %s\nwant %s", i, got.Body, want.Body)
		}
		if e := encoded[i]; got.ID != e.id || got.Key != e.key || !slices.Equal(got.Attributes, e.attrs) || len(e.attrs) < 3 {
			t.Errorf("row %d: assembled id %q key %q attributes %+v\nencoded %+v", i, got.ID, got.Key, got.Attributes, e)
		}
	}
}

func TestMapperErrors(t *testing.T) {
	tx := &Tx{CommitLSN: 1}
	badEnc := func(dst, text []byte) ([]byte, error) { return dst, errors.New("not an int") }
	rel := &Relation{ID: 9, Schema: "public", Name: "t", Columns: []Column{{Name: "id", Encode: badEnc}}}
	cases := []struct {
		name  string
		table *Mapping
		rel   *Relation
		want  string
	}{
		{"missing column", &Mapping{Table: "public.t", Ops: []Op{OpInsert}, TypePrefix: "baitoru.t", Columns: []MappedColumn{{Column: "id", Name: "id"}, {Column: "gone", Name: "gone"}}}, rel,
			"mapping of public.t names columns the table does not have in the stream: gone (the table has: id); fix the mapping in the config, or add the columns to the publication"},
		{"bad value", &Mapping{Table: "public.t", Ops: []Op{OpInsert}, TypePrefix: "baitoru.t", Columns: []MappedColumn{{Column: "id", Name: "id"}}}, rel,
			"insert 0/1-1 of public.t: column id: not an int: permanent error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMapper("s", []*Mapping{tc.table}).Map(&Change{Tx: tx, Seq: 1, Rel: tc.rel, Op: OpInsert, New: []Datum{text("x")}})
			if !errors.Is(err, ErrPermanent) || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestMapperSkipsUnmapped(t *testing.T) {
	ms := []*Mapping{{Table: "public.applications", Ops: []Op{OpInsert}, TypePrefix: "baitoru.applications", Columns: []MappedColumn{{Column: "application_id", Name: "application_id"}}}}
	m := NewMapper("s", ms)
	tx := &Tx{CommitLSN: 1}
	other := &Relation{ID: 8, Schema: "public", Name: "companies", Columns: []Column{{Name: "id"}}}
	for _, c := range []Change{
		{Tx: tx, Rel: other, Op: OpInsert, New: []Datum{text("1")}},
		{Tx: tx, Rel: appsRel, Op: OpUpdate, New: []Datum{text("1")}}, // only inserts mapped by default
	} {
		if ev, err := m.Map(&c); ev != nil || err != nil {
			t.Fatalf("Map(%s %s) = %v, %v; want nothing", c.Op, c.Rel.Name, ev, err)
		}
	}
}

// TestAppendJSONString: the escaper writes exactly what encoding/json
// writes for the same string without HTML escaping, byte for byte, on edge
// cases and on random strings of ASCII, controls, multibyte and invalid
// UTF-8; what it writes decodes back to the string (invalid UTF-8 as
// U+FFFD).
func TestAppendJSONString(t *testing.T) {
	cases := []string{"", "plain", `q"uote\back`, "\x00\x01\x1f\t\n\r\b\f\x7f", "日本語", "\u2028\u2029",
		"bad\xffutf8", "<>&", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\u2027\u202ab"}
	alphabet := []string{"a", "Z", " ", `"`, `\`, "/", "\x00", "\x1f", "\n", "\x7f", "é", "応募", "\u2028", "\u2029",
		"\xff", "\xc3", "\xe2\x80", "\U0001F600", "<", "&"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		got := appendJSONString([]byte("x"), s)[1:]
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
			t.Fatalf("%q → %s, encoding/json writes %s", s, got, w)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q → %s → %q", s, got, back)
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(want), bytes.TrimSpace(got)) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestMapperTypeChanges: a published column whose type differs from its
// previous announcement is reported once, also after Reset (a reconnect);
// unpublished columns and unchanged types are not.
func TestMapperTypeChanges(t *testing.T) {
	rel := func(company, email string) *Relation {
		return &Relation{ID: 7, Schema: "public", Name: "applications", Columns: []Column{
			{Name: "application_id", TypeName: "int8", Key: true, Encode: rawJSON},
			{Name: "company_id", TypeName: company, Encode: rawJSON},
			{Name: "applicant_email", TypeName: email, Encode: EncodeString},
		}}
	}
	ms := []*Mapping{{Table: "public.applications", Ops: []Op{OpInsert}, TypePrefix: "baitoru.applications",
		Columns: []MappedColumn{{Column: "application_id", Name: "application_id"}, {Column: "company_id", Name: "company"}}}}
	m := NewMapper("baitoru/test", ms)
	tx := &Tx{XID: 1, CommitLSN: 0x100}
	steps := []struct {
		rel   *Relation
		reset bool
		want  []TypeChange
	}{
		{rel: rel("int8", "text")},
		{rel: rel("int8", "text")},
		{rel: rel("int8", "varchar")}, // not published: not reported
		{rel: rel("text", "varchar"), want: []TypeChange{{Table: "public.applications", Column: "company_id", Field: "company", OldType: "int8", NewType: "text"}}},
		{rel: rel("text", "varchar"), reset: true},
		{rel: rel("jsonb", "varchar"), reset: true, want: []TypeChange{{Table: "public.applications", Column: "company_id", Field: "company", OldType: "text", NewType: "jsonb"}}},
	}
	for i, s := range steps {
		if s.reset {
			m.Reset()
		}
		if _, err := m.Map(&Change{Tx: tx, Seq: i + 1, Rel: s.rel, Op: OpInsert, New: []Datum{text("1"), text("2"), text("x")}}); err != nil {
			t.Fatal(err)
		}
		if got := m.TypeChanges(); !slices.Equal(got, s.want) {
			t.Errorf("step %d: %+v, want %+v", i, got, s.want)
		}
	}
}

// BenchmarkReadOnReader is the stream's reader's work per backfilled row at
// a high watermark: mapping the row there (map, MapRead) against assembling
// the event the runner encoded before it (assemble); encode is the runner's
// share. The application row of make bench's backfill item.
func BenchmarkReadOnReader(b *testing.B) {
	rel := &Relation{ID: 3, Schema: "public", Name: "applications", Columns: []Column{
		{Name: "application_id", Key: true, Encode: rawJSON}, {Name: "company_id", Encode: rawJSON}, {Name: "posting_id", Encode: rawJSON},
		{Name: "status", Encode: EncodeString}, {Name: "source", Encode: EncodeString}, {Name: "answers", Encode: rawJSON}, {Name: "applied_at", Encode: EncodeString},
	}}
	ms := []*Mapping{{Table: "public.applications", Ops: []Op{OpInsert}, TypePrefix: "baitoru.applications",
		Columns: []MappedColumn{{Column: "application_id", Name: "application_id"}, {Column: "company_id", Name: "company_id"}, {Column: "posting_id", Name: "posting_id"},
			{Column: "status", Name: "status"}, {Column: "source", Name: "source"}, {Column: "answers", Name: "answers"}, {Column: "applied_at", Name: "applied_at"}},
		Attributes: []MappedAttribute{{Column: "company_id", Name: "company_id", Type: "Number"}}, Key: []string{"company_id"}}}
	row := []Datum{text("123456"), text("42"), text("101234"), text("applied"), text("web"),
		text(`{"days": ["mon", "thu"], "note": "よろしくお願いします", "available_from": "2026-12-01", "experience_years": 3}`), text("2026-12-07 01:02:03.456789+00")}
	tx := &Tx{XID: 9, CommitLSN: 0x1000, CommitTime: time.Now()}
	b.Run("map", func(b *testing.B) {
		m := NewMapper("baitoru/baitoru", ms)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.MapRead(&Change{Tx: tx, Rel: rel, Op: OpRead, New: row}, "bf", "123456"); err != nil {
				b.Fatal(err)
			}
		}
	})
	enc, rd := NewMapper("baitoru/baitoru", ms), NewMapper("baitoru/baitoru", ms)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.EncodeRead(rel, row, "bf", "123456"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("assemble", func(b *testing.B) {
		reads := make([]*ReadEvent, b.N)
		for i := range reads {
			reads[i], _ = enc.EncodeRead(rel, row, "bf", "123456")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			t, h := rd.txParts(tx)
			reads[i].assemble(tx, t, h)
		}
	})
}
