package config

import "fmt"

// ProblemAt locates msg at key path p of the file as validation does: the
// line of the key (or of its nearest parent in the file), or the
// environment variable that set it. For what a later step finds wrong
// with a value, e.g. a row filter PostgreSQL refuses.
func (c *Config) ProblemAt(p, msg string) Problem { return c.problem(p, msg) }

// TablePath is the key path of the mapping of table, e.g. "tables[1]", or
// "" when no mapping has that table.
func (c *Config) TablePath(table string) string {
	for i, t := range c.Tables {
		if t.Table == table {
			return fmt.Sprintf("tables[%d]", i)
		}
	}
	return ""
}
