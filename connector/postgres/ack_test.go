package postgres

import (
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// TestStandbyStatus: what a standby status update reports, alone.
func TestStandbyStatus(t *testing.T) {
	tests := []struct {
		name         string
		s            ackState
		write, flush connector.LSN
	}{
		{"start: the slot's position", ackState{Reported: 0x10}, 0x10, 0x10},
		{"received, nothing accepted yet", ackState{Received: 0x300, Reported: 0x10}, 0x300, 0x10},
		{"accepted up to a commit", ackState{Received: 0x300, Acked: 0x110, Reported: 0x10}, 0x300, 0x110},
		{"idle: the keepalive's WAL end", ackState{Received: 0x110, Acked: 0x110, Idle: 0x500, Reported: 0x110}, 0x500, 0x500},
		{"accepted past an older idle end", ackState{Received: 0x610, Acked: 0x610, Idle: 0x500, Reported: 0x500}, 0x610, 0x610},
		{"never below what was reported", ackState{Received: 0x100, Acked: 0x50, Reported: 0x200}, 0x200, 0x200},
		{"written never below flush", ackState{Received: 0x100, Acked: 0x300}, 0x300, 0x300},
		{"nothing at all", ackState{}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, f := standbyStatus(tc.s)
			if w != tc.write || f != tc.flush {
				t.Errorf("standbyStatus(%+v) = write %s, flush %s; want %s, %s", tc.s, w, f, tc.write, tc.flush)
			}
		})
	}
}

// TestNothingPending: when a keepalive's WAL end may be confirmed.
func TestNothingPending(t *testing.T) {
	tests := []struct {
		name              string
		open              bool
		lastCommit, acked connector.LSN
		want              bool
	}{
		{"nothing handed over yet", false, 0, 0, true},
		{"last commit accepted", false, 0x110, 0x110, true},
		{"an empty transaction, acknowledged at once", false, 0x708, 0x708, true},
		{"last commit not accepted yet", false, 0x610, 0x110, false},
		{"a new session after a rollback: all drained", false, 0, 0x110, true},
		{"inside a transaction", true, 0x110, 0x110, false},
		{"inside a transaction, older ones pending", true, 0x610, 0x110, false},
		{"inside a block of a streamed transaction", true, 0x110, 0x110, false},
	}
	for _, tc := range tests {
		if got := nothingPending(tc.open, tc.lastCommit, tc.acked); got != tc.want {
			t.Errorf("%s: nothingPending(%v, %s, %s) = %v, want %v", tc.name, tc.open, tc.lastCommit, tc.acked, got, tc.want)
		}
	}
}
