package kobot

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/sink"
)

// push pushes testEvent with id and fails the test unless it was delivered
// in one attempt.
func push(t *testing.T, c *Client, id string) {
	t.Helper()
	r := c.Push(t.Context(), sink.PushRequest{EventID: id, Account: "kobot-acme", Event: []byte(testEvent)})
	if r.Class != sink.PushDelivered || r.Attempts != 1 {
		t.Fatalf("push %s: class %v after %d attempts: %v", id, r.Class, r.Attempts, r.Err)
	}
}

// countConns makes srv count the connections it accepts.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

// TestPoolSendsWhatTheTransportSends: a push over the client's own
// connections carries the method, request-target, Host, headers and body
// that the same push through net/http's transport carries, and verifies.
func TestPoolSendsWhatTheTransportSends(t *testing.T) {
	type seen struct {
		method, uri, host string
		header            http.Header
		body              string
		length            int64
	}
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.Header, string(b), r.ContentLength}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	endpoint := strings.Replace(srv.URL, "://", "://kobot:s%40cret@", 1) + "/hooks/baitoru?team=7"
	now := time.Unix(1764039600, 0)
	var sent []seen
	for _, hc := range []*http.Client{nil, NewHTTPClient()} {
		c, err := New(config.Kobot{Endpoint: endpoint, Secret: vectorSecret}, hc)
		if err != nil {
			t.Fatal(err)
		}
		if (c.pool != nil) != (hc == nil) {
			t.Fatalf("client with http.Client %v: pool %v", hc, c.pool)
		}
		c.now = func() time.Time { return now }
		push(t, c, "0/16B3748-3")
		sent = append(sent, <-got)
	}
	pooled, transport := sent[0], sent[1]
	key, _ := ParseSecret(vectorSecret)
	if err := Verify(key, pooled.header, []byte(pooled.body), now, DefaultTolerance); err != nil {
		t.Errorf("the pooled push does not verify: %v", err)
	}
	want, _ := Payload([]byte(testEvent), "kobot-acme")
	if pooled.body != string(want) || pooled.length != int64(len(want)) {
		t.Errorf("body %q (Content-Length %d), want %q", pooled.body, pooled.length, want)
	}
	transport.header.Del("Accept-Encoding") // net/http's own, for its transparent gzip
	if pooled.method != transport.method || pooled.uri != transport.uri || pooled.host != transport.host || pooled.body != transport.body {
		t.Errorf("pooled %s %s Host %s, transport %s %s Host %s", pooled.method, pooled.uri, pooled.host, transport.method, transport.uri, transport.host)
	}
	for k, v := range transport.header {
		if strings.Join(pooled.header[k], ",") != strings.Join(v, ",") {
			t.Errorf("header %s: pooled %q, transport %q", k, pooled.header[k], v)
		}
	}
	for k := range pooled.header {
		if _, ok := transport.header[k]; !ok {
			t.Errorf("header %s only in the pooled push", k)
		}
	}
}

// TestPoolKeepsConnections: pushes one after the other use one connection;
// pushes at once use at most one each; an idle connection the server
// closed is not used (the push after it is delivered in one attempt).
func TestPoolKeepsConnections(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`) // a body to read before reuse
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	c := newClient(t, srv.URL, 1)
	for range 20 {
		push(t, c, "0/1-1")
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 pushes one after the other opened %d connections, want 1", n)
	}
	const parallel = 8
	for range 5 {
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() { push(t, c, "0/1-2") })
		}
		wg.Wait()
	}
	if n := conns.Load(); n > parallel {
		t.Errorf("5 rounds of %d pushes at once opened %d connections, want ≤ %d", parallel, n, parallel)
	}
	srv.CloseClientConnections() // the server closes every idle connection
	before := conns.Load()
	time.Sleep(peekAfter + 20*time.Millisecond) // idle long enough to be looked at
	for range 3 {
		push(t, c, "0/1-3")
	}
	if n := conns.Load() - before; n != 1 {
		t.Errorf("after the server closed the idle connections, 3 pushes opened %d connections, want 1", n)
	}
}

// TestPoolReusesRecentConnectionsUnlooked: a connection idle for less than
// peekAfter is reused without looking whether the server closed it; when it
// did (a server that closes its connections right after answering, without
// saying so), the push's attempt on it fails and the retry goes on a new
// connection, delivered. One idle for longer is looked at and not used.
func TestPoolReusesRecentConnectionsUnlooked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer nc.Close()
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(nc, "HTTP/1.1 204 No Content\r\n\r\n")
			}()
		}
	}()
	c := newClient(t, "http://"+ln.Addr().String(), 2)
	push(t, c, "first")
	time.Sleep(20 * time.Millisecond) // the server has closed the connection
	r := c.Push(t.Context(), sink.PushRequest{EventID: "soon", Account: "kobot-acme", Event: []byte(testEvent)})
	if r.Class != sink.PushDelivered || r.Attempts != 2 {
		t.Errorf("push 20 ms after the last answer on a connection the server closed: class %v after %d attempts (%v), want delivered after 2", r.Class, r.Attempts, r.Err)
	}
	time.Sleep(peekAfter + 20*time.Millisecond)
	push(t, c, "later") // delivered in one attempt: the closed connection was looked at
	if n := accepted.Load(); n != 3 {
		t.Errorf("the server accepted %d connections, want 3", n)
	}
}

// TestPoolClosesUnfitConnections: a connection whose answer says "close",
// or whose answer's body is longer than the client reads, is not used
// again; every push is still delivered.
func TestPoolClosesUnfitConnections(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
	}{
		{"Connection: close", func(w http.ResponseWriter) {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusOK)
		}},
		{"a body over 64 KiB", func(w http.ResponseWriter) {
			_, _ = io.WriteString(w, strings.Repeat("x", 100<<10))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				tc.serve(w)
			}))
			conns := countConns(srv)
			srv.Start()
			defer srv.Close()
			c := newClient(t, srv.URL, 1)
			for range 3 {
				push(t, c, "0/1-1")
			}
			if n := conns.Load(); n != 3 {
				t.Errorf("3 pushes opened %d connections, want 3 (none reusable)", n)
			}
		})
	}
}

// TestPoolSendsOnce: a request that was written is not sent again by the
// client, even when the connection breaks before the answer (the push's
// retries, counted as attempts, are what may send it again): a server that
// reads a request and hangs up gets each request once, on a new connection
// and on a reused one.
func TestPoolSendsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var ids []string
	// Each connection: answer the first request if the id says so, hang up
	// after reading the next.
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					id := req.Header.Get(HeaderID)
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
					if !strings.HasPrefix(id, "answer") {
						return // hang up without an answer
					}
					_, _ = io.WriteString(nc, "HTTP/1.1 204 No Content\r\n\r\n")
				}
			}()
		}
	}()
	c := newClient(t, "http://"+ln.Addr().String(), 1)
	hangUp := func(id string) {
		t.Helper()
		r := c.Push(t.Context(), sink.PushRequest{EventID: id, Account: "a", Event: []byte(testEvent)})
		if r.Class != sink.PushRetryable || r.Attempts != 1 || r.Err == nil || r.Problem != sink.ProblemUnreachable {
			t.Fatalf("push %s to a server that hangs up: %+v", id, r)
		}
	}
	hangUp("fresh")        // on a new connection
	push(t, c, "answer-1") // a connection to reuse
	hangUp("reused")       // on it
	push(t, c, "answer-2") // a new connection again
	mu.Lock()
	defer mu.Unlock()
	if want := "fresh answer-1 reused answer-2"; strings.Join(ids, " ") != want {
		t.Errorf("the server got %q, want %q", strings.Join(ids, " "), want)
	}
}

// TestPoolReadsAnEarlyAnswer: a server that refuses a large event before
// reading all of it (413) and closes the connection is understood as
// refusing it as too large, as through net/http's transport.
func TestPoolReadsAnEarlyAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<10)); err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	big := `{"specversion":"1.0","id":"0/1-1","data":{"note":"` + strings.Repeat("x", 4<<20) + `"}}`
	for _, hc := range []*http.Client{nil, NewHTTPClient()} {
		c, err := New(config.Kobot{Endpoint: srv.URL, Secret: vectorSecret, MaxAttempts: 1}, hc)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Push(t.Context(), sink.PushRequest{EventID: "0/1-1", Account: "kobot-acme", Event: []byte(big)})
		if r.Class != sink.PushRejected || r.Problem != sink.ProblemTooLarge {
			t.Errorf("pool %v: a 4 MiB event to a server taking 1 KiB: %v %v: %v", c.pool != nil, r.Class, r.Problem, r.Err)
		}
		push(t, c, "0/1-2") // and the next push is delivered
	}
}
