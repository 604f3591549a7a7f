package postgres_test

import (
	"context"
	"testing"

	"github.com/baitoru/baitoru-cdc/sink"
)

// TestLinkHistoryRecord: a link the store creates gets one history per
// table in the same transaction (a link found again gets none more);
// pending ones are those of active links not yet requested, oldest first;
// MarkRequested takes them out.
func TestLinkHistoryRecord(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	before, _, err := s.StartLink(ctx, "old", "7") // started before history was configured
	if err != nil {
		t.Fatal(err)
	}
	s.SetHistory("link", []sink.HistoryTable{{Table: "public.job_postings", Field: "company_id"}, {Table: "public.applications", Field: "company"}})
	a, created, err := s.StartLink(ctx, "a", "7")
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if again, created, err := s.StartLink(ctx, "a", "7"); err != nil || created || again.ID != a.ID {
		t.Fatalf("second start: %+v %v %v", again, created, err)
	}
	b, _, _ := s.StartLink(ctx, "b", "8")

	pending, err := s.PendingHistory(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []sink.History{
		{LinkID: a.ID, Key: "7", Table: "public.applications", Field: "company", BackfillID: sink.HistoryID("link", a.ID, "public.applications")},
		{LinkID: a.ID, Key: "7", Table: "public.job_postings", Field: "company_id", BackfillID: sink.HistoryID("link", a.ID, "public.job_postings")},
		{LinkID: b.ID, Key: "8", Table: "public.applications", Field: "company", BackfillID: sink.HistoryID("link", b.ID, "public.applications")},
		{LinkID: b.ID, Key: "8", Table: "public.job_postings", Field: "company_id", BackfillID: sink.HistoryID("link", b.ID, "public.job_postings")},
	}
	if len(pending) != len(want) {
		t.Fatalf("pending = %+v, want %+v", pending, want)
	}
	for i := range want {
		if pending[i] != want[i] {
			t.Errorf("pending[%d] = %+v, want %+v", i, pending[i], want[i])
		}
	}
	if hs, _ := s.LinkHistory(ctx, before.ID); len(hs) != 0 {
		t.Errorf("a link started before history was configured has %+v", hs)
	}

	if err := s.MarkRequested(ctx, []string{want[0].BackfillID, want[1].BackfillID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StopLink(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if pending, _ := s.PendingHistory(ctx, 10); len(pending) != 0 {
		t.Errorf("pending after marking a's and stopping b: %+v", pending)
	}
	hs, err := s.LinkHistory(ctx, a.ID)
	if err != nil || len(hs) != 2 || !hs[0].Requested || !hs[1].Requested {
		t.Errorf("link a's history: %+v %v", hs, err)
	}
}
