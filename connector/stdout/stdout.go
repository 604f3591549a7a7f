// Package stdout publishes events as NDJSON: one CloudEvents JSON document
// per line, for trying a mapping out or piping events into another tool.
package stdout

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Publisher writes each event's Body as one line to a writer. It is a
// connector.Publisher: Publish returns nil once every line of the batch was
// written and flushed to the underlying writer, which is what "accepted"
// means here.
//
// Publisher is safe for concurrent use: a mutex keeps the lines of
// concurrent calls whole, and the lines of one call together, in its order.
//
// A body is a JSON document, in which a raw newline can only be whitespace
// (inside strings it is escaped), so any CR or LF in a body is written as a
// space and every event stays on one line.
//
// Write errors are permanent (they wrap connector.ErrPermanent) and sticky:
// after a broken pipe or a full disk a line may have been cut in half, so
// nothing more is written and every later Publish returns the same error.
type Publisher struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

var _ connector.Publisher = (*Publisher)(nil)

// New returns a Publisher writing to w (os.Stdout for `run` with
// publisher.kind: stdout).
func New(w io.Writer) *Publisher {
	return &Publisher{w: bufio.NewWriterSize(w, 64<<10)}
}

// Publish writes events, one line each, and flushes. It does not retry.
func (p *Publisher) Publish(ctx context.Context, events []*connector.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	for _, ev := range events {
		writeLine(p.w, ev.Body)
	}
	if err := p.w.Flush(); err != nil {
		p.err = fmt.Errorf("write events: %w: %w", err, connector.ErrPermanent)
		return p.err
	}
	return nil
}

// writeLine writes b, with CR and LF written as spaces, and a newline.
// Errors stay in w and are returned by its Flush.
func writeLine(w *bufio.Writer, b []byte) {
	// Two vectorised scans are much cheaper than one IndexAny, and bodies
	// almost never hold a raw newline.
	if bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0 {
		for {
			i := bytes.IndexAny(b, "\r\n")
			if i < 0 {
				break
			}
			w.Write(b[:i])
			w.WriteByte(' ')
			b = b[i+1:]
		}
	}
	w.Write(b)
	w.WriteByte('\n')
}
