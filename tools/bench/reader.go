package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// The baseline reader runs as a child process (the bench binary executed
// again with roleEnv set), so that its RSS and CPU time are its own.
const (
	roleEnv    = "BAITORU_BENCH_ROLE"
	roleReader = "baseline-reader"

	readerDSN      = "BAITORU_BENCH_DSN"
	readerSlot     = "BAITORU_BENCH_SLOT"
	readerRows     = "BAITORU_BENCH_ROWS"
	readerInterval = "BAITORU_BENCH_STATUS_INTERVAL"
)

// readerReport is what the reader prints on stdout (one JSON line).
type readerReport struct {
	Rows      int    `json:"rows"`
	Txs       int    `json:"transactions"`
	StartNano int64  `json:"start_unix_nano"` // START_REPLICATION accepted
	FirstNano int64  `json:"first_unix_nano"` // first XLogData received
	LastNano  int64  `json:"last_unix_nano"`  // commit of the last wanted row decoded
	EndLSN    string `json:"end_lsn"`         // confirmed at the end
	Error     string `json:"error,omitempty"`
}

func readerMain() int {
	rep, err := readBaseline(context.Background(), os.Getenv(readerDSN), os.Getenv(readerSlot),
		atoi(os.Getenv(readerRows)), durationOr(os.Getenv(readerInterval), time.Second))
	if err != nil {
		rep.Error = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	if err != nil {
		return 1
	}
	return 0
}

// readBaseline is the physical limit the connector is compared with: a bare
// pglogrepl reader of slot that decodes every column of every row with
// pgtype (text format, as pgoutput protocol 1 sends it), maps and publishes
// nothing, and confirms each commit's end LSN with standby status updates
// every interval (and at the end), as the connector does. It returns once
// want rows and the commit that follows them were decoded.
func readBaseline(ctx context.Context, dsn, slot string, want int, interval time.Duration) (readerReport, error) {
	var rep readerReport
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return rep, err
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "bench-baseline"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return rep, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + publication + "'"},
	})
	if err != nil {
		return rep, fmt.Errorf("start replication: %w", err)
	}
	rep.StartNano = time.Now().UnixNano()

	typeMap := pgtype.NewMap()
	relations := map[uint32]*pglogrepl.RelationMessage{}
	var values []any
	var confirmed pglogrepl.LSN
	status := func() error {
		return pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: confirmed, WALFlushPosition: confirmed, WALApplyPosition: confirmed,
		})
	}
	nextStatus := time.Now().Add(interval)
	netConn := conn.Conn()
	for {
		if time.Now().After(nextStatus) {
			if err := status(); err != nil {
				return rep, err
			}
			nextStatus = time.Now().Add(interval)
		}
		_ = netConn.SetReadDeadline(nextStatus)
		raw, err := conn.ReceiveMessage(ctx)
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			return rep, fmt.Errorf("receive: %w", err)
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok {
			if e, ok := raw.(*pgproto3.ErrorResponse); ok {
				return rep, pgconn.ErrorResponseToPgError(e)
			}
			continue
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				return rep, err
			}
			if ka.ReplyRequested {
				if err := status(); err != nil {
					return rep, err
				}
			}
		case pglogrepl.XLogDataByteID:
			if rep.FirstNano == 0 {
				rep.FirstNano = time.Now().UnixNano()
			}
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return rep, err
			}
			msg, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return rep, fmt.Errorf("parse: %w", err)
			}
			switch m := msg.(type) {
			case *pglogrepl.RelationMessage:
				relations[m.RelationID] = m
			case *pglogrepl.InsertMessage:
				rel := relations[m.RelationID]
				if rel == nil {
					return rep, fmt.Errorf("insert for unknown relation %d", m.RelationID)
				}
				values = values[:0]
				for i, col := range m.Tuple.Columns {
					v, err := decodeColumn(typeMap, col, rel.Columns[i].DataType)
					if err != nil {
						return rep, fmt.Errorf("decode %s: %w", rel.Columns[i].Name, err)
					}
					values = append(values, v)
				}
				rep.Rows++
			case *pglogrepl.CommitMessage:
				rep.Txs++
				confirmed = m.TransactionEndLSN
				if rep.Rows >= want {
					rep.LastNano = time.Now().UnixNano()
					rep.EndLSN = confirmed.String()
					return rep, status()
				}
			}
		}
	}
}

// decodeColumn decodes one text-format value into its Go value with pgtype,
// like pglogrepl's example does; types pgtype does not know stay strings.
func decodeColumn(m *pgtype.Map, col *pglogrepl.TupleDataColumn, oid uint32) (any, error) {
	switch col.DataType {
	case 'n':
		return nil, nil
	case 'u':
		return nil, nil
	case 't':
		if dt, ok := m.TypeForOID(oid); ok {
			return dt.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, col.Data)
		}
		return string(col.Data), nil
	}
	return nil, errors.New("unknown tuple column kind")
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func durationOr(s string, d time.Duration) time.Duration {
	if v, err := time.ParseDuration(s); err == nil && v > 0 {
		return v
	}
	return d
}
