package sink_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// FuzzParseEvent checks that ParseMessage never panics, that every error is
// an *InvalidError, and that an accepted event is safe to push: its id fits a
// header, its body is one JSON object with that id, and the Kobot payload
// built from it is valid JSON whose kobotaccount is the account.
func FuzzParseEvent(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "sink", "parse", "*", "message.json"))
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, err := sink.ParseMessage(msg)
		if err != nil {
			var ie *sink.InvalidError
			if !errors.As(err, &ie) || ie.Code == "" || !errors.Is(err, sink.ErrInvalidEvent) {
				t.Fatalf("error %v is not a coded *InvalidError", err)
			}
			return
		}
		if !sink.ValidID(ev.ID) || ev.Type == "" || ev.Source == "" {
			t.Fatalf("accepted event with id %q type %q source %q", ev.ID, ev.Type, ev.Source)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			t.Fatalf("body is not a JSON object: %v", err)
		}
		var id string
		if err := json.Unmarshal(body["id"], &id); err != nil || id != ev.ID {
			t.Fatalf("body id %s, parsed id %q", body["id"], ev.ID)
		}
		p, err := kobot.Payload(ev.Body, "acct-1")
		if err != nil {
			t.Fatalf("payload: %v", err)
		}
		var out map[string]any
		if err := json.Unmarshal(p, &out); err != nil {
			t.Fatalf("payload is not JSON: %v\n%s", err, p)
		}
		if out["kobotaccount"] != "acct-1" || out["id"] != ev.ID {
			t.Fatalf("payload kobotaccount %v id %v", out["kobotaccount"], out["id"])
		}
		// Raw delivery of the inner event parses to the same event.
		again, err := sink.ParseMessage(ev.Body)
		if err != nil || again.ID != ev.ID || again.Type != ev.Type {
			t.Fatalf("reparse of the body: %+v, %v", again, err)
		}
	})
}
