package connector

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestObjectKey(t *testing.T) {
	long := strings.Repeat("9", 1100)
	for _, tc := range []struct {
		prefix, id, want string
	}{
		{"baitoru-cdc/baitoru_cdc/", "0/16B3748-3", "baitoru-cdc/baitoru_cdc/0/16B3748-3"},
		{"", "0/16B3748-3", "0/16B3748-3"},
		// Characters S3 would need escaped, or an id too long: hashed.
		{"p/", "a b", ""},
		{"p/", "東京", ""},
		{"p/", long, ""},
	} {
		got := ObjectKey(tc.prefix, tc.id)
		switch {
		case tc.want == "":
			if !strings.HasPrefix(got, tc.prefix+"sha256-") || len(got) != len(tc.prefix)+7+64 {
				t.Errorf("ObjectKey(%q, %.20q) = %q, want a hashed key", tc.prefix, tc.id, got)
			}
		case got != tc.want:
			t.Errorf("ObjectKey(%q, %q) = %q, want %q", tc.prefix, tc.id, got, tc.want)
		}
		if ObjectKey(tc.prefix, tc.id) != got {
			t.Errorf("ObjectKey(%q, %q) is not deterministic", tc.prefix, tc.id)
		}
	}
	if ObjectKey("", "a b") == ObjectKey("", "a c") {
		t.Error("two ids share a hashed key")
	}
}

type memStore struct {
	mu      sync.Mutex
	objects map[string]string
	err     error
}

func (m *memStore) Put(_ context.Context, bucket, key string, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.objects[bucket+"/"+key] = string(body)
	return nil
}

type capturePublisher struct{ got [][]*Event }

func (c *capturePublisher) Publish(_ context.Context, evs []*Event) error {
	c.got = append(c.got, evs)
	return nil
}

// TestClaimCheckBatch: a unit test of the decisions on one batch; the
// emulator tests in connector/s3 cover the wire.
func TestClaimCheckBatch(t *testing.T) {
	mk := func(id, table string, bodyLen int, attrs int) *Event {
		ev := &Event{ID: id, Table: table, Key: "k" + id, Body: []byte(strings.Repeat("x", bodyLen))}
		for range attrs {
			ev.Attributes = append(ev.Attributes, Attribute{Name: "a", Type: "String", Value: "vvvv"})
		}
		return ev
	}
	evs := []*Event{
		mk("1", "public.small", 2000, 0),  // table without large payloads
		mk("2", "public.big", 989, 1),     // 989 + 11 = 1000: at the threshold
		mk("3", "public.big", 990, 1),     // 1001: over
		mk("4", "public.big", 5000, 2),    // over
		mk("5", "public.other", 1001, 0),  // over its own threshold
		mk("6", "public.other", 1000, 0),  // at it
		mk("7", "public.small", 10000, 0), // no large payloads
	}
	store := &memStore{objects: map[string]string{}}
	next := &capturePublisher{}
	c := NewClaimCheck(next, store, []*Mapping{
		{Table: "public.big", LargePayloads: &LargePayloads{Bucket: "b", Prefix: "big/", Threshold: 1000}},
		{Table: "public.other", LargePayloads: &LargePayloads{Bucket: "o", Prefix: "", Threshold: 1000}},
		{Table: "public.small"},
	}, nil)
	orig := make([]Event, len(evs))
	for i, ev := range evs {
		orig[i] = *ev
	}
	if err := c.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(next.got) != 1 || len(next.got[0]) != len(evs) {
		t.Fatalf("next got %d calls", len(next.got))
	}
	stored := map[string]bool{"3": true, "4": true, "5": true}
	for i, ev := range next.got[0] {
		if ev.ID != evs[i].ID || ev.Key != evs[i].Key || ev.Table != evs[i].Table {
			t.Errorf("position %d: event %s, want %s in the same place", i, ev.ID, evs[i].ID)
		}
		if string(evs[i].Body) != string(orig[i].Body) || len(evs[i].Attributes) != len(orig[i].Attributes) {
			t.Errorf("event %s: the caller's event was changed", ev.ID)
		}
		if !stored[ev.ID] {
			if ev != evs[i] {
				t.Errorf("event %s: replaced, want it passed through", ev.ID)
			}
			continue
		}
		last := ev.Attributes[len(ev.Attributes)-1]
		if len(ev.Attributes) != len(evs[i].Attributes)+1 || last.Name != "ExtendedPayloadSize" || last.Type != "Number" {
			t.Errorf("event %s: attributes %v", ev.ID, ev.Attributes)
		}
		if !strings.HasPrefix(string(ev.Body), `["software.amazon.payloadoffloading.PayloadS3Pointer",`) {
			t.Errorf("event %s: body %s", ev.ID, ev.Body)
		}
	}
	want := map[string]int{"b/big/3": 990, "b/big/4": 5000, "o/5": 1001}
	if len(store.objects) != len(want) {
		t.Errorf("stored %d objects, want %d", len(store.objects), len(want))
	}
	for k, n := range want {
		if len(store.objects[k]) != n {
			t.Errorf("object %s: %d bytes, want %d", k, len(store.objects[k]), n)
		}
	}

	// A batch with nothing to store goes through as it is.
	small := evs[:2]
	if err := c.Publish(context.Background(), small); err != nil {
		t.Fatal(err)
	}
	if &next.got[1][0] != &small[0] {
		t.Error("a batch without large events was copied")
	}

	// A store error: nothing published.
	store.err = errors.New("injected")
	if err := c.Publish(context.Background(), evs); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Publish with a failing store: %v", err)
	}
	if len(next.got) != 2 {
		t.Errorf("a batch whose store failed was published")
	}
}
