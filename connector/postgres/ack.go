package postgres

import "github.com/baitoru/baitoru-cdc/connector"

// ackState is what the subscription knows when it tells the server how far
// it got.
type ackState struct {
	// Received is the end of the last WAL data received: the "written"
	// position.
	Received connector.LSN
	// Acked is the handler's acknowledged position: every event of every
	// transaction whose commit ends at or before it was accepted.
	Acked connector.LSN
	// Idle is the server's WAL end of the latest keepalive that came while
	// nothing handed to the handler was pending (see nothingPending).
	Idle connector.LSN
	// Reported is the flush position already reported (at start, the
	// slot's confirmed_flush_lsn).
	Reported connector.LSN
}

// standbyStatus decides the positions a standby status update reports.
// PostgreSQL keeps the flush position as the slot's confirmed_flush_lsn: it
// may then drop the WAL before it, and never sends the transactions that
// committed before it again. So flush (and apply) is only ever a position
// up to which everything was accepted: the handler's acknowledged
// position, or the server's WAL end of a keepalive that came while nothing
// was pending (an idle or filtered stream then does not hold WAL back); and
// it never goes below what was reported before. Write is the end of the
// WAL received, never below flush.
func standbyStatus(s ackState) (write, flush connector.LSN) {
	flush = max(s.Reported, s.Acked, s.Idle)
	return max(s.Received, flush), flush
}

// nothingPending reports whether the handler holds nothing it has not
// accepted: no transaction is being read (open: inside Begin ... Commit, or
// inside a block of a streamed transaction), and the last commit handed
// over (lastCommit) is acknowledged. Only then may a keepalive's WAL end be
// confirmed: every transaction that committed before it was sent, and
// accepted.
func nothingPending(open bool, lastCommit, acked connector.LSN) bool {
	return !open && acked >= lastCommit
}
