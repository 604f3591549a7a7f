package main

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestMakeLambdaPackage runs `make lambda` for this machine's architecture
// twice into two directories: the zips must be byte for byte the same, and
// hold a static bootstrap (no interpreter, no shared libraries) for Linux
// and deploy/config.yaml as config.yaml.
func TestMakeLambdaPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Lambda package; run without -short")
	}
	arch := runtime.GOARCH
	var zips [][]byte
	for range 2 {
		dir := t.TempDir()
		cmd := exec.Command("make", "--no-print-directory", "-C", "../..", "lambda", "LAMBDA_ARCHES="+arch, "LAMBDA_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make lambda: %v\n%s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "baitoru-cdc-lambda-"+arch+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		zips = append(zips, b)
	}
	if !bytes.Equal(zips[0], zips[1]) {
		t.Fatal("two builds of the same sources gave different packages")
	}
	zr, err := zip.NewReader(bytes.NewReader(zips[0]), int64(len(zips[0])))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
		if f.Name == "bootstrap" && f.Mode().Perm() != 0o755 {
			t.Errorf("bootstrap mode %v, want 0755", f.Mode())
		}
	}
	cfg, err := os.ReadFile("../../deploy/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["config.yaml"], cfg) || len(files) != 2 {
		t.Fatalf("the package holds %d files; want bootstrap and deploy/config.yaml as config.yaml", len(files))
	}
	exe, err := elf.NewFile(bytes.NewReader(files["bootstrap"]))
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatal("bootstrap is dynamically linked; provided.al2023 needs a static binary (CGO_ENABLED=0)")
		}
	}
	if exe.OSABI != elf.ELFOSABI_NONE && exe.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("bootstrap OS ABI %v", exe.OSABI)
	}
	// lambda.norpc leaves out aws-lambda-go's net/rpc handler (the go1.x
	// runtime's), whose function names stay in a stripped binary.
	if bytes.Contains(files["bootstrap"], []byte("aws-lambda-go/lambda.(*Function).Invoke")) || bytes.Contains(files["bootstrap"], []byte("net/rpc")) {
		t.Error("bootstrap contains the net/rpc handler: build it with -tags lambda.norpc")
	}
}
