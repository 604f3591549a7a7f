package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestSecretsNeverOutput runs the connector and the sink with the shipped
// config.yaml against a PostgreSQL that checks passwords (scram-sha-256),
// set up as docs/dba.md says (roles baitoru_cdc with REPLICATION and
// baitoru_sink, `setup` as the DBA), with the passwords given the one
// documented way: BAITORU_DB_PASSWORD and SINK_DB_PASSWORD, which the
// shipped file reads into source.password and sink.password. The password
// has the characters a URL must escape. It also runs the emulator and a
// Kobot that fails its first pushes, drives the links API (good and bad
// requests), runs validate and check, and a connector and a sink with a
// wrong password; then it greps everything any of them printed or served —
// logs, errors, API answers, /metrics, /healthz, /readyz — for the
// passwords, the webhook secret (whole and its key part) and the API token.
func TestSecretsNeverOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	const (
		password     = `Pw@9f2c:1e7b/leak%check'?`
		sinkPassword = `Sink-pw 4e1f#leakcheck`
		wrongPass    = "Wrong-5d1a77c3-leakcheck"
		secret       = "whsec_c2VjcmV0cy1uZXZlci1vdXRwdXQtdGVzdC1rZXk="
		token        = "links-token-3b8e0c55-leakcheck"
	)
	pg := testenv.OwnPG(t, testenv.PostgresOptions{HBA: []string{
		"host all baitoru_cdc,baitoru_sink 127.0.0.1/32 scram-sha-256",
		"host replication baitoru_cdc 127.0.0.1/32 scram-sha-256",
	}})
	super := pg.DSN("postgres")
	for _, sql := range []string{
		`CREATE ROLE baitoru_cdc LOGIN REPLICATION PASSWORD ` + quoteLiteral(password),
		`CREATE ROLE baitoru_sink LOGIN PASSWORD ` + quoteLiteral(sinkPassword),
		`CREATE DATABASE baitoru`,
		`CREATE DATABASE baitoru_sink OWNER baitoru_sink`,
	} {
		testenv.MustExec(t, super, sql)
	}
	srcAdmin := pg.DSN("baitoru")
	loadSchema(t, srcAdmin, "baitoru.sql")
	testenv.MustExec(t, srcAdmin, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO baitoru_cdc`)

	ctx := context.Background()
	emu := testenv.Emu(t)
	name := fmt.Sprintf("secrets-%d", time.Now().UnixNano()%1e6)
	fan, err := emu.CreateFanout(ctx, name, testenv.QueueOptions{MaxReceiveCount: 10})
	if err != nil {
		t.Fatal(err)
	}
	topic, queueURL, dlqURL := fan.TopicARN, fan.QueueURL, fan.DLQURL

	recv := startKobot(t, secret)
	recv.Respond(func(_ kobottest.Request, n int) int {
		if n < 2 { // the sink logs delivery errors, then retries
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})

	metricsAddr, apiAddr := freeAddr(t), freeAddr(t)
	port := fmt.Sprint(pg.Port)
	env := []string{
		"BAITORU_DB_HOST=127.0.0.1", "BAITORU_DB_PORT=" + port, "BAITORU_DB_SSLMODE=disable",
		"BAITORU_DB_PASSWORD=" + password,
		"SINK_DB_HOST=127.0.0.1", "SINK_DB_PORT=" + port, "SINK_DB_SSLMODE=disable",
		"SINK_DB_PASSWORD=" + sinkPassword,
		"BAITORU_CDC_SNS_REGION=" + emu.Region,
		"BAITORU_CDC_SNS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SNS_TOPIC_ARN=" + topic,
		"BAITORU_CDC_METRICS_LISTEN=" + metricsAddr,
		"BAITORU_CDC_LOG_FORMAT=json",
		"BAITORU_CDC_LOG_LEVEL=debug",
		"BAITORU_CDC_SINK_SQS_REGION=" + emu.Region,
		"BAITORU_CDC_SINK_SQS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SINK_SQS_QUEUE_URL=" + queueURL,
		"BAITORU_CDC_SINK_SQS_DLQ_URL=" + dlqURL,
		"BAITORU_CDC_SINK_SQS_WAIT_TIME=1s",
		"BAITORU_CDC_SINK_KOBOT_ENDPOINT=" + recv.URL(),
		"BAITORU_CDC_SINK_KOBOT_SECRET=" + secret,
		"BAITORU_CDC_SINK_KOBOT_RETRY_INITIAL=50ms",
		"BAITORU_CDC_SINK_API_LISTEN=" + apiAddr,
		"BAITORU_CDC_SINK_API_TOKEN=" + token,
	}
	shipped := filepath.Join(testenv.ModuleRoot(), "config.yaml")
	// The DBA's step (docs/dba.md): setup as the owner of the tables.
	setupOut, err := exec.Command(buildBinary(t), "setup", "--config", shipped, "--dsn", srcAdmin).CombinedOutput()
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, setupOut)
	}

	// Everything printed or served, by where it came from.
	outputs := map[string]string{}
	oneShot := func(label string, extra []string, args ...string) {
		cmd := exec.Command(buildBinary(t), args...)
		cmd.Env = append(append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true"), append(env, extra...)...)
		out, _ := cmd.CombinedOutput() // success or not, the output is what is checked
		outputs[label] = string(out)
	}
	get := func(label, method, u, auth, ctype, body string) {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outputs[label] = fmt.Sprintf("%d %v\n%s", resp.StatusCode, resp.Header, b)
	}

	conn := startProcEnv(t, env, "run", "--config", shipped)
	conn.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	snk := startProcEnv(t, env, "sink", "--config", shipped)
	api := "http://" + apiAddr
	waitHTTP(t, api+"/readyz", snk)

	get("api: start link", http.MethodPost, api+"/v1/links", token, "application/json", `{"kobot_account":"kobot-acme","link_key":"1"}`)
	get("api: wrong token", http.MethodPost, api+"/v1/links", token+"x", "application/json", `{"kobot_account":"kobot-acme","link_key":"1"}`)
	get("api: token as body", http.MethodPost, api+"/v1/links", token, "application/json", `{"kobot_account":"`+token+`"`)
	get("api: list", http.MethodGet, api+"/v1/links?limit=ten", token, "", "")
	testenv.MustExec(t, srcAdmin, `INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email)
		VALUES (1, 1, 'Secrets test', 'secrets@example.jp')`)
	deadline := time.Now().Add(60 * time.Second)
	for len(recv.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(recv.got()) == 0 {
		t.Fatalf("no push reached Kobot (%d calls):\n%s\n%s", recv.Requests(), tail(conn.output(), 10), tail(snk.output(), 10))
	}
	for _, ep := range []string{"/metrics", "/healthz", "/readyz"} {
		get("connector "+ep, http.MethodGet, "http://"+metricsAddr+ep, "", "", "")
		get("sink "+ep, http.MethodGet, api+ep, "", "", "")
	}

	oneShot("validate", nil, "validate", "--config", shipped)
	oneShot("validate with a bad override", []string{"BAITORU_CDC_SINK_SQS_WAIT_TIME=99s", "BAITORU_CDC_SINK_KOBOT_SECRET=whsec_!" + secret}, "validate", "--config", shipped)
	oneShot("check", nil, "check", "--config", shipped)
	oneShot("check --json", nil, "check", "--config", shipped, "--json")
	oneShot("setup --dry-run", nil, "setup", "--config", shipped, "--dry-run")
	oneShot("check with a wrong password", []string{"BAITORU_DB_PASSWORD=" + wrongPass}, "check", "--config", shipped)
	oneShot("check without the password", []string{"BAITORU_DB_PASSWORD="}, "check", "--config", shipped)
	bad := startProcEnv(t, append(append([]string(nil), env...), "BAITORU_DB_PASSWORD="+wrongPass, "BAITORU_CDC_METRICS_LISTEN="+freeAddr(t),
		"BAITORU_CDC_SOURCE_SLOT=other"), "run", "--config", shipped)
	bad.waitLog(t, `refused the password of role`, 30*time.Second)
	badSink := startProcEnv(t, append(append([]string(nil), env...), "SINK_DB_PASSWORD="+wrongPass, "BAITORU_CDC_SINK_API_LISTEN="+freeAddr(t)), "sink", "--config", shipped)
	select {
	case <-badSink.Done():
	case <-time.After(30 * time.Second):
	}

	for label, p := range map[string]*proc{"run": conn, "sink": snk, "run with a wrong password": bad, "sink with a wrong password": badSink} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop after SIGTERM", label)
		}
		outputs[label] = p.output()
	}
	// The error paths ran and said what is wrong (without the values).
	for label, want := range map[string]string{
		"run with a wrong password":    "refused the password of role",
		"check with a wrong password":  "refused the password of role",
		"check without the password":   "BAITORU_DB_PASSWORD",
		"sink with a wrong password":   "refused the password of role",
		"validate with a bad override": "BAITORU_CDC_SINK_KOBOT_SECRET",
		"api: wrong token":             "401",
	} {
		if !strings.Contains(outputs[label], want) {
			t.Errorf("%s: no %q in its output:\n%s", label, want, tail(outputs[label], 5))
		}
	}

	keyPart := strings.TrimPrefix(secret, "whsec_")
	raw, _ := base64.StdEncoding.DecodeString(keyPart)
	secrets := map[string]string{
		"DSN password":            password,
		"sink DSN password":       sinkPassword,
		"wrong DSN password":      wrongPass,
		"DSN password, escaped":   url.QueryEscape(password),
		"DSN password, in a URL":  url.UserPassword("u", password).String()[2:],
		"webhook secret":          secret,
		"webhook secret key":      keyPart,
		"webhook secret, decoded": string(raw),
		"API token":               token,
	}
	total := 0
	for label, out := range outputs {
		total += len(out)
		if strings.TrimSpace(out) == "" {
			t.Errorf("%s: no output: the check would prove nothing", label)
		}
		for what, s := range secrets {
			if i := strings.Index(out, s); i >= 0 {
				t.Errorf("%s printed the %s: …%s…", label, what, out[max(0, i-80):min(len(out), i+len(s)+20)])
			}
		}
	}
	t.Logf("%d outputs, %d bytes, free of %d secret forms", len(outputs), total, len(secrets))
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
