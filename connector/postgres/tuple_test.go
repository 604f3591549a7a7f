package postgres

import (
	"encoding/binary"
	"flag"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// update rewrites golden files (go test -update) for every test of the package.
var update = flag.Bool("update", false, "rewrite golden files")

// tupleBytes encodes a pgoutput TupleData; nil is NULL, "\x00u" unchanged TOAST.
func tupleBytes(cols ...*string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(cols)))
	for _, c := range cols {
		switch {
		case c == nil:
			b = append(b, 'n')
		case *c == "\x00u":
			b = append(b, 'u')
		default:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(*c)))
			b = append(b, *c...)
		}
	}
	return b
}

func sp(s string) *string { return &s }

func rowMsg(kind byte, rel uint32, parts ...[]byte) []byte {
	b := []byte{kind}
	b = binary.BigEndian.AppendUint32(b, rel)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseRow(t *testing.T) {
	tup := tupleBytes(sp("42"), nil, sp("\x00u"), sp(""))
	key := tupleBytes(sp("41"), nil, nil, nil)
	cases := []struct {
		name     string
		msg      []byte
		op       connector.Op
		newKinds string
		oldKinds string
		oldIsKey bool
		wantErr  bool
	}{
		{"insert", rowMsg('I', 5, []byte{'N'}, tup), connector.OpInsert, "tnut", "", false, false},
		{"update new only", rowMsg('U', 5, []byte{'N'}, tup), connector.OpUpdate, "tnut", "", false, false},
		{"update with key", rowMsg('U', 5, []byte{'K'}, key, []byte{'N'}, tup), connector.OpUpdate, "tnut", "tnnn", true, false},
		{"update with old", rowMsg('U', 5, []byte{'O'}, tup, []byte{'N'}, tup), connector.OpUpdate, "tnut", "tnut", false, false},
		{"delete key", rowMsg('D', 5, []byte{'K'}, key), connector.OpDelete, "", "tnnn", true, false},
		{"delete full", rowMsg('D', 5, []byte{'O'}, tup), connector.OpDelete, "", "tnut", false, false},
		{"truncated", rowMsg('I', 5, []byte{'N'}, tup[:len(tup)-3]), 0, "", "", false, true},
		{"bad kind", rowMsg('I', 5, []byte{'N'}, []byte{0, 1, 'x'}), 0, "", "", false, true},
		{"bad tuple type", rowMsg('I', 5, []byte{'X'}, tup), 0, "", "", false, true},
		{"short", []byte{'I', 0, 0}, 0, "", "", false, true},
	}
	var m rowMessage
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := parseRow(tc.msg, &m)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kinds := func(ds []connector.Datum) string {
				s := ""
				for _, d := range ds {
					s += string(rune(d.Kind))
				}
				return s
			}
			if m.relID != 5 || m.op != tc.op || kinds(m.new) != tc.newKinds || kinds(m.old) != tc.oldKinds || m.oldIsKey != tc.oldIsKey {
				t.Fatalf("got rel %d op %s new %q old %q key %v", m.relID, m.op, kinds(m.new), kinds(m.old), m.oldIsKey)
			}
			if tc.newKinds != "" && string(m.new[0].Value) != "42" {
				t.Fatalf("value = %q", m.new[0].Value)
			}
		})
	}
}

func FuzzParseRow(f *testing.F) {
	f.Add(rowMsg('I', 1, []byte{'N'}, tupleBytes(sp("1"), nil)))
	f.Add(rowMsg('U', 1, []byte{'K'}, tupleBytes(sp("1")), []byte{'N'}, tupleBytes(sp("2"))))
	f.Add(rowMsg('D', 1, []byte{'O'}, tupleBytes(sp("\x00u"))))
	var m rowMessage
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseRow(b, &m) // must not panic
	})
}
