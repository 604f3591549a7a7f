package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ProcessVariables are the BAITORU_CDC_* variables the processes read
// that are not configuration keys: the Lambda's configuration file, the
// profiles `baitoru-cdc` writes on request, and the image docker-compose.yml
// runs. Any other BAITORU_CDC_* variable that names no key is warned about.
var ProcessVariables = []string{
	EnvPrefix + "_CONFIG",
	EnvPrefix + "_CPUPROFILE",
	EnvPrefix + "_MEMPROFILE",
	EnvPrefix + "_IMAGE",
}

// unknownVariables returns a warning for each BAITORU_CDC_* variable of
// environ (KEY=value entries) that overrides no key, with the closest
// variable that does. Lists cannot be overridden: their variables get that
// explanation.
func unknownVariables(file string, environ []string) Problems {
	known := map[string]bool{}
	var names []string
	for _, l := range envLeaves() {
		known[l.env] = true
		names = append(names, l.env)
	}
	for _, v := range ProcessVariables {
		known[v] = true
	}
	lists := map[string]string{}
	var walkLists func(prefix string, fs []field)
	walkLists = func(prefix string, fs []field) {
		for _, f := range fs {
			p := join(prefix, f.name)
			switch f.kind {
			case kindStruct:
				walkLists(p, fieldsOf(f.typ))
			case kindStructs, kindStrings:
				lists[EnvName(p)] = p
			}
		}
	}
	walkLists("", fieldsOf(reflect.TypeOf(Config{})))
	var ps Problems
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] {
			continue
		}
		msg := "names no configuration key, so it is ignored"
		if p, ok := lists[name]; ok {
			msg = fmt.Sprintf("%s is a list, which the environment cannot override; set it in the file", p)
		} else if s := closestName(name, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		} else {
			msg += "; the variable of a key is BAITORU_CDC_ and its path in upper case, \".\" as \"_\" (docs/config.md lists them)"
		}
		ps = append(ps, Problem{File: file, Env: name, Message: msg})
	}
	slices.SortFunc(ps, func(a, b Problem) int { return strings.Compare(a.Env, b.Env) })
	return ps
}

// closestName is the name nearest to s, within a few edits (more for
// longer names), or "".
func closestName(s string, names []string) string {
	best, bestDist := "", max(3, len(s)/6)+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}
