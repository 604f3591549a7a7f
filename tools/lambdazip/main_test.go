package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSameInputSameBytes writes the package twice from files with
// different modification times and modes: the bytes must not differ, and
// the archive must hold bootstrap executable.
func TestSameInputSameBytes(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(dir, "bootstrap")
	cfg := filepath.Join(dir, "config.yaml")
	var outs [][]byte
	for i, mtime := range []time.Time{time.Unix(1e9, 0), time.Now()} {
		if err := os.WriteFile(boot, []byte("\x7fELF fake bootstrap"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte("sink: {}\n"), 0o600+os.FileMode(i)*0o40); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{boot, cfg} {
			if err := os.Chtimes(f, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		out := filepath.Join(dir, "p.zip")
		if err := write(out, []string{boot, cfg}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("two packages of the same files differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(outs[0]), int64(len(outs[0])))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 || zr.File[1].Mode().Perm() != 0o644 {
		t.Fatalf("entries %v", zr.File)
	}
	if err := write(filepath.Join(dir, "q.zip"), []string{boot, filepath.Join(t.TempDir(), "bootstrap")}); err == nil {
		t.Fatal("two files named bootstrap were accepted")
	}
}
