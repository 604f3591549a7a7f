package awsclient

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sdkBody behaves as the SDK's request body (smithy-go's safe read closer):
// once closed, every read returns io.EOF. Its WriteTo, which net/http uses
// to check that a body ended after writing it, waits for the close that the
// SDK makes as soon as Do returns: the order in which a loaded machine can
// run them.
type sdkBody struct {
	r      *strings.Reader
	mu     sync.Mutex
	closed chan struct{}
}

func newSDKBody(s string) *sdkBody {
	return &sdkBody{r: strings.NewReader(s), closed: make(chan struct{})}
}

func (b *sdkBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, io.EOF
	default:
	}
	return b.r.Read(p)
}

func (b *sdkBody) WriteTo(w io.Writer) (int64, error) {
	select {
	case <-b.closed:
	case <-time.After(5 * time.Second):
	}
	return 0, io.EOF
}

func (b *sdkBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

// TestMemoryBodiesKeepTheAnswer: the SDK closes its request body once the
// answer's headers arrived; sent as is, net/http's late check of that body
// fails and it closes the connection under the answer being read (the
// "use of closed network connection" of the lost ReceiveMessage answers).
// Sent through memoryBodies, the whole answer arrives and the server got
// the whole request.
func TestMemoryBodiesKeepTheAnswer(t *testing.T) {
	const request = `{"QueueUrl":"http://sqs/000000000000/q","MaxNumberOfMessages":10}`
	answer := bytes.Repeat([]byte("x"), 32<<20) // more than the sockets hold
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		w.Write(answer)
	}))
	defer srv.Close()

	send := func(c httpClient) error {
		body := newSDKBody(request)
		req, err := http.NewRequest(http.MethodPost, srv.URL, body)
		if err != nil {
			return err
		}
		req.ContentLength = int64(len(request))
		resp, err := c.Do(req)
		body.Close() // as the SDK does when Do returns
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != int64(len(answer)) {
			err = errors.New("short answer")
		}
		return err
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if err := send(memoryBodies{next: &http.Client{Transport: tr}}); err != nil {
		t.Fatalf("through memoryBodies: %v", err)
	}
	if string(got) != request {
		t.Errorf("server got %q, want %q", got, request)
	}
	// The same request sent with the SDK's body: the failure it prevents
	// (if this ever passes, net/http changed and memoryBodies may go).
	raw := &http.Transport{}
	defer raw.CloseIdleConnections()
	if err := send(&http.Client{Transport: raw}); err == nil {
		t.Log("sent with the SDK's body, the answer arrived whole this time")
	} else {
		t.Logf("sent with the SDK's body: %v", err)
	}
}
