package connector

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestPipelineLiveAheadOfReads: in a lane, live events go ahead of backfill
// reads queued before them, except per key: a live event whose key has a
// read still queued goes after it, and a read never goes ahead of a live
// event handed to the pipeline before it. The position is acknowledged in
// commit order all the same.
func TestPipelineLiveAheadOfReads(t *testing.T) {
	pub := newGatePublisher()
	p, _, _ := testPipeline(t, pub, PipelineOptions{Lanes: 1, MaxBatch: 1})
	ctx := context.Background()
	row := func(id, k string) []Datum {
		return []Datum{{Kind: DatumText, Value: []byte(id)}, {Kind: DatumText, Value: []byte(k)}}
	}
	// A live event the publisher holds: the lane's queue fills behind it.
	held := feed(t, p, 0x100, 0x110, "a")
	// The high watermark's transaction: a live event of key "d" first,
	// then reads of keys r1, r2, b and d.
	hw := &Tx{XID: 0x200, CommitLSN: 0x200, CommitTime: time.Unix(0, 0)}
	if err := p.Handle(ctx, Message{Kind: MsgBegin, Tx: hw}); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(ctx, Message{Kind: MsgChange, Change: &Change{Tx: hw, Seq: 1, Rel: testRel, Op: OpInsert, New: row("9", "d")}}); err != nil {
		t.Fatal(err)
	}
	liveD := EventID(0x200, 1)
	var reads []string
	for i, k := range []string{"r1", "r2", "b", "d"} {
		c := &Change{Tx: hw, Seq: i + 2, Rel: testRel, Op: OpRead, New: row(fmt.Sprint(i), k)}
		if err := p.Read(ctx, c, "bf", k); err != nil {
			t.Fatal(err)
		}
		reads = append(reads, ReadEventID("bf", "public.t", k))
	}
	p.Handle(ctx, Message{Kind: MsgCommit, End: 0x210})
	// A live transaction after it: key "c" (no read queued) and key "b"
	// (its read is queued).
	after := feed(t, p, 0x300, 0x310, "c", "b")
	stays(t, p, 0)
	pub.release(append(append(append(held, liveD), reads...), after...)...)
	waitAcked(t, p, 0x310)
	pub.mu.Lock()
	got := fmt.Sprint(pub.accepted)
	pub.mu.Unlock()
	want := fmt.Sprint([]string{held[0], liveD, after[0], reads[0], reads[1], reads[2], reads[3], after[1]})
	if got != want {
		t.Errorf("published %s,\nwant      %s (live first, but per key after the read)", got, want)
	}
}
