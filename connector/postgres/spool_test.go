package postgres

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

// TestSpools runs the same sequences of streamed messages and aborts with
// everything in memory, with the memory bound crossed in the middle, and
// with every record in a file: the replayed records are the same.
func TestSpools(t *testing.T) {
	type op struct {
		add      string // record to add ("" for none)
		sub      uint32 // xid the record carries (0: the top-level 1)
		abortSub uint32 // subtransaction to abort (0: none)
		abortTop bool
		otherXID bool // the record goes to transaction 2
	}
	cases := []struct {
		name string
		ops  []op
		want []string // transaction 1's records at commit
		// wantOther is transaction 2's records (interleaved with 1).
		wantOther []string
	}{
		{"plain", []op{{add: "a"}, {add: "b"}, {add: "c"}}, []string{"a", "b", "c"}, nil},
		{"savepoint rolled back", []op{{add: "a"}, {add: "b", sub: 11}, {add: "c", sub: 11}, {abortSub: 11}, {add: "d"}},
			[]string{"a", "d"}, nil},
		{"nested savepoints, inner rolled back", []op{{add: "a", sub: 11}, {add: "b", sub: 12}, {abortSub: 12}, {add: "c", sub: 11}},
			[]string{"a", "c"}, nil},
		{"outer rolled back takes the inner one", []op{{add: "a"}, {add: "b", sub: 11}, {add: "c", sub: 12}, {add: "d", sub: 11}, {abortSub: 11}, {add: "e"}},
			[]string{"a", "e"}, nil},
		{"released savepoint stays", []op{{add: "a", sub: 11}, {add: "b"}, {add: "c", sub: 12}, {abortSub: 12}},
			[]string{"a", "b"}, nil},
		{"abort of a subtransaction never streamed", []op{{add: "a"}, {abortSub: 99}, {add: "b"}}, []string{"a", "b"}, nil},
		{"rolled back then a new savepoint", []op{{add: "a", sub: 11}, {abortSub: 11}, {add: "b", sub: 12}, {add: "c"}},
			[]string{"b", "c"}, nil},
		{"interleaved transactions", []op{{add: "a"}, {add: "x", otherXID: true}, {add: "b", sub: 11}, {add: "y", otherXID: true}, {abortSub: 11}, {add: "c"}},
			[]string{"a", "c"}, []string{"x", "y"}},
		{"top-level abort", []op{{add: "a"}, {add: "x", otherXID: true}, {add: "b", sub: 11}, {abortTop: true}},
			nil, []string{"x"}},
	}
	for _, tc := range cases {
		for _, mem := range []struct {
			name string
			max  int64
		}{{"memory", 1 << 20}, {"spilled midway", 3}, {"file", 0}} {
			t.Run(tc.name+"/"+mem.name, func(t *testing.T) {
				dir := t.TempDir()
				ss := newSpools(mem.max, dir)
				for _, x := range []uint32{1, 2} {
					if err := ss.start(x, true); err != nil {
						t.Fatal(err)
					}
				}
				for _, o := range tc.ops {
					xid := uint32(1)
					if o.otherXID {
						xid = 2
					}
					switch {
					case o.add != "":
						sub := o.sub
						if sub == 0 {
							sub = xid
						}
						rec := []byte(o.add)
						if err := ss.add(xid, sub, rec); err != nil {
							t.Fatal(err)
						}
						rec[0] = '!' // the spool keeps its own copy
					case o.abortSub != 0:
						if err := ss.abort(1, o.abortSub); err != nil {
							t.Fatal(err)
						}
					case o.abortTop:
						if err := ss.abort(1, 1); err != nil {
							t.Fatal(err)
						}
					}
					if ss.mem > mem.max {
						t.Fatalf("%d bytes in memory, bound %d", ss.mem, mem.max)
					}
				}
				replayed := func(xid uint32) []string {
					var got []string
					s := ss.take(xid)
					defer s.close()
					if err := s.replay(func(rec []byte) error { got = append(got, string(rec)); return nil }); err != nil {
						t.Fatal(err)
					}
					return got
				}
				if got := replayed(1); !slices.Equal(got, tc.want) {
					t.Errorf("transaction 1 replayed %q, want %q", got, tc.want)
				}
				if got := replayed(2); !slices.Equal(got, tc.wantOther) {
					t.Errorf("transaction 2 replayed %q, want %q", got, tc.wantOther)
				}
				if ss.mem != 0 || len(ss.open) != 0 {
					t.Errorf("after commit: %d bytes in memory, %d open", ss.mem, len(ss.open))
				}
				if left, _ := os.ReadDir(dir); len(left) != 0 {
					t.Errorf("spill files left in the directory: %v", left)
				}
			})
		}
	}
}

// TestSpoolsRefuseLateSegment: a later segment of a transaction whose first
// segment this session never saw is an error (its start was lost), and a
// change outside any started transaction too.
func TestSpoolsRefuseLateSegment(t *testing.T) {
	ss := newSpools(1<<20, t.TempDir())
	if err := ss.start(7, false); err == nil {
		t.Fatal("a later segment of an unknown transaction was accepted")
	}
	if err := ss.add(7, 7, []byte("x")); err == nil {
		t.Fatal("a change of an unknown transaction was accepted")
	}
	if err := ss.start(7, true); err != nil {
		t.Fatal(err)
	}
	if err := ss.start(7, false); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolsLargeFile replays a spilled transaction of records of many
// sizes exactly.
func TestSpoolsLargeFile(t *testing.T) {
	ss := newSpools(1024, t.TempDir())
	if err := ss.start(1, true); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3000 {
		rec := fmt.Sprintf("%d:%0*d", i, i%300, i)
		want = append(want, rec)
		if err := ss.add(1, 1, []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	s := ss.take(1)
	defer s.close()
	if s.file == nil {
		t.Fatal("3000 records within a 1 KiB bound were not spilled")
	}
	i := 0
	err := s.replay(func(rec []byte) error {
		if string(rec) != want[i] {
			return fmt.Errorf("record %d: %q, want %q", i, rec, want[i])
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("replayed %d of %d: %v", i, len(want), err)
	}
}
