package config

import (
	"fmt"
	"strings"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Mappings returns the tables of a configuration loaded by Load or
// LoadConnector (validated, every default applied) in their one resolved
// form: the mapper, the publication planner and the subscription all read
// it. It applies no default and checks nothing: Load did both.
func (c *Config) Mappings() []*connector.Mapping {
	out := make([]*connector.Mapping, len(c.Tables))
	for i, t := range c.Tables {
		out[i] = c.resolveTable(fmt.Sprintf("tables[%d]", i), t)
		out[i].LargePayloads = c.resolveLargePayloads(t)
	}
	return out
}

// CompileTables applies the defaults of a table mapping and validates the
// tables as Load does (without file positions: a problem names the key
// path, e.g. tables[0].operations[1]), then resolves them. It is for
// mappings written in code (tests, tools); a loaded configuration has
// Mappings.
func CompileTables(tables []Table) ([]*connector.Mapping, error) {
	c := &Config{Tables: append([]Table(nil), tables...)}
	for i := range c.Tables {
		t := &c.Tables[i]
		t.Operations = append([]string(nil), t.Operations...)
		t.Attributes = append([]Attribute(nil), t.Attributes...)
	}
	c.applyListDefaults()
	k := &checker{c: c}
	k.tables()
	if len(k.ps) > 0 {
		return nil, k.ps.sorted().err()
	}
	return c.Mappings(), nil
}

// resolveTable turns a validated, defaulted table (at key path p) into its
// mapping. An attribute of a transformed column without its own transform
// takes the column's, so that it never carries the value the data hides.
func (c *Config) resolveTable(p string, t Table) *connector.Mapping {
	m := &connector.Mapping{
		Table: t.Table, Topic: t.TopicARN, TypePrefix: t.Type,
		Key: append([]string(nil), t.Key...), Where: strings.TrimSpace(t.Where),
	}
	for _, s := range t.Operations {
		op, _ := connector.ParseOp(s) // validated
		m.Ops = append(m.Ops, op)
	}
	byColumn := map[string]*connector.Transform{}
	for j, col := range t.Columns {
		name := col.Rename
		if name == "" {
			name = col.Column
		}
		tf := c.resolveTransform(fmt.Sprintf("%s.columns[%d].transform", p, j), col.Transform)
		byColumn[col.Column] = tf
		m.Columns = append(m.Columns, connector.MappedColumn{Column: col.Column, Name: name, Transform: tf})
	}
	for j, a := range t.Attributes {
		tf := c.resolveTransform(fmt.Sprintf("%s.attributes[%d].transform", p, j), a.Transform)
		if tf == nil && a.Column != "" {
			tf = byColumn[a.Column]
		}
		m.Attributes = append(m.Attributes, connector.MappedAttribute{Column: a.Column, Name: a.Name, Type: a.Type, Value: a.Value, Transform: tf})
	}
	return m
}
