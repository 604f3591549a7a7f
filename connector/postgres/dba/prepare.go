package dba

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// PrepareOptions configure Prepare.
type PrepareOptions struct {
	// Pool lends the connection (postgres.NewPool).
	Pool              *pgxpool.Pool
	Slot, Publication string
	// Create is source.create: create the publication and the slot when
	// they are absent, and align the publication with the mappings.
	Create bool
	// Mappings are the mapped tables (package config resolves them).
	Mappings []*connector.Mapping
	// RetryInitial and RetryMax bound the backoff between attempts while
	// the server cannot be reached.
	RetryInitial, RetryMax time.Duration
}

// Prepare makes the source ready for `run` to stream, once, before it
// streams. With Create, it creates or aligns the publication
// (ApplyPublication) and creates the slot when it is absent (EnsureSlot);
// without, it requires both to exist and warns when the publication differs
// from the configuration. It retries what may pass (the server cannot be
// reached) with backoff, and returns an error wrapping
// connector.ErrPermanent for what cannot (a refused publication, a missing
// slot without Create). It returns nil, having done nothing, when ctx ends
// first. The subscription then checks the slot at every connection.
func Prepare(ctx context.Context, o PrepareOptions, log *slog.Logger) error {
	bo := backoff.NewExponentialBackOff()
	if o.RetryInitial > 0 {
		bo.InitialInterval = o.RetryInitial
	}
	if o.RetryMax > 0 {
		bo.MaxInterval = o.RetryMax
	}
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := prepare(ctx, o, log)
		if errors.Is(err, connector.ErrPermanent) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, wait time.Duration) {
		attempt++
		log.Warn("cannot prepare the publication and the slot; retrying", "error", err, "attempt", attempt, "retry_in", wait.Round(time.Millisecond))
	}))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func prepare(ctx context.Context, o PrepareOptions, log *slog.Logger) error {
	pooled, err := postgres.Acquire(ctx, o.Pool)
	if err != nil {
		return err
	}
	defer pooled.Release()
	conn := pooled.Conn()
	if o.Create {
		res, err := ApplyPublication(ctx, conn, ApplyOptions{Publication: o.Publication, Mappings: o.Mappings})
		if err != nil {
			return err
		}
		// The connector's records (gaps, the publication state it saw):
		// setup creates them where the role may not.
		if _, err := ApplyRecords(ctx, conn, RecordsOptions{}); err != nil {
			log.Warn("cannot create schema "+postgres.Schema+" and its tables: a publication change that loses changes will be reported but not recorded durably; create them with `baitoru-cdc setup`", "error", err)
		}
		switch res.Action {
		case PublicationCreated:
			log.Info("created publication", "publication", o.Publication, "tables", strings.Join(TableNames(o.Mappings), ","), "sql", res.Statements[0].SQL)
		case PublicationAltered:
			log.Info("altered publication to match the config", "publication", o.Publication, "changes", driftText(res.Drift))
		}
	} else {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, o.Publication).Scan(&exists); err != nil {
			return fmt.Errorf("look up publication %s: %w", o.Publication, err)
		}
		if !exists {
			return fmt.Errorf("publication %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", o.Publication, connector.ErrPermanent)
		}
		if _, _, drift, err := DiffPublication(ctx, conn, o.Publication, o.Mappings); err != nil {
			log.Debug("could not compare the publication with the config", "error", err)
		} else if len(drift) > 0 {
			log.Warn("the publication differs from the config; run `baitoru-cdc setup` to align it (or `baitoru-cdc check` for details)", "publication", o.Publication, "differences", driftText(drift))
		}
	}
	slot, err := postgres.LookupSlot(ctx, conn, o.Slot)
	switch {
	case err != nil:
		return err
	case slot != nil:
		return nil // the subscription checks it (plugin, database, lost)
	case !o.Create:
		return fmt.Errorf("replication slot %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", o.Slot, connector.ErrPermanent)
	}
	res, err := EnsureSlot(ctx, conn, o.Slot, false)
	if err != nil {
		return err
	}
	if res.Action == SlotCreated && res.Slot != nil {
		log.Info("created permanent replication slot", "slot", o.Slot, "consistent_point", res.Slot.ConfirmedFlush.String(), "failover", res.Slot.Failover)
	}
	return nil
}

// driftText joins the differences for a log line.
func driftText(drift []Drift) string {
	ds := make([]string, len(drift))
	for i, d := range drift {
		ds[i] = d.String()
	}
	return strings.Join(ds, "; ")
}
