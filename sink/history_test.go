package sink

import (
	"slices"
	"strings"
	"testing"
)

func TestHistoryID(t *testing.T) {
	for _, c := range []struct {
		prefix string
		link   int64
		table  string
		want   string
	}{
		{"link", 42, "public.job_postings", "link-42-public.job_postings"},
		{"kobot", 7, `public."Job Postings"`, "kobot-7-public._Job_Postings_"},
		{"link", 1, "public.求人", "link-1-public.__"},
		{"link", 9, "public." + strings.Repeat("t", 120), "link-9-public." + strings.Repeat("t", 100-len("link-9-public."))},
	} {
		got := HistoryID(c.prefix, c.link, c.table)
		if got != c.want {
			t.Errorf("HistoryID(%q, %d, %q) = %q, want %q", c.prefix, c.link, c.table, got, c.want)
		}
		if id, ok := HistoryLink(c.prefix, got); !ok || id != c.link {
			t.Errorf("HistoryLink(%q, %q) = %d, %v; want %d", c.prefix, got, id, ok, c.link)
		}
	}
	for _, c := range []struct{ prefix, backfill string }{
		{"link", "bf-20261206-1"},                      // a backfill started by hand
		{"link", "link-x-public.t"},                    // not a link id
		{"link", "link-07-public.t"},                   // not the form HistoryID writes
		{"link", "link-0-public.t"},                    // no link 0
		{"link", "link-5"},                             // no table part
		{"link", "linked-5-public.t"},                  // another prefix
		{"kobot", "link-5-public.t"},                   // another sink's
		{"", "-5-public.t"},                            // no prefix: no routing
		{"link", "link-99999999999999999999-public.t"}, // overflows
	} {
		if id, ok := HistoryLink(c.prefix, c.backfill); ok {
			t.Errorf("HistoryLink(%q, %q) = %d, want none", c.prefix, c.backfill, id)
		}
	}
}

func readMsg(id, eventID, company, backfill string) Message {
	return Message{ID: id, ReceiveCount: 1, Body: []byte(`{"specversion":"1.0","id":"` + eventID +
		`","source":"s","type":"baitoru.applications.read","table":"public.applications","op":"read","backfill":"` + backfill +
		`","data":{"company_id":` + company + `}}`)}
}

// TestProcessHistoryRouting: a read of link 2's history goes to link 2
// only (not to link 1 of the same key); a read of a stopped link's history
// goes nowhere; reads of another backfill and live events go to every link
// of their key.
func TestProcessHistoryRouting(t *testing.T) {
	p, _, snd := newTestProcessor(t, ok)
	p.c.HistoryPrefix = "link"
	res, err := p.Process(t.Context(), []Message{
		readMsg("m1", "r-1", "7", "link-2-public.applications"),
		readMsg("m2", "r-2", "7", "link-9-public.applications"), // link 9 is not active
		readMsg("m3", "r-3", "7", "bf-manual"),
		msg("m4", "e-4", "7", 1),
		readMsg("m5", "r-5", "8", "link-2-public.applications"), // link 2 is not of key 8
	})
	if err != nil {
		t.Fatal(err)
	}
	wantResult := []string{ResultDelivered, ResultUnlinked, ResultDelivered, ResultDelivered, ResultUnlinked}
	for i, w := range wantResult {
		if res[i].Result != w {
			t.Errorf("message %d: %+v, want %s", i+1, res[i], w)
		}
	}
	got := map[string][]string{}
	for _, c := range snd.calls {
		got[c.EventID] = append(got[c.EventID], c.Account)
	}
	for id, want := range map[string][]string{"r-1": {"b"}, "r-3": {"a", "b"}, "e-4": {"a", "b"}} {
		slices.Sort(got[id])
		if !slices.Equal(got[id], want) {
			t.Errorf("event %s pushed to %v, want %v", id, got[id], want)
		}
	}
	if len(got["r-2"])+len(got["r-5"]) > 0 {
		t.Errorf("reads of another link's history pushed: %v", got)
	}
}
