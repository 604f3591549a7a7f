// Command lambdazip writes a Lambda deployment package that depends only on
// its inputs: the same files give the same bytes, whoever builds it and
// whenever (`make lambda`). Entries are stored in the order given, with
// their base names, a fixed modification time (1980-01-01, the zip epoch)
// and modes 0755 (bootstrap) or 0644 (everything else).
//
//	go run ./tools/lambdazip -o bin/lambda/x.zip bin/lambda/arm64/bootstrap deploy/config.yaml
package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

func main() {
	out := flag.String("o", "", "the zip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: lambdazip -o FILE.zip bootstrap [other files]")
		os.Exit(2)
	}
	if err := write(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "lambdazip:", err)
		os.Exit(1)
	}
}

// epoch is the earliest time a zip header can hold.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func write(out string, files []string) error {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		if seen[name] {
			return fmt.Errorf("%s: two files named %s", f, name)
		}
		seen[name] = true
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var mode fs.FileMode = 0o644
		if name == "bootstrap" {
			mode = 0o755
		}
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: epoch}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
