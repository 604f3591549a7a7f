package postgres

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// spools hold the messages of streamed transactions (pgoutput protocol 2,
// `streaming 'on'`) from their first Stream Start until their Stream Commit
// or Stream Abort: the changes are not committed yet, so nothing of them may
// be published before the commit. The bytes held in memory, over every open
// transaction, stay at most maxMem: beyond it the transaction that grows
// spills to a file of its own in dir (removed from the directory at once, so
// a crash leaves nothing behind). Used by the reading goroutine only.
type spools struct {
	open   map[uint32]*spool
	maxMem int64
	mem    int64 // bytes held in memory by the open spools
	dir    string
}

func newSpools(maxMem int64, dir string) spools {
	return spools{open: map[uint32]*spool{}, maxMem: maxMem, dir: dir}
}

// spool is one streamed transaction's messages, in stream order. Each record
// is a pgoutput message without its transaction id (the same bytes a
// non-streamed transaction carries), so replaying it is decoding it.
type spool struct {
	xid   uint32
	mem   [][]byte // the records, while in memory
	bytes int64    // bytes of mem
	n     int      // records held (in mem or in file)
	file  *os.File // once spilled, every record is in the file
	w     *bufio.Writer
	size  int64 // bytes written to the file (buffered included)
	// subs marks where each subtransaction's first change is, so that
	// its abort drops it and what follows (the subtransactions opened
	// inside it), as PostgreSQL's own apply worker does.
	subs []subMark
	// marked is the set of subs' xids.
	marked map[uint32]bool
}

type subMark struct {
	xid uint32
	rec int   // index of the subtransaction's first record
	off int64 // its file offset, once the spool is in a file
}

// start returns xid's spool, making it on the transaction's first segment.
// A later segment of a transaction never seen is an error: its beginning
// was lost, and publishing the rest would lose changes.
func (ss *spools) start(xid uint32, first bool) error {
	if ss.open[xid] != nil {
		return nil
	}
	if !first {
		return fmt.Errorf("stream segment of transaction %d whose first segment was not received", xid)
	}
	ss.open[xid] = &spool{xid: xid}
	return nil
}

// add appends msg (a message of the stream without its xid field; copied)
// to top-level transaction xid's spool; subxid is the xid the message
// carried (xid itself, or one of its subtransactions).
func (ss *spools) add(xid, subxid uint32, msg []byte) error {
	s := ss.open[xid]
	if s == nil {
		return fmt.Errorf("streamed change of transaction %d outside its stream", xid)
	}
	if subxid != xid && !s.marked[subxid] {
		if s.marked == nil {
			s.marked = map[uint32]bool{}
		}
		s.marked[subxid] = true
		s.subs = append(s.subs, subMark{xid: subxid, rec: s.n, off: s.size})
	}
	size := int64(len(msg))
	if s.file == nil && ss.mem+size > ss.maxMem {
		if err := ss.spill(s); err != nil {
			return err
		}
	}
	s.n++
	if s.file != nil {
		return s.write(msg)
	}
	s.mem = append(s.mem, append([]byte(nil), msg...))
	s.bytes += size
	ss.mem += size
	return nil
}

// spill moves s's records from memory to a new file.
func (ss *spools) spill(s *spool) error {
	f, err := os.CreateTemp(ss.dir, "baitoru-cdc-stream-*")
	if err != nil {
		return fmt.Errorf("spill streamed transaction %d to a file (memory bound source.stream_memory_bytes reached): %w", s.xid, err)
	}
	// Unlinked at once: the open file lives until closed, and a crash
	// leaves no file to clean up.
	_ = os.Remove(f.Name())
	s.file, s.w = f, bufio.NewWriterSize(f, 64<<10)
	j := 0
	for i, rec := range s.mem {
		for ; j < len(s.subs) && s.subs[j].rec == i; j++ {
			s.subs[j].off = s.size
		}
		if err := s.write(rec); err != nil {
			return err
		}
	}
	for ; j < len(s.subs); j++ {
		s.subs[j].off = s.size
	}
	ss.mem -= s.bytes
	clear(s.mem)
	s.mem, s.bytes = nil, 0
	return nil
}

func (s *spool) write(rec []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(rec)))
	if _, err := s.w.Write(hdr[:n]); err != nil {
		return fmt.Errorf("spill streamed transaction %d: %w", s.xid, err)
	}
	if _, err := s.w.Write(rec); err != nil {
		return fmt.Errorf("spill streamed transaction %d: %w", s.xid, err)
	}
	s.size += int64(n + len(rec))
	return nil
}

// abort applies a Stream Abort: the whole transaction when subxid is xid,
// else the subtransaction subxid from its first change on (nothing when
// none of its changes was streamed).
func (ss *spools) abort(xid, subxid uint32) error {
	s := ss.open[xid]
	if s == nil {
		return nil // nothing of it was streamed in this session
	}
	if subxid == xid {
		ss.drop(s)
		return nil
	}
	if !s.marked[subxid] {
		return nil
	}
	i := 0
	for s.subs[i].xid != subxid {
		i++
	}
	m := s.subs[i]
	for _, later := range s.subs[i:] {
		delete(s.marked, later.xid)
	}
	s.subs = s.subs[:i]
	s.n = m.rec
	if s.file == nil {
		var freed int64
		for _, r := range s.mem[m.rec:] {
			freed += int64(len(r))
		}
		clear(s.mem[m.rec:])
		s.mem = s.mem[:m.rec]
		s.bytes -= freed
		ss.mem -= freed
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spilled streamed transaction %d: %w", xid, err)
	}
	if err := s.file.Truncate(m.off); err != nil {
		return fmt.Errorf("spilled streamed transaction %d: %w", xid, err)
	}
	if _, err := s.file.Seek(m.off, io.SeekStart); err != nil {
		return fmt.Errorf("spilled streamed transaction %d: %w", xid, err)
	}
	s.w.Reset(s.file)
	s.size = m.off
	return nil
}

// take removes xid's spool (nil when nothing of it was streamed); the
// caller replays and closes it.
func (ss *spools) take(xid uint32) *spool {
	s := ss.open[xid]
	if s != nil {
		delete(ss.open, xid)
		ss.mem -= s.bytes
	}
	return s
}

// drop forgets s and its file.
func (ss *spools) drop(s *spool) {
	delete(ss.open, s.xid)
	ss.mem -= s.bytes
	s.close()
}

// closeAll drops every open spool: the partial transactions of a broken
// session, which the server streams again from their start.
func (ss *spools) closeAll() {
	for _, s := range ss.open {
		ss.drop(s)
	}
}

// replay calls fn with each record in order; fn must not retain it. A nil
// spool has no records.
func (s *spool) replay(fn func(rec []byte) error) error {
	if s == nil {
		return nil
	}
	if s.file == nil {
		for i, rec := range s.mem {
			if err := fn(rec); err != nil {
				return err
			}
			s.mem[i] = nil // handed over: let it go before the rest
		}
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spilled streamed transaction %d: %w", s.xid, err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spilled streamed transaction %d: %w", s.xid, err)
	}
	r := bufio.NewReaderSize(io.LimitReader(s.file, s.size), 64<<10)
	var buf []byte
	for i := 0; i < s.n; i++ {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("read spilled streamed transaction %d: %w", s.xid, unexpectedEOF(err))
		}
		if uint64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("read spilled streamed transaction %d: %w", s.xid, unexpectedEOF(err))
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// close releases s's memory and file. A nil spool is a no-op.
func (s *spool) close() {
	if s == nil {
		return
	}
	clear(s.mem)
	s.mem, s.bytes = nil, 0
	if s.file != nil {
		_ = s.file.Close()
		s.file, s.w = nil, nil
	}
}
