package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordPublisher accepts every batch and records the event ids.
type recordPublisher struct {
	mu  sync.Mutex
	ids []string
}

func (r *recordPublisher) Publish(_ context.Context, events []*Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		r.ids = append(r.ids, e.ID)
	}
	return nil
}

func (r *recordPublisher) published() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// TestInterleaverHandle: the interleaver, as the replication handler,
// drops from a chunk the keys changed inside its window (and those changed
// shortly before by a transaction the chunk's snapshot does not see),
// queues the rest as read events in the high watermark's transaction, tells
// the chunk where that transaction ends, and passes every change on.
func TestInterleaverHandle(t *testing.T) {
	type change struct {
		xid uint32
		id  string
	}
	tests := []struct {
		name string
		// earlier: changes decoded after the backfill started, before
		// the window was registered (another chunk's snapshot saw
		// xid 5 in between); before: between the window's registration
		// and its low watermark; inside: between the low and the high
		// watermark.
		earlier, before, inside []change
		// pretrack: changes decoded before the backfill began.
		pretrack []change
		wantRedo bool
		snap     Snapshot
		slot     string // of the watermarks; "" is the interleaver's
		// reload: the mappings are reloaded after the chunk was read,
		// before its high watermark: its reads are stale (read again).
		reload    bool
		wantReads []string
	}{
		{name: "no change in the window", wantReads: []string{"1", "2", "3"}},
		{name: "a key changed inside the window", inside: []change{{20, "2"}}, wantReads: []string{"1", "3"}},
		{name: "a key changed before, seen by the snapshot", before: []change{{5, "1"}},
			snap: Snapshot{Xmin: 10, Xmax: 20}, wantReads: []string{"1", "2", "3"}},
		{name: "a key changed before, invisible to the snapshot", before: []change{{15, "1"}},
			snap: Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{15}}, wantReads: []string{"2", "3"}},
		{name: "a key changed before the window was registered, invisible to the snapshot", earlier: []change{{15, "1"}, {5, "3"}},
			snap: Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{15}}, wantReads: []string{"2", "3"}},
		{name: "a key changed before the window was registered, seen by the snapshot", earlier: []change{{16, "1"}},
			snap: Snapshot{Xmin: 10, Xmax: 20}, wantReads: []string{"1", "2", "3"}},
		{name: "a transaction decoded before the backfill began, invisible to the snapshot", pretrack: []change{{15, "1"}},
			snap: Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{15}}, wantRedo: true},
		{name: "a transaction decoded before the backfill began, seen by the snapshot", pretrack: []change{{15, "1"}},
			snap: Snapshot{Xmin: 10, Xmax: 20}, wantReads: []string{"1", "2", "3"}},
		{name: "another connector's watermarks", slot: "other", inside: []change{{20, "2"}}},
		{name: "mappings reloaded before the high watermark", reload: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recordPublisher{}
			p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 2})
			il := NewInterleaver(p, "cdc", "baitoru_cdc.backfill_requests", p.log)
			ctx := context.Background()
			handle := func(m Message) {
				t.Helper()
				if err := il.Handle(ctx, m); err != nil {
					t.Fatalf("handle %d: %v", m.Kind, err)
				}
			}
			var live []string
			commit := LSN(0x100)
			tx := func(xid uint32, body func(tx *Tx)) {
				t.Helper()
				commit += 0x100
				tx := &Tx{XID: xid, CommitLSN: commit, CommitTime: time.Unix(0, 0)}
				handle(Message{Kind: MsgBegin, Tx: tx})
				body(tx)
				handle(Message{Kind: MsgCommit, End: commit + 0x10})
			}
			update := func(c change) {
				tx(c.xid, func(tx *Tx) {
					row := []Datum{{Kind: DatumText, Value: []byte(c.id)}, {Kind: DatumText, Value: []byte("k" + c.id)}}
					handle(Message{Kind: MsgChange, Change: &Change{Tx: tx, Seq: 1, Rel: testRel, Op: OpUpdate, New: row}})
					live = append(live, EventID(tx.CommitLSN, 1))
				})
			}
			slot := tc.slot
			if slot == "" {
				slot = "cdc"
			}
			mark := func(m string) {
				content, err := json.Marshal(Watermark{Slot: slot, Backfill: "b1", Chunk: 1, Run: "r1", Mark: m})
				if err != nil {
					t.Fatal(err)
				}
				tx(30, func(tx *Tx) {
					handle(Message{Kind: MsgLogical, Tx: tx, Prefix: WatermarkPrefix, Content: content})
				})
			}

			for _, c := range tc.pretrack {
				update(c)
			}
			il.track("public.t", []string{"id"})
			for _, c := range tc.earlier {
				update(c)
			}
			// A chunk before (its window's snapshot saw xid 5, not 15
			// or 16) forgets what it saw of the history.
			il.mu.Lock()
			il.hist["public.t"].seen = slices.DeleteFunc(il.hist["public.t"].seen, func(tk txKey) bool {
				return Snapshot{Xmin: 6, Xmax: 7}.Sees(tk.xid)
			})
			il.mu.Unlock()
			w := il.expect(Watermark{Slot: "cdc", Backfill: "b1", Chunk: 1, Run: "r1"}, "public.t", []string{"id"})
			for _, c := range tc.before {
				update(c)
			}
			mark("low")
			ch := &BackfillChunk{Rel: testRel, Snapshot: tc.snap}
			enc := ReadEncoder{p: p}
			ch.mapping, ch.version = enc.sync("public.t")
			for _, id := range []string{"1", "2", "3"} {
				r, err := enc.m.EncodeRead(testRel, []Datum{{Kind: DatumText, Value: []byte(id)}, {Kind: DatumText, Value: []byte("k" + id)}}, "b1", id)
				if err != nil {
					t.Fatal(err)
				}
				ch.reads = append(ch.reads, r)
				ch.Keys = append(ch.Keys, RowKey([]string{id}))
			}
			il.deposit(w, ch)
			if tc.reload {
				p.Reload([]*Mapping{mustMapping(t, "public.t", "id", "k")}, "v2", 0, nil)
			}
			for _, c := range tc.inside {
				update(c)
			}
			mark("high")
			hwEnd := commit + 0x10

			var want []string
			if tc.slot == "" {
				select {
				case end := <-w.result:
					if end != hwEnd {
						t.Fatalf("chunk told %s, want the high watermark's transaction end %s", end, hwEnd)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the chunk was not told where its reads end")
				}
				for _, id := range tc.wantReads {
					want = append(want, ReadEventID("b1", "public.t", id))
				}
				if w.remap != tc.reload {
					t.Errorf("chunk to be read again for new mappings: %t, want %t", w.remap, tc.reload)
				}
				if w.redo != tc.wantRedo {
					t.Errorf("chunk to be read again: %t (%s), want %t", w.redo, w.why, tc.wantRedo)
				}
			} else if len(w.result) != 0 {
				t.Fatal("another connector's high watermark closed the chunk")
			}
			want = append(want, live...)
			deadline := time.Now().Add(5 * time.Second)
			for p.Acked() < hwEnd {
				if time.Now().After(deadline) {
					t.Fatalf("acked %s, want %s", p.Acked(), hwEnd)
				}
				time.Sleep(time.Millisecond)
			}
			got := pub.published()
			slices.Sort(got)
			slices.Sort(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("published %v, want %v", got, want)
			}
		})
	}
}

// TestInterleaverRollback: a rollback (the stream broke) gives up the open
// chunk, which is then read again; a new request wakes the runner and is
// not published.
func TestInterleaverRollback(t *testing.T) {
	pub := &recordPublisher{}
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 1})
	il := NewInterleaver(p, "cdc", "baitoru_cdc.backfill_requests", p.log)
	ctx := context.Background()
	w := il.expect(Watermark{Slot: "cdc", Backfill: "b1", Chunk: 1, Run: "r1"}, "public.t", []string{"id"})

	tx := &Tx{XID: 7, CommitLSN: 0x200}
	requests := &Relation{ID: 2, Schema: "baitoru_cdc", Name: "backfill_requests", Columns: []Column{{Name: "id", Key: true}}}
	for _, m := range []Message{
		{Kind: MsgBegin, Tx: tx},
		{Kind: MsgChange, Change: &Change{Tx: tx, Seq: 1, Rel: requests, Op: OpInsert, New: []Datum{{Kind: DatumText, Value: []byte("b2")}}}},
		{Kind: MsgFlush},
		{Kind: MsgRollback},
	} {
		if err := il.Handle(ctx, m); err != nil {
			t.Fatalf("handle %d: %v", m.Kind, err)
		}
	}
	select {
	case <-il.wake:
	default:
		t.Error("a new backfill request did not wake the runner")
	}
	select {
	case end := <-w.result:
		if end != 0 {
			t.Errorf("chunk told %s after a rollback, want 0 (read it again)", end)
		}
	default:
		t.Error("the open chunk was not given up after a rollback")
	}
	if got := pub.published(); len(got) != 0 {
		t.Errorf("published %v, want nothing (a request is not an event)", got)
	}
}
