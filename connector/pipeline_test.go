package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatePublisher accepts a batch once every event in it is released.
type gatePublisher struct {
	mu       sync.Mutex
	released map[string]bool
	fail     map[string]error
	changed  chan struct{}
	accepted []string
}

func newGatePublisher() *gatePublisher {
	return &gatePublisher{released: map[string]bool{}, fail: map[string]error{}, changed: make(chan struct{})}
}

func (g *gatePublisher) release(ids ...string) {
	g.mu.Lock()
	for _, id := range ids {
		g.released[id] = true
	}
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatePublisher) Publish(ctx context.Context, events []*Event) error {
	for {
		g.mu.Lock()
		ok := true
		for _, e := range events {
			if err := g.fail[e.ID]; err != nil {
				g.mu.Unlock()
				return err
			}
			if !g.released[e.ID] {
				ok = false
			}
		}
		ch := g.changed
		if ok {
			for _, e := range events {
				g.accepted = append(g.accepted, e.ID)
			}
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var testRel = &Relation{ID: 1, Schema: "public", Name: "t", Columns: []Column{
	{Name: "id", Key: true, Encode: func(dst, text []byte) ([]byte, error) { return append(dst, text...), nil }},
	{Name: "k"},
}}

func testPipeline(t *testing.T, pub Publisher, opts PipelineOptions) (*Pipeline, context.CancelFunc, chan error) {
	t.Helper()
	m := NewMapper("baitoru/test", []*Mapping{mustMapping(t, "public.t", "id", "k")})
	p := NewPipeline(m, pub, opts, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, cancel, done
}

func mustMapping(t *testing.T, table string, cols ...string) *Mapping {
	t.Helper()
	m := &Mapping{Table: table, TypePrefix: "baitoru.t", Key: []string{"k"}}
	m.Ops = []Op{OpInsert, OpUpdate, OpDelete}
	for _, c := range cols {
		m.Columns = append(m.Columns, MappedColumn{Column: c, Name: c})
	}
	return m
}

// feed sends a transaction of rows with the given keys; ids are returned.
func feed(t *testing.T, p *Pipeline, commit, end LSN, keys ...string) []string {
	t.Helper()
	tx := &Tx{XID: uint32(commit), CommitLSN: commit, CommitTime: time.Unix(0, 0)}
	p.Handle(context.Background(), Message{Kind: MsgBegin, Tx: tx})
	var ids []string
	for i, k := range keys {
		c := &Change{Tx: tx, Seq: i + 1, Rel: testRel, Op: OpInsert, New: []Datum{
			{Kind: DatumText, Value: []byte(fmt.Sprint(i))}, {Kind: DatumText, Value: []byte(k)},
		}}
		if err := p.Handle(context.Background(), Message{Kind: MsgChange, Change: c}); err != nil {
			t.Fatalf("change: %v", err)
		}
		ids = append(ids, EventID(commit, i+1))
	}
	p.Handle(context.Background(), Message{Kind: MsgCommit, End: end})
	return ids
}

func waitAcked(t *testing.T, p *Pipeline, want LSN) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Acked() != want {
		if time.Now().After(deadline) {
			t.Fatalf("acked = %s, want %s", p.Acked(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// stays asserts the acknowledged position does not move past want for a while.
func stays(t *testing.T, p *Pipeline, want LSN) {
	t.Helper()
	time.Sleep(30 * time.Millisecond)
	if got := p.Acked(); got != want {
		t.Fatalf("acked = %s, want it to stay %s", got, want)
	}
}

func TestPipelineAcknowledgesInCommitOrder(t *testing.T) {
	pub := newGatePublisher()
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 4, MaxBatch: 10})
	a := feed(t, p, 0x100, 0x110, "a1", "a2", "a3")
	b := feed(t, p, 0x200, 0x210, "b1")
	c := feed(t, p, 0x300, 0x310, "c1", "c2")

	// Later transactions accepted first: nothing may be confirmed.
	pub.release(append(b, c...)...)
	stays(t, p, 0)
	// Part of the first transaction: still nothing.
	pub.release(a[0], a[2])
	stays(t, p, 0)
	// All of it: everything up to the third commit.
	pub.release(a[1])
	waitAcked(t, p, 0x310)
}

func TestPipelineEmptyTransactions(t *testing.T) {
	pub := newGatePublisher()
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 2})

	// A transaction without mapped rows is confirmed at once.
	feed(t, p, 0x100, 0x110)
	waitAcked(t, p, 0x110)

	// Empty transactions behind one in flight wait, then fold into it.
	ids := feed(t, p, 0x600, 0x610, "x")
	for i := LSN(0); i < 100; i++ {
		feed(t, p, 0x700+i*0x10, 0x708+i*0x10)
	}
	stays(t, p, 0x110)
	if n := len(p.tracker.queue); n != 1 {
		t.Fatalf("tracker holds %d transactions, want the empty ones folded into 1", n)
	}
	pub.release(ids...)
	waitAcked(t, p, 0x700+99*0x10+8)
}

func TestPipelineWindowBoundsInflight(t *testing.T) {
	pub := newGatePublisher()
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 2, MaxBatch: 2, MaxInflightEvents: 5, ShutdownGrace: 100 * time.Millisecond})
	tx := &Tx{CommitLSN: 0x100}
	p.Handle(context.Background(), Message{Kind: MsgBegin, Tx: tx})
	sent := make(chan int, 100)
	go func() {
		for i := 0; i < 20; i++ {
			c := &Change{Tx: tx, Seq: i + 1, Rel: testRel, Op: OpInsert, New: []Datum{
				{Kind: DatumText, Value: []byte(fmt.Sprint(i))}, {Kind: DatumText, Value: []byte(fmt.Sprint(i))},
			}}
			if err := p.Handle(context.Background(), Message{Kind: MsgChange, Change: c}); err != nil {
				return
			}
			sent <- i
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if n := len(sent); n != 5 {
		t.Fatalf("reader queued %d events with a window of 5", n)
	}
	if got := p.Inflight(); got != 5 {
		t.Fatalf("inflight = %d, want 5", got)
	}
	var all []string
	for i := 1; i <= 20; i++ {
		all = append(all, EventID(0x100, i))
	}
	pub.release(all...)
	deadline := time.Now().Add(5 * time.Second)
	for len(sent) < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(sent) != 20 {
		t.Fatalf("only %d of 20 events got through after release", len(sent))
	}
}

func TestPipelinePermanentErrorStopsWithoutAck(t *testing.T) {
	pub := newGatePublisher()
	p, _, done := testPipeline(t, pub, PipelineOptions{Lanes: 1})
	boom := fmt.Errorf("event too large: %w", ErrPermanent)
	pub.fail[EventID(0x200, 1)] = boom
	a := feed(t, p, 0x100, 0x110, "k")
	pub.release(a...)
	waitAcked(t, p, 0x110)
	feed(t, p, 0x200, 0x210, "k")
	select {
	case err := <-done:
		if !errors.Is(err, ErrPermanent) {
			t.Fatalf("Run = %v, want ErrPermanent", err)
		}
		done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline did not stop on a permanent error")
	}
	// Later changes are refused, and nothing past the failure is confirmed.
	tx := &Tx{CommitLSN: 0x300}
	p.Handle(context.Background(), Message{Kind: MsgBegin, Tx: tx})
	err := p.Handle(context.Background(), Message{Kind: MsgChange, Change: &Change{Tx: tx, Seq: 1, Rel: testRel, Op: OpInsert,
		New: []Datum{{Kind: DatumText, Value: []byte("1")}, {Kind: DatumText, Value: []byte("k")}}}})
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("Change after failure = %v, want ErrPermanent", err)
	}
	p.Handle(context.Background(), Message{Kind: MsgCommit, End: 0x310})
	stays(t, p, 0x110)
}

func TestPipelineAbortDropsOpenTransaction(t *testing.T) {
	pub := newGatePublisher()
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 2})
	a := feed(t, p, 0x100, 0x110, "a")
	tx := &Tx{CommitLSN: 0x200}
	p.Handle(context.Background(), Message{Kind: MsgBegin, Tx: tx})
	if err := p.Handle(context.Background(), Message{Kind: MsgChange, Change: &Change{Tx: tx, Seq: 1, Rel: testRel, Op: OpInsert,
		New: []Datum{{Kind: DatumText, Value: []byte("1")}, {Kind: DatumText, Value: []byte("b")}}}}); err != nil {
		t.Fatal(err)
	}
	pub.release(a[0], EventID(0x200, 1))
	if err := p.Handle(context.Background(), Message{Kind: MsgFlush}); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, p, 0x110) // the open transaction is not confirmed
	if err := p.Handle(context.Background(), Message{Kind: MsgRollback}); err != nil {
		t.Fatal(err)
	}
	if n := len(p.tracker.queue); n != 0 {
		t.Fatalf("tracker holds %d transactions after the abort, want none", n)
	}
	// The source reads the transaction again: it is confirmed once accepted.
	feed(t, p, 0x200, 0x210, "b")
	waitAcked(t, p, 0x210)
}

func TestPipelineShutdownFinishesInflight(t *testing.T) {
	pub := newGatePublisher()
	p, cancel, done := testPipeline(t, pub, PipelineOptions{Lanes: 2, ShutdownGrace: 5 * time.Second})
	ids := feed(t, p, 0x100, 0x110, "a", "b")
	cancel()
	time.Sleep(20 * time.Millisecond)
	pub.release(ids...)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	if p.Acked() != 0x110 {
		t.Fatalf("acked = %s after graceful shutdown, want 0/110", p.Acked())
	}
}

// sizePublisher records the size of every call, then lets gatePublisher
// decide when it is accepted.
type sizePublisher struct {
	*gatePublisher
	mu    sync.Mutex
	sizes []int
}

func (s *sizePublisher) Publish(ctx context.Context, events []*Event) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(events))
	s.mu.Unlock()
	return s.gatePublisher.Publish(ctx, events)
}

func (s *sizePublisher) calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

// TestPipelineFillsBatchesAcrossChunks: while a call is under way, small
// transactions queue up in the lane as chunks of 3, 3 and 2 events; the
// next calls carry MaxBatch (4) events each, splitting a chunk, in the
// order the events were read, and every transaction is acknowledged.
func TestPipelineFillsBatchesAcrossChunks(t *testing.T) {
	pub := &sizePublisher{gatePublisher: newGatePublisher()}
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 1, MaxBatch: 4})
	want := feed(t, p, 0x100, 0x110, "k")
	deadline := time.Now().Add(5 * time.Second)
	for len(pub.calls()) == 0 { // the first call is under way, held by the gate
		if time.Now().After(deadline) {
			t.Fatal("no Publish call")
		}
		time.Sleep(time.Millisecond)
	}
	want = append(want, feed(t, p, 0x200, 0x210, "k", "k", "k")...)
	want = append(want, feed(t, p, 0x300, 0x310, "k", "k", "k")...)
	want = append(want, feed(t, p, 0x400, 0x410, "k", "k")...)
	pub.release(want...)
	waitAcked(t, p, 0x410)
	if got := fmt.Sprint(pub.calls()); got != "[1 4 4]" {
		t.Errorf("call sizes = %s, want [1 4 4]", got)
	}
	pub.mu.Lock()
	got := fmt.Sprint(pub.accepted)
	pub.mu.Unlock()
	if got != fmt.Sprint(want) {
		t.Errorf("accepted in order %s, want %s", got, want)
	}
}

// lossRecord answers CoverMissingColumns with covered or err and records
// what it was asked.
type lossRecord struct {
	covered bool
	err     error
	asked   []string
}

func (r *lossRecord) CoverMissingColumns(_ context.Context, table string, columns []string, _ uint32, lsn LSN) (bool, error) {
	r.asked = append(r.asked, fmt.Sprintf("%s %v %s", table, columns, lsn))
	return r.covered, r.err
}

// TestPipelineMissingColumns: a change whose relation lacks a mapped
// column is skipped, with the rest of that relation version's changes,
// only when the loss record covers it; otherwise the mapping error stops
// the pipeline as before (and an unreachable record is an error that is
// not permanent, so the stream retries).
func TestPipelineMissingColumns(t *testing.T) {
	narrow := &Relation{ID: 1, Schema: "public", Name: "t", Columns: []Column{{Name: "id", Key: true}, {Name: "k"}}}
	wide := &Relation{ID: 1, Schema: "public", Name: "t", Columns: []Column{{Name: "id", Key: true}, {Name: "k"}, {Name: "extra"}}}
	for _, tc := range []struct {
		name      string
		rec       *lossRecord
		wantErr   string
		permanent bool
		skipped   bool
	}{
		{name: "covered", rec: &lossRecord{covered: true}, skipped: true},
		{name: "not covered", rec: &lossRecord{}, wantErr: "names columns the table does not have in the stream: extra", permanent: true},
		{name: "record unreachable", rec: &lossRecord{err: errors.New("connection refused")}, wantErr: "cannot look up the gap record: connection refused"},
		{name: "no record", wantErr: "names columns the table does not have in the stream: extra", permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := newGatePublisher()
			m := NewMapper("baitoru/test", []*Mapping{mustMapping(t, "public.t", "id", "k", "extra")})
			opts := PipelineOptions{Lanes: 1, MaxBatch: 10}
			if tc.rec != nil {
				opts.Losses = tc.rec
			}
			p := NewPipeline(m, pub, opts, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			tx := &Tx{XID: 1, CommitLSN: 0x100, CommitTime: time.Unix(0, 0)}
			if err := p.Handle(context.Background(), Message{Kind: MsgBegin, Tx: tx}); err != nil {
				t.Fatal(err)
			}
			row := []Datum{{Kind: DatumText, Value: []byte("1")}, {Kind: DatumText, Value: []byte("a")}}
			var errs []error
			for seq := 1; seq <= 2; seq++ {
				errs = append(errs, p.Handle(context.Background(), Message{Kind: MsgChange, Change: &Change{Tx: tx, Seq: seq, Rel: narrow, Op: OpInsert, New: row}}))
			}
			switch {
			case tc.wantErr == "":
				if errs[0] != nil || errs[1] != nil {
					t.Fatalf("errors %v", errs)
				}
				if len(tc.rec.asked) != 1 || tc.rec.asked[0] != "public.t [extra] 0/100" {
					t.Fatalf("asked %q; want once, for the first change", tc.rec.asked)
				}
				// The table announced again with the column: published.
				wideRow := append(row, Datum{Kind: DatumText, Value: []byte("x")})
				if err := p.Handle(context.Background(), Message{Kind: MsgChange, Change: &Change{Tx: tx, Seq: 3, Rel: wide, Op: OpInsert, New: wideRow}}); err != nil {
					t.Fatal(err)
				}
				if n, _ := p.win.load(); n != 1 {
					t.Fatalf("%d events queued; want only the one with every column", n)
				}
			default:
				if errs[0] == nil || !strings.Contains(errs[0].Error(), tc.wantErr) || errors.Is(errs[0], ErrPermanent) != tc.permanent {
					t.Fatalf("error %v; want %q (permanent %v)", errs[0], tc.wantErr, tc.permanent)
				}
			}
		})
	}
}

// TestPipelineReloadTransition: a reload applies at the first transaction
// committed after its position that was not open when the publication
// changed; the open ones keep the mappings before it, each transaction one
// version, until TransitionEnded.
func TestPipelineReloadTransition(t *testing.T) {
	m1, m2 := mustMapping(t, "public.t", "id", "k"), mustMapping(t, "public.t", "id")
	m := NewMapper("baitoru/test", []*Mapping{m1})
	m.SetMappings([]*Mapping{m1}, "v1")
	p := NewPipeline(m, newGatePublisher(), PipelineOptions{Lanes: 1, MaxBatch: 10}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	applied := p.Reload([]*Mapping{m2}, "v2", 0x200, []uint32{7, 8})
	isApplied := func() bool {
		select {
		case <-applied:
			return true
		default:
			return false
		}
	}
	for i, step := range []struct {
		xid     uint32
		commit  LSN
		ended   LSN // TransitionEnded before the transaction (0: not)
		want    string
		applied bool
	}{
		{xid: 5, commit: 0x100, want: "v1"},                              // committed before the publication changed
		{xid: 7, commit: 0x300, want: "v1"},                              // open then
		{xid: 9, commit: 0x400, want: "v2", applied: true},               // began after: the reload applies
		{xid: 8, commit: 0x500, want: "v1", applied: true},               // open then, committed later
		{xid: 10, commit: 0x600, want: "v2", applied: true},              // back to the new mappings
		{xid: 8, commit: 0x800, ended: 0x700, want: "v2", applied: true}, // the id again, after the transition ended
	} {
		if step.ended != 0 {
			p.TransitionEnded(step.ended)
		}
		p.Handle(context.Background(), Message{Kind: MsgBegin, Tx: &Tx{XID: step.xid, CommitLSN: step.commit, CommitTime: time.Unix(0, 0)}})
		if got := m.Version(); got != step.want || isApplied() != step.applied {
			t.Fatalf("step %d (xid %d at %s): version %s, applied %v; want %s, %v", i, step.xid, step.commit, got, isApplied(), step.want, step.applied)
		}
		if got := m.Mapping("public.t"); (got == m2) != (step.want == "v2") {
			t.Fatalf("step %d: the mapping in use is not the one of %s", i, step.want)
		}
		p.Handle(context.Background(), Message{Kind: MsgCommit, End: step.commit + 1})
	}
}
