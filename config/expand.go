package config

import (
	"fmt"
	"reflect"
	"strings"
)

// expand replaces environment references in one string value from the file:
//
//	${VAR}           the value of VAR; an unset VAR is a problem (set but empty is fine)
//	${VAR:-default}  the value of VAR, or default when VAR is unset or empty
//	$${              a literal "${"
//
// Any other "$" is literal, so a password such as "pa$$word" needs no
// escaping. Expansion happens after the YAML is parsed, on decoded string
// values, so an environment variable can never inject YAML. The messages
// name variables, never values.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var problems []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' { // "$${" is an escaped "${"
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			problems = append(problems, `unterminated "${": close it with "}" (write "$${" for a literal "${")`)
			break
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validVarName(name) {
			problems = append(problems, `"${" starts no variable reference: write ${NAME} or ${NAME:-default} (NAME of letters, digits and _), or "$${" for a literal "${"`)
			continue
		}
		val, ok := lookup(name)
		switch {
		case hasDef && (!ok || val == ""):
			b.WriteString(def)
		case !ok:
			problems = append(problems, fmt.Sprintf("environment variable %s is not set (referenced as ${%s}); set it, or write ${%s:-default}", name, name, name))
		default:
			b.WriteString(val)
		}
	}
	return b.String(), problems
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// eachString calls fn with the key path and address of every string (and
// every element of a []string) in the config struct v points into.
func eachString(v reflect.Value, path string, fn func(path string, s *string)) {
	switch v.Kind() {
	case reflect.String:
		fn(path, v.Addr().Interface().(*string))
	case reflect.Struct:
		t := v.Type()
		for _, f := range fieldsOf(t) {
			eachString(v.Field(f.index), join(path, f.name), fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			eachString(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}
