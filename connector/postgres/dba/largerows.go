package dba

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/baitoru/baitoru-cdc/connector"
)

// unboundedTypes are the column types whose values have no size bound
// short of PostgreSQL's 1 GB: one value can make an event of any size.
var unboundedTypes = map[string]bool{
	"text": true, "json": true, "jsonb": true, "bytea": true, "xml": true,
	"tsvector": true, "citext": true, "hstore": true,
	"character varying": true, "character": false, // character without (n) is character(1)
}

// maxJSONBytesPerChar is the most a character can take in an event: a
// control character is escaped as \u00XX.
const maxJSONBytesPerChar = 6

// canExceed reports whether a value of the column type named typeName
// (format_type, e.g. "character varying(20)", "text[]") can on its own
// make an event longer than limit bytes.
func canExceed(typeName string, limit int) bool {
	if strings.HasSuffix(typeName, "[]") {
		return true // an array can have any number of elements
	}
	base, args, hasArgs := strings.Cut(typeName, "(")
	base = strings.TrimSpace(base)
	if !hasArgs {
		return unboundedTypes[base]
	}
	switch base {
	case "character varying", "character":
		n, err := strconv.Atoi(strings.TrimSuffix(args, ")"))
		return err != nil || n*maxJSONBytesPerChar > limit
	}
	return false
}

// largeRows warns about a table whose events can exceed the destination's
// message limit while it has no large_payloads: one such event would stop
// the connector.
func (c *checker) largeRows(m *connector.Mapping, info *TableInfo, cols []string) {
	if c.o.MaxMessageBytes <= 0 || m.LargePayloads != nil {
		return
	}
	var large []string
	for _, col := range cols {
		if ci := info.Column(col); ci != nil && canExceed(ci.TypeName, c.o.MaxMessageBytes) {
			large = append(large, fmt.Sprintf("%s (%s)", col, ci.TypeName))
		}
	}
	if len(large) == 0 {
		return
	}
	c.add("large rows "+m.Table, CheckWarn,
		fmt.Sprintf("%s can make an event over SNS's limit of %d bytes, which stops the connector until the mapping changes", strings.Join(large, ", "), c.o.MaxMessageBytes),
		"set publisher.large_payloads (or the table's large_payloads) to send such events through S3 (docs/config.md, Large payloads), or remove the column from columns:")
}
