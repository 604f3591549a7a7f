package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	sinkpg "github.com/baitoru/baitoru-cdc/sink/postgres"
)

// testCA is a self-signed certificate authority for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a server certificate for dnsName and its key, PEM-encoded.
func (ca *testCA) issue(t *testing.T, dnsName string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// enableSSL writes the server certificate and key into the cluster's data
// directory (owned, like it, by the server's OS user, key mode 0600) and
// turns ssl on with a configuration reload.
func enableSSL(t *testing.T, pg *testenv.Postgres, certPEM, keyPEM []byte) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(pg.DataDir, &st); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		p := filepath.Join(pg.DataDir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	dsn := pg.DSN("postgres")
	for _, q := range []string{
		`ALTER SYSTEM SET ssl_cert_file = 'server.crt'`,
		`ALTER SYSTEM SET ssl_key_file = 'server.key'`,
		`ALTER SYSTEM SET ssl = on`,
		`SELECT pg_reload_conf()`,
	} {
		testenv.MustExec(t, dsn, q)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var on string
		if err := testenvQueryRow(dsn, `SHOW ssl`, &on); err == nil && on == "on" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssl not on after reload; server log %s", pg.LogPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTLSVerifyFull runs the connector against a PostgreSQL that serves a
// certificate of a self-signed CA, with sslmode=verify-full and the CA
// file in the DSN (docs/reliability.md, "Security"): it streams, its
// replication and metadata connections are encrypted, and it refuses to
// connect when the CA is another one or the host name is not the
// certificate's. The sink's store connects the same way.
func TestTLSVerifyFull(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{})
	ca := newTestCA(t, "baitoru-cdc test CA")
	certPEM, keyPEM := ca.issue(t, "localhost")
	enableSSL(t, pg, certPEM, keyPEM)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	otherCA := filepath.Join(dir, "other-ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCA, newTestCA(t, "another CA").pem, 0o644); err != nil {
		t.Fatal(err)
	}
	db := pg.NewDatabase(t)
	testenv.MustExec(t, db, appsDDL)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	dsn := func(host, rootCert string) string {
		return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=verify-full&sslrootcert=%s", host, pg.Port, dbName, url.QueryEscape(rootCert))
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(`
source:
  slot: cdc_tls
  publication: cdc_tls
  create: true
  reconnect:
    initial: 100ms
    max: 1s
publisher:
  kind: stdout
log:
  format: json
tables:
  - table: public.apps
    key: [company_id]
    columns:
      - column: application_id
      - column: company_id
`), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("verify-full with the CA streams over TLS", func(t *testing.T) {
		p := startProcEnv(t, []string{"BAITORU_CDC_SOURCE_DSN=" + dsn("localhost", caFile)}, "run", "--config", config)
		p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
		testenv.MustExec(t, db, insertApps(1, 3))
		p.waitLog(t, `"application_id":3`, 30*time.Second)
		// Every session of the connector (the walsender and the metadata
		// connection) is encrypted.
		var plain, encrypted int
		if err := testenvQueryRow(db, `SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)
			FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
			WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()
			  AND a.backend_type IN ('client backend', 'walsender')`, &plain, &encrypted); err != nil {
			t.Fatal(err)
		}
		if plain != 0 || encrypted < 2 {
			t.Fatalf("connector sessions: %d encrypted, %d plain; want the walsender and the metadata connection encrypted", encrypted, plain)
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t, 30*time.Second); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.output())
		}
	})

	t.Run("the sink's store over TLS", func(t *testing.T) {
		sinkDB := pg.NewDatabase(t)
		su, err := url.Parse(sinkDB)
		if err != nil {
			t.Fatal(err)
		}
		sinkDSN := fmt.Sprintf("postgres://postgres@localhost:%d%s?sslmode=verify-full&sslrootcert=%s", pg.Port, su.Path, url.QueryEscape(caFile))
		store, err := sinkpg.Open(sinkDSN, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if _, err := store.Migrate(t.Context()); err != nil {
			t.Fatalf("migrate over TLS: %v", err)
		}
		var plain, encrypted int
		if err := testenvQueryRow(sinkDB, `SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)
			FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
			WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() AND a.backend_type = 'client backend'`, &plain, &encrypted); err != nil {
			t.Fatal(err)
		}
		if plain != 0 || encrypted == 0 {
			t.Fatalf("sink store sessions: %d encrypted, %d plain", encrypted, plain)
		}
		bad, err := sinkpg.Open(strings.Replace(sinkDSN, url.QueryEscape(caFile), url.QueryEscape(otherCA), 1), slog.New(slog.DiscardHandler))
		if err == nil {
			defer bad.Close()
			_, err = bad.Migrate(t.Context())
		}
		if err == nil || !strings.Contains(err.Error(), "presents a TLS certificate that is not trusted: signed by an authority this machine does not trust; fix: give the CA's certificate with sslrootcert= in sink.dsn") {
			t.Fatalf("sink store with another CA: %v, want a certificate error", err)
		}
	})

	refused := []struct {
		name, dsn, want string
	}{
		{"another CA", dsn("localhost", otherCA), "presents a TLS certificate that is not trusted: signed by an authority this machine does not trust; fix: give the CA's certificate with sslrootcert= in source.dsn"},
		{"host name not in the certificate", dsn("127.0.0.1", caFile), "certificate for 127.0.0.1"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			p := startProcEnv(t, []string{"BAITORU_CDC_SOURCE_DSN=" + tt.dsn, "BAITORU_CDC_SOURCE_RECONNECT_MAX=200ms"}, "run", "--config", config)
			// Whether the connector retries or exits, it must never
			// stream, and it must say why.
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(p.output(), tt.want) && time.Now().Before(deadline) {
				select {
				case <-p.Done():
					deadline = time.Now()
				case <-time.After(20 * time.Millisecond):
				}
			}
			if !strings.Contains(p.output(), tt.want) {
				t.Fatalf("no error containing %q:\n%s", tt.want, p.output())
			}
			if strings.Contains(p.output(), `"msg":"streaming"`) {
				t.Fatalf("streamed despite %s:\n%s", tt.name, p.output())
			}
		})
	}
}
