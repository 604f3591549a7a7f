package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestImage builds the container image with `make image` (podman, no
// registry: the base is scratch) and checks what podman reports about it
// and what its layers hold: a non-root user, the binary as entrypoint, both
// binaries statically linked and executable, the CA bundle and the passwd
// entry of the user.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds the container image")
	}
	// Parallel: it waits on podman and a build, not on this package's shared servers.
	t.Parallel()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman not found: install it with make deps (apt-get install -y podman)")
	}
	root := testenv.ModuleRoot()
	tag := fmt.Sprintf("localhost/baitoru-cdc:test-%d", time.Now().UnixNano())
	dir := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "image", "IMAGE="+tag, "IMAGE_DIR="+filepath.Join(dir, "context"))
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image: %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "--force", tag).Run() })

	out, err := exec.Command("podman", "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var inspect []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
		}
		Os, Architecture string
		Size             int64
	}
	if err := json.Unmarshal(out, &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	c := inspect[0].Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/baitoru-cdc"}) {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"run", "--config", "/etc/baitoru-cdc/config.yaml"}) {
		t.Errorf("cmd %q", c.Cmd)
	}
	for _, p := range []string{"9090/tcp", "8080/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, c.ExposedPorts)
		}
	}
	if inspect[0].Os != "linux" {
		t.Errorf("os %q", inspect[0].Os)
	}

	archive := filepath.Join(dir, "image.tar")
	if out, err := exec.Command("podman", "image", "save", "--format", "oci-archive", "--output", archive, tag).CombinedOutput(); err != nil {
		t.Fatalf("podman image save: %v\n%s", err, out)
	}
	files := imageFiles(t, archive)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("image files: %v", names)

	for _, bin := range []string{"usr/local/bin/baitoru-cdc", "usr/local/bin/baitoru-cdc-lambda"} {
		f, ok := files[bin]
		if !ok {
			t.Errorf("%s not in the image", bin)
			continue
		}
		if f.mode&0o001 == 0 {
			t.Errorf("%s mode %o: not executable by others (the non-root user)", bin, f.mode)
		}
		e, err := elf.NewFile(bytes.NewReader(f.data))
		if err != nil {
			t.Errorf("%s: not an ELF binary: %v", bin, err)
			continue
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (%s): build with CGO_ENABLED=0", bin, p.Type)
			}
		}
		if e.Machine != elf.EM_X86_64 && e.Machine != elf.EM_AARCH64 {
			t.Errorf("%s: machine %s", bin, e.Machine)
		}
	}
	ca, ok := files["etc/ssl/certs/ca-certificates.crt"]
	if !ok || bytes.Count(ca.data, []byte("BEGIN CERTIFICATE")) < 10 || ca.mode&0o004 == 0 {
		t.Errorf("CA bundle missing, nearly empty or unreadable (present %v, mode %o)", ok, ca.mode)
	}
	passwd := string(files["etc/passwd"].data)
	if !strings.Contains(passwd, "baitoru:x:65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532:\n%s", passwd)
	}
	// Nothing else: no shell, no package manager.
	for _, n := range names {
		switch n {
		case "usr/local/bin/baitoru-cdc", "usr/local/bin/baitoru-cdc-lambda",
			"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group":
		default:
			t.Errorf("unexpected file in the image: %s", n)
		}
	}
}

type imageFile struct {
	mode int64
	data []byte
}

// imageFiles reads an OCI archive (podman image save --format
// oci-archive) and returns the regular files of its layers, applied in
// order, by path without the leading "/".
func imageFiles(t *testing.T, archive string) map[string]imageFile {
	t.Helper()
	blobs := map[string][]byte{} // "blobs/sha256/..." and index.json
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", archive, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			blobs[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
	blob := func(digest string) []byte {
		algo, hex, _ := strings.Cut(digest, ":")
		b, ok := blobs["blobs/"+algo+"/"+hex]
		if !ok {
			t.Fatalf("blob %s not in the archive", digest)
		}
		return b
	}
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) == 0 {
		t.Fatalf("index.json: %v", err)
	}
	var manifest struct{ Layers []descriptor }
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	files := map[string]imageFile{}
	for _, l := range manifest.Layers {
		var r io.Reader = bytes.NewReader(blob(l.Digest))
		br := bufio.NewReader(r)
		if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(br)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		} else {
			r = br
		}
		lr := tar.NewReader(r)
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
			if h.Typeflag != tar.TypeReg {
				continue
			}
			b, err := io.ReadAll(lr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = imageFile{mode: h.Mode, data: b}
		}
	}
	return files
}
