package connector

import (
	"bytes"
	"testing"
)

// The slab's slices never share bytes: appending past one's capacity
// moves it, leaving its neighbour as it was.
func TestReadSlabBytes(t *testing.T) {
	var s readSlab
	for _, tc := range []struct {
		name string
		n    int
		own  bool // an allocation of its own (over a quarter block)
	}{
		{"small", 100, false},
		{"quarter block", slabBytes / 4, false},
		{"over a quarter block", slabBytes/4 + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest := len(s.buf)
			a := s.bytes(tc.n)
			b := s.bytes(tc.n)
			if tc.own && len(s.buf) != rest {
				t.Errorf("a body of %d bytes was carved from the block (%d bytes left, %d before)", tc.n, len(s.buf), rest)
			}
			if len(a) != 0 || cap(a) != tc.n || cap(b) != tc.n {
				t.Fatalf("len %d cap %d and cap %d; want 0 and %d", len(a), cap(a), cap(b), tc.n)
			}
			a = append(a, bytes.Repeat([]byte{'a'}, tc.n)...)
			b = append(b, bytes.Repeat([]byte{'b'}, tc.n)...)
			a = append(a, 'x') // past its capacity: moved
			if bytes.Count(b, []byte{'b'}) != tc.n || bytes.Count(a, []byte{'a'}) != tc.n {
				t.Errorf("neighbouring slices changed each other: %q / %q", a[:min(len(a), 8)], b[:min(len(b), 8)])
			}
		})
	}
}

// Events are zero, distinct, and keep their place across blocks.
func TestReadSlabEvents(t *testing.T) {
	var s readSlab
	seen := map[*ReadEvent]bool{}
	for i := range slabEvents*2 + 1 {
		r := s.event()
		if seen[r] {
			t.Fatalf("event %d handed out twice", i)
		}
		if r.Body != nil || r.timeAt != 0 || r.ID != "" {
			t.Fatalf("event %d not zero: %+v", i, r)
		}
		seen[r] = true
		r.ID = "used"
		r.Attributes = r.attrs[:1]
	}
	for r := range seen {
		if r.ID != "used" || &r.Attributes[0] != &r.attrs[0] {
			t.Fatal("an event changed after later ones were handed out")
		}
	}
}
