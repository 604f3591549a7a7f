package kobot

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
)

// maxPlainBody is the longest body of an answer readPlainAnswer reads
// itself: as long as the body the pool reads to reuse a connection.
const maxPlainBody = 64 << 10

// readPlainAnswer reads Kobot's answer to a push from br when it is a plain
// success, the answer nearly every push gets: a status line "HTTP/1.1 2xx",
// header lines "Name: value" of which it needs only Content-Length (at most
// maxPlainBody) and Connection ("close" or "keep-alive"), the whole head
// already received. Then it reads the head and the body (discarded: a 2xx
// answer's body is never used), fills resp (Body http.NoBody; Close when the
// connection cannot carry another push) and says ok. For any other answer
// — another status, another version, Transfer-Encoding, a header it cannot
// read as http.ReadResponse would, a head not yet received whole — it reads
// nothing and says !ok, and the caller reads the answer with
// http.ReadResponse. err is the error of the first read (as
// http.ReadResponse would return it: io.ErrUnexpectedEOF for a connection
// closed before any byte).
//
// It is hand-written on purpose: http.ReadResponse builds a Response, a
// header map and its strings for every answer, which the sink discards. Its
// share of a push was measured with BenchmarkPush and end to end with make
// bench's sink item (docs/benchmarks.md, "Fewer allocations and system
// calls per push"); TestReadPlainAnswerAgrees and FuzzReadPlainAnswer check
// it against http.ReadResponse.
func readPlainAnswer(br *bufio.Reader, resp *http.Response) (ok bool, err error) {
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, err
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return false, nil
	}
	head := buf[:end+2] // every line with its CRLF
	line, rest := nextLine(head)
	status, ok := plainStatus(line)
	if !ok {
		return false, nil
	}
	length, closing := int64(-1), false
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		name, value, ok := headerLine(line)
		if !ok {
			return false, nil
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, ok := plainLength(value)
			if !ok || length >= 0 {
				return false, nil
			}
			length = n
		case asciiEqualFold(name, "Connection"):
			switch {
			case asciiEqualFold(value, "close"):
				closing = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return false, nil
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			return false, nil
		}
	}
	switch {
	case status == http.StatusNoContent && length > 0:
		return false, nil
	case status == http.StatusNoContent:
		length = 0
	case length < 0: // a body until the connection closes
		return false, nil
	}
	if _, err := br.Discard(end + 4); err != nil {
		return false, err // cannot happen: the head is buffered
	}
	*resp = http.Response{StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody, Close: closing, ContentLength: length}
	if _, err := br.Discard(int(length)); err != nil {
		resp.Close = true // the body did not arrive whole: the connection is unfit
	}
	return true, nil
}

// nextLine splits the first CRLF-terminated line off b (which ends with
// one), without its CRLF; a line holding another CR or a bare LF comes back
// with that byte, which headerLine and plainStatus refuse.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return b, nil // a bare LF: not a plain answer
	}
	return b[:i-1], b[i+1:]
}

// plainStatus reads "HTTP/1.1 2xx" or "HTTP/1.1 2xx reason".
func plainStatus(line []byte) (int, bool) {
	const proto = "HTTP/1.1 "
	if len(line) < len(proto)+3 || string(line[:len(proto)]) != proto {
		return 0, false
	}
	code := line[len(proto) : len(proto)+3]
	if code[0] != '2' || !isDigit(code[1]) || !isDigit(code[2]) {
		return 0, false
	}
	if r := line[len(proto)+3:]; len(r) > 0 && (r[0] != ' ' || bytes.ContainsAny(r, "\r\n")) {
		return 0, false
	}
	return 200 + int(code[1]-'0')*10 + int(code[2]-'0'), true
}

// headerLine reads "Name: value" with a token for a name and a value of
// visible characters, spaces and tabs (trimmed), as net/textproto accepts it.
func headerLine(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i < 1 {
		return nil, nil, false
	}
	name = line[:i]
	for _, c := range name {
		if !isTokenChar(c) {
			return nil, nil, false
		}
	}
	value = line[i+1:]
	for _, c := range value {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return nil, nil, false
		}
	}
	return name, bytes.Trim(value, " \t"), true
}

// plainLength reads a Content-Length of at most maxPlainBody.
func plainLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 6 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= maxPlainBody
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isTokenChar says whether c may be in a header name (RFC 9110's tchar).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c):
		return true
	}
	return c < 0x80 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// asciiEqualFold says whether b is s, ASCII letters compared without case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
