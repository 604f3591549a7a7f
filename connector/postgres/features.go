package postgres

import (
	"fmt"
	"strings"
)

// FeatureID names a server capability that baitoru-cdc uses, works around,
// or plans to use.
type FeatureID string

// The capabilities of FeatureTable.
const (
	FeatureRowFilters    FeatureID = "row_filters"
	FeatureColumnLists   FeatureID = "column_lists"
	FeatureMessages      FeatureID = "messages"
	FeatureBackfill      FeatureID = "backfill"
	FeatureFailoverSlots FeatureID = "failover_slots"
	FeatureStreaming     FeatureID = "streaming"
	FeatureProtocol4     FeatureID = "protocol_v4"
)

// Feature is one row of the support matrix: a server capability, the first
// PostgreSQL major version that has it, what baitoru-cdc does with it and
// what it does on older servers. The code decides with Supports; docs/dba.md's
// matrix is rendered from this table (TestSupportMatrixDoc), and the version
// suite checks Since against every real server (TestVersions).
type Feature struct {
	ID   FeatureID
	Name string
	// Since is the first major version with the capability.
	Since int
	// Planned: baitoru-cdc does not use it yet.
	Planned bool
	// With is what baitoru-cdc does on a server that has it.
	With string
	// Without is what happens on an older server.
	Without string
}

// FeatureTable is every capability of the support matrix, in the order the
// matrix shows them.
var FeatureTable = []Feature{
	{ID: FeatureRowFilters, Name: "row filters (`where:`)", Since: 15,
		With:    "the publication filters rows on the server",
		Without: "every row leaves the server; the connector evaluates `where:` itself (with PostgreSQL, one query per change of a filtered table)"},
	{ID: FeatureColumnLists, Name: "column lists", Since: 15,
		With:    "only mapped columns leave the server",
		Without: "every column leaves the server; the connector publishes only the mapped ones"},
	{ID: FeatureMessages, Name: "heartbeat (logical messages in the stream)", Since: 14,
		With:    "heartbeats are decoded in the stream and confirmed",
		Without: "the stream carries no heartbeat; an idle slot advances by the server's keepalives only"},
	{ID: FeatureBackfill, Name: "backfill watermarks", Since: 14,
		With:    "`backfill start` re-sends existing rows; its watermarks are logical messages in the stream",
		Without: "`setup` skips the backfill objects and a backfill is refused with the reason; streaming is not affected"},
	{ID: FeatureFailoverSlots, Name: "failover slots", Since: 17,
		With:    "setup creates the slot with failover; a synchronised standby keeps it",
		Without: "the slot exists on the primary only: a failover loses it; the connector stops loudly and a backfill fills the gap"},
	{ID: FeatureStreaming, Name: "streaming of large transactions (`source.streaming`)", Since: 14,
		With:    "a transaction over `logical_decoding_work_mem` reaches the connector while it runs (protocol 2), is held there and published at its commit",
		Without: "a transaction is decoded at its commit only (spilled to disk on the server); `source.streaming` warns and reads at commit"},
	{ID: FeatureProtocol4, Name: "pgoutput protocol v4 (parallel streaming)", Since: 16, Planned: true,
		With:    "the connector asks for protocol 1, or 2 with `source.streaming`",
		Without: "protocol 1, or 2 with `source.streaming` (14+)"},
}

// FeatureByID returns the table's row for id; it panics on an unknown id
// (a programming error).
func FeatureByID(id FeatureID) Feature {
	for _, f := range FeatureTable {
		if f.ID == id {
			return f
		}
	}
	panic("postgres: unknown feature " + string(id))
}

// Supports reports whether a server (server_version_num, e.g. 170002) has
// the capability.
func Supports(server int, id FeatureID) bool {
	return server >= FeatureByID(id).Since*10000
}

// OldestSupported is the oldest PostgreSQL major version baitoru-cdc is
// tested on (the version suite runs 13 to 18).
const OldestSupported = 13

// MajorVersion is the major version of a server_version_num (PostgreSQL
// 10 and later), e.g. 17 for 170002.
func MajorVersion(server int) int { return server / 10000 }

// FeatureNotes says, for a server, what its version means for baitoru-cdc:
// one line per capability it lacks (planned ones included, marked so). An
// empty result means every capability is there.
func FeatureNotes(server int) []string {
	var notes []string
	for _, f := range FeatureTable {
		if Supports(server, f.ID) {
			continue
		}
		if f.Planned {
			notes = append(notes, fmt.Sprintf("no %s (%d+, planned)", stripCode(f.Name), f.Since))
			continue
		}
		notes = append(notes, fmt.Sprintf("no %s (%d+): %s", stripCode(f.Name), f.Since, stripCode(f.Without)))
	}
	return notes
}

func stripCode(s string) string { return strings.ReplaceAll(s, "`", "") }

// SupportMatrix renders FeatureTable for versions as a Markdown table: one
// row per capability, one column per version (✓ has it, – does not), then
// what baitoru-cdc does with and without it.
func SupportMatrix(versions []int) string {
	var b strings.Builder
	b.WriteString("| feature |")
	for _, v := range versions {
		fmt.Fprintf(&b, " %d |", v)
	}
	b.WriteString(" with it | before it |\n|---|")
	for range versions {
		b.WriteString(":-:|")
	}
	b.WriteString("---|---|\n")
	for _, f := range FeatureTable {
		name := f.Name
		if f.Planned {
			name += " (planned)"
		}
		fmt.Fprintf(&b, "| %s |", name)
		for _, v := range versions {
			if Supports(v*10000, f.ID) {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString(" – |")
			}
		}
		fmt.Fprintf(&b, " %s | %s |\n", f.With, f.Without)
	}
	return b.String()
}

// versionText renders a server_version_num as PostgreSQL prints it, e.g.
// "17.2" for 170002.
func versionText(num int) string {
	if num >= 100000 {
		return fmt.Sprintf("%d.%d", num/10000, num%10000)
	}
	return fmt.Sprintf("%d.%d", num/10000, num/100%100)
}
