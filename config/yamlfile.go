package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file reads the YAML text itself (not through viper) to report what
// viper cannot: syntax errors with their line, unknown keys, values of the
// wrong type, and the line of every key path. The walk produces a clean copy
// of the document (aliases and merge keys resolved, bad entries dropped,
// every scalar retagged to its field's type) that viper then decodes, so one
// bad value never hides the other problems.

// kind is how a struct field is written in YAML.
type kind int

const (
	kindString   kind = iota
	kindBool          // true or false
	kindInt           // an integer
	kindBytes         // int64 field whose key ends in "_bytes" or tagged unit:"bytes": 67108864, "64MiB", "1GB"
	kindDuration      // time.Duration: "10s"
	kindStrings       // []string
	kindStruct        // nested mapping
	kindStructs       // list of mappings
)

func (k kind) expected() string {
	switch k {
	case kindBool:
		return "true or false"
	case kindInt:
		return "an integer"
	case kindBytes:
		return `a byte size (e.g. 67108864, "64MiB", "1GB")`
	case kindDuration:
		return `a duration (e.g. "10s", "500ms", "1m30s")`
	case kindStrings:
		return "a list of strings"
	case kindStruct:
		return "a mapping of keys"
	case kindStructs:
		return `a list (one item per line, starting with "- ")`
	}
	return "a string"
}

// field is one key of a struct as written in the file.
type field struct {
	name  string       // mapstructure tag
	kind  kind         //
	typ   reflect.Type // element struct type for kindStruct and kindStructs
	index int          // struct field index
}

var durationType = reflect.TypeOf(time.Duration(0))

// fieldsOf lists the keys of a config struct type, in declaration order.
// Fields tagged "-" and unexported fields are not keys.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("mapstructure")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		f := field{name: name, index: i}
		switch {
		case sf.Type == durationType:
			f.kind = kindDuration
		case sf.Type.Kind() == reflect.String:
			f.kind = kindString
		case sf.Type.Kind() == reflect.Bool:
			f.kind = kindBool
		case sf.Type.Kind() == reflect.Int64 && (strings.HasSuffix(name, "_bytes") || sf.Tag.Get("unit") == "bytes"):
			f.kind = kindBytes
		case sf.Type.Kind() == reflect.Int || sf.Type.Kind() == reflect.Int64:
			f.kind = kindInt
		case sf.Type.Kind() == reflect.Struct:
			f.kind, f.typ = kindStruct, sf.Type
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.String:
			f.kind = kindStrings
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Struct:
			f.kind, f.typ = kindStructs, sf.Type.Elem()
		default:
			panic(fmt.Sprintf("config: field %s.%s has a type the file format does not support", t.Name(), sf.Name))
		}
		fs = append(fs, f)
	}
	return fs
}

// maxNodes bounds the nodes visited, so aliases that expand exponentially
// ("billion laughs") end in a problem instead of exhausting memory.
const maxNodes = 100_000

// walker checks a parsed document against the Config structs.
type walker struct {
	file     string
	lines    map[string]int  // key path -> line of its key (or list item)
	bad      map[string]bool // paths with a problem here; checks below them are skipped
	problems Problems
	nodes    int
	tooBig   bool
}

func newWalker(file string) *walker {
	return &walker{file: file, lines: map[string]int{}, bad: map[string]bool{}}
}

func (w *walker) problem(line int, path, format string, args ...any) {
	w.problems = append(w.problems, Problem{File: w.file, Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
	w.bad[path] = true
}

func (w *walker) mark(path string, line int) {
	if _, ok := w.lines[path]; !ok {
		w.lines[path] = line
	}
}

// visit counts a node against maxNodes; false means stop walking.
func (w *walker) visit(n *yaml.Node) bool {
	w.nodes++
	if w.nodes > maxNodes {
		if !w.tooBig {
			w.tooBig = true
			w.problems = append(w.problems, Problem{File: w.file, Line: n.Line,
				Message: fmt.Sprintf("the document expands to more than %d values (aliases?); simplify it", maxNodes)})
		}
		return false
	}
	return true
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a plain value" // never echoed: it could be a secret in the wrong place
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func emptyMap() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

type pair struct{ key, value *yaml.Node }

// pairs lists a mapping's entries: its own keys first, then those brought in
// by merge keys ("<<: *defaults") that it does not set itself.
func (w *walker) pairs(n *yaml.Node, path string, depth int) []pair {
	var own, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if !w.visit(k) {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			w.problem(k.Line, path, "a key must be a plain name, not %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			if depth > 10 {
				w.problem(k.Line, path, "merge keys (<<) nested too deeply")
				continue
			}
			src := resolve(v)
			var srcs []*yaml.Node
			switch {
			case src != nil && src.Kind == yaml.MappingNode:
				srcs = []*yaml.Node{src}
			case src != nil && src.Kind == yaml.SequenceNode:
				for _, s := range src.Content {
					srcs = append(srcs, resolve(s))
				}
			}
			for _, s := range srcs {
				if s == nil || s.Kind != yaml.MappingNode {
					w.problem(k.Line, path, "<< must merge a mapping or a list of mappings")
					continue
				}
				merged = append(merged, w.pairs(s, path, depth+1)...)
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.problem(k.Line, join(path, k.Value), "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; ok {
			continue
		}
		seen[p.key.Value] = p.key.Line
		own = append(own, p)
	}
	return own
}

// walkStruct checks mapping n against struct type t and returns its clean copy.
func (w *walker) walkStruct(n *yaml.Node, t reflect.Type, path string) *yaml.Node {
	out := emptyMap()
	fields := fieldsOf(t)
	for _, p := range w.pairs(n, path, 0) {
		if w.tooBig {
			break
		}
		name := p.key.Value
		child := join(path, name)
		f, ok := lookupField(fields, name)
		if !ok {
			msg, suggestion := unknownKey(name, fields)
			w.problem(p.key.Line, child, "%s", msg)
			if suggestion != "" {
				// "colums:" was meant as columns: do not also say columns is missing.
				w.bad[join(path, suggestion)] = true
			}
			continue
		}
		w.mark(child, p.key.Line)
		if v := w.value(p.value, f, child); v != nil {
			out.Content = append(out.Content, strNode(name), v)
		}
	}
	return out
}

func lookupField(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// value checks the value of one key; nil means "leave the key out".
// list walks the items of the sequence n (at path) with each, which gets an
// item (aliases resolved) and its path, and returns what each made of them.
func (w *walker) list(n *yaml.Node, path string, each func(item *yaml.Node, path string) *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		item = resolve(item)
		if w.tooBig || !w.visit(item) {
			break
		}
		w.mark(ip, item.Line)
		out.Content = append(out.Content, each(item, ip))
	}
	return out
}

func (w *walker) value(n *yaml.Node, f field, path string) *yaml.Node {
	n = resolve(n)
	if isNull(n) || !w.visit(n) {
		return nil
	}
	switch f.kind {
	case kindStruct:
		if n.Kind != yaml.MappingNode {
			w.problem(n.Line, path, "expected %s, got %s", f.kind.expected(), describe(n))
			return nil
		}
		return w.walkStruct(n, f.typ, path)
	case kindStructs:
		if n.Kind != yaml.SequenceNode {
			w.problem(n.Line, path, "expected %s, got %s", f.kind.expected(), describe(n))
			return nil
		}
		return w.list(n, path, func(item *yaml.Node, ip string) *yaml.Node {
			switch {
			case isNull(item):
				return emptyMap()
			case item.Kind != yaml.MappingNode:
				w.problem(item.Line, ip, "expected a mapping of keys, got %s%s", describe(item), itemHint(f.typ, item))
				return emptyMap()
			}
			return w.walkStruct(item, f.typ, ip)
		})
	case kindStrings:
		if n.Kind != yaml.SequenceNode {
			w.problem(n.Line, path, "expected a list, e.g. %s, got %s", listExample(f.name), describe(n))
			return nil
		}
		return w.list(n, path, func(item *yaml.Node, ip string) *yaml.Node {
			switch {
			case isNull(item):
				return strNode("")
			case item.Kind != yaml.ScalarNode:
				w.problem(item.Line, ip, "expected a string, got %s", describe(item))
				return strNode("")
			}
			return strNode(item.Value)
		})
	}
	if n.Kind != yaml.ScalarNode {
		w.problem(n.Line, path, "expected %s, got %s", f.kind.expected(), describe(n))
		return nil
	}
	v, msg := scalar(f.kind, n.Value, n.Tag == "!!str")
	if msg != "" && strings.Contains(n.Value, "${") {
		msg = "${...} is expanded in string values only"
		if !strings.Contains(path, "[") {
			msg += "; set this key from the environment with " + EnvName(path)
		}
	}
	if msg != "" {
		w.problem(n.Line, path, "%s", msg)
		return nil
	}
	return v
}

func listExample(key string) string {
	switch key {
	case "operations":
		return "[insert, update]"
	case "key":
		return "[company_id]"
	}
	return "[a, b]"
}

// itemHint suggests the right form for the common mistake "columns: [id, name]".
func itemHint(t reflect.Type, n *yaml.Node) string {
	if t == reflect.TypeOf(Column{}) && n.Kind == yaml.ScalarNode {
		return fmt.Sprintf(`; write "- column: %s"`, n.Value)
	}
	return ""
}

// scalar converts the text of a scalar to a clean node of kind k, or returns
// a message saying why it cannot. quoted is true for a YAML string (so
// "8" is accepted for an integer, as environment variables are).
func scalar(k kind, text string, quoted bool) (*yaml.Node, string) {
	switch k {
	case kindBool:
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "true":
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"}, ""
		case "false":
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"}, ""
		}
		return nil, fmt.Sprintf("%q is not true or false", text)
	case kindInt:
		n, err := parseInt(text, quoted)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Sprintf("%s is out of range", text)
			}
			return nil, fmt.Sprintf("%q is not an integer", text)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(n, 10)}, ""
	case kindBytes:
		n, err := parseInt(text, quoted)
		if err != nil {
			n, err = ParseByteSize(text)
		}
		if err != nil {
			return nil, fmt.Sprintf("%q is not %s", text, k.expected())
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(n, 10)}, ""
	case kindDuration:
		s := strings.TrimSpace(text)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n != 0 {
				return nil, fmt.Sprintf(`%s has no unit; write a duration such as "%ss" or "%sms"`, s, s, s)
			}
			return strNode("0s"), ""
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Sprintf("%q is not %s", text, k.expected())
		}
		return strNode(d.String()), ""
	}
	return strNode(text), ""
}

func parseInt(text string, quoted bool) (int64, error) {
	s := strings.TrimSpace(text)
	if quoted {
		return strconv.ParseInt(s, 10, 64)
	}
	return strconv.ParseInt(s, 0, 64) // YAML allows 0x1F, 0o17
}

// unknownKey says a key is not known and suggests the closest known one
// (returned too, "" when none is close).
func unknownKey(name string, fields []field) (msg, suggestion string) {
	best, bestDist := "", 1<<30
	for _, f := range fields {
		d := editDistance(strings.ToLower(name), f.name)
		if d < bestDist {
			best, bestDist = f.name, d
		}
	}
	if best != "" && (bestDist <= 1 || bestDist <= len(name)/3) {
		return fmt.Sprintf("unknown key; did you mean %s?", best), best
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sort.Strings(names)
	return "unknown key; known keys here: " + strings.Join(names, ", "), ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours cost 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxBadLineSearch bounds the files firstBadLine searches (it parses up to
// one prefix per line).
const maxBadLineSearch = 2000

// firstBadLine finds the line a YAML syntax error is on: one after the
// longest prefix of whole lines that still parses. The parser's own line
// is often the start of the enclosing block (and 0-based), not the line to
// fix. 0 when it cannot tell (a file that parses, or a long one).
func firstBadLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxBadLineSearch {
		return 0
	}
	for n := len(lines) - 1; n >= 0; n-- {
		var doc yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(bytes.Join(lines[:n], nil)))
		ok := true
		for {
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				ok = false
				break
			}
		}
		if ok {
			if n == len(lines)-1 && len(bytes.TrimSpace(lines[n])) == 0 {
				return 0 // the whole file parses
			}
			return n + 1
		}
	}
	return 0
}

// parseYAML parses the file into its root node (nil for an empty file). A
// non-nil Problems means the file cannot be read at all.
func parseYAML(file string, data []byte) (root *yaml.Node, ps Problems) {
	defer func() {
		if r := recover(); r != nil { // a parser bug must not take the caller down
			root, ps = nil, Problems{{File: file, Message: "YAML syntax error: the parser failed on this file"}}
		}
	}()
	syntax := func(err error) Problems {
		p := Problem{File: file}
		msg := err.Error()
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		if l := firstBadLine(data); l > 0 {
			p.Line = l
		}
		p.Message = "YAML syntax error: " + strings.TrimPrefix(msg, "yaml: ")
		return Problems{p}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntax(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, Problems{{File: file, Line: next.Line, Message: "a second YAML document (---) is not supported; keep one document per file"}}
	case !errors.Is(err, io.EOF):
		return nil, syntax(err)
	}
	root = &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: root.Line, Message: "expected a mapping of keys (source:, sns:, tables:, ...), got " + describe(root)}}
	}
	return root, nil
}
