package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/child"
)

// PostgresOptions configures a throwaway cluster.
type PostgresOptions struct {
	// Version is the PostgreSQL major version to run (13 to 18, see
	// Versions); 0 runs the default binaries (Debian's 15, see PostgresBinDir).
	Version int
	// Settings override postgresql.conf entries, e.g. {"wal_level": "replica"}
	// or {"max_slot_wal_keep_size": "1MB"}. Values are written quoted.
	Settings map[string]string
	// HBA lines are placed in pg_hba.conf before the default lines
	// ("host all all 127.0.0.1/32 trust" and "host replication all
	// 127.0.0.1/32 trust"), e.g. "host all app 127.0.0.1/32 scram-sha-256"
	// to test password authentication for role app.
	HBA []string
}

// Postgres is a throwaway PostgreSQL cluster listening on 127.0.0.1:Port with
// superuser "postgres" and trust authentication. Its methods are safe for
// concurrent use.
type Postgres struct {
	Port    int
	Dir     string // temporary directory holding data/, the socket and the log
	DataDir string
	LogPath string // server log, for debugging

	bin     string
	version int                 // major version, from the data directory's PG_VERSION
	cred    *syscall.Credential // run server binaries as this user (when we are root)

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	dbCount atomic.Int64
}

// StartPostgres creates and starts a cluster in a fresh temporary directory.
// The caller must Close it. Startup takes about a second (initdb).
func StartPostgres(opts PostgresOptions) (*Postgres, error) {
	bin, err := PostgresBinDir(opts.Version)
	if err != nil {
		return nil, err
	}
	p, err := newPostgres(bin)
	if err != nil {
		return nil, err
	}
	if err := p.init(opts); err != nil {
		os.RemoveAll(p.Dir)
		return nil, err
	}
	if err := p.firstStart(); err != nil {
		return nil, err
	}
	return p, nil
}

// newPostgres prepares an empty cluster directory for the binaries in bin.
func newPostgres(bin string) (*Postgres, error) {
	p := &Postgres{bin: bin}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return nil, err
		}
		p.cred = cred
	}
	parent := os.TempDir()
	if p.cred != nil && !traversableByOthers(parent) {
		parent = "/tmp"
	}
	var err error
	p.Dir, err = makeTempDir(parent, "baitoru-pg-")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	if p.cred != nil {
		if err := os.Chown(p.Dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			os.RemoveAll(p.Dir)
			return nil, fmt.Errorf("chown cluster dir: %w", err)
		}
	}
	p.DataDir = filepath.Join(p.Dir, "data")
	p.LogPath = filepath.Join(p.Dir, "postgres.log")
	return p, nil
}

// firstStart picks a free port and starts the initialised cluster; on
// failure it removes the cluster's directory.
func (p *Postgres) firstStart() error {
	b, err := os.ReadFile(filepath.Join(p.DataDir, "PG_VERSION"))
	if err == nil {
		p.version, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err != nil {
		os.RemoveAll(p.Dir)
		return fmt.Errorf("read PG_VERSION: %w", err)
	}
	// The port was free a moment ago; another process may take it before
	// postgres binds it, so try a few.
	for attempt := 0; ; attempt++ {
		if p.Port, err = freePort(); err != nil {
			break
		}
		if err = p.writePort(); err != nil {
			break
		}
		if err = p.Start(); err == nil || attempt == 2 || !strings.Contains(logTail(p.LogPath, 20), "could not bind") {
			break
		}
	}
	if err != nil {
		os.RemoveAll(p.Dir)
		return err
	}
	return nil
}

// Version is the cluster's PostgreSQL major version, e.g. 17.
func (p *Postgres) Version() int { return p.version }

// init runs initdb and writes postgresql.conf and pg_hba.conf.
func (p *Postgres) init(opts PostgresOptions) error {
	cmd := exec.Command(filepath.Join(p.bin, "initdb"),
		"-D", p.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = p.Dir
	cmd.Env = child.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}

	conf := []string{
		"",
		"# baitoru-cdc testenv",
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = " + quote(p.Dir),
		"wal_level = logical",
		"max_replication_slots = 20",
		"max_wal_senders = 20",
		"fsync = off", // only process crashes are simulated, never OS crashes
		"shared_buffers = '32MB'",
		"timezone = 'UTC'",
		"log_timezone = 'UTC'",
		"logging_collector = off",
		"log_line_prefix = '%m [%p] %q%u@%d '",
		"include_if_exists = 'testenv_port.conf'",
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		conf = append(conf, k+" = "+quote(opts.Settings[k]))
	}
	if err := p.appendFile(filepath.Join(p.DataDir, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	hba := append([]string{"# baitoru-cdc testenv"}, opts.HBA...)
	hba = append(hba,
		"local all all trust",
		"local replication all trust",
		"host all all 127.0.0.1/32 trust",
		"host replication all 127.0.0.1/32 trust",
	)
	return p.writeFile(filepath.Join(p.DataDir, "pg_hba.conf"), strings.Join(hba, "\n")+"\n")
}

// writePort records the port in a conf file included by postgresql.conf.
func (p *Postgres) writePort() error {
	return p.writeFile(filepath.Join(p.DataDir, "testenv_port.conf"), "port = "+strconv.Itoa(p.Port)+"\n")
}

func (p *Postgres) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return p.chown(path)
}

func (p *Postgres) appendFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("append %s: %w", filepath.Base(path), err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append %s: %w", filepath.Base(path), err)
	}
	return nil
}

func (p *Postgres) chown(path string) error {
	if p.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Start starts the server on the same port and data directory and waits until
// it accepts connections (crash recovery included). Starting a running
// cluster does nothing.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		return nil
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.DataDir)
	cmd.Dir = p.Dir
	cmd.Env = child.Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if err := child.StartCmd(cmd, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, p.DSN("postgres"))
		ccancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("start postgres: server exited (%v); log %s:\n%s", cmd.ProcessState, p.LogPath, logTail(p.LogPath, 30))
		case <-ctx.Done():
			p.signalAndWait(syscall.SIGQUIT, 10*time.Second)
			return fmt.Errorf("start postgres: not ready after 60s (%v); log %s:\n%s", err, p.LogPath, logTail(p.LogPath, 30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// running reports whether the server process is alive. Callers hold p.mu.
func (p *Postgres) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the server process is alive.
func (p *Postgres) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

// Stop shuts the server down and waits for it to exit. mode is "smart",
// "fast" (disconnect clients, checkpoint) or "immediate" (no checkpoint:
// like a crash; the next Start runs recovery). Stopping a stopped cluster
// does nothing.
func (p *Postgres) Stop(mode string) error {
	var sig syscall.Signal
	switch mode {
	case "smart":
		sig = syscall.SIGTERM
	case "fast", "":
		sig = syscall.SIGINT
	case "immediate":
		sig = syscall.SIGQUIT
	default:
		return fmt.Errorf("stop postgres: unknown mode %q (want smart, fast or immediate)", mode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return nil
	}
	if !p.signalAndWait(sig, 60*time.Second) {
		return fmt.Errorf("stop postgres: %s shutdown took over 60s; killed; log %s:\n%s", mode, p.LogPath, logTail(p.LogPath, 20))
	}
	return nil
}

// signalAndWait sends sig and waits up to d for exit; after that it kills
// the server and reports false. Callers hold p.mu.
func (p *Postgres) signalAndWait(sig syscall.Signal, d time.Duration) bool {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return false
	}
}

// Close stops the server (fast) and removes its directory.
func (p *Postgres) Close() error {
	err := p.Stop("fast")
	if rerr := os.RemoveAll(p.Dir); err == nil && rerr != nil {
		err = fmt.Errorf("remove cluster dir: %w", rerr)
	}
	return err
}

// DSN returns a connection URL for database db as superuser postgres.
// Append "&replication=database" for a logical replication connection.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a database named after the test and returns its DSN.
// On cleanup it terminates the database's sessions (walsenders included),
// drops its replication slots and drops it; when the cluster is not running
// then, the database is left to the cluster's removal.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 48 {
		name = name[:48]
	}
	name = fmt.Sprintf("%s_%d", name, p.dbCount.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Exec(ctx, p.DSN("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if !p.Running() {
			return
		}
		if err := p.dropDatabase(name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return p.DSN(name)
}

func (p *Postgres) dropDatabase(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	// Slots of this database: terminate the walsenders streaming them, drop
	// the inactive ones, repeat until none is left (a walsender takes a
	// moment to release its slot after being terminated).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
			return fmt.Errorf("drop database %s: terminate sessions: %w", name, err)
		}
		// Fails when a slot turns active between the check and the drop: retried.
		_, dropErr := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name)
			FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, name).Scan(&left); err != nil {
			return fmt.Errorf("drop database %s: list slots: %w", name, err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drop database %s: %d replication slots left after 10s (last drop error: %v)", name, left, dropErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Exec runs sql (several statements are allowed when args is empty) on a
// fresh connection to dsn.
func Exec(ctx context.Context, dsn, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return err
	}
	return nil
}

// MustExec is Exec that fails the test on error.
func MustExec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := Exec(ctx, dsn, sql, args...); err != nil {
		t.Fatalf("testenv: exec %q: %v", abbrev(sql), err)
	}
}

// Session opens one connection to dsn, closed when t ends, and returns a
// function running statements on it: what a test needs to keep a
// transaction open across calls (BEGIN in one, COMMIT in a later one).
func Session(t testing.TB, dsn string) func(sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("testenv: connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func(sql string) {
		t.Helper()
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("testenv: exec %q: %v", abbrev(sql), err)
		}
	}
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func quote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// errNoPostgres is returned when no PostgreSQL server binaries are installed.
var errNoPostgres = errors.New("PostgreSQL server binaries not found (initdb); install them: apt-get install -y postgresql-15 (or run make deps)")

// Versions are the PostgreSQL major versions baitoru-cdc supports and the
// version suite runs on: 15 is Debian's (the default binaries), the others
// are pinned by tools/postgres/package-lock.json (make deps).
var Versions = []int{13, 14, 15, 16, 17, 18}

// usableBinDir reports whether dir holds initdb and postgres.
func usableBinDir(dir string) bool {
	for _, b := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// PostgresBinDir finds the directory holding initdb and postgres of
// PostgreSQL version (a major version; 0: the default binaries).
//
// Version 0: $BAITORU_PG_BINDIR, then initdb on PATH, then the highest
// /usr/lib/postgresql/<version>/bin. Another version: the pinned binaries
// under tools/postgres (or $BAITORU_PG_VERSIONS_DIR laid out like it:
// node_modules/pg<version>/native/bin), then /usr/lib/postgresql/<version>/bin.
func PostgresBinDir(version int) (string, error) {
	if version != 0 {
		root := os.Getenv("BAITORU_PG_VERSIONS_DIR")
		if root == "" {
			root = filepath.Join(ModuleRoot(), "tools", "postgres")
		}
		for _, dir := range []string{
			filepath.Join(root, "node_modules", fmt.Sprintf("pg%d", version), "native", "bin"),
			fmt.Sprintf("/usr/lib/postgresql/%d/bin", version),
		} {
			if usableBinDir(dir) {
				return dir, nil
			}
		}
		return "", fmt.Errorf("PostgreSQL %d server binaries not found (looked in %s and /usr/lib/postgresql/%d/bin); install them: make deps (npm ci --prefix tools/postgres)",
			version, filepath.Join(root, "node_modules", fmt.Sprintf("pg%d", version), "native", "bin"), version)
	}
	if dir := os.Getenv("BAITORU_PG_BINDIR"); dir != "" {
		if usableBinDir(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("BAITORU_PG_BINDIR=%s has no initdb and postgres: %w", dir, errNoPostgres)
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil && usableBinDir(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if usableBinDir(filepath.Dir(path)) {
			return filepath.Dir(path), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1.0
	for _, dir := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil || !usableBinDir(dir) {
			continue
		}
		if v > bestVer {
			best, bestVer = dir, v
		}
	}
	if best == "" {
		return "", errNoPostgres
	}
	return best, nil
}

// postgresUser returns the credentials of the "postgres" OS user: initdb and
// postgres refuse to run as root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root: initdb refuses root and there is no \"postgres\" OS user to run it as (%v); create it: useradd --system --user-group postgres (or run make deps)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres OS user has non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// traversableByOthers reports whether every directory from / to dir can be
// entered by other users.
func traversableByOthers(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}
