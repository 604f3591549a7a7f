package postgres

import (
	"context"
	"fmt"
	"strconv"
)

// ColumnListVersion is the first server version with publication column
// lists and row filters (PostgreSQL 15).
const ColumnListVersion = 150000

// ServerVersion returns server_version_num, e.g. 150004.
func ServerVersion(ctx context.Context, conn Querier) (int, error) {
	var s string
	if err := conn.QueryRow(ctx, `SHOW server_version_num`).Scan(&s); err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("server version %q: %w", s, err)
	}
	return n, nil
}
