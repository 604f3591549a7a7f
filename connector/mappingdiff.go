package connector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// MappingVersion is the version of a set of mappings: the first 12 hex
// digits of the SHA-256 of their canonical form (a hash key counts by its
// own SHA-256, never by its value). Equal mappings have equal versions in
// every process; any change a consumer could see changes it. Each event
// carries it (the mappingversion extension attribute) and `plan` prints it.
func MappingVersion(ms []*Mapping) string {
	type tf struct {
		Kind                          string
		Key                           string `json:",omitempty"`
		First, Last, MaxBytes, MaxChr int    `json:",omitempty"`
	}
	canon := func(t *Transform) *tf {
		if t == nil {
			return nil
		}
		out := &tf{Kind: t.Kind.String(), First: t.First, Last: t.Last, MaxBytes: t.MaxBytes, MaxChr: t.MaxChars}
		if len(t.Key) > 0 {
			sum := sha256.Sum256(t.Key)
			out.Key = hex.EncodeToString(sum[:])
		}
		return out
	}
	type col struct {
		Column, Name string
		Transform    *tf `json:",omitempty"`
	}
	type attr struct {
		Column, Name, Type, Value string
		Transform                 *tf `json:",omitempty"`
	}
	type table struct {
		Table, Topic, TypePrefix, Where string
		Ops                             []string
		Columns                         []col
		Attributes                      []attr
		Key                             []string
	}
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b *Mapping) int { return strings.Compare(a.Table, b.Table) })
	var ts []table
	for _, m := range sorted {
		t := table{Table: m.Table, Topic: m.Topic, TypePrefix: m.TypePrefix, Where: m.Where, Key: m.Key}
		for _, op := range m.Ops {
			t.Ops = append(t.Ops, op.String())
		}
		for _, c := range m.Columns {
			t.Columns = append(t.Columns, col{c.Column, c.Name, canon(c.Transform)})
		}
		for _, a := range m.Attributes {
			t.Attributes = append(t.Attributes, attr{a.Column, a.Name, a.Type, a.Value, canon(a.Transform)})
		}
		ts = append(ts, t)
	}
	b, _ := json.Marshal(ts) // plain structs: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// TableChangeKind says how a table's mapping changed.
type TableChangeKind int

// Kinds of table changes.
const (
	TableAdded   TableChangeKind = iota + 1 // newly mapped
	TableRemoved                            // no longer mapped
	TableChanged                            // mapped before and after, differently
)

// TableChange is the difference between two mappings of one table: what a
// consumer of its events will see change. Details are one line each, e.g.
// "columns: + applicant_email (published as email, hash)".
type TableChange struct {
	Table   string
	Kind    TableChangeKind
	Old     *Mapping // nil when added
	New     *Mapping // nil when removed
	Details []string
	// NewColumns are columns published now and not before (their history
	// is not in past events: a backfill brings it). Every column of an
	// added table.
	NewColumns []string
}

// DiffMappings compares two sets of mappings, table by table, in the order
// of the tables' names. Tables mapped the same way in both are left out.
func DiffMappings(old, new []*Mapping) []TableChange {
	byName := func(ms []*Mapping) map[string]*Mapping {
		out := map[string]*Mapping{}
		for _, m := range ms {
			out[m.Table] = m
		}
		return out
	}
	o, n := byName(old), byName(new)
	var names []string
	for t := range o {
		names = append(names, t)
	}
	for t := range n {
		if o[t] == nil {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	var out []TableChange
	for _, t := range names {
		a, b := o[t], n[t]
		switch {
		case a == nil:
			tc := TableChange{Table: t, Kind: TableAdded, New: b, NewColumns: b.ColumnNames()}
			tc.Details = append(tc.Details, "operations: "+strings.Join(opList(b.Ops), ", "))
			for _, c := range b.Columns {
				tc.Details = append(tc.Details, "columns: + "+columnText(c))
			}
			out = append(out, tc)
		case b == nil:
			out = append(out, TableChange{Table: t, Kind: TableRemoved, Old: a})
		default:
			if MappingVersion([]*Mapping{a}) == MappingVersion([]*Mapping{b}) {
				continue
			}
			out = append(out, diffTable(a, b))
		}
	}
	return out
}

func diffTable(a, b *Mapping) TableChange {
	tc := TableChange{Table: a.Table, Kind: TableChanged, Old: a, New: b}
	add := func(format string, args ...any) { tc.Details = append(tc.Details, fmt.Sprintf(format, args...)) }
	oa, ob := opList(a.Ops), opList(b.Ops)
	for _, op := range ob {
		if !slices.Contains(oa, op) {
			add("operations: + %s", op)
		}
	}
	for _, op := range oa {
		if !slices.Contains(ob, op) {
			add("operations: - %s", op)
		}
	}
	if a.Topic != b.Topic {
		add("topic: %s → %s", orDefault(a.Topic), orDefault(b.Topic))
	}
	if a.TypePrefix != b.TypePrefix {
		add("type: %s.* → %s.*", a.TypePrefix, b.TypePrefix)
	}
	tc.NewColumns = diffList(add, "columns", a.Columns, b.Columns,
		func(c MappedColumn) string { return c.Column }, columnText)
	if !slices.Equal(a.ColumnNames(), b.ColumnNames()) && len(tc.Details) == 0 {
		add("columns: order %s → %s", strings.Join(a.ColumnNames(), ", "), strings.Join(b.ColumnNames(), ", "))
	}
	diffList(add, "attributes", a.Attributes, b.Attributes,
		func(x MappedAttribute) string { return x.Name }, attrText)
	if !slices.Equal(a.Key, b.Key) {
		add("key: [%s] → [%s]", strings.Join(a.Key, ", "), strings.Join(b.Key, ", "))
	}
	if a.Where != b.Where {
		add("where: %s → %s", orNone(a.Where), orNone(b.Where))
	}
	return tc
}

// diffList adds a detail line per item of new that old lacks (+), per item
// whose text changed (~) and per item of old that new lacks (-), items
// matched by key; it returns the keys of the added items.
func diffList[T any](add func(string, ...any), label string, old, new []T, key, text func(T) string) (added []string) {
	byKey := func(items []T) map[string]T {
		m := make(map[string]T, len(items))
		for _, x := range items {
			m[key(x)] = x
		}
		return m
	}
	o, n := byKey(old), byKey(new)
	for _, x := range new {
		prev, ok := o[key(x)]
		switch {
		case !ok:
			add("%s: + %s", label, text(x))
			added = append(added, key(x))
		case text(prev) != text(x):
			add("%s: ~ %s → %s", label, text(prev), text(x))
		}
	}
	for _, x := range old {
		if _, ok := n[key(x)]; !ok {
			add("%s: - %s", label, text(x))
		}
	}
	return added
}

func opList(ops []Op) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op.String()
	}
	return out
}

func columnText(c MappedColumn) string {
	s := c.Column
	if c.Name != c.Column {
		s += " as " + c.Name
	}
	if t := transformText(c.Transform); t != "" {
		s += " (" + t + ")"
	}
	return s
}

func attrText(a MappedAttribute) string {
	var s string
	if a.Column == "" {
		s = fmt.Sprintf("%s=%q", a.Name, a.Value)
	} else {
		s = a.Name + " from " + a.Column
	}
	s += " " + a.Type
	if t := transformText(a.Transform); t != "" {
		s += " (" + t + ")"
	}
	return s
}

// transformText describes a transform without its key.
func transformText(t *Transform) string {
	if t == nil {
		return ""
	}
	switch t.Kind {
	case TransformMask:
		return fmt.Sprintf("mask first %d last %d", t.First, t.Last)
	case TransformTruncate:
		var parts []string
		if t.MaxBytes > 0 {
			parts = append(parts, fmt.Sprintf("%d bytes", t.MaxBytes))
		}
		if t.MaxChars > 0 {
			parts = append(parts, fmt.Sprintf("%d characters", t.MaxChars))
		}
		return "truncate to " + strings.Join(parts, ", ")
	case TransformHash:
		sum := sha256.Sum256(t.Key)
		return "hash, key " + hex.EncodeToString(sum[:3])
	}
	return t.Kind.String()
}

func orDefault(s string) string {
	if s == "" {
		return "(the default topic)"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
