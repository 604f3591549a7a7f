package faultkobot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// push sends a signed push of event id for account, with the client
// timeout, and returns the status (0 on a transport error) and the error.
func push(t *testing.T, url, account, id string, timeout time.Duration, sign bool) (int, error) {
	t.Helper()
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"data":{"company_id":7,"application_id":42},"kobotaccount":%q}`, id, account))
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	now := time.Now()
	req.Header.Set(kobot.HeaderID, id)
	req.Header.Set(kobot.HeaderTimestamp, fmt.Sprint(now.Unix()))
	sig := kobot.Sign(key, id, now, body)
	if !sign {
		sig = "v1,AAAA"
	}
	req.Header.Set(kobot.HeaderSignature, sig)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestReceiverFaults(t *testing.T) {
	rv, err := New(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := rv.Start(); err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	url := rv.URL()
	expect := func(account, id string, want int) {
		t.Helper()
		if got, err := push(t, url, account, id, 5*time.Second, true); got != want {
			t.Fatalf("push %s/%s: %d %v, want %d", account, id, got, err, want)
		}
	}
	expect("a", "e1", http.StatusNoContent)
	expect("a", "e1", http.StatusNoContent) // a duplicate after an acknowledged push
	rv.Fail(http.StatusInternalServerError)
	expect("a", "e2", http.StatusInternalServerError)
	rv.Fail(0)
	expect("a", "e2", http.StatusNoContent)
	rv.Reject("b", http.StatusBadRequest)
	expect("b", "e2", http.StatusBadRequest)
	expect("a", "e3", http.StatusNoContent)
	rv.Reject("b", 0)

	rv.Down()
	// The first push may fail on the kept-alive connection Down closed.
	_, _ = push(t, url, "a", "e4", 5*time.Second, true)
	if _, err := push(t, url, "a", "e4", 5*time.Second, true); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("push while down: %v, want connection refused", err)
	}
	if err := rv.Up(); err != nil {
		t.Fatal(err)
	}
	expect("a", "e4", http.StatusNoContent)

	// Slow: the client gives up, Kobot still applies the push (late);
	// the retry is a duplicate only Kobot's deduplication absorbs.
	rv.Slow(400 * time.Millisecond)
	if _, err := push(t, url, "a", "e5", 100*time.Millisecond, true); err == nil {
		t.Fatal("slow push answered within the client's timeout")
	}
	time.Sleep(500 * time.Millisecond)
	rv.Slow(0)
	expect("a", "e5", http.StatusNoContent)

	if got, _ := push(t, url, "a", "e6", 5*time.Second, false); got != http.StatusUnauthorized {
		t.Fatalf("unsigned push: %d, want 401", got)
	}
	if len(rv.Bad()) != 1 {
		t.Fatalf("bad pushes %v, want the unsigned one", rv.Bad())
	}

	ps := rv.Pushes()
	check := func(account, id string, processed, late, refused, afterAck, afterLate int) {
		t.Helper()
		p := ps[Pair{account, id}]
		a, l := p.Duplicates()
		if p.Processed != processed || p.Late != late || p.Refused != refused || a != afterAck || l != afterLate {
			t.Fatalf("%s/%s: %+v dups %d/%d", account, id, p, a, l)
		}
		if processed > 0 && (p.First.IsZero() || p.CompanyID != "7" || p.ApplicationID != 42) {
			t.Fatalf("%s/%s: %+v", account, id, p)
		}
	}
	check("a", "e1", 2, 0, 0, 1, 0)
	check("a", "e2", 1, 0, 1, 0, 0)
	check("b", "e2", 0, 0, 1, 0, 0)
	check("a", "e4", 1, 0, 0, 0, 0)
	check("a", "e5", 2, 1, 0, 0, 1)
}
