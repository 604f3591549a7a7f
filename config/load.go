package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment override: the key path in
// upper case with "." replaced by "_", e.g. BAITORU_CDC_SOURCE_DSN for
// source.dsn and BAITORU_CDC_SINK_KOBOT_SECRET for sink.kobot.secret. Every
// scalar key outside a list can be overridden, whether or not the file has it.
const EnvPrefix = "BAITORU_CDC"

// Defaults of keys outside lists. Defaults inside lists (tables[].operations,
// tables[].type, tables[].attributes[].name and .type) depend on the item and
// are applied by applyListDefaults.
var defaults = map[string]any{
	"source.slot":                              "baitoru_cdc",
	"source.publication":                       "baitoru_cdc",
	"source.create":                            true,
	"source.status_interval":                   time.Second,
	"source.max_lag_bytes":                     int64(1 << 30),
	"source.reconnect.initial":                 500 * time.Millisecond,
	"source.reconnect.max":                     30 * time.Second,
	"source.on_table_loss":                     "continue",
	"source.streaming":                         true,
	"source.backfill.chunk_rows":               1000,
	"source.backfill.chunk_time":               500 * time.Millisecond,
	"source.backfill.max_queued_events":        5000,
	"source.backfill.live_chunk_rows":          250,
	"source.backfill.live_max_rows_per_second": 50000,
	"source.backfill.max_lag_bytes":            int64(256 << 20),
	"publisher.kind":                           "sns",
	"publisher.lanes":                          8,
	"publisher.max_inflight_events":            20000,
	"publisher.max_inflight_bytes":             int64(64 << 20),
	"publisher.shutdown_grace":                 10 * time.Second,
	"publisher.retry.initial":                  100 * time.Millisecond,
	"publisher.retry.max":                      10 * time.Second,
	"publisher.large_payloads.threshold":       int64(262144),
	"log.level":                                "info",
	"log.format":                               "text",
	"log.status_interval":                      30 * time.Second,
	"gc.memory_floor":                          int64(40 << 20),
	"sink.sqs.concurrency":                     4,
	"sink.sqs.batch_size":                      10,
	"sink.sqs.wait_time":                       20 * time.Second,
	"sink.sqs.visibility_timeout":              30 * time.Second,
	"sink.s3.max_event_bytes":                  int64(16 << 20),
	"sink.kobot.timeout":                       5 * time.Second,
	"sink.kobot.max_attempts":                  3,
	"sink.kobot.retry.initial":                 200 * time.Millisecond,
	"sink.kobot.retry.max":                     5 * time.Second,
	"sink.api.listen":                          ":8080",
	"sink.history.id_prefix":                   "link",
	"sink.history.interval":                    5 * time.Second,
	"sink.gc.percent":                          400,
	"sink.gc.memory_limit":                     int64(256 << 20),
}

// Defaults returns the configuration an empty file gives: every key at its
// default, no table, no sink. It is for code that builds the runtime
// without a file (tests, tools), so that even then the defaults are
// config's.
func Defaults() *Config {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	var cfg Config
	if err := v.Unmarshal(&cfg); err != nil {
		panic("config: the defaults do not decode: " + err.Error()) // a bug in the table above
	}
	cfg.meta = &meta{lines: map[string]int{}, env: map[string]string{}, bad: map[string]bool{}}
	cfg.applyLargePayloadDefaults()
	cfg.applyStreamDefaults()
	return &cfg
}

// meta is what Load learned about where each value came from; the Validate
// methods use it to locate problems.
type meta struct {
	lines                 map[string]int    // key path -> line of its key in the file
	env                   map[string]string // key path -> environment variable that set it
	bad                   map[string]bool   // paths already reported by Load; checks below them are skipped
	expand                Problems          // ${VAR} problems, validated with their section
	warnings              Problems          // see Config.Warnings
	hasConnector, hasSink bool
}

// Load reads the configuration file at path, applies environment overrides,
// expands ${VAR} references and defaults, and validates every section the
// file (or the environment) configures: the connector's when any of source,
// sns, publisher, metrics or tables is set (or when nothing is), the sink's
// when sink is set. It is what `baitoru-cdc validate` runs.
//
// The error is nil or Problems listing every problem, each with file, line
// and key path; the Config is nil whenever the error is not. A command that
// needs only one section, from a file that may configure both, should use
// LoadConnector or LoadSink, so that an unset ${VAR} of the other section
// (e.g. the sink's webhook secret in the connector's environment) does not
// stop it.
func Load(path string) (*Config, error) {
	return load(path, (*Config).validatePresent)
}

// LoadConnector is Load for `run`, `setup`, `check` and `teardown`: it
// validates only what the connector reads (source, sns, publisher, metrics,
// tables, log).
func LoadConnector(path string) (*Config, error) {
	return load(path, (*Config).validateConnector)
}

// LoadSink is Load for `sink`: it validates only sink and log.
func LoadSink(path string) (*Config, error) {
	return load(path, (*Config).validateSink)
}

func load(path string, validate func(*Config) Problems) (*Config, error) {
	cfg, ps := read(path, os.LookupEnv)
	if cfg == nil {
		return nil, ps.err()
	}
	cfg.meta.warnings = unknownVariables(path, os.Environ())
	ps = append(ps, validate(cfg)...)
	if len(ps) > 0 {
		// A misspelled variable is a likely cause: list it with the rest.
		return nil, append(ps, cfg.meta.warnings...).err()
	}
	cfg.Source.DSN, cfg.Source.Password = withPassword(cfg.Source.DSN, cfg.Source.Password), ""
	cfg.Sink.DSN, cfg.Sink.Password = withPassword(cfg.Sink.DSN, cfg.Sink.Password), ""
	h := &cfg.Sink.History
	h.DSN, h.Password = withPassword(h.DSN, h.Password), ""
	return cfg, nil
}

// readProblem says why the configuration file cannot be read, and the fix.
func readProblem(path string, err error) string {
	msg := fmt.Sprintf("cannot read the file: %v", err)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return msg + "; fix: name the configuration file with --config FILE (the default is config.yaml in the current directory)"
	case errors.Is(err, fs.ErrPermission):
		return msg + "; fix: make it readable by the user running the command, or run it as the file's owner"
	case errors.Is(err, syscall.EISDIR):
		return msg + fmt.Sprintf("; fix: --config takes the file, not its directory, e.g. --config %s", filepath.Join(path, "config.yaml"))
	}
	return msg
}

// read parses, decodes and expands the file. It returns a nil Config only
// when the file cannot be read or parsed; otherwise the Config has every
// usable value and Problems lists what was wrong with the rest (unknown keys,
// values of the wrong type, bad environment overrides).
func read(path string, lookup func(string) (string, bool)) (*Config, Problems) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, Problems{{File: path, Message: readProblem(path, err)}}
	}
	root, ps := parseYAML(path, data)
	if ps != nil {
		return nil, ps
	}
	w := newWalker(path)
	clean := emptyMap()
	if root != nil {
		clean = w.walkStruct(root, reflect.TypeOf(Config{}), "")
	}
	ps = w.problems
	if w.tooBig {
		return nil, ps // the walk stopped part way: other checks would mislead
	}
	m := &meta{lines: w.lines, env: map[string]string{}, bad: w.bad}

	text, err := yaml.Marshal(clean)
	if err != nil {
		return nil, append(ps, Problem{File: path, Message: fmt.Sprintf("cannot re-encode the document: %v", err)})
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(text)); err != nil {
		return nil, append(ps, Problem{File: path, Message: fmt.Sprintf("cannot decode the document: %v", err)})
	}
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	for _, l := range envLeaves() {
		val, ok := lookup(l.env)
		if !ok || val == "" { // viper's rule: an empty variable is unset
			continue
		}
		if _, msg := scalar(l.kind, val, true); msg != "" {
			ps = append(ps, Problem{File: path, Env: l.env, Path: l.path, Message: msg})
			m.bad[l.path] = true
			continue
		}
		if err := v.BindEnv(l.path, l.env); err != nil {
			return nil, append(ps, Problem{File: path, Env: l.env, Path: l.path, Message: err.Error()})
		}
		m.env[l.path] = l.env
	}

	var cfg Config
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		byteSizeHook,
	))
	if err := v.Unmarshal(&cfg, hook); err != nil {
		// Unreachable after the walk and the checks above; the error text
		// could quote a value, so it is not shown.
		return nil, append(ps, Problem{File: path, Message: "cannot decode the configuration (a value has the wrong type)"})
	}
	cfg.File = path
	cfg.meta = m
	m.hasConnector, m.hasSink = sections(m)

	eachString(reflect.ValueOf(&cfg).Elem(), "", func(p string, s *string) {
		if _, fromEnv := m.env[p]; fromEnv {
			return // environment values are taken as they are
		}
		out, msgs := expand(*s, lookup)
		*s = out
		for _, msg := range msgs {
			m.expand = append(m.expand, cfg.problem(p, msg))
			m.bad[p] = true
		}
	})
	cfg.applyListDefaults()
	cfg.applyLargePayloadDefaults()
	cfg.applyStreamDefaults()
	return &cfg, ps
}

// StreamMemoryShare is the part of publisher.max_inflight_bytes that
// source.stream_memory_bytes defaults to (an eighth).
const StreamMemoryShare = 8

// applyStreamDefaults gives source.stream_memory_bytes its default, which
// depends on publisher.max_inflight_bytes (never below 1, so that an
// invalid max_inflight_bytes is reported once, at its own key).
func (c *Config) applyStreamDefaults() {
	if !c.meta.has("source.stream_memory_bytes") {
		c.Source.StreamMemoryBytes = max(c.Publisher.MaxInflightBytes/StreamMemoryShare, 1)
	}
}

// sections says which of the connector's and the sink's sections are set.
func sections(m *meta) (connector, sink bool) {
	check := func(p string) {
		switch top, _, _ := strings.Cut(strings.SplitN(p, "[", 2)[0], "."); top {
		case "sink":
			sink = true
		case "source", "sns", "s3", "publisher", "metrics", "gc", "tables":
			connector = true
		}
	}
	for p := range m.lines {
		check(p)
	}
	for p := range m.env {
		check(p)
	}
	return connector, sink
}

// Warnings are what Load noticed that does not stop a command, one line
// each: BAITORU_CDC_* variables that name no key (with the closest one
// that does), which would otherwise be ignored silently. Commands print or
// log them.
func (c *Config) Warnings() Problems {
	if c.meta == nil {
		return nil
	}
	return c.meta.warnings
}

// HasConnector reports whether the file or the environment configures the
// connector (any of source, sns, s3, publisher, metrics, gc, tables).
func (c *Config) HasConnector() bool { return c.meta != nil && c.meta.hasConnector }

// HasSink reports whether the file or the environment configures the sink.
func (c *Config) HasSink() bool { return c.meta != nil && c.meta.hasSink }

func byteSizeHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeOf(int64(0)) {
		return data, nil
	}
	return ParseByteSize(reflect.ValueOf(data).String())
}

// envLeaf is one key that an environment variable can override.
type envLeaf struct {
	path, env string
	kind      kind
}

// envLeaves lists every scalar key outside lists, with its variable name.
func envLeaves() []envLeaf {
	var out []envLeaf
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for _, f := range fieldsOf(t) {
			p := join(path, f.name)
			switch f.kind {
			case kindStruct:
				walk(f.typ, p)
			case kindStructs, kindStrings:
				// lists cannot be overridden one item at a time
			default:
				out = append(out, envLeaf{path: p, env: EnvName(p), kind: f.kind})
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// EnvName is the environment variable overriding key path p, e.g.
// "sink.kobot.secret" gives "BAITORU_CDC_SINK_KOBOT_SECRET".
func EnvName(p string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(p, ".", "_"))
}

// has reports whether key path p was set by the file or the environment.
func (m *meta) has(p string) bool {
	if m == nil {
		return false
	}
	if _, ok := m.lines[p]; ok {
		return true
	}
	_, ok := m.env[p]
	return ok
}

// applyListDefaults fills the defaults that depend on a list item:
// operations [insert], type "baitoru.<table name>", attribute type String
// and attribute name = the column's published name. A key written empty in
// the file keeps its empty value, so that validation can report it.
func (c *Config) applyListDefaults() {
	for i := range c.Sink.Links {
		l := &c.Sink.Links[i]
		if l.Table != "" && !c.meta.has(fmt.Sprintf("sink.links[%d].history", i)) {
			l.History = true
		}
	}
	for i := range c.Tables {
		t := &c.Tables[i]
		p := fmt.Sprintf("tables[%d]", i)
		if len(t.Operations) == 0 && !c.meta.has(p+".operations") {
			t.Operations = []string{"insert"}
		}
		if t.Type == "" && !c.meta.has(p+".type") {
			if _, name, ok := strings.Cut(t.Table, "."); ok && name != "" {
				t.Type = "baitoru." + name
			}
		}
		published := map[string]string{}
		for _, col := range t.Columns {
			if _, seen := published[col.Column]; seen {
				continue
			}
			published[col.Column] = col.Column
			if col.Rename != "" {
				published[col.Column] = col.Rename
			}
		}
		for k := range t.Attributes {
			a := &t.Attributes[k]
			ap := fmt.Sprintf("%s.attributes[%d]", p, k)
			if a.Type == "" && !c.meta.has(ap+".type") {
				a.Type = "String"
			}
			if a.Name == "" && !c.meta.has(ap+".name") {
				a.Name = published[a.Column]
				if a.Name == "" {
					a.Name = a.Column
				}
			}
		}
	}
}
