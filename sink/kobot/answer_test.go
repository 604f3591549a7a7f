package kobot

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestReadPlainAnswerAgrees: readPlainAnswer reads the answers it takes as
// http.ReadResponse does (status, whether the connection closes, the bytes
// left after the answer), and leaves every other answer unread for it.
func TestReadPlainAnswerAgrees(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		plain        bool
	}{
		{"204", "HTTP/1.1 204 No Content\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n\r\n", true},
		{"204 without reason or headers", "HTTP/1.1 204\r\n\r\n", true},
		{"200 with a body", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", true},
		{"202 empty", "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n", true},
		{"200 close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true},
		{"200 keep-alive", "HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", true},
		{"200 followed by stray bytes", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1", true},
		{"200 with a header value of tabs and spaces", "HTTP/1.1 200 OK\r\nX-A: \t a b \t\r\nContent-Length:2\r\n\r\nok", true},
		{"200 with a body cut short", "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nok", true},
		{"400", "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno", false},
		{"503 with Retry-After", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n", false},
		{"100 Continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"a body until close", "HTTP/1.1 200 OK\r\n\r\nok", false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"a length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
		{"a long body", "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("x", 70000), false},
		{"204 with a length", "HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nok", false},
		{"Connection: upgrade", "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n", false},
		{"a folded header", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
		{"a bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false},
		{"a space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", false},
		{"a control byte in a value", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n", false},
		{"a status of 2 digits", "HTTP/1.1 20 OK\r\n\r\n", false},
		{"a head not received whole", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false},
		{"nothing", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if plain := checkPlainAnswer(t, tc.answer); plain != tc.plain {
				t.Errorf("read as a plain answer: %v, want %v", plain, tc.plain)
			}
		})
	}
}

// checkPlainAnswer reads answer with readPlainAnswer and with
// http.ReadResponse, reports where they disagree, and says whether
// readPlainAnswer took it.
func checkPlainAnswer(t *testing.T, answer string) bool {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(answer), 4<<10)
	var resp http.Response
	ok, err := readPlainAnswer(br, &resp)
	std := bufio.NewReaderSize(strings.NewReader(answer), 4<<10)
	want, stdErr := http.ReadResponse(std, postRequest)
	if !ok {
		if err != nil && (stdErr == nil || err.Error() != stdErr.Error()) {
			t.Errorf("error %v, http.ReadResponse's %v", err, stdErr)
		}
		if rest, _ := io.ReadAll(br); string(rest) != answer {
			t.Errorf("read %d bytes of an answer it leaves to http.ReadResponse", len(answer)-len(rest))
		}
		return false
	}
	if stdErr != nil {
		t.Errorf("read as plain; http.ReadResponse: %v", stdErr)
		return true
	}
	bodyDone := drain(want.Body, maxPlainBody)
	if resp.StatusCode != want.StatusCode || resp.Close != (want.Close || !bodyDone) || resp.Body != http.NoBody {
		t.Errorf("status %d, close %v; http.ReadResponse: %d, close %v, body read whole %v", resp.StatusCode, resp.Close, want.StatusCode, want.Close, bodyDone)
	}
	if br.Buffered() != std.Buffered() {
		t.Errorf("%d bytes left after the answer, %d after http.ReadResponse's", br.Buffered(), std.Buffered())
	}
	return true
}

// FuzzReadPlainAnswer: on any bytes, readPlainAnswer agrees with
// http.ReadResponse or leaves the answer to it.
func FuzzReadPlainAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 204 No Content\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		checkPlainAnswer(t, answer)
	})
}
