package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Size limits of what the parser accepts.
const (
	// MaxMessageBytes is the largest SQS message body (1 MiB, SQS's limit).
	MaxMessageBytes = 1 << 20
	// MaxEventBytes is the largest event (256 KiB, SNS's limit).
	MaxEventBytes = 256 << 10
	// maxIDBytes bounds the event id (it becomes an HTTP header and a key).
	maxIDBytes = 256
	// MaxLinkKeyBytes bounds link keys and Kobot account ids.
	MaxLinkKeyBytes = 256
)

// Reason codes of messages sent to the DLQ (the reason_code attribute).
const (
	CodeTooLarge        = "too_large"
	CodeInvalidJSON     = "invalid_json"
	CodeInvalidEnvelope = "invalid_envelope"
	CodeMissingField    = "missing_field"
	CodeInvalidField    = "invalid_field"
	CodeReservedField   = "reserved_field"
	CodeNoLinkRule      = "no_link_rule"
	CodeMissingLinkKey  = "missing_link_key"
	CodeInvalidLinkKey  = "invalid_link_key"
	CodeKobotRejected   = "kobot_rejected"
)

// ErrInvalidEvent is wrapped by every error about a message that is not a
// usable event. Such messages go to the DLQ; retrying cannot fix them.
var ErrInvalidEvent = errors.New("invalid event")

// InvalidError says why a message is not a usable event.
type InvalidError struct {
	Code   string // one of the Code* constants
	Reason string
}

func (e *InvalidError) Error() string { return e.Reason }
func (e *InvalidError) Unwrap() error { return ErrInvalidEvent }

func invalid(code, format string, a ...any) error {
	return &InvalidError{Code: code, Reason: fmt.Sprintf(format, a...)}
}

// Event is a CloudEvent taken from a queue message.
type Event struct {
	ID     string
	Type   string
	Source string
	Table  string // the "table" extension; empty when absent
	// Backfill is the "backfill" extension of a read event (the backfill
	// that re-sent the row); empty for live changes.
	Backfill string
	Time     time.Time // the "time" attribute (commit time); zero when absent
	// Body is the CloudEvent JSON object exactly as published (for an SNS
	// envelope, the decoded Message). It never has a kobotaccount member.
	Body []byte
	// Data holds the members of the "data" object; nil when data is absent
	// or not an object.
	Data map[string]json.RawMessage
}

// ParseMessage reads an SQS message body holding either a raw-delivered
// CloudEvent or an SNS notification envelope ({"Type":"Notification",
// "Message":"<event JSON>",...}). Every error wraps ErrInvalidEvent and is an
// *InvalidError. Safe for concurrent use.
func ParseMessage(body []byte) (*Event, error) {
	if len(body) > MaxMessageBytes {
		return nil, invalid(CodeTooLarge, "message is %d bytes, over the %d byte limit", len(body), MaxMessageBytes)
	}
	top, err := objectMembers(body)
	if err != nil {
		return nil, invalid(CodeInvalidJSON, "message is not a JSON object: %v", err)
	}
	if _, ce := top["specversion"]; !ce {
		if t, ok := top["Type"]; ok {
			return parseEnvelope(t, top)
		}
	}
	return parseEvent(body, top)
}

func parseEnvelope(typ json.RawMessage, top map[string]json.RawMessage) (*Event, error) {
	var t string
	if json.Unmarshal(typ, &t) != nil || t != "Notification" {
		return nil, invalid(CodeInvalidEnvelope, "SNS envelope Type is %s, want \"Notification\"", clip(typ))
	}
	raw, ok := top["Message"]
	if !ok {
		return nil, invalid(CodeInvalidEnvelope, "SNS envelope has no Message")
	}
	var msg string
	if err := json.Unmarshal(raw, &msg); err != nil {
		return nil, invalid(CodeInvalidEnvelope, "SNS envelope Message is not a string")
	}
	ev := []byte(msg)
	if len(ev) > MaxEventBytes {
		return nil, invalid(CodeTooLarge, "event is %d bytes, over the %d byte limit", len(ev), MaxEventBytes)
	}
	members, err := objectMembers(ev)
	if err != nil {
		return nil, invalid(CodeInvalidJSON, "SNS envelope Message is not a JSON object: %v", err)
	}
	return parseEvent(ev, members)
}

func parseEvent(body []byte, m map[string]json.RawMessage) (*Event, error) {
	if len(body) > MaxEventBytes {
		return nil, invalid(CodeTooLarge, "event is %d bytes, over the %d byte limit", len(body), MaxEventBytes)
	}
	return parseEventAnySize(body, m)
}

// ParseStoredEvent reads an event that was stored in S3 because it was too
// large for SNS (see PayloadStore): a CloudEvent JSON object, of any size
// (the caller bounds it). Errors as ParseMessage's.
func ParseStoredEvent(body []byte) (*Event, error) {
	top, err := objectMembers(body)
	if err != nil {
		return nil, invalid(CodeInvalidJSON, "stored event is not a JSON object: %v", err)
	}
	return parseEventAnySize(body, top)
}

func parseEventAnySize(body []byte, m map[string]json.RawMessage) (*Event, error) {
	if !utf8.Valid(body) {
		return nil, invalid(CodeInvalidJSON, "event is not valid UTF-8")
	}
	spec, err := stringField(m, "specversion", true)
	if err != nil {
		return nil, err
	}
	if spec != "1.0" {
		return nil, invalid(CodeInvalidField, "specversion is %q, want \"1.0\"", clipString(spec))
	}
	e := &Event{Body: body}
	if e.ID, err = stringField(m, "id", true); err != nil {
		return nil, err
	}
	if !validID(e.ID) {
		return nil, invalid(CodeInvalidField, "id must be 1..%d printable ASCII characters", maxIDBytes)
	}
	if e.Type, err = stringField(m, "type", true); err != nil {
		return nil, err
	}
	if e.Source, err = stringField(m, "source", true); err != nil {
		return nil, err
	}
	if e.Table, err = stringField(m, "table", false); err != nil {
		return nil, err
	}
	if e.Backfill, err = stringField(m, "backfill", false); err != nil {
		return nil, err
	}
	ts, err := stringField(m, "time", false)
	if err != nil {
		return nil, err
	}
	if ts != "" {
		if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, invalid(CodeInvalidField, "time %q is not RFC 3339", clipString(ts))
		}
	}
	if _, ok := m["kobotaccount"]; ok {
		return nil, invalid(CodeReservedField, "event has the kobotaccount attribute the sink adds")
	}
	if raw, ok := m["data"]; ok && len(raw) > 0 && raw[0] == '{' {
		data, err := objectMembers(raw)
		if err != nil {
			return nil, invalid(CodeInvalidField, "data: %v", err)
		}
		e.Data = data
	}
	return e, nil
}

// stringField returns member name as a string. A present member must be a
// non-empty string of valid UTF-8; an absent one is an error when required.
func stringField(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", invalid(CodeMissingField, "event has no %q", name)
		}
		return "", nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", invalid(CodeInvalidField, "%q is %s, want a string", name, jsonKind(raw))
	}
	s, ok := plainString(raw)
	if !ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalid(CodeInvalidField, "%q is not a valid string", name)
		}
	}
	if s == "" {
		return "", invalid(CodeMissingField, "%q is empty", name)
	}
	if !utf8.ValidString(s) {
		return "", invalid(CodeInvalidField, "%q is not valid UTF-8", name)
	}
	return s, nil
}

// plainString returns the JSON string raw (a well-formed JSON string, as
// objectMembers returns it) when it has no escape and is valid UTF-8: then
// its value is its bytes, as json.Unmarshal would decode them.
func plainString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

// objectMembers decodes a JSON object's members, keeping member names exactly
// (encoding/json's struct decoding matches names case-insensitively, and
// "Type" of an SNS envelope must not be confused with "type" of an event).
// A duplicate member name is an error, so the sink and Kobot cannot read
// different values from the same document.
//
// Well-formed objects whose member names are plain ASCII (the normal case)
// are read by a hand-written scanner (scanObject) without a json.Decoder;
// anything else, including every malformed input, is read by the
// json.Decoder path, which decides the error.
func objectMembers(b []byte) (map[string]json.RawMessage, error) {
	if m, ok := scanObject(b); ok {
		return m, nil
	}
	return decodeObjectMembers(b)
}

// decodeObjectMembers is objectMembers with a json.Decoder: the reference
// behaviour, and the path of every input scanObject does not take.
func decodeObjectMembers(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("not JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("a JSON %s, want an object", tokenKind(tok))
	}
	m := make(map[string]json.RawMessage, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("malformed JSON")
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("malformed JSON")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("malformed JSON")
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %q appears twice", clipString(name))
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errors.New("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// LinkKey returns the link key held by member field of the event's data, a
// string or a number, in canonical form (CanonicalKey: 7, 7.0, 7e0 and "7"
// are the same key).
func (e *Event) LinkKey(field string) (string, error) {
	raw, ok := e.Data[field]
	if !ok || string(raw) == "null" {
		return "", invalid(CodeMissingLinkKey, "event %s has no data.%s link key", e.ID, clipString(field))
	}
	var key string
	switch raw[0] {
	case '"':
		var plain bool
		if key, plain = plainString(raw); plain {
			break
		}
		if err := json.Unmarshal(raw, &key); err != nil {
			return "", invalid(CodeInvalidLinkKey, "event %s data.%s is not a valid string", e.ID, clipString(field))
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		key = string(raw)
	default:
		return "", invalid(CodeInvalidLinkKey, "event %s data.%s is %s, want a string or number", e.ID, clipString(field), jsonKind(raw))
	}
	key, err := CanonicalKey(key)
	if err != nil {
		return "", invalid(CodeInvalidLinkKey, "event %s data.%s %v", e.ID, clipString(field), err)
	}
	return key, nil
}

// ValidateKey checks a link key or Kobot account id: 1..256 bytes of valid
// UTF-8 without control characters.
func ValidateKey(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > MaxLinkKeyBytes:
		return fmt.Errorf("is longer than %d bytes", MaxLinkKeyBytes)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return errors.New("contains a control character")
		}
	}
	return nil
}

func validID(s string) bool {
	if s == "" || len(s) > maxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "array"
		}
		return "delimiter"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	default:
		return "null"
	}
}

// clip shortens raw JSON for an error message.
func clip(raw json.RawMessage) string { return clipString(string(raw)) }

func clipString(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
