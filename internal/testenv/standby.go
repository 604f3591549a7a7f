package testenv

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// StandbyOptions configures a streaming standby of a throwaway cluster.
type StandbyOptions struct {
	// Slot is the physical replication slot on the primary that the
	// standby streams from (primary_slot_name); created by StartStandby.
	// Default "standby".
	Slot string
	// Settings are postgresql.conf entries of the standby, e.g.
	// {"sync_replication_slots": "on", "hot_standby_feedback": "on"}.
	Settings map[string]string
}

// StartStandby makes a streaming standby of p with the same binaries: it
// creates the physical slot on p, takes a base backup over the
// replication protocol (the BASE_BACKUP command pg_basebackup sends, WAL
// included), configures standby.signal, primary_conninfo (with a dbname,
// as slot synchronisation needs) and primary_slot_name, and starts it on a
// free port. The caller must Close it. Base backups of PostgreSQL 15 and
// later are supported (the archive format changed in 15).
func (p *Postgres) StartStandby(opts StandbyOptions) (*Postgres, error) {
	if p.version < 15 {
		return nil, fmt.Errorf("standby of PostgreSQL %d: base backups are supported from 15 on", p.version)
	}
	if opts.Slot == "" {
		opts.Slot = "standby"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Exec(ctx, p.DSN("postgres"), `SELECT pg_create_physical_replication_slot($1, true)`, opts.Slot); err != nil {
		return nil, fmt.Errorf("standby: create physical slot %s: %w", opts.Slot, err)
	}
	s, err := newPostgres(p.bin)
	if err != nil {
		return nil, err
	}
	if err := p.baseBackup(ctx, s.DataDir); err != nil {
		os.RemoveAll(s.Dir)
		return nil, fmt.Errorf("standby: base backup: %w", err)
	}
	conf := []string{
		"",
		"# baitoru-cdc testenv standby",
		"unix_socket_directories = " + quote(s.Dir),
		"primary_conninfo = " + quote(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=%s", p.Port, opts.Slot)),
		"primary_slot_name = " + quote(opts.Slot),
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		conf = append(conf, k+" = "+quote(opts.Settings[k]))
	}
	err = s.appendFile(filepath.Join(s.DataDir, "postgresql.conf"), strings.Join(conf, "\n")+"\n")
	if err == nil {
		err = s.writeFile(filepath.Join(s.DataDir, "standby.signal"), "")
	}
	if err == nil {
		err = s.chownTree(s.DataDir)
	}
	if err != nil {
		os.RemoveAll(s.Dir)
		return nil, fmt.Errorf("standby: %w", err)
	}
	if err := s.firstStart(); err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	return s, nil
}

// OwnStandby starts a standby of primary for this test alone, closed on
// cleanup (before the primary: cleanups run last-in first-out).
func OwnStandby(t testing.TB, primary *Postgres, opts StandbyOptions) *Postgres {
	t.Helper()
	s, err := primary.StartStandby(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return s
}

// Promote turns a standby into a primary (pg_promote) and waits until it
// accepts writes.
func (p *Postgres) Promote() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&ok); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !ok {
		return fmt.Errorf("promote: not promoted within 60s; log %s:\n%s", p.LogPath, logTail(p.LogPath, 20))
	}
	return nil
}

// baseBackup streams a base backup of p (WAL included) into dataDir over a
// physical replication connection and extracts it.
func (p *Postgres) baseBackup(ctx context.Context, dataDir string) error {
	cfg, err := pgconn.ParseConfig(p.DSN("postgres"))
	if err != nil {
		return err
	}
	cfg.RuntimeParams["replication"] = "true"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := pglogrepl.StartBaseBackup(ctx, conn, pglogrepl.BaseBackupOptions{
		Label: "baitoru-cdc testenv standby", Fast: true, WAL: true, NoWait: true,
	}); err != nil {
		return err
	}
	// PostgreSQL 15+: one COPY stream; each CopyData starts with a type
	// byte: 'n' a new archive (name, tablespace location), 'd' archive
	// data, 'p' progress, 'm' the manifest (not requested).
	var pw *io.PipeWriter
	var extracted chan error
	closeArchive := func() error {
		if pw == nil {
			return nil
		}
		pw.Close()
		pw = nil
		return <-extracted
	}
	defer func() {
		if pw != nil {
			pw.CloseWithError(errors.New("base backup aborted"))
			<-extracted
		}
	}()
	for copying := true; copying; {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyOutResponse, *pgproto3.NoticeResponse:
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case 'n':
				if err := closeArchive(); err != nil {
					return err
				}
				name, location, _ := strings.Cut(strings.TrimRight(string(msg.Data[1:]), "\x00"), "\x00")
				if location != "" {
					return fmt.Errorf("archive %s of tablespace %s: tablespaces are not supported", name, location)
				}
				var pr *io.PipeReader
				pr, pw = io.Pipe()
				extracted = make(chan error, 1)
				go func() {
					err := extractTar(pr, dataDir)
					pr.CloseWithError(err)
					extracted <- err
				}()
			case 'd':
				if pw == nil {
					return errors.New("archive data before the archive's start")
				}
				if _, err := pw.Write(msg.Data[1:]); err != nil {
					return fmt.Errorf("extract: %w", err)
				}
			case 'p', 'm':
			default:
				return fmt.Errorf("unexpected base backup message type %q", msg.Data[0])
			}
		case *pgproto3.CopyDone:
			copying = false
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		default:
			return fmt.Errorf("unexpected message %T during base backup", msg)
		}
	}
	if err := closeArchive(); err != nil {
		return err
	}
	// The end position, then the command's completion.
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		switch msg := msg.(type) {
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.ReadyForQuery:
			return nil
		}
	}
}

// extractTar writes a tar archive's directories, files and symlinks under
// dir.
func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == ".." || strings.HasPrefix(name, "../") || filepath.IsAbs(name) {
			return fmt.Errorf("archive entry %q outside the data directory", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode)&0o700|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, path); err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

// chownTree gives dir and everything under it to the server's OS user.
func (p *Postgres) chownTree(dir string) error {
	if p.cred == nil {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(p.cred.Uid), int(p.cred.Gid))
	})
}
