package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Validate checks the sections the configuration sets (see Load) and
// returns their problems, sorted by line (none: nil). Load has already run
// it; it is exported for configs changed in code and for `validate`.
func (c *Config) Validate() Problems { return c.validatePresent().sorted() }

// ValidateConnector checks what `run`, `setup`, `check` and `teardown`
// need: source, sns, publisher, metrics, tables and log, including ${VAR}
// references there that are not set. None: nil.
func (c *Config) ValidateConnector() Problems { return c.validateConnector().sorted() }

// ValidateSink checks what `sink` needs: sink and log. None: nil.
func (c *Config) ValidateSink() Problems { return c.validateSink().sorted() }

func (c *Config) validatePresent() Problems {
	k := &checker{c: c}
	k.expansions(func(s string) bool { return true })
	k.log()
	if c.HasConnector() || !c.HasSink() {
		k.connector()
	}
	if c.HasSink() {
		k.sink()
	}
	return k.ps
}

func (c *Config) validateConnector() Problems {
	k := &checker{c: c}
	k.expansions(func(s string) bool { return s != "sink" })
	k.log()
	k.connector()
	return k.ps
}

func (c *Config) validateSink() Problems {
	k := &checker{c: c}
	k.expansions(func(s string) bool { return s == "sink" || s == "log" })
	k.log()
	k.sink()
	return k.ps
}

// problem locates a message at key path p: the environment variable that set
// it, else the line of the key, else the line of its nearest parent in the
// file, else line 1.
func (c *Config) problem(p, msg string) Problem {
	pr := Problem{File: c.File, Path: p, Message: msg}
	if c.meta == nil {
		return pr
	}
	if env, ok := c.meta.env[p]; ok {
		pr.Env = env
		return pr
	}
	pr.Line = 1
	for q := p; q != ""; q = parent(q) {
		if l, ok := c.meta.lines[q]; ok {
			pr.Line = l
			break
		}
	}
	return pr
}

// line is the line of key path p (0 when unknown).
func (c *Config) line(p string) int { return c.problem(p, "").Line }

func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// checker collects problems, skipping paths Load already reported.
type checker struct {
	c  *Config
	ps Problems
}

func (k *checker) add(p, format string, args ...any) {
	if m := k.c.meta; m != nil {
		for q := p; q != ""; q = parent(q) {
			if m.bad[q] {
				return
			}
		}
	}
	k.ps = append(k.ps, k.c.problem(p, fmt.Sprintf(format, args...)))
}

func (k *checker) expansions(keep func(section string) bool) {
	if k.c.meta == nil {
		return
	}
	for _, p := range k.c.meta.expand {
		top, _, _ := strings.Cut(strings.SplitN(p.Path, "[", 2)[0], ".")
		if keep(top) {
			k.ps = append(k.ps, p)
		}
	}
}

var (
	slotNameRe  = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	eventTypeRe = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)
	fieldNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	attrNameRe  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	topicARNRe  = regexp.MustCompile(`^arn:aws(-[a-z]+)*:sns:([^:]*):([^:]*):([^:]*)$`)
	topicNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)
	accountRe   = regexp.MustCompile(`^[0-9]{12}$`)
)

// --- connector ---

func (k *checker) connector() {
	c := k.c
	k.source()
	k.publisher()
	if c.Publisher.Kind == "sns" {
		k.snsSection()
	} else {
		if c.SNS.TopicARN != "" {
			k.topicARN("sns.topic_arn", c.SNS.TopicARN)
		}
		if c.SNS.Endpoint != "" {
			k.httpURL("sns.endpoint", c.SNS.Endpoint, "http://localhost:4566")
		}
	}
	if c.Metrics.Listen != "" {
		k.listen("metrics.listen", c.Metrics.Listen, ":9090")
	}
	k.tables()
	k.largePayloads()
	k.gc()
}

// minMemoryFloor is the smallest gc.memory_floor that does anything: the
// connector's Go runtime holds about that much at rest.
const minMemoryFloor = 16 << 20

// gc checks gc.memory_floor: 0 (Go's default alone) or at least
// minMemoryFloor.
func (k *checker) gc() {
	if f := k.c.GC.MemoryFloor; f != 0 && f < minMemoryFloor {
		k.add("gc.memory_floor", "%d bytes is below what the connector holds at rest, so it would change nothing: use 0 (Go's default collector) or at least 16MiB, e.g. \"40MiB\" (the default)", f)
	}
}

func (k *checker) source() {
	s := k.c.Source
	switch {
	case s.DSN == "" && len(k.c.Tables) > 0:
		k.add("source.dsn", "required: the connection string of Baitoru's PostgreSQL, e.g. postgres://baitoru_cdc@db:5432/baitoru (the password goes in source.password)")
	case s.DSN != "":
		if msg := dsnProblem(s.DSN); msg != "" {
			k.add("source.dsn", "%s", msg)
		}
	}
	k.password("source", s.DSN, s.Password)
	if !slotNameRe.MatchString(s.Slot) {
		k.add("source.slot", "%q is not a valid replication slot name: use 1 to 63 lowercase letters, digits and underscores", s.Slot)
	}
	if !slotNameRe.MatchString(s.Publication) {
		k.add("source.publication", "%q is not a valid publication name: use 1 to 63 lowercase letters, digits and underscores", s.Publication)
	}
	k.positive("source.status_interval", s.StatusInterval)
	if s.Heartbeat.Interval < 0 {
		k.add("source.heartbeat.interval", "%s is negative; use 0 to disable heartbeats", s.Heartbeat.Interval)
	}
	if s.MaxLagBytes < 0 {
		k.add("source.max_lag_bytes", "%d is negative; use 0 to disable the warning", s.MaxLagBytes)
	}
	if s.StreamMemoryBytes <= 0 {
		k.add("source.stream_memory_bytes", "%d: must be at least 1 (e.g. \"8MiB\"); leave it unset for an eighth of publisher.max_inflight_bytes", s.StreamMemoryBytes)
	}
	k.backoff("source.reconnect", s.Reconnect)
	if s.Backfill.ChunkRows < 1 || s.Backfill.ChunkRows > 1000000 {
		k.add("source.backfill.chunk_rows", "%d is out of range; use 1 to 1000000 rows (1000 is a good start)", s.Backfill.ChunkRows)
	}
	k.positive("source.backfill.chunk_time", s.Backfill.ChunkTime)
	if s.Backfill.MaxRowsPerSecond < 0 {
		k.add("source.backfill.max_rows_per_second", "%d is negative; use 0 for no cap", s.Backfill.MaxRowsPerSecond)
	}
	if s.Backfill.LiveChunkRows < 0 || s.Backfill.LiveChunkRows > 1000000 {
		k.add("source.backfill.live_chunk_rows", "%d is out of range; use 1 to 1000000 rows (250 is the default), or 0 for no cap while live changes flow", s.Backfill.LiveChunkRows)
	}
	if s.Backfill.LiveMaxRowsPerSecond < 0 {
		k.add("source.backfill.live_max_rows_per_second", "%d is negative; use 0 for no cap while live changes flow (50000 is the default)", s.Backfill.LiveMaxRowsPerSecond)
	}
	if s.Backfill.MaxQueuedEvents < 0 {
		k.add("source.backfill.max_queued_events", "%d is negative; use 0 to never pause on the queue", s.Backfill.MaxQueuedEvents)
	}
	if s.Backfill.MaxLagBytes < 0 {
		k.add("source.backfill.max_lag_bytes", "%d is negative; use 0 to never pause on the slot's lag", s.Backfill.MaxLagBytes)
	}
	switch s.OnTableLoss {
	case "continue", "stop":
	default:
		k.add("source.on_table_loss", "%q is not a choice; use continue (report the lost table, keep streaming the others) or stop (report it, then exit)", s.OnTableLoss)
	}
}

func (k *checker) publisher() {
	p := k.c.Publisher
	switch p.Kind {
	case "sns", "stdout":
	default:
		k.add("publisher.kind", "%q is not a publisher kind; use sns or stdout", p.Kind)
	}
	if p.Lanes <= 0 {
		k.add("publisher.lanes", "%d: must be at least 1", p.Lanes)
	}
	if p.MaxInflightEvents <= 0 {
		k.add("publisher.max_inflight_events", "%d: must be at least 1", p.MaxInflightEvents)
	}
	if p.MaxInflightBytes <= 0 {
		k.add("publisher.max_inflight_bytes", "%d: must be at least 1 (e.g. \"64MiB\")", p.MaxInflightBytes)
	}
	if p.ShutdownGrace < 0 {
		k.add("publisher.shutdown_grace", "%s is negative", p.ShutdownGrace)
	}
	k.backoff("publisher.retry", p.Retry)
}

func (k *checker) snsSection() {
	c := k.c
	s := c.SNS
	switch {
	case s.Region == "":
		k.add("sns.region", "required with publisher.kind sns: the topic's AWS region, e.g. ap-northeast-1")
	case !regionRe.MatchString(s.Region):
		k.add("sns.region", "%q is not an AWS region (e.g. ap-northeast-1)", s.Region)
	}
	if s.Endpoint != "" {
		k.httpURL("sns.endpoint", s.Endpoint, "http://localhost:4566")
	}
	if s.TopicARN != "" {
		k.topicARN("sns.topic_arn", s.TopicARN)
	} else if len(c.Tables) > 0 {
		var without []string
		for i, t := range c.Tables {
			if t.TopicARN == "" {
				without = append(without, fmt.Sprintf("tables[%d] (%s)", i, t.Table))
			}
		}
		switch {
		case len(without) == len(c.Tables):
			k.add("sns.topic_arn", "required with publisher.kind sns: no table has a topic_arn of its own")
		case len(without) > 0:
			k.add("sns.topic_arn", "required with publisher.kind sns: %s %s no topic_arn of its own", strings.Join(without, ", "), plural(len(without), "has", "have"))
		}
	}
}

// topicARN checks an SNS topic ARN: arn:aws:sns:<region>:<account>:<name>.
func (k *checker) topicARN(p, arn string) {
	m := topicARNRe.FindStringSubmatch(arn)
	if m == nil {
		k.add(p, "%q is not an SNS topic ARN: write arn:aws:sns:<region>:<12-digit account>:<topic name>", arn)
		return
	}
	region, account, name := m[2], m[3], m[4]
	switch {
	case !regionRe.MatchString(region):
		k.add(p, "%q is not an SNS topic ARN: %q is not an AWS region", arn, region)
	case !accountRe.MatchString(account):
		k.add(p, "%q is not an SNS topic ARN: the account %q is not 12 digits", arn, account)
	case !topicNameRe.MatchString(strings.TrimSuffix(name, ".fifo")) || len(name) > 256:
		k.add(p, "%q is not an SNS topic ARN: the topic name %q may contain only letters, digits, - and _ (and end in .fifo for a FIFO topic)", arn, name)
	case k.c.Publisher.Kind == "sns" && regionRe.MatchString(k.c.SNS.Region) && region != k.c.SNS.Region:
		k.add(p, "the topic is in region %s but sns.region is %s", region, k.c.SNS.Region)
	}
}

func (k *checker) tables() {
	c := k.c
	if len(c.Tables) == 0 {
		k.add("tables", "no tables mapped; add at least one, e.g. \"- table: public.applications\" with its columns")
		return
	}
	seen := map[string]int{}
	for i, t := range c.Tables {
		p := fmt.Sprintf("tables[%d]", i)
		qualified := false
		switch {
		case t.Table == "":
			k.add(p+".table", "required: the schema-qualified table name, e.g. public.applications")
		case !isQualified(t.Table):
			k.add(p+".table", "%s", unqualified(t.Table))
		default:
			qualified = true
			if j, dup := seen[t.Table]; dup {
				k.add(p+".table", "%s is already mapped by tables[%d] (line %d); map each table once", t.Table, j, c.line(fmt.Sprintf("tables[%d]", j)))
			} else {
				seen[t.Table] = i
			}
		}
		k.operations(p, t)
		if t.TopicARN != "" {
			k.topicARN(p+".topic_arn", t.TopicARN)
		}
		switch {
		case c.meta.has(p+".type") && t.Type == "":
			k.add(p+".type", "empty; remove it for the default baitoru.<table name>")
		case c.meta.has(p+".type") && !eventTypeRe.MatchString(t.Type):
			k.add(p+".type", "%q is not a valid event type: use lowercase letters and digits separated by '.', '_' or '-', e.g. baitoru.applications", t.Type)
		case !c.meta.has(p+".type") && qualified && !eventTypeRe.MatchString(t.Type):
			k.add(p+".type", "the default type %q made from the table name is not a valid event type; set type, e.g. baitoru.applications", t.Type)
		}
		cols, published := k.columns(p, t)
		k.attributes(p, t, cols, published)
		k.key(p, t, cols, published)
		switch {
		case c.meta.has(p+".where") && strings.TrimSpace(t.Where) == "":
			k.add(p+".where", "empty; remove it to publish every row")
		case strings.TrimSpace(t.Where) != "":
			if err := checkWhere(t.Where); err != nil {
				k.add(p+".where", "must be one SQL boolean expression over the table's columns: %v", err)
			}
		}
	}
}

func unqualified(name string) string {
	if strings.Count(name, ".") > 1 {
		return fmt.Sprintf("%q is not a table name: write <schema>.<table> with one '.', e.g. public.applications", name)
	}
	return fmt.Sprintf("%q is not schema-qualified; write <schema>.<table>, e.g. public.%s", name, strings.Trim(name, "."))
}

func isQualified(name string) bool {
	schema, table, ok := strings.Cut(name, ".")
	return ok && schema != "" && table != "" && !strings.Contains(table, ".")
}

func (k *checker) operations(p string, t Table) {
	if len(t.Operations) == 0 {
		k.add(p+".operations", "empty; list insert, update or delete, or remove the key for the default [insert]")
		return
	}
	seen := map[string]int{}
	for i, op := range t.Operations {
		op := op
		q := fmt.Sprintf("%s.operations[%d]", p, i)
		switch op {
		case "insert", "update", "delete":
		default:
			msg := fmt.Sprintf("%q is not an operation; use insert, update or delete", op)
			if s := closest(op, []string{"insert", "update", "delete"}); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			k.add(q, "%s", msg)
			continue
		}
		if j, dup := seen[op]; dup {
			k.add(q, "%s is listed twice (first at operations[%d])", op, j)
			continue
		}
		seen[op] = i
	}
}

// columns checks the published columns and returns the set of column names
// and the published name of each.
func (k *checker) columns(p string, t Table) (cols map[string]int, published map[string]string) {
	cols, published = map[string]int{}, map[string]string{}
	if len(t.Columns) == 0 {
		k.add(p+".columns", "no columns; list the columns to publish (a column that is not listed is not published)")
		return cols, published
	}
	byName := map[string]int{}
	for j, col := range t.Columns {
		cp := fmt.Sprintf("%s.columns[%d]", p, j)
		if col.Column == "" {
			k.add(cp+".column", "required: the column's name in the table")
			continue
		}
		if first, dup := cols[col.Column]; dup {
			k.add(cp+".column", "%q is listed twice (first at columns[%d])", col.Column, first)
			continue
		}
		cols[col.Column] = j
		name, at := col.Column, cp+".column"
		if k.c.meta.has(cp + ".rename") {
			switch {
			case col.Rename == "":
				k.add(cp+".rename", "empty; remove rename to publish the column under its own name")
			case !fieldNameRe.MatchString(col.Rename):
				k.add(cp+".rename", "%q is not a valid field name: use letters, digits and _, not starting with a digit (at most 128)", col.Rename)
			default:
				name, at = col.Rename, cp+".rename"
			}
		}
		published[col.Column] = name
		if k.hasTransform(cp+".transform", col.Transform) {
			k.transform(cp+".transform", col.Transform)
		}
		if first, dup := byName[name]; dup {
			k.add(at, "published name %q is already used by columns[%d]; rename one of them", name, first)
			continue
		}
		byName[name] = j
	}
	return cols, published
}

// maxAttributes is SNS's 10 message attributes less table, op and type.
const maxAttributes = 7

func (k *checker) attributes(p string, t Table, cols map[string]int, published map[string]string) {
	if n := len(t.Attributes); n > maxAttributes {
		k.add(p+".attributes", "%d attributes, at most %d: SNS allows 10 message attributes per message and table, op and type are always sent", n, maxAttributes)
	} else if n == maxAttributes && t.LargePayloads.Enabled() && k.c.Publisher.Kind == "sns" {
		k.add(p+".attributes", "%d attributes, at most %d with large_payloads: SNS allows 10 message attributes per message; table, op and type are always sent, and an event stored in S3 also carries ExtendedPayloadSize", n, maxAttributes-1)
	}
	names := map[string]int{}
	for i, a := range t.Attributes {
		ap := fmt.Sprintf("%s.attributes[%d]", p, i)
		constant := k.c.meta.has(ap+".value") || a.Value != ""
		switch {
		case constant && a.Column != "":
			k.add(ap+".value", "an attribute is a column or a constant value, not both; remove column or value")
		case constant:
			k.constantAttribute(ap, a)
		case a.Column == "":
			k.add(ap+".column", "required: the published column whose value becomes the attribute (or value: a constant)")
		default:
			if _, ok := cols[a.Column]; !ok && len(t.Columns) > 0 {
				k.add(ap+".column", "%s", notPublished(a.Column, t, published, "add it to columns or remove the attribute"))
			}
		}
		k.attributeTransform(ap, a, constant)
		switch a.Type {
		case "String", "Number":
		default:
			msg := fmt.Sprintf("%q is not an attribute type; use String or Number", a.Type)
			if s := closest(a.Type, []string{"String", "Number"}); s != "" {
				msg = fmt.Sprintf("%q is not an attribute type; use %s (String or Number, case-sensitive)", a.Type, s)
			}
			k.add(ap+".type", "%s", msg)
		}
		explicit := k.c.meta.has(ap + ".name")
		if !explicit && a.Name == "" {
			continue // no column either: reported above
		}
		if msg := attrNameProblem(a.Name); msg != "" {
			if explicit {
				k.add(ap+".name", "%q %s", a.Name, msg)
			} else {
				k.add(ap+".name", "the default name %q (the column's published name) %s; set name", a.Name, msg)
			}
			continue
		}
		if first, dup := names[a.Name]; dup {
			k.add(ap+".name", "%q is already the name of attributes[%d]", a.Name, first)
			continue
		}
		names[a.Name] = i
	}
}

// attrNameProblem applies SNS's rules for message attribute names.
func attrNameProblem(name string) string {
	lower := strings.ToLower(name)
	switch {
	case name == "":
		return "is empty"
	case lower == "table" || lower == "op" || lower == "type":
		return fmt.Sprintf("clashes with the %s attribute that every message has", lower)
	case lower == "extendedpayloadsize" || lower == "sqslargepayloadsize":
		return "is reserved for messages whose event is stored in S3 (the AWS extended clients' size attribute)"
	case len(name) > 256:
		return "is longer than 256 characters"
	case !attrNameRe.MatchString(name):
		return "may contain only letters, digits, '_', '-' and '.'"
	case strings.HasPrefix(name, ".") || strings.HasSuffix(name, "."):
		return "must not start or end with '.'"
	case strings.Contains(name, ".."):
		return "must not contain \"..\""
	case strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon."):
		return "starts with a prefix AWS reserves (AWS. or Amazon.)"
	}
	return ""
}

func (k *checker) key(p string, t Table, cols map[string]int, published map[string]string) {
	seen := map[string]int{}
	for i, col := range t.Key {
		q := fmt.Sprintf("%s.key[%d]", p, i)
		switch _, ok := cols[col]; {
		case col == "":
			k.add(q, "empty; name a published column")
		case !ok && len(t.Columns) > 0:
			k.add(q, "%s", notPublished(col, t, published, "key columns must be published (they form the event subject)"))
		default:
			if first, dup := seen[col]; dup {
				k.add(q, "%q is listed twice (first at key[%d])", col, first)
			}
			seen[col] = i
			if j, ok := cols[col]; ok && k.hasTransform(fmt.Sprintf("%s.columns[%d].transform", p, j), t.Columns[j].Transform) {
				k.add(q, "%q has a transform (columns[%d]), but the key is published whole as the event subject and FIFO group; key on another column or remove the transform", col, j)
			}
		}
	}
	topic := t.TopicARN
	if topic == "" {
		topic = k.c.SNS.TopicARN
	}
	if k.c.Publisher.Kind == "sns" && strings.HasSuffix(topic, ".fifo") && len(t.Key) == 0 {
		k.add(p+".key", "required: the topic %s is a FIFO topic, whose messages need a MessageGroupId; list the key columns, e.g. key: [company_id]", topic[strings.LastIndex(topic, ":")+1:])
	}
}

// notPublished explains that col is not among t's published columns, with a
// hint when col is the published (renamed) name of one.
func notPublished(col string, t Table, published map[string]string, fix string) string {
	msg := fmt.Sprintf("%q is not a published column of %s; %s", col, t.Table, fix)
	for c, name := range published {
		if name == col && c != col {
			msg += fmt.Sprintf(" (refer to the table column: did you mean %q, published as %q?)", c, name)
			break
		}
	}
	return msg
}

// --- shared ---

func (k *checker) log() {
	switch strings.ToLower(k.c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		k.add("log.level", "%q is not a log level; use debug, info, warn or error", k.c.Log.Level)
	}
	switch k.c.Log.Format {
	case "text", "json":
	default:
		k.add("log.format", "%q is not a log format; use text or json", k.c.Log.Format)
	}
	if k.c.Log.StatusInterval < 0 {
		k.add("log.status_interval", "%s is negative; use 0 to turn the status line off", k.c.Log.StatusInterval)
	}
}

func (k *checker) positive(p string, d time.Duration) {
	if d <= 0 {
		k.add(p, "%s: must be greater than 0", d)
	}
}

func (k *checker) backoff(p string, b Backoff) {
	k.positive(p+".initial", b.Initial)
	k.positive(p+".max", b.Max)
	if b.Initial > 0 && b.Max > 0 && b.Max < b.Initial {
		k.add(p+".max", "%s is shorter than initial (%s)", b.Max, b.Initial)
	}
}

// httpURL checks an http(s) URL. Messages do not quote it: it could carry
// credentials.
func (k *checker) httpURL(p, raw, example string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		k.add(p, "not a URL; write e.g. %s", example)
	case u.Scheme != "http" && u.Scheme != "https":
		k.add(p, "not an http or https URL; write e.g. %s", example)
	case u.Hostname() == "":
		k.add(p, "the URL has no host; write e.g. %s", example)
	case !validPort(u.Port()):
		k.add(p, "the URL's port %q is not a port number (1-65535); write e.g. %s", u.Port(), example)
	}
}

// validPort says whether port, from a URL, is empty or 1-65535.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

func (k *checker) listen(p, addr, example string) {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = errors.New("bad port")
		}
	}
	if err != nil {
		k.add(p, "%q is not a listen address; write host:port or :port, e.g. %q", addr, example)
	}
}

// dsnProblem says why a connection string cannot be parsed, without quoting
// it or any password in it ("" when it parses).
func dsnProblem(dsn string) string {
	_, err := pgconn.ParseConfig(dsn)
	if err == nil {
		return ""
	}
	const msg = "not a valid PostgreSQL connection string (write postgres://user@host:5432/db or host=... user=... dbname=..., and the password in password)"
	detail := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// "cannot parse `<redacted dsn>`: <reason>": keep the reason only.
		i := strings.LastIndex(detail, "`: ")
		if i < 0 {
			return msg
		}
		detail = detail[i+3:]
	}
	detail = strings.ReplaceAll(detail, dsn, "<dsn>")
	for _, pw := range passwordsIn(dsn) {
		if strings.Contains(detail, pw) {
			return msg // better no reason than a leaked password
		}
	}
	if strings.ContainsAny(detail, "`@") || detail == "" {
		return msg
	}
	return msg + ": " + detail
}

var (
	urlUserinfoRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@`)
	kvPasswordRe  = regexp.MustCompile(`password\s*=\s*(?:'((?:\\.|[^'\\])*)'|(\S+))`)
)

// passwordsIn finds every string in dsn that could be a password, raw and
// percent-decoded.
func passwordsIn(dsn string) []string {
	var out []string
	addPW := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
	}
	if m := urlUserinfoRe.FindStringSubmatch(dsn); m != nil {
		// m[1] runs to the last "@" before the path: "u:p@ss" in "u:p@ss@host".
		if _, pw, ok := strings.Cut(m[1], ":"); ok {
			addPW(pw)
		}
		addPW(m[1])
	}
	for _, m := range kvPasswordRe.FindAllStringSubmatch(dsn, -1) {
		addPW(m[1])
		addPW(m[2])
	}
	if u, err := url.Parse(dsn); err == nil {
		for _, v := range u.Query()["password"] {
			addPW(v)
		}
	}
	return slices.Compact(out)
}

func closest(s string, options []string) string {
	best, bestDist := "", 3
	for _, o := range options {
		if d := editDistance(strings.ToLower(s), strings.ToLower(o)); d < bestDist {
			best, bestDist = o, d
		}
	}
	return best
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
