package config

// The sink section's checks: the sink's database, Kobot, the links API and
// the link keys against the mapped tables, and the secrets.

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"
)

func (k *checker) sink() {
	s := k.c.Sink
	if s.DSN == "" {
		k.add("sink.dsn", "required: the sink's own PostgreSQL database (links, delivery log), e.g. postgres://baitoru_sink@db:5432/baitoru_sink (the password goes in sink.password)")
	} else if msg := dsnProblem(s.DSN); msg != "" {
		k.add("sink.dsn", "%s", msg)
	}
	k.password("sink", s.DSN, s.Password)

	q := s.SQS
	switch {
	case q.Region == "":
		k.add("sink.sqs.region", "required: the queue's AWS region, e.g. ap-northeast-1")
	case !regionRe.MatchString(q.Region):
		k.add("sink.sqs.region", "%q is not an AWS region (e.g. ap-northeast-1)", q.Region)
	}
	if q.Endpoint != "" {
		k.httpURL("sink.sqs.endpoint", q.Endpoint, "http://localhost:4566")
	}
	if q.QueueURL == "" {
		k.add("sink.sqs.queue_url", "required: the URL of the queue subscribed to the topic, e.g. https://sqs.ap-northeast-1.amazonaws.com/123456789012/baitoru-kobot")
	} else {
		k.httpURL("sink.sqs.queue_url", q.QueueURL, "https://sqs.ap-northeast-1.amazonaws.com/123456789012/baitoru-kobot")
	}
	if q.DLQURL != "" {
		k.httpURL("sink.sqs.dlq_url", q.DLQURL, "https://sqs.ap-northeast-1.amazonaws.com/123456789012/baitoru-kobot-dlq")
	}
	if q.Concurrency <= 0 {
		k.add("sink.sqs.concurrency", "%d: must be at least 1", q.Concurrency)
	}
	k.sinkS3()
	if q.BatchSize < 1 || q.BatchSize > 10 {
		k.add("sink.sqs.batch_size", "%d is out of range: SQS receives 1 to 10 messages at a time", q.BatchSize)
	}
	if q.WaitTime < 0 || q.WaitTime > 20*time.Second {
		k.add("sink.sqs.wait_time", "%s is out of range: SQS long polling waits 0s to 20s", q.WaitTime)
	}
	if q.VisibilityTimeout <= 0 || q.VisibilityTimeout > 12*time.Hour {
		k.add("sink.sqs.visibility_timeout", "%s is out of range: SQS allows 1s to 12h", q.VisibilityTimeout)
	} else if q.VisibilityTimeout < time.Second {
		k.add("sink.sqs.visibility_timeout", "%s is out of range: SQS counts whole seconds, 1s to 12h", q.VisibilityTimeout)
	}

	kb := s.Kobot
	if kb.Endpoint == "" {
		k.add("sink.kobot.endpoint", "required: the URL events are pushed to, e.g. https://kobot.example.com/webhooks/baitoru")
	} else {
		k.httpURL("sink.kobot.endpoint", kb.Endpoint, "https://kobot.example.com/webhooks/baitoru")
	}
	if msg := secretProblem(kb.Secret); msg != "" {
		k.add("sink.kobot.secret", "%s", msg)
	} else if what, public := publicSecrets[kb.Secret]; public && !k.c.Demo {
		k.add("sink.kobot.secret", "is %s, which anyone can read: set KOBOT_WEBHOOK_SECRET to a secret of your own (whsec_$(openssl rand -base64 32)) and give Kobot the same; demo: true (BAITORU_CDC_DEMO=true) allows it in a local demo only", what)
	}
	k.positive("sink.kobot.timeout", kb.Timeout)
	if kb.MaxAttempts <= 0 {
		k.add("sink.kobot.max_attempts", "%d: must be at least 1", kb.MaxAttempts)
	}
	k.backoff("sink.kobot.retry", kb.Retry)

	a := s.API
	if a.Listen == "" {
		k.add("sink.api.listen", "required: the links API's listen address, e.g. \":8080\"")
	} else {
		k.listen("sink.api.listen", a.Listen, ":8080")
	}
	switch {
	case a.Token != "" && a.TokenFile != "":
		k.add("sink.api.token_file", "set either token or token_file, not both")
	case a.Token == "" && a.TokenFile == "":
		k.add("sink.api.token", "required: the links API's bearer token; write ${VAR} or set token_file")
	case a.Token != "" && len(a.Token) < 16:
		k.add("sink.api.token", "too short (%d characters); use at least 16 random characters (the value is not shown)", len(a.Token))
	case a.Token != "" && !k.c.Demo:
		if what, public := publicSecrets[a.Token]; public {
			k.add("sink.api.token", "is %s, which anyone can read: set LINKS_API_TOKEN to a token of your own ($(openssl rand -hex 32)) or use token_file; demo: true (BAITORU_CDC_DEMO=true) allows it in a local demo only", what)
		}
	}

	k.sinkHistory()
	k.sinkGC()
	seen := map[string]int{}
	for i, l := range s.Links {
		p := fmt.Sprintf("sink.links[%d]", i)
		if l.History && l.Type != "" && l.Table == "" {
			k.add(p+".history", "a type rule has no history: the history a link gets is the existing rows of a table; write table: instead of type:, or remove history")
		}
		if l.Field == "" {
			k.add(p+".field", "required: the field of the event's data holding the link key, e.g. company_id")
		}
		var id string
		switch {
		case l.Type != "" && l.Table != "":
			k.add(p, "set either type or table, not both")
		case l.Type == "" && l.Table == "":
			k.add(p, "required: type (an event type, e.g. baitoru.applications.insert) or table (e.g. public.applications)")
		case l.Type != "":
			id = "type " + l.Type
			if !eventTypeRe.MatchString(l.Type) {
				k.add(p+".type", "%q is not a valid event type (e.g. baitoru.applications.insert)", l.Type)
				id = ""
			}
		default:
			id = "table " + l.Table
			if !isQualified(l.Table) {
				k.add(p+".table", "%s", unqualified(l.Table))
				id = ""
			}
		}
		if id == "" {
			continue
		}
		if first, dup := seen[id]; dup {
			k.add(p, "%s already has a link key at sink.links[%d]", id, first)
			continue
		}
		seen[id] = i
		k.linkAgainstTables(p, l)
	}
}

// historyIDPrefixRe is what a link-start backfill id may start with: the
// whole id (<prefix>-<link id>-<table>) must be a valid backfill id.
var historyIDPrefixRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:]{0,29}$`)

// sinkHistory checks sink.history: a requester DSN that parses, a valid
// slot name and id prefix, a positive retry interval.
func (k *checker) sinkHistory() {
	h := k.c.Sink.History
	if h.DSN != "" {
		if msg := dsnProblem(h.DSN); msg != "" {
			k.add("sink.history.dsn", "%s", msg)
		}
	}
	k.password("sink.history", h.DSN, h.Password)
	if h.Slot != "" && !slotNameRe.MatchString(h.Slot) {
		k.add("sink.history.slot", "%q is not a valid replication slot name: use the connector's source.slot (1 to 63 lowercase letters, digits and underscores), or leave it empty for any connector", h.Slot)
	}
	if !historyIDPrefixRe.MatchString(h.IDPrefix) {
		k.add("sink.history.id_prefix", "%q is not a valid prefix: 1 to 30 letters, digits, '.', '_' or ':', starting with a letter or digit (no '-'), e.g. link", h.IDPrefix)
	}
	k.positive("sink.history.interval", h.Interval)
}

// minGCMemoryLimit is the smallest sink.gc.memory_limit accepted: about
// what the sink server holds with Go's default collector under load; a
// lower limit would have it collect garbage nearly all the time.
const minGCMemoryLimit = 64 << 20

// sinkGC checks sink.gc: a positive percent, a memory limit of 0 (none) or
// at least minGCMemoryLimit.
func (k *checker) sinkGC() {
	g := k.c.Sink.GC
	if g.Percent < 1 {
		k.add("sink.gc.percent", "%d: must be at least 1 (100 is Go's default; the sink's default is 400); to turn the collector off, run with GOGC=off and a GOMEMLIMIT", g.Percent)
	}
	if g.MemoryLimit != 0 && g.MemoryLimit < minGCMemoryLimit {
		k.add("sink.gc.memory_limit", "%d bytes is below what the sink holds under load: use 0 (no limit) or at least 64MiB, e.g. \"256MiB\" (the default)", g.MemoryLimit)
	}
}

// linkAgainstTables checks a link rule against the mapped tables of the
// same file: its table (or the table of its type) is mapped, with that
// operation, and its field is a published field of the events (a renamed
// column's new name). A file without tables (a sink-only file) cannot be
// checked. Otherwise every event of the rule would go to the DLQ as
// missing_link_key.
func (k *checker) linkAgainstTables(p string, l LinkKey) {
	c := k.c
	if len(c.Tables) == 0 {
		return
	}
	var t *Table
	var at int
	var names []string
	for i := range c.Tables {
		tb := &c.Tables[i]
		if l.Table != "" {
			names = append(names, tb.Table)
			if tb.Table == l.Table {
				t, at = tb, i
			}
			continue
		}
		for _, op := range tb.Operations {
			names = append(names, tb.Type+"."+op)
			if tb.Type+"."+op == l.Type {
				t, at = tb, i
			}
		}
	}
	if t == nil {
		key, what, val := "table", "a mapped table", l.Table
		if l.Table == "" {
			key, what, val = "type", "an event type of the mapped tables", l.Type
		}
		msg := fmt.Sprintf("%q is not %s, so no event matches this rule", val, what)
		prefix, op := l.Type, ""
		if i := strings.LastIndexByte(l.Type, '.'); i > 0 {
			prefix, op = l.Type[:i], l.Type[i+1:]
		}
		var sameType *Table
		for i := range c.Tables {
			if l.Table == "" && c.Tables[i].Type == prefix {
				sameType, at = &c.Tables[i], i
			}
		}
		if sameType != nil {
			msg += fmt.Sprintf(": %s publishes %s, not %s (tables[%d].operations)", sameType.Table, strings.Join(sameType.Operations, ", "), op, at)
		} else if s := closest(val, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		} else {
			msg += fmt.Sprintf(" (they are: %s)", strings.Join(names, ", "))
		}
		k.add(p+"."+key, "%s", msg)
		return
	}
	if l.Field == "" {
		return // reported above
	}
	var fields []string
	renamed := ""
	for _, col := range t.Columns {
		name := col.Column
		if col.Rename != "" {
			name = col.Rename
			if col.Column == l.Field {
				renamed = col.Rename
			}
		}
		fields = append(fields, name)
		if name == l.Field {
			return
		}
	}
	tp := fmt.Sprintf("tables[%d]", at)
	msg := fmt.Sprintf("%q is not a published field of %s (%s, line %d), so each of its events would go to the DLQ as missing_link_key", l.Field, t.Table, tp, c.line(tp))
	switch s := closest(l.Field, fields); {
	case renamed != "":
		msg += fmt.Sprintf("; the column %s is published as %s: write field: %s", l.Field, renamed, renamed)
	case s != "":
		msg += fmt.Sprintf("; did you mean %s?", s)
	default:
		msg += fmt.Sprintf("; its fields are %s", strings.Join(fields, ", "))
	}
	k.add(p+".field", "%s", msg)
}

// publicSecrets are the webhook secrets and API tokens published with
// baitoru-cdc — the shipped config.yaml's fallbacks and the docs' examples
// — with where they come from. Anyone can read them, so only demo: true
// accepts them (TestPublicSecretsRefused finds every one in the repository).
var publicSecrets = map[string]string{
	"whsec_YmFpdG9ydS1jZGMgZGVtbyBzZWNyZXQsIG5vdCBmb3I=": "the public demo secret (config.yaml's fallback when KOBOT_WEBHOOK_SECRET is unset)",
	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":             "the example secret of docs/kobot.md",
	"demo-links-token-change-me":                         "the public demo token (config.yaml's fallback when LINKS_API_TOKEN is unset)",
}

// password checks that a section's password is set in one place only.
func (k *checker) password(section, dsn, password string) {
	if password != "" && dsnHasPassword(dsn) {
		k.add(section+".password", "the password is set twice: %s.dsn has one too; remove the one in %s.dsn", section, section)
	}
}

// secretProblem checks a Standard Webhooks secret without ever quoting it.
func secretProblem(secret string) string {
	if secret == "" {
		return "required: the Standard Webhooks signing secret (whsec_ and base64); write ${VAR}"
	}
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return "must start with whsec_ (a Standard Webhooks secret); the value is not shown"
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return "the part after whsec_ is not valid base64; the value is not shown"
	}
	if len(key) < 24 {
		return fmt.Sprintf("too short: %d bytes after base64 decoding, use 24 to 64 random bytes; the value is not shown", len(key))
	}
	if len(key) > 64 {
		return fmt.Sprintf("too long: %d bytes after base64 decoding, use 24 to 64 random bytes; the value is not shown", len(key))
	}
	return ""
}
