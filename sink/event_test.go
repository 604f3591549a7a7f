package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/sink")

// parsed is what a golden file records about one parse.
type parsed struct {
	OK     bool     `json:"ok"`
	Code   string   `json:"code,omitempty"`
	Reason string   `json:"reason,omitempty"`
	ID     string   `json:"id,omitempty"`
	Type   string   `json:"type,omitempty"`
	Source string   `json:"source,omitempty"`
	Table  string   `json:"table,omitempty"`
	Time   string   `json:"time,omitempty"`
	Body   string   `json:"body,omitempty"`
	Data   []string `json:"data_members,omitempty"`
	// CompanyKey is the link key in data.company_id, or the error code.
	CompanyKey string `json:"company_id_key,omitempty"`
}

func describe(ev *Event, err error) parsed {
	if err != nil {
		var ie *InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidEvent) {
			return parsed{Reason: "NOT AN *InvalidError: " + err.Error()}
		}
		return parsed{Code: ie.Code, Reason: ie.Reason}
	}
	p := parsed{OK: true, ID: ev.ID, Type: ev.Type, Source: ev.Source, Table: ev.Table, Body: string(ev.Body)}
	if !ev.Time.IsZero() {
		p.Time = ev.Time.UTC().Format(time.RFC3339Nano)
	}
	for k := range ev.Data {
		p.Data = append(p.Data, k)
	}
	sort.Strings(p.Data)
	key, err := ev.LinkKey("company_id")
	if err != nil {
		var ie *InvalidError
		errors.As(err, &ie)
		p.CompanyKey = "error: " + ie.Code
	} else {
		p.CompanyKey = key
	}
	return p
}

// TestParseMessageGolden parses testdata/sink/parse/<case>/message.json and
// compares the outcome with want.json (go test -run Golden -update rewrites).
func TestParseMessageGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "testdata", "sink", "parse", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join(dir, "message.json"))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(describe(ParseMessage(msg)), "", "  ")
			got = append(got, '\n')
			wantPath := filepath.Join(dir, "want.json")
			if *update {
				if err := os.WriteFile(wantPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestParseMessageSizes(t *testing.T) {
	big := func(n int) []byte {
		pad := strings.Repeat("x", n)
		return []byte(`{"specversion":"1.0","id":"e-1","source":"s","type":"t","data":{"company_id":7,"pad":"` + pad + `"}}`)
	}
	if _, err := ParseMessage(big(200 << 10)); err != nil {
		t.Fatalf("200 KiB event: %v", err)
	}
	for _, n := range []int{300 << 10, 2 << 20} {
		_, err := ParseMessage(big(n))
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Code != CodeTooLarge {
			t.Fatalf("%d byte event: %v, want %s", n, err, CodeTooLarge)
		}
	}
}

func TestLinkKey(t *testing.T) {
	tests := []struct {
		data string
		want string // key, or "error: code"
	}{
		{`{"company_id":7}`, "7"},
		{`{"company_id":"7"}`, "7"},
		{`{"company_id":-12}`, "-12"},
		{`{"company_id":12345678901234567890}`, "12345678901234567890"},
		{`{"company_id":"株式会社"}`, "株式会社"},
		// A number is compared by value, whoever wrote it and however.
		{`{"company_id":1.0}`, "1"},
		{`{"company_id":1e0}`, "1"},
		{`{"company_id":10E-1}`, "1"},
		{`{"company_id":0.1e1}`, "1"},
		{`{"company_id":"1.0"}`, "1"},
		{`{"company_id":"1e0"}`, "1"},
		{`{"company_id":1.50}`, "1.5"},
		{`{"company_id":"1234.5600"}`, "1234.56"},
		{`{"company_id":-0.0}`, "0"},
		{`{"company_id":0e999999}`, "0"},
		{`{"company_id":12e2}`, "1200"},
		{`{"company_id":-125e-3}`, "-0.125"},
		{`{"company_id":1e-7}`, "0.0000001"},
		// Not JSON number syntax: compared exactly.
		{`{"company_id":"007"}`, "007"},
		{`{"company_id":"+7"}`, "+7"},
		{`{"company_id":" 7"}`, " 7"},
		{`{"company_id":"7."}`, "7."},
		{`{"company_id":"NaN"}`, "NaN"},
		// A number whose plain text cannot be a key.
		{`{"company_id":1e300}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":1e999999999999}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":"1e-300"}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":null}`, "error: " + CodeMissingLinkKey},
		{`{"other":1}`, "error: " + CodeMissingLinkKey},
		{`{"company_id":true}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":{"id":7}}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":[7]}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":""}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":"a\u0000b"}`, "error: " + CodeInvalidLinkKey},
		{`{"company_id":"` + strings.Repeat("k", 300) + `"}`, "error: " + CodeInvalidLinkKey},
	}
	for _, tt := range tests {
		ev, err := ParseMessage([]byte(`{"specversion":"1.0","id":"e-1","source":"s","type":"t","data":` + tt.data + `}`))
		if err != nil {
			t.Fatalf("%s: %v", tt.data, err)
		}
		got := describe(ev, nil).CompanyKey
		if got != tt.want {
			t.Errorf("data %s: key %q, want %q", tt.data, got, tt.want)
		}
	}
	ev, _ := ParseMessage([]byte(`{"specversion":"1.0","id":"e-1","source":"s","type":"t","data":"text"}`))
	if _, err := ev.LinkKey("company_id"); err == nil {
		t.Error("data that is not an object gave a key")
	}
}

func TestRules(t *testing.T) {
	r := NewRules([]LinkRule{
		{Table: "public.applications", Field: "company_id"},
		{Type: "baitoru.applications.delete", Field: "old_company_id"},
		{Table: "public.jobs", Field: "owner_id"},
	})
	tests := []struct {
		typ, table, want string
		ok               bool
	}{
		{"baitoru.applications.insert", "public.applications", "company_id", true},
		{"baitoru.applications.delete", "public.applications", "old_company_id", true},
		{"baitoru.applications.delete", "", "old_company_id", true},
		{"baitoru.jobs.insert", "public.jobs", "owner_id", true},
		{"baitoru.users.insert", "public.users", "", false},
		{"baitoru.applications.insert", "", "", false},
	}
	for _, tt := range tests {
		got, ok := r.Field(&Event{Type: tt.typ, Table: tt.table})
		if got != tt.want || ok != tt.ok {
			t.Errorf("Field(%s, %s) = %q, %v; want %q, %v", tt.typ, tt.table, got, ok, tt.want, tt.ok)
		}
	}
	_, err := r.Key(&Event{ID: "e", Type: "baitoru.users.insert", Table: "public.users"})
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Code != CodeNoLinkRule {
		t.Errorf("unconfigured type: %v, want %s", err, CodeNoLinkRule)
	}
}

func TestLinkCache(t *testing.T) {
	var active []int
	c := NewLinkCache(func(n int) { active = append(active, n) })
	if _, err := c.ActiveLinks(t.Context(), []string{"7"}); !errors.Is(err, ErrLinksNotSynced) {
		t.Fatalf("unsynced lookup: %v", err)
	}
	c.SetAll([]Link{
		{ID: 1, Account: "a", Key: "7", Status: StatusActive},
		{ID: 2, Account: "b", Key: "7", Status: StatusActive},
		{ID: 3, Account: "a", Key: "8", Status: StatusActive},
		{ID: 4, Account: "c", Key: "9", Status: StatusStopped},
	})
	got, err := c.ActiveLinks(t.Context(), []string{"7", "8", "9", "10"})
	if err != nil || len(got["7"]) != 2 || len(got["8"]) != 1 || len(got) != 2 || c.Len() != 3 {
		t.Fatalf("after SetAll: %v %v len %d", got, err, c.Len())
	}
	// Key 7 loses link 2, key 9 gains one, key 8 is untouched.
	c.SetKeys([]string{"7", "9"}, []Link{
		{ID: 1, Account: "a", Key: "7", Status: StatusActive},
		{ID: 5, Account: "d", Key: "9", Status: StatusActive},
	})
	got, _ = c.ActiveLinks(t.Context(), []string{"7", "8", "9"})
	if len(got["7"]) != 1 || got["7"][0].ID != 1 || len(got["8"]) != 1 || len(got["9"]) != 1 || c.Len() != 3 {
		t.Fatalf("after SetKeys: %v len %d", got, c.Len())
	}
	c.SetKeys([]string{"8"}, nil)
	if got, _ = c.ActiveLinks(t.Context(), []string{"8"}); len(got) != 0 || c.Len() != 2 {
		t.Fatalf("after removing key 8: %v len %d", got, c.Len())
	}
	c.Unsync()
	if _, err := c.ActiveLinks(t.Context(), []string{"7"}); !errors.Is(err, ErrLinksNotSynced) {
		t.Fatalf("after Unsync: %v", err)
	}
	if want := []int{3, 3, 2}; len(active) != 3 || active[0] != want[0] || active[1] != want[1] || active[2] != want[2] {
		t.Fatalf("onChange saw %v, want %v", active, want)
	}
}
