package deploy_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/baitoru/baitoru-cdc/config"
)

// TestConfigLoadsWithTheTemplatesEnvironment loads config.yaml as each
// runtime of the template does: the connector with its ECS container's
// environment and secrets, the sink with each function's environment. Only
// the variables the template sets are set, so a variable the file needs and
// the template forgets (or one the template sets and the file never reads)
// fails here.
func TestConfigLoadsWithTheTemplatesEnvironment(t *testing.T) {
	tpl := parse(t)
	cfgText, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)(:-[^}]*)?\}`).FindAllStringSubmatch(string(cfgText), -1) {
		used[m[1]] = true
	}
	load := func(name string, env map[string]string, loader func(string) (*config.Config, error)) *config.Config {
		t.Helper()
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if used[k] || strings.HasPrefix(k, "BAITORU_CDC_") {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
		for k, v := range env {
			t.Setenv(k, v)
		}
		cfg, err := loader("config.yaml")
		if err != nil {
			t.Fatalf("%s: config.yaml with the template's environment: %v", name, err)
		}
		return cfg
	}
	var sample func(k, v string) string
	sample = func(k, v string) string {
		// A stand-in for a value CloudFormation fills in at deploy time.
		if fn, arg, ok := intrinsic(v); ok && fn == "Fn::If" {
			// The condition holds (the optional feature is configured).
			if a, ok := arg.([]any); ok && len(a) == 3 {
				if then, ok := a[1].(string); ok {
					return sample(k, then)
				}
			}
		}
		switch {
		case ref(v) == "EventsTopic":
			return "arn:aws:sns:ap-northeast-1:123456789012:baitoru-events"
		case ref(v) == "AWS::Region":
			return "ap-northeast-1"
		case ref(v) == "KobotEndpoint":
			return "https://kobot.example/webhooks/baitoru"
		case ref(v) == "EventsQueue":
			return "https://sqs.ap-northeast-1.amazonaws.com/123456789012/baitoru-cdc-kobot"
		case ref(v) == "LargePayloadsBucket":
			return "baitoru-cdc-largepayloadsbucket-1a2b3c4d5e6f"
		case ref(v) == "DeadLetterQueue":
			return "https://sqs.ap-northeast-1.amazonaws.com/123456789012/baitoru-cdc-kobot-dlq"
		case strings.HasSuffix(k, "_PORT"):
			return "5432"
		case k == "KOBOT_WEBHOOK_SECRET":
			key := make([]byte, 32)
			rand.Read(key)
			return "whsec_" + base64.StdEncoding.EncodeToString(key)
		case strings.Contains(fmt.Sprint(subArg(v)), "{{resolve:secretsmanager:"):
			return "secret-value-of-" + strings.ToLower(k)
		case ref(v) != "":
			return "x-" + strings.ToLower(k)
		case subArg(v) != nil:
			// A string built from parameters: each ${Name} by a stand-in.
			text, _ := subArg(v).(string)
			return regexp.MustCompile(`\$\{([A-Za-z0-9:]+)\}`).ReplaceAllStringFunc(text, func(m string) string {
				if strings.HasSuffix(m, "Port}") {
					return "5432"
				}
				return "x-" + strings.ToLower(strings.Trim(m, "${}"))
			})
		}
		if fn, _, ok := intrinsic(v); ok {
			return "x-" + fn
		}
		return v
	}

	for _, name := range []string{"SinkFunction", "LinksApiFunction"} {
		fn, err := tpl.GetServerlessFunctionWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"AWS_REGION": "ap-northeast-1"} // set by the Lambda runtime
		for k, v := range fn.Environment.Variables {
			env[k] = sample(k, v)
			if !used[k] && k != "BAITORU_CDC_CONFIG" {
				t.Errorf("%s sets %s, which config.yaml does not read", name, k)
			}
		}
		if env["BAITORU_CDC_CONFIG"] != "/var/task/config.yaml" {
			t.Errorf("%s: BAITORU_CDC_CONFIG %q, want /var/task/config.yaml (make lambda puts config.yaml beside bootstrap)", name, env["BAITORU_CDC_CONFIG"])
		}
		if env["SINK_DB_PASSWORD"] == "" {
			t.Errorf("%s: no SINK_DB_PASSWORD for the sink database", name)
		}
		cfg := load(name, env, config.LoadSink)
		if !strings.HasSuffix(cfg.Sink.SQS.QueueURL, "/baitoru-cdc-kobot") || !strings.HasSuffix(cfg.Sink.SQS.DLQURL, "/baitoru-cdc-kobot-dlq") {
			t.Errorf("%s: queue %q, DLQ %q: not the template's queues", name, cfg.Sink.SQS.QueueURL, cfg.Sink.SQS.DLQURL)
		}
		if !strings.Contains(cfg.Sink.DSN, "pool_max_conns=2") {
			t.Errorf("%s: sink.dsn %q has not the plan's pool", name, cfg.Sink.DSN)
		}
		// The links API function asks for a link's history as the
		// requester role, on Baitoru's database; the sink function never
		// starts a link.
		if h := cfg.Sink.History; name == "LinksApiFunction" && (!strings.Contains(h.DSN, "x-requesterdbuser") || !strings.Contains(h.DSN, "x-sourcedbhost") || !strings.Contains(h.DSN, "secret-value-of-baitoru_requester_password")) {
			t.Errorf("%s: sink.history.dsn %q: not the requester role on Baitoru's database with its secret", name, h.DSN)
		}
	}

	td, err := tpl.GetECSTaskDefinitionWithName("ConnectorTaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, c := range td.ContainerDefinitions {
		for _, kv := range c.Environment {
			env[*kv.Name] = sample(*kv.Name, *kv.Value)
			if !used[*kv.Name] && *kv.Name != "AWS_REGION" {
				t.Errorf("the connector's container sets %s, which config.yaml does not read", *kv.Name)
			}
		}
		for _, s := range c.Secrets {
			env[s.Name] = "x-secret"
		}
		if !slices.Equal(c.Command, []string{"run", "--config", "/etc/baitoru-cdc/config.yaml"}) {
			t.Errorf("connector command %v", c.Command)
		}
	}
	if env["BAITORU_DB_PASSWORD"] == "" {
		t.Error("the connector has no BAITORU_DB_PASSWORD secret")
	}
	cfg := load("connector", env, config.LoadConnector)
	// Every table publishes to the topic the template creates.
	tn, err := tpl.GetSNSTopicWithName("EventsTopic")
	if err != nil {
		t.Fatal(err)
	}
	topicName := fmt.Sprint(raw(t)["Parameters"].(map[string]any)[strings.TrimSpace(ref(*tn.TopicName))].(map[string]any)["Default"])
	for _, tb := range cfg.Tables {
		arn := cfg.SNS.TopicARN
		if tb.TopicARN != "" {
			arn = tb.TopicARN
		}
		if !strings.HasSuffix(arn, ":"+topicName) {
			t.Errorf("table %s publishes to %s; the template creates only %s", tb.Table, arn, topicName)
		}
	}
	// Large events go to the template's bucket (the task role may write there).
	if b := cfg.Buckets(); len(b) != 1 || b[0].Bucket != "baitoru-cdc-largepayloadsbucket-1a2b3c4d5e6f" {
		t.Errorf("large_payloads buckets %v, want the template's LargePayloadsBucket", b)
	}
	if len(cfg.Tables) == 0 || cfg.Source.Create {
		t.Errorf("%d tables; source.create %v (the DBA creates the slot: `setup`)", len(cfg.Tables), cfg.Source.Create)
	}
}

// TestPipelineFiles checks the files the pipeline reads: the buildspec's
// phases and artifacts, and that the example parameters name every
// parameter without a default and nothing the template does not have.
func TestPipelineFiles(t *testing.T) {
	var spec struct {
		Version   any
		Phases    map[string]struct{ Commands []string }
		Artifacts struct{ Files []string }
	}
	b, err := os.ReadFile("buildspec.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, p := range spec.Phases {
		all += strings.Join(p.Commands, "\n") + "\n"
	}
	for _, want := range []string{"make test", "make lambda", "make image", "docker push", "aws cloudformation package --template-file deploy/template.yaml"} {
		if !strings.Contains(all, want) {
			t.Errorf("buildspec.yml does not run %q", want)
		}
	}
	if !slices.Equal(spec.Artifacts.Files, []string{"packaged.yaml", "parameters.json"}) {
		t.Errorf("buildspec artifacts %v, want the packaged template and its parameters (the Deploy stage reads Packaged::packaged.yaml)", spec.Artifacts.Files)
	}
	var ex struct{ Parameters map[string]string }
	b, err = os.ReadFile("parameters.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ex); err != nil {
		t.Fatal(err)
	}
	params := raw(t)["Parameters"].(map[string]any)
	for name, p := range params {
		if _, hasDefault := p.(map[string]any)["Default"]; !hasDefault {
			if _, ok := ex.Parameters[name]; !ok {
				t.Errorf("parameters.example.json lacks %s (no default)", name)
			}
		}
	}
	for name := range ex.Parameters {
		if params[name] == nil {
			t.Errorf("parameters.example.json sets %s, which the template does not have", name)
		}
	}
}

// subArg is the argument of an encoded Fn::Sub, or nil.
func subArg(v string) any {
	if fn, arg, ok := intrinsic(v); ok && fn == "Fn::Sub" {
		return arg
	}
	return nil
}
