package kobot

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// pool keeps HTTP/1.1 keep-alive connections to one plain-http Kobot host;
// the goroutine that pushes writes its request on one and reads the answer
// itself.
//
// It is hand-written on purpose: net/http's Transport runs two goroutines
// per connection (persistConn.writeLoop and readLoop) and hands every
// request and every answer between them and the caller, three goroutines
// woken per push. The sink's CPU profile gave them 21–25 µs per delivered
// message (Kobot and SQS together) and the caller's side of a push 27 µs;
// make bench's sink item, interleaved with the build before
// (docs/benchmarks.md, "The Kobot push on its own connections"), and
// BenchmarkPush show what this pool saves. https endpoints (where Kobot may
// offer HTTP/2), a proxy from the environment, and a caller's own
// http.Client keep net/http's transport.
//
// Behaviour kept from the transport: the attempt's deadline bounds the dial,
// the write and the read; an idle connection the server closed is not used
// (peeked before reuse when idle for peekAfter or longer); a request is sent
// again on a new connection only when the connection broke before any byte
// of it was written; an answer is read to its end (up to 64 KiB) so the
// connection is kept, and a connection whose answer says "close", is longer,
// or is followed by stray bytes is closed. Safe for concurrent use.
type pool struct {
	addr        string // host:port dialled
	host        string // the Host header
	uri         string // the request-target
	key         Secret
	maxIdle     int
	idleTimeout time.Duration

	mu   sync.Mutex
	idle []*conn // most recently used last
}

// conn is one connection of a pool with the buffers of the push on it.
type conn struct {
	nc     net.Conn
	raw    syscall.RawConn // for peek; nil when the connection has none
	br     *bufio.Reader
	mac    hash.Hash // HMAC-SHA256 keyed with the pool's key
	req    []byte    // the request being written
	body   []byte    // the push's body
	signed []byte    // "<id>.<ts>." of the signature
	idleAt time.Time
	resp   http.Response // a plain answer (readPlainAnswer), valid until the connection's next push

	peekFn   func(fd uintptr) bool // peek's callback, made once
	peekGone bool
}

// peekAfter is how long a connection must have been idle before get looks
// whether the server closed it (closedByPeer: a system call, about 3 µs a
// push on the bench's machine, a fifth of the push's own CPU in
// BenchmarkPush). A server closes an idle keep-alive connection after its
// idle timeout, seconds after its last answer (Node's server 5 s by default,
// nginx 75 s, Go's none unless set); one reused sooner is open unless the
// server went away in between (a restart), the race net/http's transport
// has too: the push's attempt then fails as unreachable and its retry goes
// on a new connection (TestPoolReusesRecentConnectionsUnlooked).
const peekAfter = 100 * time.Millisecond

// postRequest is the request http.ReadResponse is told the answers are for.
var postRequest = &http.Request{Method: http.MethodPost}

// newPool returns a pool for the plain-http endpoint u.
func newPool(u *url.URL, key Secret) *pool {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return &pool{
		addr:        net.JoinHostPort(u.Hostname(), port),
		host:        u.Host,
		uri:         u.RequestURI(),
		key:         key,
		maxIdle:     512,
		idleTimeout: 90 * time.Second,
	}
}

// get returns an idle connection that is still open, or a new one dialled
// before deadline. reused says which.
func (p *pool) get(deadline time.Time) (c *conn, reused bool, err error) {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleAt)
		if idle > p.idleTimeout || c.nc.SetDeadline(deadline) != nil || (idle >= peekAfter && c.closedByPeer()) {
			c.nc.Close()
			continue
		}
		return c, true, nil
	}
	c, err = p.dial(deadline)
	return c, false, err
}

// dial opens a new connection, bounded by deadline.
func (p *pool) dial(deadline time.Time) (*conn, error) {
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(deadline); err != nil {
		nc.Close()
		return nil, err
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 4<<10), mac: hmac.New(sha256.New, p.key)}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.peekFn = c.peekFD
		}
	}
	return c, nil
}

// put keeps c for the next push, or closes it when the pool is full.
func (p *pool) put(c *conn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// roundTrip writes the request the caller built in c.req (build is called
// again with a new connection when it is sent again) and reads the answer's
// head (a plain 2xx answer whole, its body discarded: readPlainAnswer). On
// success the caller owns c and must call finish after reading the body; on
// error the connection is closed.
func (p *pool) roundTrip(deadline time.Time, build func(c *conn)) (*conn, *http.Response, error) {
	c, reused, err := p.get(deadline)
	if err != nil {
		return nil, nil, err
	}
	build(c)
	n, err := c.nc.Write(c.req)
	if err != nil && n == 0 && reused {
		// The connection broke before any byte of the request left: the
		// request was never written, so it is safe to send on a new one.
		c.nc.Close()
		if c, err = p.dial(deadline); err != nil {
			return nil, nil, err
		}
		build(c)
		_, err = c.nc.Write(c.req)
	}
	if err != nil {
		// A server that refuses a request early (413, 401) answers and
		// closes before reading all of it: its answer says more than the
		// broken write does.
		if resp, rerr := http.ReadResponse(c.br, postRequest); rerr == nil && resp.StatusCode >= 200 {
			resp.Close = true
			return c, resp, nil
		}
		c.nc.Close()
		return nil, nil, err
	}
	if ok, err := readPlainAnswer(c.br, &c.resp); err != nil {
		c.nc.Close()
		return nil, nil, err
	} else if ok {
		return c, &c.resp, nil
	}
	for {
		resp, err := http.ReadResponse(c.br, postRequest)
		if err != nil {
			c.nc.Close()
			return nil, nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // an interim answer (100 Continue, 103 Early Hints): the final one follows
		}
		return c, resp, nil
	}
}

// finish returns c to the pool when its answer was read to the end and the
// server keeps the connection, and closes it otherwise.
func (p *pool) finish(c *conn, resp *http.Response, bodyDone bool) {
	if bodyDone && !resp.Close && c.br.Buffered() == 0 {
		p.put(c)
		return
	}
	c.nc.Close()
}

// drain reads the rest of body, up to limit bytes, and says whether it
// ended.
func drain(body io.Reader, limit int64) bool {
	if body == http.NoBody {
		return true
	}
	var buf [512]byte
	for n := int64(0); n <= limit; {
		k, err := body.Read(buf[:])
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n <= limit
		}
		if err != nil {
			return false
		}
	}
	return false
}

// closedByPeer says whether the server closed the idle connection c (or
// sent bytes nobody asked for), without waiting: net/http's reading
// goroutine notices that while the connection is idle.
func (c *conn) closedByPeer() bool {
	if c.raw == nil {
		return false
	}
	c.peekGone = false
	if err := c.raw.Read(c.peekFn); err != nil {
		return true
	}
	return c.peekGone
}
