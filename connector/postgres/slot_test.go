package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

func TestSlotLostByServer(t *testing.T) {
	tests := []struct {
		err  error
		lost bool
	}{
		{&pgconn.PgError{Code: "55000", Message: `cannot read from logical replication slot "cdc"`,
			Detail: "This slot has been invalidated because it exceeded the maximum reserved size."}, true},
		{&pgconn.PgError{Code: "58P01", Message: "requested WAL segment 000000010000000000000003 has already been removed"}, true},
		{&pgconn.PgError{Code: "55006", Message: `replication slot "cdc" is active for PID 42`}, false},
		{&pgconn.PgError{Code: "55000", Message: "something else"}, false},
		{errors.New("has been invalidated"), false},
	}
	for _, tc := range tests {
		if got := slotLostByServer(tc.err); got != tc.lost {
			t.Errorf("slotLostByServer(%v) = %v, want %v", tc.err, got, tc.lost)
		}
	}
	err := lostError("cdc", 0x16B3748, 0x3000000)
	for _, want := range []string{"0/16B3748", "0/3000000", "teardown", "setup", "backfill"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lost error lacks %q: %v", want, err)
		}
	}
	if !errors.Is(err, ErrSlotLost) || !errors.Is(err, connector.ErrPermanent) {
		t.Errorf("lost error does not wrap ErrSlotLost and ErrPermanent: %v", err)
	}
}
