package connector

// MessageKind says what a Message carries.
type MessageKind uint8

// Message kinds: the three of a transaction, a logical decoding message,
// and the two a source sends when its stream pauses.
const (
	// MsgBegin starts a transaction (Message.Tx).
	MsgBegin MessageKind = iota + 1
	// MsgChange is a row change of the open transaction (Message.Change,
	// not to be retained once the handler returns).
	MsgChange
	// MsgCommit ends the open transaction; Message.End is the end of its
	// commit record, acknowledged once every event of it (and of every
	// earlier transaction) is accepted.
	MsgCommit
	// MsgLogical is a logical decoding message of the stream
	// (pg_logical_emit_message: heartbeats, backfill watermarks):
	// Message.Prefix and Message.Content; Message.Tx is its transaction
	// when it is transactional, nil otherwise. Content is not to be
	// retained once the handler returns.
	MsgLogical
	// MsgFlush comes when the stream pauses (a reconnection, a shutdown):
	// the handler returns once everything handed over was accepted, it
	// failed, or the context ended.
	MsgFlush
	// MsgRollback comes after MsgFlush when the connection broke inside a
	// transaction: forget the open one; the source reads it again.
	MsgRollback
)

// Message is one step of the replication stream as a source hands it to
// its handler (the pipeline), in stream order, from one goroutine.
type Message struct {
	Kind    MessageKind
	Tx      *Tx     // MsgBegin; MsgLogical when transactional
	Change  *Change // MsgChange
	End     LSN     // MsgCommit
	Prefix  string  // MsgLogical
	Content []byte  // MsgLogical
}
