package config

import (
	"fmt"
	"os"
	"regexp"

	"github.com/baitoru/baitoru-cdc/connector"
)

// minHashKey is the shortest HMAC key accepted: a shorter one can be
// guessed, and then every hashed value read back by trying candidates.
const minHashKey = 16

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var transformKinds = []string{"hash", "mask", "truncate", "null"}

// lookupEnv reads the hash keys; a variable of the process, read at every
// load (start and reload), never written in the file.
var lookupEnv = os.LookupEnv

// hasTransform reports whether a transform is written at key path p.
func (k *checker) hasTransform(p string, tf Transform) bool {
	return k.c.meta.has(p) || tf != (Transform{})
}

// transform checks one column's or attribute's transform at key path p.
func (k *checker) transform(p string, tf Transform) {
	switch tf.Kind {
	case "":
		k.add(p+".kind", "required: hash, mask, truncate or null")
		return
	case "hash":
		k.hashKey(p, tf.KeyEnv)
	case "mask":
		if tf.First < 0 {
			k.add(p+".first", "%d is negative; the number of characters kept at the start, e.g. 1", tf.First)
		}
		if tf.Last < 0 {
			k.add(p+".last", "%d is negative; the number of characters kept at the end, e.g. 4", tf.Last)
		}
	case "truncate":
		if tf.MaxBytes < 0 {
			k.add(p+".max_bytes", "%d is negative; at most this many bytes are kept, e.g. 200", tf.MaxBytes)
		}
		if tf.MaxCharacters < 0 {
			k.add(p+".max_characters", "%d is negative; at most this many characters are kept, e.g. 100", tf.MaxCharacters)
		}
		if tf.MaxBytes == 0 && tf.MaxCharacters == 0 {
			k.add(p, "truncate needs max_bytes or max_characters (a positive number), e.g. max_characters: 100")
		}
	case "null":
	default:
		msg := fmt.Sprintf("%q is not a transform; use hash, mask, truncate or null", tf.Kind)
		if s := closest(tf.Kind, transformKinds); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		k.add(p+".kind", "%s", msg)
		return
	}
	// Parameters of another kind are a mistake (e.g. first under hash).
	for _, x := range []struct {
		key  string
		set  bool
		kind string
	}{
		{"key_env", tf.KeyEnv != "" || k.c.meta.has(p+".key_env"), "hash"},
		{"first", tf.First != 0 || k.c.meta.has(p+".first"), "mask"},
		{"last", tf.Last != 0 || k.c.meta.has(p+".last"), "mask"},
		{"max_bytes", tf.MaxBytes != 0 || k.c.meta.has(p+".max_bytes"), "truncate"},
		{"max_characters", tf.MaxCharacters != 0 || k.c.meta.has(p+".max_characters"), "truncate"},
	} {
		if x.set && x.kind != tf.Kind {
			k.add(p+"."+x.key, "%s is a key of the %s transform, not of %s; remove it", x.key, x.kind, tf.Kind)
		}
	}
}

// hashKey checks the environment variable of a hash transform's key. It is
// read when the file is loaded: at start and at every reload.
func (k *checker) hashKey(p, name string) {
	switch {
	case name == "":
		k.add(p+".key_env", "required: the environment variable holding the HMAC key (at least %d bytes), e.g. key_env: PII_HASH_KEY; make one with: openssl rand -hex 32", minHashKey)
		return
	case !envNameRe.MatchString(name):
		k.add(p+".key_env", "%q is not an environment variable name: letters, digits and _, e.g. PII_HASH_KEY (the key itself never goes in the file)", name)
		return
	}
	v, ok := lookupEnv(name)
	switch {
	case !ok || v == "":
		k.add(p+".key_env", "the environment variable %s is not set: set it to the HMAC key (at least %d bytes, the same for every run so hashes stay joinable), e.g. export %s=$(openssl rand -hex 32)", name, minHashKey, name)
	case len(v) < minHashKey:
		k.add(p+".key_env", "the key in %s has %d bytes, at least %d are needed (e.g. openssl rand -hex 32)", name, len(v), minHashKey)
	}
}

// constantAttribute checks an attribute with a constant value.
func (k *checker) constantAttribute(ap string, a Attribute) {
	switch {
	case a.Value == "":
		k.add(ap+".value", "empty; SNS refuses an empty attribute: give the constant, or use column")
	case a.Type == "Number" && !isNumber(a.Value):
		k.add(ap+".value", "%q is not a number, but the attribute's type is Number", a.Value)
	}
	if !k.c.meta.has(ap+".name") && a.Name == "" {
		k.add(ap+".name", "required: a constant attribute has no column to take its name from, e.g. name: source_system")
	}
}

// attributeTransform checks the transform of an attribute.
func (k *checker) attributeTransform(ap string, a Attribute, constant bool) {
	p := ap + ".transform"
	if !k.hasTransform(p, a.Transform) {
		return
	}
	switch {
	case constant:
		k.add(p, "a constant attribute takes no transform; remove it")
	case a.Transform.Kind == "null":
		k.add(p+".kind", "an attribute that is always null is never sent (SNS has no null attribute); remove the attribute")
	default:
		k.transform(p, a.Transform)
	}
}

func isNumber(s string) bool {
	var f float64
	_, err := fmt.Sscan(s, &f)
	return err == nil && f-f == 0 && s != ""
}

// resolveTransform turns a validated transform written at key path p into
// the mapper's; nil when none is written.
func (c *Config) resolveTransform(p string, tf Transform) *connector.Transform {
	if tf == (Transform{}) {
		return nil
	}
	out := &connector.Transform{
		First: tf.First, Last: tf.Last, MaxBytes: tf.MaxBytes, MaxChars: tf.MaxCharacters,
		At: c.at(p),
	}
	switch tf.Kind {
	case "hash":
		out.Kind = connector.TransformHash
		key, _ := lookupEnv(tf.KeyEnv) // checked by validation
		out.Key = []byte(key)
	case "mask":
		out.Kind = connector.TransformMask
	case "truncate":
		out.Kind = connector.TransformTruncate
	case "null":
		out.Kind = connector.TransformNull
	}
	return out
}

// at is "file:line: key.path" (or the key path alone without a file), for
// messages of the runtime that point back at the file.
func (c *Config) at(p string) string {
	pr := c.problem(p, "")
	if pr.File == "" {
		return p
	}
	if pr.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", pr.File, pr.Line, p)
	}
	return pr.File + ": " + p
}
