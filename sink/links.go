package sink

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Link statuses.
const (
	StatusActive  = "active"
	StatusStopped = "stopped"
)

// Errors of link operations.
var (
	ErrLinkNotFound   = errors.New("link not found")
	ErrLinksNotSynced = errors.New("link cache not synchronised with the database")
)

// Link connects a Kobot account to a Baitoru link key (e.g. a company id):
// while it is active, events whose link key matches are pushed to the
// account.
type Link struct {
	ID        int64      `json:"id"`
	Account   string     `json:"kobot_account"`
	Key       string     `json:"link_key"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at"`
	// History is the progress of the link's history (GET /v1/links/{id}
	// only): one entry per table whose existing rows it gets.
	History []HistoryProgress `json:"history,omitempty"`
}

// LinkRule names the data field holding the link key of the events of one
// type, or of every type of one table (sink.links in the configuration).
type LinkRule struct {
	Type  string // a CloudEvents type; or
	Table string // a schema-qualified table
	Field string // the key in the event's data holding the link key
}

// Rules says which data field of an event holds its link key: a rule for
// the exact event type wins over a rule for the event's table.
type Rules struct {
	byType  map[string]string
	byTable map[string]string
}

// NewRules builds the rules. They come validated by package config (each
// names a field and exactly one of type and table, once); a later rule for
// the same type or table replaces an earlier one.
func NewRules(rules []LinkRule) *Rules {
	r := &Rules{byType: map[string]string{}, byTable: map[string]string{}}
	for _, k := range rules {
		if k.Type != "" {
			r.byType[k.Type] = k.Field
		} else {
			r.byTable[k.Table] = k.Field
		}
	}
	return r
}

// Field returns the data field holding e's link key.
func (r *Rules) Field(e *Event) (string, bool) {
	if f, ok := r.byType[e.Type]; ok {
		return f, true
	}
	if e.Table != "" {
		if f, ok := r.byTable[e.Table]; ok {
			return f, true
		}
	}
	return "", false
}

// Key returns e's link key, or an *InvalidError (no rule, missing or
// malformed key).
func (r *Rules) Key(e *Event) (string, error) {
	f, ok := r.Field(e)
	if !ok {
		return "", invalid(CodeNoLinkRule, "no sink.links rule for type %s (table %q)", clipString(e.Type), clipString(e.Table))
	}
	return e.LinkKey(f)
}

// LinkCache holds every active link in memory, indexed by link key, so that
// looking links up costs no database round trip. A watcher (postgres.Store's
// WatchLinks) fills it with SetAll, keeps it current with SetKeys as links
// change, and calls Unsync while it cannot see changes. Safe for concurrent
// use; the slices it returns must not be modified.
type LinkCache struct {
	mu     sync.RWMutex
	byKey  map[string][]Link
	count  int
	synced bool
	// onChange, if set, is told the number of active links after a change.
	onChange func(active int)
}

// NewLinkCache returns an empty, unsynchronised cache. onChange may be nil.
func NewLinkCache(onChange func(active int)) *LinkCache {
	return &LinkCache{byKey: map[string][]Link{}, onChange: onChange}
}

// SetAll replaces the contents with links (the active ones are kept) and
// marks the cache synchronised.
func (c *LinkCache) SetAll(links []Link) {
	m := make(map[string][]Link, len(links))
	n := 0
	for _, l := range links {
		if l.Status == StatusActive {
			m[l.Key] = append(m[l.Key], l)
			n++
		}
	}
	c.mu.Lock()
	c.byKey, c.count, c.synced = m, n, true
	c.mu.Unlock()
	if c.onChange != nil {
		c.onChange(n)
	}
}

// SetKeys replaces the links of keys with those of links having these keys
// (links holds the current active links of exactly these keys).
func (c *LinkCache) SetKeys(keys []string, links []Link) {
	fresh := make(map[string][]Link, len(keys))
	for _, l := range links {
		if l.Status == StatusActive {
			fresh[l.Key] = append(fresh[l.Key], l)
		}
	}
	c.mu.Lock()
	for _, k := range keys {
		c.count -= len(c.byKey[k])
		if ls := fresh[k]; len(ls) > 0 {
			c.byKey[k] = ls
			c.count += len(ls)
		} else {
			delete(c.byKey, k)
		}
	}
	n := c.count
	c.mu.Unlock()
	if c.onChange != nil {
		c.onChange(n)
	}
}

// Unsync marks the cache as possibly stale: lookups fail with
// ErrLinksNotSynced until the next SetAll.
func (c *LinkCache) Unsync() {
	c.mu.Lock()
	c.synced = false
	c.mu.Unlock()
}

// Synced reports whether the cache reflects the database.
func (c *LinkCache) Synced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

// Len is the number of active links held.
func (c *LinkCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.count
}

// ActiveLinks implements LinkSource from memory.
func (c *LinkCache) ActiveLinks(_ context.Context, keys []string) (map[string][]Link, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.synced {
		return nil, ErrLinksNotSynced
	}
	out := make(map[string][]Link, len(keys))
	for _, k := range keys {
		if ls, ok := c.byKey[k]; ok {
			out[k] = ls
		}
	}
	return out, nil
}
