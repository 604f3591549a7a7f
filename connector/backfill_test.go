package connector

import "testing"

// TestSnapshotSees: a committed transaction is visible in a snapshot below
// xmax and outside xip, widened across the 32-bit wrap of the stream's xid.
func TestSnapshotSees(t *testing.T) {
	const epoch = 5 << 32
	for _, c := range []struct {
		snap Snapshot
		xid  uint32
		want bool
	}{
		{Snapshot{Xmin: 100, Xmax: 110, Xip: []uint64{105}}, 99, true},
		{Snapshot{Xmin: 100, Xmax: 110, Xip: []uint64{105}}, 104, true},
		{Snapshot{Xmin: 100, Xmax: 110, Xip: []uint64{105}}, 105, false},
		{Snapshot{Xmin: 100, Xmax: 110, Xip: []uint64{105}}, 110, false},
		{Snapshot{Xmin: 100, Xmax: 110}, 200, false},
		{Snapshot{Xmin: epoch + 10, Xmax: epoch + 20, Xip: []uint64{epoch + 12}}, 12, false},
		{Snapshot{Xmin: epoch + 10, Xmax: epoch + 20}, 15, true},
		// xmax just after a wrap: 0xFFFFFFF0 is the previous epoch's, visible.
		{Snapshot{Xmin: epoch + 2, Xmax: epoch + 5}, 0xFFFFFFF0, true},
		{Snapshot{Xmin: epoch - 20, Xmax: epoch + 5, Xip: []uint64{epoch - 16}}, 0xFFFFFFF0, false},
		{Snapshot{}, 7, true},
	} {
		if got := c.snap.Sees(c.xid); got != c.want {
			t.Errorf("%+v sees %d: %v, want %v", c.snap, c.xid, got, c.want)
		}
	}
}
