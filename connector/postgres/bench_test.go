package postgres

import (
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
)

// BenchmarkDecodeMap measures the per-row hot path: decoding a pgoutput
// Insert of a realistic Baitoru application row (10 columns incl. jsonb and
// timestamptz) and mapping it to a CloudEvents body with attributes.
func BenchmarkDecodeMap(b *testing.B) {
	types := NewTypes()
	cols := []struct {
		name string
		oid  uint32
		val  *string
	}{
		{"application_id", 20, sp("123456789")},
		{"company_id", 20, sp("4242")},
		{"posting_id", 20, sp("987654")},
		{"applicant_name", 25, sp("山田 太郎")},
		{"applicant_email", 25, sp("taro@example.jp")},
		{"applicant_phone", 25, sp("090-1234-5678")},
		{"answers", 3802, sp(`{"q1": "はい", "q2": ["平日", "土日"], "q3": 3}`)},
		{"status", 25, sp("applied")},
		{"applied_at", 1184, sp("2026-11-25 03:00:00.123456+00")},
		{"updated_at", 1184, nil},
	}
	rel := &connector.Relation{ID: 1, Schema: "public", Name: "applications", Table: "public.applications"}
	var vals []*string
	for _, c := range cols {
		rel.Columns = append(rel.Columns, connector.Column{Name: c.name, TypeOID: c.oid, Encode: types.Encoder(c.oid)})
		vals = append(vals, c.val)
	}
	msg := rowMsg('I', 1, []byte{'N'}, tupleBytes(vals...))
	ms, err := config.CompileTables([]config.Table{{
		Table: "public.applications", Key: []string{"company_id"},
		Columns: []config.Column{{Column: "application_id"}, {Column: "company_id"}, {Column: "posting_id"},
			{Column: "answers"}, {Column: "status"}, {Column: "applied_at"}, {Column: "updated_at"}},
		Attributes: []config.Attribute{{Column: "company_id", Name: "company_id", Type: "Number"}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	m := connector.NewMapper("baitoru/baitoru", ms)
	tx := &connector.Tx{XID: 1, CommitLSN: 0x16B3748, CommitTime: time.Now()}
	var row rowMessage
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; b.Loop(); i++ {
		if err := parseRow(msg, &row); err != nil {
			b.Fatal(err)
		}
		c := connector.Change{Tx: tx, Seq: i + 1, Rel: rel, Op: row.op, New: row.new}
		ev, err := m.Map(&c)
		if err != nil || ev == nil {
			b.Fatal(err)
		}
	}
}
