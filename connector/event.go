package connector

import (
	"strconv"
	"time"
)

// Event is one published message: a CloudEvents 1.0 JSON document plus the
// routing data a publisher needs.
type Event struct {
	ID         string // "<commit LSN>-<position in transaction>", stable across re-sends
	Table      string // schema.name
	Op         Op
	Type       string // CloudEvents type, e.g. "baitoru.applications.insert"
	Topic      string // destination (SNS topic ARN); empty means the publisher's default
	Key        string // FIFO MessageGroupId and CloudEvents subject; empty when unkeyed
	Body       []byte // the CloudEvents JSON document
	Attributes []Attribute
	CommitTime time.Time
	CommitLSN  LSN

	tx *txState // acknowledgement bookkeeping; nil for events not from a Pipeline
	// behind: the event went through its lane's read queue (laneQueue).
	behind bool
	attrs  [6]Attribute // backing array of Attributes for the common case
}

// Attribute is an SNS message attribute.
type Attribute struct {
	Name  string
	Type  string // "String" or "Number"
	Value string
}

// Size is the number of bytes the event counts for against size limits
// (body plus attribute names, types and values, as SNS counts them).
func (e *Event) Size() int {
	n := len(e.Body)
	for _, a := range e.Attributes {
		n += len(a.Name) + len(a.Type) + len(a.Value)
	}
	return n
}

// EventID returns the deterministic id of the seq-th change of the
// transaction committed at commitLSN.
func EventID(commitLSN LSN, seq int) string {
	return commitLSN.String() + "-" + strconv.Itoa(seq)
}
