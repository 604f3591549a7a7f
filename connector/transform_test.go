package connector

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTransformsIndependent checks every transform against an independent
// computation: Python's hmac and string slicing, and openssl dgst for the
// hash.
func TestTransformsIndependent(t *testing.T) {
	key := "0123456789abcdef-test-key"
	cases := []struct {
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		Value string `json:"value"`
		First int    `json:"first"`
		Last  int    `json:"last"`
		Bytes int    `json:"bytes"`
		Chars int    `json:"chars"`
		tf    Transform
	}{
		{Name: "hash ascii", Kind: "hash", Value: "taro@example.jp"},
		{Name: "hash multibyte", Kind: "hash", Value: "山田 太郎"},
		{Name: "hash empty", Kind: "hash", Value: ""},
		{Name: "mask phone", Kind: "mask", Value: "090-1234-5678", First: 1, Last: 4},
		{Name: "mask last only", Kind: "mask", Value: "090-1234-5678", Last: 4},
		{Name: "mask all", Kind: "mask", Value: "secret"},
		{Name: "mask short whole", Kind: "mask", Value: "abcd", First: 2, Last: 2},
		{Name: "mask multibyte", Kind: "mask", Value: "山田太郎です", First: 1, Last: 1},
		{Name: "truncate chars", Kind: "truncate", Value: "山田太郎", Chars: 3},
		{Name: "truncate chars longer", Kind: "truncate", Value: "ab", Chars: 3},
		{Name: "truncate bytes mid character", Kind: "truncate", Value: "山田太郎", Bytes: 7},
		{Name: "truncate bytes ascii", Kind: "truncate", Value: "hello world", Bytes: 5},
		{Name: "truncate both", Kind: "truncate", Value: "aé山b", Chars: 3, Bytes: 4},
	}
	kinds := map[string]TransformKind{"hash": TransformHash, "mask": TransformMask, "truncate": TransformTruncate}
	var got []string
	for i := range cases {
		c := &cases[i]
		c.tf = Transform{Kind: kinds[c.Kind], Key: []byte(key), First: c.First, Last: c.Last, MaxBytes: c.Bytes, MaxChars: c.Chars}
		got = append(got, string(c.tf.Apply(nil, []byte(c.Value))))
	}
	in, _ := json.Marshal(cases)
	const py = `
import hmac, hashlib, json, sys
key = sys.argv[1].encode()
out = []
for c in json.load(sys.stdin):
    v = c["value"]
    if c["kind"] == "hash":
        out.append(hmac.new(key, v.encode(), hashlib.sha256).hexdigest())
    elif c["kind"] == "mask":
        n, f, l = len(v), c["first"], c["last"]
        out.append(v[:f] + "*" * (n - f - l) + v[n - l:] if n > f + l else "*" * n)
    else:
        if c["chars"]:
            v = v[:c["chars"]]
        if c["bytes"]:
            v = v.encode()[:c["bytes"]].decode(errors="ignore")
        out.append(v)
json.dump(out, sys.stdout)
`
	cmd := exec.Command("python3", "-c", py, key)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 (the independent computation): %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if got[i] != want[i] {
			t.Errorf("%s: %s(%q) = %q, Python says %q", c.Name, c.Kind, c.Value, got[i], want[i])
		}
	}
	// openssl, a third implementation of the HMAC.
	for _, c := range cases[:2] {
		cmd := exec.Command("openssl", "dgst", "-sha256", "-hmac", key)
		cmd.Stdin = strings.NewReader(c.Value)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl dgst: %v", err)
		}
		fields := strings.Fields(string(out))
		if len(fields) == 0 || fields[len(fields)-1] != string(c.tf.Apply(nil, []byte(c.Value))) {
			t.Errorf("hash(%q): openssl says %q, the transform %q", c.Value, out, c.tf.Apply(nil, []byte(c.Value)))
		}
	}
}

// TestMapperTransforms maps one row through every transform: the data
// fields and attributes carry the transformed values, NULL stays null, the
// key is untouched, and a transform on a type it cannot apply to stops the
// mapping with the transform's file:line.
func TestMapperTransforms(t *testing.T) {
	hash := &Transform{Kind: TransformHash, Key: []byte("0123456789abcdef"), At: "config.yaml:12: tables[0].columns[2].transform"}
	mask := &Transform{Kind: TransformMask, Last: 4, At: "config.yaml:14: tables[0].columns[3].transform"}
	rel := &Relation{ID: 9, Schema: "public", Name: "applications", Columns: []Column{
		{Name: "application_id", Key: true, Encode: rawJSON, TypeName: "int8"},
		{Name: "company_id", Encode: rawJSON, TypeName: "int8"},
		{Name: "applicant_email", Encode: EncodeString, TypeName: "text"},
		{Name: "applicant_phone", Encode: EncodeString, TypeName: "text"},
		{Name: "applicant_name", Encode: EncodeString, TypeName: "text"},
		{Name: "answers", Encode: rawJSON, TypeName: "jsonb"},
	}}
	mp := &Mapping{
		Table: "public.applications", Ops: []Op{OpInsert}, TypePrefix: "baitoru.applications",
		Columns: []MappedColumn{
			{Column: "application_id", Name: "application_id"},
			{Column: "company_id", Name: "company_id"},
			{Column: "applicant_email", Name: "email", Transform: hash},
			{Column: "applicant_phone", Name: "phone", Transform: mask},
			{Column: "applicant_name", Name: "name", Transform: &Transform{Kind: TransformTruncate, MaxChars: 1}},
			{Column: "answers", Name: "answers", Transform: &Transform{Kind: TransformNull}},
		},
		Attributes: []MappedAttribute{
			{Column: "applicant_email", Name: "applicant", Type: "String", Transform: hash},
			{Name: "origin", Type: "String", Value: "baitoru"},
		},
		Key: []string{"company_id"},
	}
	tx := &Tx{XID: 5, CommitLSN: 0x100, CommitTime: time.Unix(0, 0)}
	m := NewMapper("baitoru/baitoru", []*Mapping{mp})
	ev, err := m.Map(&Change{Tx: tx, Rel: rel, Op: OpInsert, New: []Datum{
		text("1"), text("7"), text("taro@example.jp"), text("090-1234-5678"), text("山田太郎"), text(`{"q":1}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Subject string         `json:"subject"`
		Data    map[string]any `json:"data"`
	}
	if err := json.Unmarshal(ev.Body, &body); err != nil {
		t.Fatalf("%v: %s", err, ev.Body)
	}
	wantHash := string(hash.Apply(nil, []byte("taro@example.jp")))
	want := map[string]any{"application_id": 1.0, "company_id": 7.0, "email": wantHash, "phone": "*********5678", "name": "山", "answers": nil}
	for k, v := range want {
		if body.Data[k] != v {
			t.Errorf("data.%s = %#v, want %#v", k, body.Data[k], v)
		}
	}
	if body.Subject != "7" || ev.Key != "7" {
		t.Errorf("subject %q key %q, want 7", body.Subject, ev.Key)
	}
	if strings.Contains(string(ev.Body), "taro@") || strings.Contains(string(ev.Body), "1234") {
		t.Errorf("the body shows a hidden value: %s", ev.Body)
	}
	attrs := map[string]string{}
	for _, a := range ev.Attributes {
		attrs[a.Name] = a.Value
	}
	if attrs["applicant"] != wantHash || attrs["origin"] != "baitoru" {
		t.Errorf("attributes %v, want applicant=%s origin=baitoru", ev.Attributes, wantHash)
	}

	// NULL stays null under a transform; the attribute of a NULL is not sent.
	ev, err = m.Map(&Change{Tx: tx, Rel: rel, Op: OpInsert, Seq: 1, New: []Datum{text("2"), text("7"), null, null, null, null}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ev.Body), `"email":null,"phone":null,"name":null,"answers":null`) {
		t.Errorf("NULLs: %s", ev.Body)
	}
	for _, a := range ev.Attributes {
		if a.Name == "applicant" {
			t.Errorf("attribute of a NULL sent: %v", a)
		}
	}

	// mask on an int8 column: the error names the transform's line.
	bad := *mp
	bad.Columns = append([]MappedColumn(nil), mp.Columns...)
	bad.Columns[1].Transform = &Transform{Kind: TransformMask, At: "config.yaml:9: tables[0].columns[1].transform"}
	rel2 := *rel
	rel2.ID = 10
	_, err = NewMapper("baitoru/baitoru", []*Mapping{&bad}).Map(&Change{Tx: tx, Rel: &rel2, Op: OpInsert, New: []Datum{text("1"), text("7"), null, null, null, null}})
	if err == nil || !strings.Contains(err.Error(), "config.yaml:9: tables[0].columns[1].transform: mask applies to character columns") || !strings.Contains(err.Error(), "public.applications.company_id is int8") {
		t.Errorf("mask on int8: %v", err)
	}
}
