package awsclient

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// httpClient is what an SDK client sends its requests with.
type httpClient interface {
	Do(*http.Request) (*http.Response, error)
}

// memoryBodies sends each request with a copy of its body in memory instead
// of the SDK's request body, which the SQS clients need to keep an answer
// from being lost.
//
// The SDK (smithy-go) closes the request body as soon as Do returns, that
// is as soon as the answer's headers arrived. net/http, for a body it does
// not know to be in memory (the SDK's wrapper), flushes the headers, writes
// the body, and then reads the body once more to check that it ended; when
// the SDK's close came first (the goroutine writing requests was not
// scheduled in between, which a loaded machine makes likely), that read
// fails with io.EOF, net/http takes it for a failed write and closes the
// connection while the SDK is still reading the answer's body on it. The
// SDK logs "failed to discard remaining HTTP response body … use of closed
// network connection" and retries the call; for a ReceiveMessage the lost
// answer's messages stay invisible for the queue's visibility timeout (the
// 30 s stalls docs/benchmarks.md records). A body net/http knows to be in
// memory (a *bytes.Reader) is written with the headers in one write and
// never read after the SDK closed its own. The copy costs one allocation of
// the request's size: SQS requests are small.
type memoryBodies struct{ next httpClient }

// Do sends req with its body read into memory.
func (c memoryBodies) Do(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return c.next.Do(req)
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	r := req.WithContext(req.Context()) // a shallow copy: the SDK keeps its own
	r.ContentLength = int64(len(b))
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return c.next.Do(r)
}
