package sink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
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

// Fakes for a unit test of Histories: the sink database's record and
// Baitoru's database.
type fakeHistoryLog struct{ hs []History }

func (f *fakeHistoryLog) PendingHistory(_ context.Context, limit int) ([]History, error) {
	var out []History
	for _, h := range f.hs {
		if !h.Requested && len(out) < limit {
			out = append(out, h)
		}
	}
	return out, nil
}

func (f *fakeHistoryLog) MarkRequested(_ context.Context, ids []string) error {
	for i := range f.hs {
		if slices.Contains(ids, f.hs[i].BackfillID) {
			f.hs[i].Requested = true
		}
	}
	return nil
}

func (f *fakeHistoryLog) LinkHistory(_ context.Context, id int64) ([]History, error) {
	var out []History
	for _, h := range f.hs {
		if h.LinkID == id {
			out = append(out, h)
		}
	}
	return out, nil
}

type fakeRequester struct {
	down      bool
	requested map[string]History
	cancelled []string
	progress  map[string]HistoryProgress
}

func (f *fakeRequester) RequestBackfills(_ context.Context, hs []History) error {
	if f.down {
		return errors.New("connection refused")
	}
	for _, h := range hs {
		if _, ok := f.requested[h.BackfillID]; !ok {
			f.requested[h.BackfillID] = h
		}
	}
	return nil
}

func (f *fakeRequester) CancelBackfills(_ context.Context, ids []string) error {
	if f.down {
		return errors.New("connection refused")
	}
	f.cancelled = append(f.cancelled, ids...)
	return nil
}

func (f *fakeRequester) BackfillProgress(_ context.Context, ids []string) (map[string]HistoryProgress, error) {
	if f.down {
		return nil, errors.New("connection refused")
	}
	out := map[string]HistoryProgress{}
	for _, id := range ids {
		if p, ok := f.progress[id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

// TestHistoriesForward: while Baitoru's database is down a history stays
// pending (and shows so); once it answers, Forward requests it once, and
// the link shows the connector's progress; a requested history not yet
// started shows requested, and unknown while the database is down again;
// Cancel cancels only what was requested.
func TestHistoriesForward(t *testing.T) {
	ctx := t.Context()
	log := &fakeHistoryLog{hs: []History{
		{LinkID: 1, Key: "7", Table: "public.applications", Field: "company_id", BackfillID: "link-1-public.applications"},
		{LinkID: 1, Key: "7", Table: "public.job_postings", Field: "company_id", BackfillID: "link-1-public.job_postings"},
	}}
	req := &fakeRequester{down: true, requested: map[string]History{}, progress: map[string]HistoryProgress{}}
	h := NewHistories(log, req, time.Second, nil)

	if n, err := h.Forward(ctx); err == nil || n != 0 {
		t.Fatalf("Forward with Baitoru's database down = %d, %v; want an error", n, err)
	}
	states := func() []string {
		ps, err := h.Progress(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.State)
		}
		return out
	}
	if got := states(); !slices.Equal(got, []string{HistoryPending, HistoryPending}) {
		t.Errorf("states while down = %v", got)
	}

	req.down = false
	if n, err := h.Forward(ctx); err != nil || n != 2 {
		t.Fatalf("Forward = %d, %v; want 2", n, err)
	}
	if n, err := h.Forward(ctx); err != nil || n != 0 {
		t.Fatalf("second Forward = %d, %v; want 0", n, err)
	}
	if r := req.requested["link-1-public.job_postings"]; r.Key != "7" || r.Field != "company_id" || r.Table != "public.job_postings" {
		t.Errorf("request = %+v", r)
	}
	req.progress["link-1-public.job_postings"] = HistoryProgress{State: "running", RowsDone: 40, RowsEstimated: 100}
	if got := states(); !slices.Equal(got, []string{HistoryRequested, "running"}) {
		t.Errorf("states = %v", got)
	}
	req.down = true
	if got := states(); !slices.Equal(got, []string{HistoryUnknown, HistoryUnknown}) {
		t.Errorf("states while down again = %v", got)
	}
	req.down = false
	if err := h.Cancel(ctx, 1); err != nil || len(req.cancelled) != 2 {
		t.Errorf("Cancel: %v, cancelled %v", err, req.cancelled)
	}
}
