package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad checks that Load never panics and always returns either a valid
// Config or Problems, each located in the file and with a message. Seeds:
// every case under testdata/config and the shipped config.yaml.
//
//	go test ./config -run '^$' -fuzz FuzzLoad -fuzztime 1m
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/config/*/config.yaml")
	seeds = append(seeds, "../config.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err == nil {
			if cfg == nil {
				t.Fatal("Load returned neither a config nor an error")
			}
			if ps := cfg.Validate(); ps != nil {
				t.Fatalf("Load accepted a config that Validate rejects:\n%v", ps)
			}
			return
		}
		if cfg != nil {
			t.Fatal("Load returned a config and an error")
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("Load error %T %q, want Problems", err, err)
		}
		for _, p := range ps {
			if p.File != path || p.Message == "" || p.Line < 0 {
				t.Fatalf("badly located problem %+v", p)
			}
		}
		if n := strings.Count(ps.Error(), "\n") + 1; n < len(ps) {
			t.Fatalf("Error() has %d lines for %d problems", n, len(ps))
		}
	})
}
