package awsclient

import (
	"net"
	"net/url"
	"strings"
)

// integrityFromTransport says whether the transport to endpoint (the
// client's base endpoint; empty: AWS's own) already guarantees that an
// answer arrives as it was sent, so that checking received messages
// against the MD5 digests SQS sends with them finds nothing more: HTTPS
// (every AWS endpoint; TLS authenticates every record) or the machine's
// own loopback interface (a local emulator). Over plain HTTP to another
// host the SDK's check stays.
func integrityFromTransport(endpoint string) bool {
	if endpoint == "" {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Scheme, "https") {
		return true
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
