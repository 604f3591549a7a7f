package dba

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// Sample is one real row of a table as the replication stream would carry
// it: the relation (every column, with the stream's encoders) and the row's
// text values. `plan` maps it with the running and the new mappings to show
// an event before and after a change.
type Sample struct {
	Rel *connector.Relation
	Row []connector.Datum
	// KeyText is "col = value, ..." of the replica identity columns, to
	// tell which row was read (empty without an identity).
	KeyText string
}

// ReadSample reads the first row of table (by its replica identity, so the
// same row every time) inside tx, which should be read-only. It returns nil
// when the table is empty or missing. Only the columns of info are read.
func ReadSample(ctx context.Context, tx pgx.Tx, types *postgres.Types, info *TableInfo) (*Sample, error) {
	if info == nil || !info.Exists || len(info.Columns) == 0 {
		return nil, nil
	}
	var cols []ColumnInfo
	oids := make([]uint32, 0, len(info.Columns))
	for _, c := range info.Columns {
		if c.Generated {
			continue // pgoutput leaves generated columns out
		}
		cols = append(cols, c)
		oids = append(oids, c.TypeOID)
	}
	if err := types.Resolve(ctx, tx.Conn(), oids); err != nil {
		return nil, fmt.Errorf("sample of %s: column types: %w", info.Table, err)
	}
	schema, name, _ := strings.Cut(info.Table, ".")
	rel := &connector.Relation{Schema: schema, Name: name, Table: info.Table}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = pgx.Identifier{c.Name}.Sanitize() + "::text"
		key := info.ReplicaIdentity == 'f'
		for _, k := range info.Identity {
			key = key || k == c.Name
		}
		rel.Columns = append(rel.Columns, connector.Column{
			Name: c.Name, TypeOID: c.TypeOID, TypeName: types.Name(c.TypeOID), Key: key, Encode: types.Encoder(c.TypeOID),
		})
	}
	order := "1"
	if len(info.Identity) > 0 {
		ids := make([]string, len(info.Identity))
		for i, k := range info.Identity {
			ids[i] = pgx.Identifier{k}.Sanitize()
		}
		order = strings.Join(ids, ", ")
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + QuoteTable(info.Table) + " ORDER BY " + order + " LIMIT 1"
	vals := make([]*string, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	err := tx.QueryRow(ctx, q).Scan(dest...)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sample of %s: %w", info.Table, err)
	}
	s := &Sample{Rel: rel}
	var keys []string
	for i, v := range vals {
		d := connector.Datum{Kind: connector.DatumNull}
		if v != nil {
			d = connector.Datum{Kind: connector.DatumText, Value: []byte(*v)}
		}
		s.Row = append(s.Row, d)
		for _, k := range info.Identity {
			if k == cols[i].Name && v != nil {
				keys = append(keys, k+" = "+*v)
			}
		}
	}
	s.KeyText = strings.Join(keys, ", ")
	return s, nil
}
