package testenv

import (
	"os"
	"strings"
)

// ChildEnv is this process's environment without what would redirect a
// baitoru-cdc child process started by the demo, the fault suite or a test:
// configuration overrides (BAITORU_*, SINK_*, KOBOT_*, LINKS_API_TOKEN),
// libpq (PG*) and AWS settings. The caller sets those explicitly.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BAITORU_") || strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "AWS_") ||
			strings.HasPrefix(k, "SINK_") || strings.HasPrefix(k, "KOBOT_") || k == "LINKS_API_TOKEN" {
			continue
		}
		env = append(env, kv)
	}
	return env
}
