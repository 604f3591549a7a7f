//go:build !(linux || darwin)

package kobot

// peekFD cannot peek here: an idle connection the server closed is found
// by the push that uses it (a retryable failure).
func (c *conn) peekFD(fd uintptr) bool { return true }
