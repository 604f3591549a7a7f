// Package dba is the database administrator's side of the connector: what
// the source PostgreSQL must carry before anything can stream (a
// publication with the mapped tables, columns, row filters and operations;
// a permanent pgoutput slot; the role that uses them), planned from the
// configuration, printed as SQL for review, created, checked and dropped.
// The `setup`, `check` and `teardown` commands call it, and `run` calls
// Prepare once before it streams.
//
// It is a package of its own, apart from package postgres (the replication
// stream), because the two change for different reasons and are read by
// different people: the stream is the hot path that decodes and
// acknowledges all day long, while this package runs a handful of catalog
// queries and DDL statements when a person asks for them; a DBA who wants
// to know what the connector does to the database reads this package alone.
// It depends on package postgres (slot lookups, server version, the type
// support that check reports), never the reverse. The name says who it
// serves, as the commands' documentation does (docs/dba.md).
package dba
