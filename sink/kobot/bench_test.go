package kobot

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/sink"
)

// BenchmarkPush measures the caller's side of one push (payload, signature,
// request, response) to a local receiver, 32 at a time as one batch's
// pushes are; the receiver runs in the same process, so read its figures
// as a comparison between builds, not as the sink's CPU per push.
//
//	go test ./sink/kobot -run '^$' -bench Push -benchmem
func BenchmarkPush(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := New(config.Kobot{Endpoint: srv.URL, Secret: vectorSecret}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := c.Push(b.Context(), sink.PushRequest{EventID: "0/16B3748-3", Account: "kobot-acme", Event: []byte(testEvent)})
			if r.Class != sink.PushDelivered {
				b.Error(r.Err)
				return
			}
		}
	})
}
