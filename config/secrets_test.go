package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// publishedSecrets finds every webhook secret and links API token written
// in the repository's user-facing files: whsec_ values, ${...:-fallback}
// values of secret variables, and bearer tokens in documented commands.
func publishedSecrets(t *testing.T) map[string]string {
	t.Helper()
	files := []string{"../config.yaml", "../docker-compose.yml", "../README.md"}
	for _, g := range []string{"../docs/*.md", "../compose/*", "../tools/kobot-receiver/*.go"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	res := []*regexp.Regexp{
		regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{16,}`),
		regexp.MustCompile(`\$\{(?:LINKS_API_TOKEN|KOBOT_WEBHOOK_SECRET)[^:}]*:-([^}]+)\}`),
		regexp.MustCompile(`Bearer ([A-Za-z0-9._~+/-]{16,})`),
	}
	found := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range res {
			for _, m := range re.FindAllStringSubmatch(string(data), -1) {
				found[m[len(m)-1]] = f
			}
		}
	}
	return found
}

// TestPublicSecretsRefused: every secret and token the repository
// publishes is refused by validate unless demo: true, and nothing else
// published is missing from the refused list.
func TestPublicSecretsRefused(t *testing.T) {
	found := publishedSecrets(t)
	if len(found) < 3 {
		t.Fatalf("found %d published secrets (%v); the scan is broken", len(found), found)
	}
	for v, f := range found {
		if _, ok := publicSecrets[v]; !ok {
			t.Errorf("%s publishes a secret or token %.12s… that validate does not refuse: add it to publicSecrets", f, v)
		}
	}
	for v := range publicSecrets {
		field, env := "secret", "BAITORU_CDC_SINK_KOBOT_SECRET"
		if !strings.HasPrefix(v, "whsec_") {
			field, env = "token", "BAITORU_CDC_SINK_API_TOKEN"
		}
		for _, demo := range []bool{false, true} {
			clearReferencedVars(t, "../config.yaml")
			t.Setenv("KOBOT_WEBHOOK_SECRET", "whsec_cHJpdmF0ZS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5")
			t.Setenv("LINKS_API_TOKEN", "private-test-token-0123456789")
			t.Setenv(env, v)
			t.Setenv("BAITORU_CDC_DEMO", map[bool]string{true: "true", false: ""}[demo])
			_, err := LoadSink("../config.yaml")
			switch {
			case demo && err != nil:
				t.Errorf("demo: true, %s %.12s…: %v", field, v, err)
			case !demo && err == nil:
				t.Errorf("%s %.12s… accepted without demo: true", field, v)
			case !demo:
				msg := err.Error()
				if !strings.Contains(msg, "sink."+map[string]string{"secret": "kobot.secret", "token": "api.token"}[field]) ||
					!strings.Contains(msg, "demo: true") || strings.Contains(msg, v) {
					t.Errorf("%s %.12s…: the message should name the key and the fix, not the value:\n%s", field, v, msg)
				}
			}
		}
	}
}

// TestPassword: source.password and sink.password reach the DSN whatever
// their characters, in URL and key=value DSNs; set twice is a problem.
func TestPassword(t *testing.T) {
	const pw = `p@ss:w/rd%?#'\ "é`
	for _, dsn := range []string{
		"postgres://cdc@db.internal:5432/baitoru?sslmode=disable",
		"postgresql://cdc@db.internal/baitoru",
		"host=db.internal user=cdc dbname=baitoru sslmode=disable",
	} {
		t.Run(dsn, func(t *testing.T) {
			t.Setenv("BAITORU_DB_PASSWORD", pw)
			t.Setenv("PGPASSWORD", "")
			path := writeConfig(t, withSource(dsn, "${BAITORU_DB_PASSWORD}"))
			cfg, err := LoadConnector(path)
			if err != nil {
				t.Fatal(err)
			}
			pc, err := pgconn.ParseConfig(cfg.Source.DSN)
			if err != nil {
				t.Fatalf("the DSN with the password does not parse: %v", err)
			}
			if pc.Password != pw || pc.User != "cdc" || pc.Database != "baitoru" || pc.Host != "db.internal" {
				t.Errorf("parsed user %q password %q database %q host %q", pc.User, pc.Password, pc.Database, pc.Host)
			}
			if cfg.Source.Password != "" {
				t.Error("Password still set after Load moved it into DSN")
			}
			if ps := cfg.ValidateConnector(); ps != nil {
				t.Errorf("the loaded config no longer validates: %v", ps)
			}
		})
	}
	t.Run("twice", func(t *testing.T) {
		path := writeConfig(t, withSource("postgres://cdc:inline@localhost:5432/baitoru", "other"))
		_, err := LoadConnector(path)
		if err == nil || !strings.Contains(err.Error(), "source.password: the password is set twice") || strings.Contains(err.Error(), "inline") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("unset variable", func(t *testing.T) {
		t.Setenv("PGPASSWORD", "")
		os.Unsetenv("BAITORU_DB_PASSWORD")
		path := writeConfig(t, withSource("postgres://cdc@localhost:5432/baitoru", "${BAITORU_DB_PASSWORD:-}"))
		cfg, err := LoadConnector(path)
		if err != nil {
			t.Fatal(err)
		}
		if dsnHasPassword(cfg.Source.DSN) {
			t.Errorf("an empty password was put into the DSN")
		}
	})
}

// withSource is the minimal config with this source.dsn and source.password.
func withSource(dsn, password string) string {
	return strings.Replace(minimal, "  dsn: postgres://cdc@localhost:5432/baitoru\n",
		"  dsn: '"+dsn+"'\n  password: '"+password+"'\n", 1)
}

// TestUnknownVariables: a BAITORU_CDC_* variable that names no key is a
// warning with the closest real variable; real ones and the processes'
// own are not.
func TestUnknownVariables(t *testing.T) {
	got := unknownVariables("config.yaml", []string{
		"BAITORU_CDC_SINK_KOBOT_SECRT=x", "BAITORU_CDC_SORCE_DSN=x", "BAITORU_CDC_LOG_LEVL=debug",
		"BAITORU_CDC_TABLES=x", "BAITORU_CDC_WHATEVER_ELSE_ENTIRELY=1",
		"BAITORU_CDC_SOURCE_DSN=ok", "BAITORU_CDC_CONFIG=/etc/c.yaml", "BAITORU_CDC_CPUPROFILE=/tmp/p", "BAITORU_CDC_DEMO=true",
		"PATH=/bin", "BAITORU_DB_PASSWORD=x",
	}).Error()
	want := strings.Join([]string{
		"config.yaml (from BAITORU_CDC_LOG_LEVL): names no configuration key, so it is ignored; did you mean BAITORU_CDC_LOG_LEVEL?",
		"config.yaml (from BAITORU_CDC_SINK_KOBOT_SECRT): names no configuration key, so it is ignored; did you mean BAITORU_CDC_SINK_KOBOT_SECRET?",
		"config.yaml (from BAITORU_CDC_SORCE_DSN): names no configuration key, so it is ignored; did you mean BAITORU_CDC_SOURCE_DSN?",
		"config.yaml (from BAITORU_CDC_TABLES): tables is a list, which the environment cannot override; set it in the file",
		`config.yaml (from BAITORU_CDC_WHATEVER_ELSE_ENTIRELY): names no configuration key, so it is ignored; the variable of a key is BAITORU_CDC_ and its path in upper case, "." as "_" (docs/config.md lists them)`,
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestProcessVariablesListed: every BAITORU_CDC_* variable the code reads
// is a key's or listed in ProcessVariables (else it would be warned about).
func TestProcessVariablesListed(t *testing.T) {
	var files []string
	for _, g := range []string{"../cmd/*/*.go", "../tools/*/*.go", "../sink/*/*.go", "../connector/*/*.go", "../internal/*/*.go", "../docker-compose.yml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	re := regexp.MustCompile(`BAITORU_CDC_[A-Z][A-Z0-9_]*[A-Z0-9]`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(data), -1) {
			if ws := unknownVariables("x", []string{name + "=1"}); len(ws) > 0 {
				t.Errorf("%s uses %s: %v", f, name, ws)
			}
		}
	}
}
