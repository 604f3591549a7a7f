// Package config is the baitoru-cdc configuration file format: a YAML file
// (config.yaml), environment overrides named BAITORU_CDC_<PATH> (e.g.
// BAITORU_CDC_SOURCE_DSN), and ${VAR} / ${VAR:-default} expansion inside
// string values so that secrets never have to sit in the file.
//
// Load reads and validates a file; every problem is reported at once, each
// located by file, line and key path (see Problem). docs/config.md is the
// reference of every key.
//
// Mappings are lists, never map keys: viper lowercases map keys, and table and
// column names are case-sensitive.
//
// This package owns every default and every rule of the configuration: the
// packages that run take the values it resolved and check nothing again.
// The tables leave it in one resolved form, Config.Mappings (the
// connector's Mapping), read alike by the mapper, the publication planner
// and the subscription; code without a file gets the defaults from
// Defaults and resolves tables written in code with CompileTables.
package config

import (
	"time"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Config is the whole file. The connector (`run`) reads Source, SNS,
// Publisher, Metrics, Log and Tables; the sink (`sink`) reads Sink and Log.
type Config struct {
	// Demo marks a local demo or development setup: the public demo
	// secrets published with baitoru-cdc (the shipped config.yaml's
	// fallbacks, the docs' examples) are accepted. Default false: a
	// production start refuses them. Never set it in production.
	Demo      bool      `mapstructure:"demo"`
	Source    Source    `mapstructure:"source"`
	SNS       SNS       `mapstructure:"sns"`
	S3        S3        `mapstructure:"s3"`
	Publisher Publisher `mapstructure:"publisher"`
	Metrics   Metrics   `mapstructure:"metrics"`
	Log       Log       `mapstructure:"log"`
	GC        GC        `mapstructure:"gc"`
	Tables    []Table   `mapstructure:"tables"`
	Sink      Sink      `mapstructure:"sink"`

	// File is the path the configuration was loaded from (not a key).
	File string `mapstructure:"-"`

	// meta locates every key in the file for validation (set by Load).
	meta *meta
}

// Source is the Baitoru PostgreSQL database the connector replicates from.
type Source struct {
	// DSN is a libpq connection string or URL, without the password (see
	// Password).
	DSN string `mapstructure:"dsn"`
	// Password of the DSN's role, e.g. ${BAITORU_DB_PASSWORD}; empty: the
	// DSN's own, else libpq's PGPASSWORD or ~/.pgpass. Load moves it into
	// DSN (escaped as the DSN's form needs) and empties it, so the runtime
	// reads DSN only.
	Password string `mapstructure:"password"`
	// Slot is the permanent logical replication slot (the checkpoint).
	// Default "baitoru_cdc"; 1 to 63 of [a-z0-9_].
	Slot string `mapstructure:"slot"`
	// Publication names the tables whose changes the server sends.
	// Default "baitoru_cdc"; 1 to 63 of [a-z0-9_].
	Publication string `mapstructure:"publication"`
	// Create makes `run` create the slot and publication when they are
	// absent. Default true.
	Create bool `mapstructure:"create"`
	// StatusInterval is how often the connector reports its confirmed
	// position to the server. Default 1s.
	StatusInterval time.Duration `mapstructure:"status_interval"`
	// Heartbeat makes the slot advance when the database is idle.
	Heartbeat Heartbeat `mapstructure:"heartbeat"`
	// MaxLagBytes is the retained-WAL size above which the connector warns.
	// 0 disables the warning. Default 1 GiB. Also written "512MiB", "1GB".
	MaxLagBytes int64 `mapstructure:"max_lag_bytes"`
	// Reconnect bounds the backoff between reconnection attempts.
	// Default 500ms..30s.
	Reconnect Backoff `mapstructure:"reconnect"`
	// OnTableLoss is what the connector does when a mapped table leaves
	// the publication (its changes are then not published): "continue"
	// (default: report it, record the gap, keep streaming the other
	// tables) or "stop" (the same, then exit 1).
	OnTableLoss string `mapstructure:"on_table_loss" jsonschema:"enum=continue,enum=stop"`
	// Streaming asks PostgreSQL 14+ to send a transaction larger than the
	// server's logical_decoding_work_mem while it runs (pgoutput protocol
	// 2) instead of spilling it to the server's disk until its commit.
	// The connector holds it (StreamMemoryBytes in memory, then a file in
	// $TMPDIR) and publishes it at its commit, with the same events and
	// ids. PostgreSQL 13 cannot: the connector warns and reads
	// at commit. Default true: at the server's default work memory, a
	// 1M-row transaction's events follow its commit ~7× sooner, nothing is
	// spilled on the server, and the connector uses less CPU (make bench,
	// item 7).
	Streaming bool `mapstructure:"streaming"`
	// StreamMemoryBytes bounds the bytes of streamed, not yet committed
	// transactions the connector holds in memory; beyond it they spill to
	// a file in $TMPDIR. Default: an eighth of
	// publisher.max_inflight_bytes (8 MiB at its default): a streamed
	// transaction is over the server's logical_decoding_work_mem (64MB by
	// default) anyway, and the memory is for the events it becomes (make
	// bench, item 7: peak RSS). At least 1.
	StreamMemoryBytes int64 `mapstructure:"stream_memory_bytes"`
	// Backfill tunes online backfills (re-emitting existing rows while
	// streaming): how hard they may read the database.
	Backfill Backfill `mapstructure:"backfill"`
}

// Backfill tunes online backfills.
type Backfill struct {
	// ChunkRows is the first chunk's size (rows per SELECT); it then
	// adapts to ChunkTime between a tenth and ten times it. Default 1000.
	ChunkRows int `mapstructure:"chunk_rows"`
	// ChunkTime is the time budget of one chunk's SELECT. Default 500ms.
	ChunkTime time.Duration `mapstructure:"chunk_time"`
	// MaxRowsPerSecond caps the rows a backfill reads per second; 0 (the
	// default): no cap.
	MaxRowsPerSecond int `mapstructure:"max_rows_per_second"`
	// LiveMaxRowsPerSecond caps the rows a backfill reads per second
	// while live changes flow (as LiveChunkRows), so that the live events'
	// latency stays near what it is without a backfill. Default 50000;
	// 0: no cap.
	LiveMaxRowsPerSecond int `mapstructure:"live_max_rows_per_second"`
	// LiveChunkRows caps a chunk's rows while live changes flow (one was
	// published during the chunk before), so that a live change never
	// shares the machine with a large chunk's burst of read events.
	// Default 250; 0: no cap.
	LiveChunkRows int `mapstructure:"live_chunk_rows"`
	// MaxQueuedEvents pauses a backfill while more live events wait for
	// SNS. Default 5000; 0: never.
	MaxQueuedEvents int `mapstructure:"max_queued_events"`
	// MaxLagBytes pauses a backfill while the slot is further behind the
	// server's WAL end. Default 256MiB; 0: never.
	MaxLagBytes int64 `mapstructure:"max_lag_bytes"`
}

// BackfillOptions is the resolved form the backfill runner takes.
func (b Backfill) BackfillOptions(statusInterval time.Duration) connector.BackfillOptions {
	return connector.BackfillOptions{
		ChunkRows: b.ChunkRows, MinChunkRows: max(b.ChunkRows/10, 1), MaxChunkRows: b.ChunkRows * 10,
		ChunkTime: b.ChunkTime, MaxRowsPerSecond: float64(b.MaxRowsPerSecond), LiveChunkRows: b.LiveChunkRows,
		LiveMaxRowsPerSecond: float64(b.LiveMaxRowsPerSecond),
		MaxLagBytes:          b.MaxLagBytes, MaxQueuedEvents: b.MaxQueuedEvents,
		Poll: max(statusInterval, 100*time.Millisecond), WindowTimeout: time.Minute,
	}
}

// Heartbeat emits pg_logical_emit_message at an interval.
type Heartbeat struct {
	// Interval between heartbeats; 0 (the default) disables them.
	Interval time.Duration `mapstructure:"interval"`
}

// Backoff is an exponential backoff policy: the first wait is Initial, each
// next one longer, never more than Max. Both > 0 and Initial <= Max.
type Backoff struct {
	Initial time.Duration `mapstructure:"initial"`
	Max     time.Duration `mapstructure:"max"`
}

// SNS is the AWS SNS destination.
type SNS struct {
	// Region, e.g. ap-northeast-1.
	Region string `mapstructure:"region"`
	// Endpoint overrides the AWS endpoint (emulators such as fauxqs).
	Endpoint string `mapstructure:"endpoint"`
	// TopicARN is the default topic of every mapping without its own.
	// A topic whose name ends in ".fifo" is a FIFO topic.
	TopicARN string `mapstructure:"topic_arn"`
}

// S3 is where the connector stores events too large for SNS (see
// LargePayloads).
type S3 struct {
	// Region of the buckets; default: sns.region.
	Region string `mapstructure:"region"`
	// Endpoint overrides the AWS endpoint (emulators such as fauxqs);
	// buckets are then addressed in the path.
	Endpoint string `mapstructure:"endpoint"`
}

// LargePayloads sends events too large for SNS through S3 (the claim-check
// pattern of the AWS extended clients): an event whose SNS message (body
// plus attributes) exceeds Threshold bytes is stored as the object
// Prefix + event id in Bucket, and SNS gets a pointer to it.
type LargePayloads struct {
	// Bucket stores the large events; empty: large_payloads is off.
	Bucket string `mapstructure:"bucket"`
	// Prefix of the object keys. Default "baitoru-cdc/<source.slot>/".
	Prefix string `mapstructure:"prefix"`
	// Threshold in bytes: a message over it goes through S3. Default and
	// maximum 262144 (SNS's limit); at least 1024.
	Threshold int64 `mapstructure:"threshold" unit:"bytes"`
}

// Enabled reports whether large events go through S3.
func (l LargePayloads) Enabled() bool { return l.Bucket != "" }

// Publisher selects and tunes where events go.
type Publisher struct {
	// Kind is "sns" (default) or "stdout" (NDJSON, one event per line).
	Kind string `mapstructure:"kind" jsonschema:"enum=sns,enum=stdout"`
	// Lanes is the number of batches published concurrently. Events with
	// the same key always use the same lane, so per-key order is kept.
	// Default 8.
	Lanes int `mapstructure:"lanes"`
	// MaxInflightEvents bounds the events read but not yet accepted.
	// Default 20000.
	MaxInflightEvents int `mapstructure:"max_inflight_events"`
	// MaxInflightBytes bounds their total size. Default 64 MiB; also
	// written "64MiB", "1GB".
	MaxInflightBytes int64 `mapstructure:"max_inflight_bytes"`
	// ShutdownGrace is how long in-flight publishes may finish on SIGTERM.
	// Default 10s.
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
	// Retry bounds the backoff between publish retries (SNS and S3).
	// Default 100ms..10s.
	Retry Backoff `mapstructure:"retry"`
	// LargePayloads sends events over SNS's limit through S3 for every
	// table (a table's own large_payloads overrides it key by key).
	// Unset: such an event stops the connector.
	LargePayloads LargePayloads `mapstructure:"large_payloads"`
}

// Metrics is the connector's HTTP endpoint for /metrics, /healthz, /readyz.
type Metrics struct {
	// Listen address, e.g. ":9090"; empty disables the endpoint.
	Listen string `mapstructure:"listen"`
}

// GC sets the connector's Go garbage collector (baitoru-cdc run). The
// environment's GOGC and GOMEMLIMIT, when set, win over it.
type GC struct {
	// MemoryFloor is the memory the connector's Go runtime may use before
	// its collector runs more often than Go's default (GOGC=100) would:
	// the collector starts near max(MemoryFloor, what GOGC=100 allows).
	// A backfill allocates fast with little alive, and collects a third
	// as often under the floor. 0: Go's default alone. Default 40MiB.
	MemoryFloor int64 `mapstructure:"memory_floor" unit:"bytes"`
}

// Log configures slog.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `mapstructure:"level" jsonschema:"enum=debug,enum=info,enum=warn,enum=error"`
	// Format is text (default) or json.
	Format string `mapstructure:"format" jsonschema:"enum=text,enum=json"`
	// StatusInterval is how often `run` logs a one-line status (events/s,
	// lag, confirmed LSN) at info level; 0 turns it off. Default 30s.
	StatusInterval time.Duration `mapstructure:"status_interval"`
}

// Table maps one table to events.
type Table struct {
	// Table is the schema-qualified table name, e.g. public.applications.
	Table string `mapstructure:"table" jsonschema:"required"`
	// Operations to publish: insert (default), update, delete.
	Operations []string `mapstructure:"operations" jsonschema:"enum=insert,enum=update,enum=delete"`
	// TopicARN overrides sns.topic_arn for this table.
	TopicARN string `mapstructure:"topic_arn"`
	// Type is the CloudEvents type prefix; the operation is appended
	// ("baitoru.applications" gives "baitoru.applications.insert").
	// Default: "baitoru.<table name without schema>".
	Type string `mapstructure:"type"`
	// Columns to publish, in order; a column not listed is not published.
	Columns []Column `mapstructure:"columns"`
	// Attributes are columns also sent as SNS message attributes (at most
	// 7, since table, op and type are always sent and SNS allows 10).
	Attributes []Attribute `mapstructure:"attributes"`
	// Key columns form the FIFO MessageGroupId and the event subject.
	Key []string `mapstructure:"key"`
	// Where is a row filter (a SQL boolean expression over the table's
	// columns) pushed into the publication by `setup`.
	Where string `mapstructure:"where"`
	// LargePayloads overrides publisher.large_payloads for this table:
	// each key left out takes the publisher's.
	LargePayloads LargePayloads `mapstructure:"large_payloads"`
}

// Column is one published column.
type Column struct {
	// Column is the name in the table (case-sensitive).
	Column string `mapstructure:"column" jsonschema:"required"`
	// Rename is the field name in the event's data; default: Column.
	Rename string `mapstructure:"rename"`
	// Transform changes the value before it is published, e.g. for
	// personal data: hash, mask, truncate or null. Default: none, the
	// value is published as it is.
	Transform Transform `mapstructure:"transform"`
}

// Transform is what is done to a column's value before it is published. A
// NULL stays null under every transform. Key columns take no transform.
type Transform struct {
	// Kind is hash (the lowercase hex HMAC-SHA-256 of the value under the
	// key in the environment variable key_env: equal values stay equal and
	// joinable, unreadable), mask (keep the first and last characters,
	// every other one becomes '*'), truncate (at most max_bytes bytes or
	// max_characters characters) or null (always null).
	Kind string `mapstructure:"kind" jsonschema:"required,enum=hash,enum=mask,enum=truncate,enum=null"`
	// KeyEnv (hash) names the environment variable holding the HMAC key
	// (at least 16 bytes; the key itself never sits in the file), e.g.
	// PII_HASH_KEY.
	KeyEnv string `mapstructure:"key_env"`
	// First (mask) is the number of characters kept at the start. Default 0.
	First int `mapstructure:"first"`
	// Last (mask) is the number of characters kept at the end. Default 0.
	// A value of first+last characters or fewer is masked whole.
	Last int `mapstructure:"last"`
	// MaxBytes (truncate) cuts the value to at most this many bytes of
	// UTF-8, never inside a character.
	MaxBytes int `mapstructure:"max_bytes"`
	// MaxCharacters (truncate) cuts the value to at most this many
	// characters.
	MaxCharacters int `mapstructure:"max_characters"`
}

// Attribute is one SNS message attribute: a published column's value, a
// value derived from it (transform), or a constant (value).
type Attribute struct {
	// Column is the table column (must be published). A column with a
	// transform gives its transformed value unless the attribute has its
	// own transform.
	Column string `mapstructure:"column"`
	// Value is a constant sent with every event of the table, instead of
	// a column (name is then required).
	Value string `mapstructure:"value"`
	// Transform derives the attribute from the column's value, e.g. a hash
	// of a column published masked; the same keys as a column's transform.
	Transform Transform `mapstructure:"transform"`
	// Name of the attribute; default: the column's published name.
	Name string `mapstructure:"name"`
	// Type is String (default) or Number.
	Type string `mapstructure:"type" jsonschema:"enum=String,enum=Number"`
}

// Sink is the SQS consumer that pushes events to Kobot.
type Sink struct {
	// DSN of the sink's own PostgreSQL database (links, delivery log).
	DSN string `mapstructure:"dsn"`
	// Password of the DSN's role, as Source.Password (moved into DSN by Load).
	Password string  `mapstructure:"password"`
	SQS      SinkSQS `mapstructure:"sqs"`
	// S3 is where the sink reads the events that the connector (or an
	// AWS extended client) stored in S3.
	S3 SinkS3 `mapstructure:"s3"`
	// Kobot is where events are pushed.
	Kobot Kobot `mapstructure:"kobot"`
	// API is the links API (also serves /metrics, /healthz, /readyz).
	API API `mapstructure:"api"`
	// Links says, per event type or table, which data field holds the
	// Baitoru link key (e.g. company_id).
	Links []LinkKey `mapstructure:"links"`
	// History is how the sink asks for a link's history: when Kobot starts
	// a link, the existing rows of every table of a links rule with
	// history (the default) are backfilled with the link key as the
	// filter, and pushed to that link only.
	History SinkHistory `mapstructure:"history"`
	// GC is how the sink server's Go garbage collector trades memory for
	// CPU.
	GC SinkGC `mapstructure:"gc"`
}

// SinkGC sets the garbage collector of the sink server (baitoru-cdc sink;
// not the Lambda function, whose memory is the function's own setting).
// The environment's GOGC and GOMEMLIMIT, when set, win over these.
type SinkGC struct {
	// Percent is the heap growth between collections, as GOGC: 400 lets
	// the heap grow to five times what is live before the next
	// collection, about a quarter of the collections of Go's default
	// (100). Default 400.
	Percent int `mapstructure:"percent"`
	// MemoryLimit is a soft limit on the memory the Go runtime uses, as
	// GOMEMLIMIT: as the heap nears it, collections come sooner whatever
	// Percent allows. 0: no limit. Default 256MiB.
	MemoryLimit int64 `mapstructure:"memory_limit" unit:"bytes"`
}

// SinkHistory is the sink's side of link-start backfills: a request is a
// row the sink inserts into Baitoru's database (baitoru_cdc.backfill_requests)
// as the least-privilege requester role; the connector streaming the slot
// reads it from its stream.
type SinkHistory struct {
	// DSN of Baitoru's database as the requester role (setup's script
	// describes it), without the password. Empty: links start without
	// history.
	DSN string `mapstructure:"dsn"`
	// Password of the DSN's role, as Source.Password (moved into DSN by
	// Load).
	Password string `mapstructure:"password"`
	// Slot names the connector that runs the backfills (its source.slot);
	// empty: whichever connector streaming that database reads the request
	// first.
	Slot string `mapstructure:"slot"`
	// IDPrefix starts the id of every link-start backfill
	// (<prefix>-<link id>-<table>): read events whose backfill id has it
	// go only to that link. Sinks of different link databases sharing one
	// Baitoru database need different prefixes. Default "link".
	IDPrefix string `mapstructure:"id_prefix"`
	// Interval is how often requests that Baitoru's database has not taken
	// yet (it was unreachable) are retried. Default 5s.
	Interval time.Duration `mapstructure:"interval"`
}

// SinkSQS is the queue the sink consumes.
type SinkSQS struct {
	Region   string `mapstructure:"region"`
	Endpoint string `mapstructure:"endpoint"`
	// QueueURL of the queue subscribed to the topic.
	QueueURL string `mapstructure:"queue_url"`
	// DLQURL receives messages that can never be delivered (bad events, 4xx).
	DLQURL string `mapstructure:"dlq_url"`
	// Concurrency is the number of concurrent long-polling consumers.
	// Default 4.
	Concurrency int `mapstructure:"concurrency"`
	// BatchSize is the number of messages per receive (1..10). Default 10.
	BatchSize int `mapstructure:"batch_size"`
	// WaitTime is the long-poll wait (0..20s). Default 20s.
	WaitTime time.Duration `mapstructure:"wait_time"`
	// VisibilityTimeout is how long a received message stays hidden.
	// Default 30s.
	VisibilityTimeout time.Duration `mapstructure:"visibility_timeout"`
}

// SinkS3 is how the sink reads events stored in S3: a message that points
// at an object is replaced by the object before the push.
type SinkS3 struct {
	// Region of the buckets; default: sink.sqs.region.
	Region string `mapstructure:"region"`
	// Endpoint overrides the AWS endpoint (emulators such as fauxqs).
	Endpoint string `mapstructure:"endpoint"`
	// MaxEventBytes bounds the size of an event read from S3; a larger
	// one goes to the DLQ. Default 16 MiB.
	MaxEventBytes int64 `mapstructure:"max_event_bytes"`
}

// Kobot is the push destination.
type Kobot struct {
	// Endpoint is the URL events are POSTed to.
	Endpoint string `mapstructure:"endpoint"`
	// Secret is the Standard Webhooks signing secret ("whsec_..."); use ${VAR}.
	Secret string `mapstructure:"secret"`
	// Timeout of one delivery attempt. Default 5s.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxAttempts per received message before it is left to SQS
	// redelivery. Default 3.
	MaxAttempts int `mapstructure:"max_attempts"`
	// Retry bounds the backoff between attempts. Default 200ms..5s.
	Retry Backoff `mapstructure:"retry"`
}

// API is the links API.
type API struct {
	// Listen address. Default ":8080".
	Listen string `mapstructure:"listen"`
	// Token is the bearer token; use ${VAR} or TokenFile.
	Token string `mapstructure:"token"`
	// TokenFile is a file holding the bearer token.
	TokenFile string `mapstructure:"token_file"`
}

// LinkKey names the link key field of one event type or table.
type LinkKey struct {
	// Type is a CloudEvents type (e.g. baitoru.applications.insert); or
	Type string `mapstructure:"type"`
	// Table is a schema-qualified table, matching every type of that table.
	Table string `mapstructure:"table"`
	// Field is the key in the event's data holding the link key.
	Field string `mapstructure:"field" jsonschema:"required"`
	// History: when a link starts, its existing rows of Table are sent to
	// it as read events (sink.history must name Baitoru's database).
	// Default true for a table rule; a type rule has none.
	History bool `mapstructure:"history"`
}
