package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
)

// PayloadStore keeps the bodies of events too large for the destination
// (the S3 adapter, connector/s3). ClaimCheck calls Put concurrently, so
// implementations must be safe for concurrent use.
type PayloadStore interface {
	// Put stores body as the object key of bucket, replacing any object
	// there (a re-sent event overwrites its own object). It returns nil
	// only once the object is stored. It retries what retrying can fix
	// (throttling, 5xx, network errors) itself, until ctx ends; it returns
	// an error wrapping ErrPermanent for what it cannot (no such bucket,
	// access denied) and one wrapping ctx.Err() when ctx ended first.
	Put(ctx context.Context, bucket, key string, body []byte) error
}

// LargePayloads says where the events of one table go when they are too
// large for SNS: those whose message (Event.Size: body plus attributes)
// exceeds Threshold bytes are stored as the object Prefix + event id in
// Bucket (see ObjectKey), and SNS gets a pointer to it instead.
type LargePayloads struct {
	Bucket    string
	Prefix    string
	Threshold int
}

// OffloadObserver is told about events stored through a ClaimCheck (the
// connector's metrics). It is called from Publish, concurrently.
type OffloadObserver interface {
	// Offloaded is called once per event stored, with its body's size.
	Offloaded(table string, bytes int)
}

// ClaimCheck is a Publisher that sends events too large for the
// destination through a PayloadStore (the claim-check pattern): the body
// is stored first, then the next Publisher gets, in the event's place, a
// copy whose body points at the object, in the AWS extended clients'
// format (internal/s3pointer):
//
//	["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"…","s3Key":"…"}]
//
// with the event's attributes plus ExtendedPayloadSize (Number: the body's
// size in bytes). Everything else of the event (id, key, topic) is
// unchanged, so FIFO order and deduplication, and subscription filter
// policies on the attributes, keep working. Events of tables without
// LargePayloads, and those within their threshold, pass through as they
// are.
//
// Acknowledgement stays exact: Publish returns nil only when every stored
// event's object was written and the next Publisher accepted the whole
// batch. Objects are written before their pointers are published, so a
// consumer never sees a pointer to an object not yet there; an object is
// never deleted by the connector (subscribers may share it: an S3
// lifecycle rule expires them). ClaimCheck is safe for concurrent use.
type ClaimCheck struct {
	next   Publisher
	store  PayloadStore
	tables map[string]LargePayloads
	obs    OffloadObserver
}

var _ Publisher = (*ClaimCheck)(nil)

// NewClaimCheck returns a ClaimCheck in front of next for the tables of
// mappings that have LargePayloads; obs may be nil.
func NewClaimCheck(next Publisher, store PayloadStore, mappings []*Mapping, obs OffloadObserver) *ClaimCheck {
	tables := map[string]LargePayloads{}
	for _, m := range mappings {
		if m.LargePayloads != nil {
			tables[m.Table] = *m.LargePayloads
		}
	}
	return &ClaimCheck{next: next, store: store, tables: tables, obs: obs}
}

// HasLargePayloads reports whether any of mappings sends large events
// through S3, i.e. whether a ClaimCheck is needed.
func HasLargePayloads(mappings []*Mapping) bool {
	for _, m := range mappings {
		if m.LargePayloads != nil {
			return true
		}
	}
	return false
}

// Publish stores the events over their table's threshold, concurrently,
// then publishes the batch with pointers in their place. A store error
// fails the call (nothing of it is published) with the bucket, object key,
// table and event id named; it wraps ErrPermanent when the store gave up
// for good.
func (c *ClaimCheck) Publish(ctx context.Context, events []*Event) error {
	var out []*Event
	var g *errgroup.Group
	var gctx context.Context
	for i, ev := range events {
		lp, ok := c.tables[ev.Table]
		if !ok || ev.Size() <= lp.Threshold {
			continue
		}
		if out == nil {
			out = slices.Clone(events)
			g, gctx = errgroup.WithContext(ctx)
		}
		ptr := s3pointer.Pointer{Bucket: lp.Bucket, Key: ObjectKey(lp.Prefix, ev.ID)}
		g.Go(func() error {
			if err := c.store.Put(gctx, ptr.Bucket, ptr.Key, ev.Body); err != nil {
				return fmt.Errorf("store event %s of %s%s (%d bytes) as %s: %w", ev.ID, ev.Table, keyNote(ev), len(ev.Body), ptr, err)
			}
			if c.obs != nil {
				c.obs.Offloaded(ev.Table, len(ev.Body))
			}
			out[i] = pointerEvent(ev, ptr)
			return nil
		})
	}
	if out == nil {
		return c.next.Publish(ctx, events)
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return c.next.Publish(ctx, out)
}

// pointerEvent is the copy of ev published in its place.
func pointerEvent(ev *Event, ptr s3pointer.Pointer) *Event {
	cp := &Event{
		ID: ev.ID, Table: ev.Table, Op: ev.Op, Type: ev.Type, Topic: ev.Topic, Key: ev.Key,
		Body:       s3pointer.Encode(ptr),
		CommitTime: ev.CommitTime, CommitLSN: ev.CommitLSN,
	}
	cp.Attributes = append(cp.attrs[:0], ev.Attributes...)
	cp.Attributes = append(cp.Attributes, Attribute{
		Name: s3pointer.SizeAttribute, Type: s3pointer.SizeAttributeType, Value: strconv.Itoa(len(ev.Body)),
	})
	return cp
}

// keyNote is " (key 7)", or "" for an unkeyed event.
func keyNote(ev *Event) string {
	if ev.Key == "" {
		return ""
	}
	return " (key " + ev.Key + ")"
}

// maxObjectKey is S3's limit on an object key, in bytes.
const maxObjectKey = 1024

// ObjectKey is the object key of the event id in a bucket: prefix + id,
// e.g. "baitoru-cdc/baitoru_cdc/0/16B3748-3". The id's '/' makes S3 list
// the objects by the high word of the commit LSN. An id S3 would need
// escaped (a character outside letters, digits and !-_.*'()/), or one too
// long for the key, becomes "sha256-" and the hex SHA-256 of the id:
// still one key per id, so a re-sent event overwrites its own object.
func ObjectKey(prefix, id string) string {
	if safeKey(id) && len(prefix)+len(id) <= maxObjectKey {
		return prefix + id
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + "sha256-" + hex.EncodeToString(sum[:])
}

func safeKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '!' || c == '-' || c == '_' || c == '.' || c == '*' || c == '\'' || c == '(' || c == ')' || c == '/':
		default:
			return false
		}
	}
	return true
}
