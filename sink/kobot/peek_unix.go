//go:build linux || darwin

package kobot

import "syscall"

// peekFD is closedByPeer's look at the socket: a non-blocking peek of one
// byte. End of stream (the server closed), an error, or a byte nobody asked
// for all make the connection unfit for another push; "would block" is an
// open, quiet connection.
func (c *conn) peekFD(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekGone = n > 0 || (err == nil && n == 0) || (err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK)
	return true
}
