package deploy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/intrinsics"
)

const templateFile = "template.yaml"

// raw is the template as JSON with its intrinsic functions left as they
// are ({"Ref": ...}, {"Fn::GetAtt": ...}).
func raw(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	js, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// parse parses the template with goformation into its typed resources.
// Intrinsic functions stay encoded in string fields (decode them with
// intrinsic); a Ref to a Number parameter and a Fn::FindInMap whose keys are
// parameters take the parameters' defaults, so that numeric fields parse.
func parse(t *testing.T) *cloudformation.Template {
	t.Helper()
	params := raw(t)["Parameters"].(map[string]any)
	mappings := raw(t)["Mappings"].(map[string]any)
	handlers := map[string]intrinsics.IntrinsicHandler{}
	for k, h := range cloudformation.EncoderIntrinsics {
		handlers[k] = h
	}
	handlers["Ref"] = func(name string, input any, tpl any) any {
		p, _ := params[fmt.Sprint(input)].(map[string]any)
		typ, _ := p["Type"].(string)
		switch {
		case typ == "Number":
			return p["Default"]
		case strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList":
			return []any{cloudformation.Ref(input)}
		}
		return cloudformation.Ref(input)
	}
	handlers["Fn::FindInMap"] = func(name string, input any, tpl any) any {
		args, ok := input.([]any)
		if !ok || len(args) != 3 {
			return nil
		}
		keys := make([]string, 3)
		for i, a := range args {
			s := fmt.Sprint(a)
			if fn, arg, ok := intrinsic(s); ok && fn == "Ref" {
				s = fmt.Sprint(params[fmt.Sprint(arg)].(map[string]any)["Default"])
			}
			keys[i] = s
		}
		top, _ := mappings[keys[0]].(map[string]any)
		second, _ := top[keys[1]].(map[string]any)
		return second[keys[2]]
	}
	tpl, err := goformation.OpenWithOptions(templateFile, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: handlers})
	if err != nil {
		t.Fatalf("goformation: %v", err)
	}
	return tpl
}

// A Ref to a list parameter becomes a list of one encoded Ref.

// intrinsic decodes a string field holding an encoded intrinsic function:
// its name (Ref, Fn::GetAtt, ...) and argument.
func intrinsic(s string) (fn string, arg any, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", nil, false
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		return k, v, true
	}
	return "", nil, false
}

// ref returns what s refers to: "X" for {"Ref": "X"}, "X.Attr" for
// {"Fn::GetAtt": ...}; "" otherwise.
func ref(s string) string {
	fn, arg, ok := intrinsic(s)
	if !ok {
		return ""
	}
	switch fn {
	case "Ref":
		return fmt.Sprint(arg)
	case "Fn::GetAtt":
		if a, ok := arg.([]any); ok && len(a) == 2 {
			return fmt.Sprintf("%v.%v", a[0], a[1])
		}
		return fmt.Sprint(arg)
	}
	return ""
}

func refAny(v any) string {
	if s, ok := v.(string); ok {
		return ref(s)
	}
	return ""
}

var pseudoParameters = []string{"AWS::AccountId", "AWS::NoValue", "AWS::Partition", "AWS::Region",
	"AWS::StackId", "AWS::StackName", "AWS::URLSuffix", "AWS::NotificationARNs"}

// TestReferencesResolve checks every Ref, Fn::GetAtt, ${} of Fn::Sub,
// Fn::FindInMap, condition and DependsOn against the template's parameters,
// resources, mappings and conditions (and the resources SAM generates:
// Function.Alias, Function.Version, FunctionUrl), and that every parameter
// is used.
func TestReferencesResolve(t *testing.T) {
	m := raw(t)
	params := m["Parameters"].(map[string]any)
	resources := m["Resources"].(map[string]any)
	mappings := m["Mappings"].(map[string]any)
	conditions := m["Conditions"].(map[string]any)
	names := map[string]string{} // referable name -> resource type
	for n, r := range resources {
		typ := r.(map[string]any)["Type"].(string)
		names[n] = typ
		props, _ := r.(map[string]any)["Properties"].(map[string]any)
		if typ == "AWS::Serverless::Function" {
			if props["AutoPublishAlias"] != nil {
				names[n+".Alias"] = "AWS::Lambda::Alias"
				names[n+".Version"] = "AWS::Lambda::Version"
			}
			if props["FunctionUrlConfig"] != nil {
				names[n+"Url"] = "AWS::Lambda::Url"
			}
		}
	}
	used := map[string]bool{}
	var problems []string
	check := func(where, name string) {
		used[name] = true
		if slices.Contains(pseudoParameters, name) || params[name] != nil || names[name] != "" {
			return
		}
		problems = append(problems, fmt.Sprintf("%s: %q is no parameter or resource", where, name))
	}
	checkAtt := func(where, res, att string) {
		if names[res] == "" {
			problems = append(problems, fmt.Sprintf("%s: Fn::GetAtt of %q: no such resource", where, res))
			return
		}
		if atts, ok := attributes[names[res]]; !ok || !slices.Contains(atts, att) {
			problems = append(problems, fmt.Sprintf("%s: %s (%s) has no attribute %q known to this test", where, res, names[res], att))
		}
	}
	subVar := regexp.MustCompile(`\$\{([^!}][^}]*)\}`)
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch k {
				case "Ref":
					check(where, fmt.Sprint(x))
				case "Fn::GetAtt":
					var res, att string
					switch a := x.(type) {
					case string:
						res, att, _ = strings.Cut(a, ".")
					case []any:
						res, att = fmt.Sprint(a[0]), fmt.Sprint(a[1])
					}
					checkAtt(where, res, att)
				case "Fn::Sub":
					s, vars := x, map[string]any{}
					if a, ok := x.([]any); ok {
						s = a[0]
						vars, _ = a[1].(map[string]any)
						walk(where, a[1])
					}
					for _, sm := range subVar.FindAllStringSubmatch(fmt.Sprint(s), -1) {
						if _, ok := vars[sm[1]]; ok {
							continue
						}
						if res, att, ok := strings.Cut(sm[1], "."); ok && params[sm[1]] == nil && !strings.HasPrefix(sm[1], "AWS::") {
							checkAtt(where, res, att)
							continue
						}
						check(where, sm[1])
					}
				case "Fn::FindInMap":
					a := x.([]any)
					if mappings[fmt.Sprint(a[0])] == nil {
						problems = append(problems, fmt.Sprintf("%s: no mapping %v", where, a[0]))
					}
					walk(where, a)
				case "Fn::If":
					a := x.([]any)
					if conditions[fmt.Sprint(a[0])] == nil {
						problems = append(problems, fmt.Sprintf("%s: no condition %v", where, a[0]))
					}
					walk(where, a[1:])
				case "Condition":
					if s, ok := x.(string); ok && conditions[s] == nil {
						problems = append(problems, fmt.Sprintf("%s: no condition %v", where, s))
					}
				case "DependsOn":
					deps, _ := x.([]any)
					if s, ok := x.(string); ok {
						deps = []any{s}
					}
					for _, d := range deps {
						if resources[fmt.Sprint(d)] == nil {
							problems = append(problems, fmt.Sprintf("%s: DependsOn %v: no such resource", where, d))
						}
					}
				default:
					walk(where, x)
				}
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	for _, section := range []string{"Resources", "Outputs", "Conditions", "Globals"} {
		s, _ := m[section].(map[string]any)
		for name, v := range s {
			walk(section+"."+name, v)
		}
	}
	for p := range params {
		if !used[p] {
			problems = append(problems, fmt.Sprintf("parameter %s is never used", p))
		}
	}
	slices.Sort(problems)
	for _, p := range problems {
		t.Error(p)
	}
	if len(resources) < 20 || len(used) < 20 {
		t.Fatalf("only %d resources and %d references found", len(resources), len(used))
	}
}

// attributes are the Fn::GetAtt attributes this template uses, per type
// (from the CloudFormation resource reference).
var attributes = map[string][]string{
	"AWS::SQS::Queue":         {"Arn", "QueueName", "QueueUrl"},
	"AWS::IAM::Role":          {"Arn", "RoleId"},
	"AWS::Logs::LogGroup":     {"Arn"},
	"AWS::ECS::Service":       {"Name", "ServiceArn"},
	"AWS::ECR::Repository":    {"Arn", "RepositoryUri"},
	"AWS::CodeBuild::Project": {"Arn"},
	"AWS::Lambda::Url":        {"FunctionArn", "FunctionUrl"},
	"AWS::SNS::Topic":         {"TopicArn", "TopicName"},
	"AWS::S3::Bucket":         {"Arn", "DomainName", "RegionalDomainName"},
}

// TestSinkWiring checks the path SNS -> SQS -> Lambda -> Kobot as the
// design has it: raw delivery into the queue, the redrive policy to the
// DLQ, the event source mapping on the live alias with partial batch
// failures, and canary releases that roll back on alarms.
func TestSinkWiring(t *testing.T) {
	tpl := parse(t)

	sub, err := tpl.GetSNSSubscriptionWithName("EventsSubscription")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Protocol != "sqs" || ref(*sub.Endpoint) != "EventsQueue.Arn" || ref(sub.TopicArn) != "EventsTopic" {
		t.Errorf("subscription: protocol %s, endpoint %s, topic %s; want sqs, EventsQueue.Arn, EventsTopic", sub.Protocol, ref(*sub.Endpoint), ref(sub.TopicArn))
	}
	if sub.RawMessageDelivery == nil || !*sub.RawMessageDelivery {
		t.Error("subscription: RawMessageDelivery must be true (the sink parses the CloudEvent, not SNS's envelope)")
	}
	if fn, _, _ := intrinsic(fmt.Sprint(sub.FilterPolicy)); fn != "Fn::If" {
		t.Errorf("subscription: FilterPolicy is %v, want the optional parameter (Fn::If)", sub.FilterPolicy)
	}

	queue, err := tpl.GetSQSQueueWithName("EventsQueue")
	if err != nil {
		t.Fatal(err)
	}
	redrive, _ := queue.RedrivePolicy.(map[string]any)
	if refAny(redrive["deadLetterTargetArn"]) != "DeadLetterQueue.Arn" || redrive["maxReceiveCount"] == nil {
		t.Errorf("queue redrive policy %v: want deadLetterTargetArn DeadLetterQueue.Arn and maxReceiveCount", redrive)
	}
	qpol, err := tpl.GetSQSQueuePolicyWithName("EventsQueuePolicy")
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := json.Marshal(qpol.PolicyDocument); !strings.Contains(string(js), "sns.amazonaws.com") || !strings.Contains(string(js), cloudformation.Ref("EventsTopic")) {
		t.Errorf("queue policy does not let the topic send: %s", js)
	}

	fn, err := tpl.GetServerlessFunctionWithName("SinkFunction")
	if err != nil {
		t.Fatal(err)
	}
	globals, err := tpl.GetServerlessGlobalFunction()
	if err != nil {
		t.Fatal(err)
	}
	if globals.Runtime == nil || *globals.Runtime != "provided.al2023" || globals.Architectures == nil || !slices.Equal(*globals.Architectures, []string{"arm64"}) {
		t.Errorf("runtime %v %v, want provided.al2023 [arm64]", globals.Runtime, globals.Architectures)
	}
	if globals.CodeUri == nil || globals.CodeUri.String == nil || *globals.CodeUri.String != "../bin/lambda/baitoru-cdc-lambda-arm64.zip" {
		t.Errorf("CodeUri %v, want the arm64 zip make lambda builds", globals.CodeUri)
	}
	if fn.AutoPublishAlias == nil || *fn.AutoPublishAlias != "live" {
		t.Error("SinkFunction: AutoPublishAlias must be live")
	}
	if fn.Handler == nil || *fn.Handler != "sink" {
		t.Errorf("SinkFunction: handler %v, want sink", fn.Handler)
	}
	dp := fn.DeploymentPreference
	if dp == nil || ref(*dp.Type) != "CanaryType" || len(dp.Alarms) < 2 {
		t.Fatalf("SinkFunction: DeploymentPreference %+v: want Type from CanaryType and rollback alarms", dp)
	}
	for _, a := range dp.Alarms {
		if _, err := tpl.GetCloudWatchAlarmWithName(ref(a)); err != nil {
			t.Errorf("DeploymentPreference alarm %q: %v", ref(a), err)
		}
	}

	esms := tpl.GetAllLambdaEventSourceMappingResources()
	if len(esms) != 1 {
		t.Fatalf("%d event source mappings, want 1", len(esms))
	}
	for _, esm := range esms {
		if ref(esm.FunctionName) != "SinkFunction.Alias" {
			t.Errorf("event source mapping invokes %q, want SinkFunction.Alias (the alias CodeDeploy shifts)", ref(esm.FunctionName))
		}
		if ref(*esm.EventSourceArn) != "EventsQueue.Arn" {
			t.Errorf("event source mapping reads %q, want EventsQueue.Arn", ref(*esm.EventSourceArn))
		}
		if !slices.Equal(esm.FunctionResponseTypes, []string{"ReportBatchItemFailures"}) {
			t.Errorf("FunctionResponseTypes %v, want [ReportBatchItemFailures]", esm.FunctionResponseTypes)
		}
		if esm.BatchSize == nil || esm.MaximumBatchingWindowInSeconds == nil || esm.ScalingConfig == nil || esm.ScalingConfig.MaximumConcurrency == nil {
			t.Fatal("event source mapping: set BatchSize, MaximumBatchingWindowInSeconds and ScalingConfig.MaximumConcurrency")
		}
		if *esm.BatchSize > 10 && *esm.MaximumBatchingWindowInSeconds < 1 {
			t.Error("a batch size over 10 needs a batching window of at least 1 s")
		}
		// AWS: the queue's visibility timeout at least 6 x the function's timeout.
		timeout := *globals.Timeout
		if fn.Timeout != nil {
			timeout = *fn.Timeout
		}
		if queue.VisibilityTimeout == nil || *queue.VisibilityTimeout < 6*timeout {
			t.Errorf("queue visibility timeout %v, want >= 6 x the function timeout %d", queue.VisibilityTimeout, timeout)
		}
	}

	api, err := tpl.GetServerlessFunctionWithName("LinksApiFunction")
	if err != nil {
		t.Fatal(err)
	}
	if api.Handler == nil || *api.Handler != "links-api" || api.FunctionUrlConfig == nil || *api.FunctionUrlConfig.InvokeMode != "RESPONSE_STREAM" {
		t.Error("LinksApiFunction: handler links-api behind a function URL with InvokeMode RESPONSE_STREAM (lambdaurl streams)")
	}
	if api.ReservedConcurrentExecutions == nil {
		t.Error("LinksApiFunction: its reserved concurrency bounds its database connections")
	}
}

// TestAlarms checks that the alarms the operations guide relies on exist,
// watch the right resources and notify the alarm topic.
func TestAlarms(t *testing.T) {
	tpl := parse(t)
	want := []struct {
		namespace, metric, dimension, resource string
	}{
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "DeadLetterQueue.QueueName"},
		{"AWS/SQS", "NumberOfMessagesSent", "QueueName", "DeadLetterQueue.QueueName"},
		{"AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "EventsQueue.QueueName"},
		{"AWS/Lambda", "Errors", "FunctionName", "SinkFunction"},
		{"AWS/Lambda", "Throttles", "FunctionName", "SinkFunction"},
		{"AWS/RDS", "OldestReplicationSlotLag", "DBInstanceIdentifier", "SourceDbInstanceId"},
		{"ECS/ContainerInsights", "RunningTaskCount", "ClusterName", "ConnectorCluster"},
	}
	alarms := tpl.GetAllCloudWatchAlarmResources()
	for _, w := range want {
		found := false
		for name, a := range alarms {
			if a.Namespace == nil || *a.Namespace != w.namespace || a.MetricName == nil || *a.MetricName != w.metric {
				continue
			}
			for _, d := range a.Dimensions {
				if d.Name == w.dimension && ref(d.Value) == w.resource {
					found = true
				}
			}
			if found {
				if len(a.AlarmActions) == 0 || ref(a.AlarmActions[0]) != "AlarmTopic" {
					t.Errorf("alarm %s notifies %v, want AlarmTopic", name, a.AlarmActions)
				}
				break
			}
		}
		if !found {
			t.Errorf("no alarm on %s %s of %s", w.namespace, w.metric, w.resource)
		}
	}
}

// roleCode names, per IAM role of the template, the functions whose code
// runs with it: its policy "code" must grant exactly the AWS API actions
// that code calls. A role without code (ECS's execution role, the
// pipeline's) has no "code" policy.
var roleCode = map[string][]string{
	"SinkFunctionRole":     {module + "/cmd/baitoru-cdc-lambda.setup"},
	"LinksApiFunctionRole": {module + "/cmd/baitoru-cdc-lambda.setupAPI"},
	"ConnectorTaskRole":    {module + "/cmd/baitoru-cdc.runCmd"},
}

// platform are the actions a role may have in its policy "platform": what
// an AWS service does on the role's behalf, not the code.
var platform = map[string][]string{
	"SinkFunctionRole": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", // the event source mapping
		"logs:CreateLogStream", "logs:PutLogEvents",
		"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"},
	"LinksApiFunctionRole": {"logs:CreateLogStream", "logs:PutLogEvents",
		"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"},
	"ConnectorExecutionRole": {"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
		"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue"},
	"BuildRole": {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:PutObject",
		"ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
		"ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage"},
	"PipelineRole": {"s3:GetObject", "s3:PutObject", "s3:GetBucketVersioning", "codestar-connections:UseConnection",
		"codebuild:StartBuild", "codebuild:BatchGetBuilds", "cloudformation:DescribeStacks", "cloudformation:CreateChangeSet",
		"cloudformation:DescribeChangeSet", "cloudformation:ExecuteChangeSet", "cloudformation:DeleteChangeSet", "iam:PassRole"},
}

// TestIAMGrantsWhatTheCodeCalls derives, from the code (loadProgram,
// awsActions), the AWS API actions each role's code calls, and compares
// them with the role's "code" policy: an SDK call without a grant, or a
// grant the code no longer needs, fails here. Every statement names its
// resources (no "*" for the code's actions).
func TestIAMGrantsWhatTheCodeCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the product (go list -export); run without -short")
	}
	tpl := parse(t)
	prog := loadProgram(t, "./cmd/baitoru-cdc", "./cmd/baitoru-cdc-lambda")
	roles := tpl.GetAllIAMRoleResources()
	for name := range roleCode {
		if _, ok := roles[name]; !ok {
			t.Errorf("role %s is not in the template", name)
		}
	}
	var all []string
	for name, role := range roles {
		granted := map[string][]string{}
		for _, p := range role.Policies {
			actions, resources := statements(t, name, p)
			if p.PolicyName != "code" && p.PolicyName != "platform" {
				t.Errorf("%s: policy %q: name it code (what our code calls) or platform (what AWS does for the role)", name, p.PolicyName)
			}
			granted[p.PolicyName] = append(granted[p.PolicyName], actions...)
			if p.PolicyName == "code" && slices.Contains(resources, "*") {
				t.Errorf("%s: the code policy grants on every resource", name)
			}
		}
		if name == "DeployRole" {
			continue // CloudFormation's own role: it may change every resource of the stack
		}
		for _, a := range granted["platform"] {
			if !slices.Contains(platform[name], a) {
				t.Errorf("%s: platform policy grants %s, which no AWS service needs for this role (add it to the list here with the reason, or remove it)", name, a)
			}
		}
		var want []string
		if roots := roleCode[name]; roots != nil {
			want = prog.awsActions(t, roots...)
			all = append(all, want...)
		}
		got := slices.Sorted(slices.Values(granted["code"]))
		got = slices.Compact(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the code policy grants %v; the code calls %v", name, got, want)
		} else {
			t.Logf("%s: code calls %v", name, want)
		}
	}
	// The analysis must see calls made through the consumers' own
	// interfaces (sink/sqs.Client, connector/sns.API): these three are.
	for _, a := range []string{"sns:Publish", "sns:GetTopicAttributes", "sqs:SendMessage"} {
		if !slices.Contains(all, a) {
			t.Errorf("the code analysis found no call of %s: it misses calls", a)
		}
	}
}

// statements returns the actions and resources of one inline policy.
func statements(t *testing.T, role string, p iam.Role_Policy) (actions, resources []string) {
	js, err := json.Marshal(p.PolicyDocument)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Effect   string
			Action   any
			Resource any
		}
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatalf("%s: policy %s: %v", role, p.PolicyName, err)
	}
	list := func(v any) []string {
		switch v := v.(type) {
		case string:
			return []string{v}
		case []any:
			var out []string
			for _, x := range v {
				out = append(out, fmt.Sprint(x))
			}
			return out
		}
		return nil
	}
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range list(s.Action) {
			if strings.Contains(a, "*") {
				t.Errorf("%s: policy %s: wildcard action %s", role, p.PolicyName, a)
			}
			actions = append(actions, a)
		}
		resources = append(resources, list(s.Resource)...)
	}
	return actions, resources
}

// TestConcurrencyPlan recomputes every row of the ConcurrencyPlan mapping:
// the sink database must allow (maximum concurrency + the links API's
// reserved concurrency) x the per-instance pool + the reserve, and the
// functions get the row's pool size.
func TestConcurrencyPlan(t *testing.T) {
	m := raw(t)
	plan := m["Mappings"].(map[string]any)["ConcurrencyPlan"].(map[string]any)
	param := m["Parameters"].(map[string]any)["SinkMaxConcurrency"].(map[string]any)
	allowed := param["AllowedValues"].([]any)
	if len(plan) != len(allowed) {
		t.Errorf("%d plan rows for %d allowed values of SinkMaxConcurrency", len(plan), len(allowed))
	}
	num := func(v any) int {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		return n
	}
	for _, a := range allowed {
		row, ok := plan[fmt.Sprint(a)].(map[string]any)
		if !ok {
			t.Errorf("no plan row for SinkMaxConcurrency %v", a)
			continue
		}
		conc, pool, api, reserve, dbmax := num(row["MaxConcurrency"]), num(row["Pool"]), num(row["ApiConcurrency"]), num(row["Reserve"]), num(row["DbMaxConnections"])
		if conc != num(a) {
			t.Errorf("row %v: MaxConcurrency %d", a, conc)
		}
		if want := (conc+api)*pool + reserve; dbmax != want {
			t.Errorf("row %v: DbMaxConnections %d, want (%d + %d) x %d + %d = %d", a, dbmax, conc, api, pool, reserve, want)
		}
		if pool < 2 {
			t.Errorf("row %v: a pool of %d cannot hold the links query and a delivery-log write at once", a, pool)
		}
		if conc < 2 {
			t.Errorf("row %v: the event source mapping's maximum concurrency is at least 2", a)
		}
	}
	tpl := parse(t)
	for _, name := range []string{"SinkFunction", "LinksApiFunction"} {
		fn, err := tpl.GetServerlessFunctionWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		row := plan[fmt.Sprint(param["Default"])].(map[string]any)
		if got := fn.Environment.Variables["SINK_DB_POOL"]; got != fmt.Sprint(row["Pool"]) {
			t.Errorf("%s: SINK_DB_POOL %q, want the plan's pool %v", name, got, row["Pool"])
		}
	}
	cfg, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "pool_max_conns=${SINK_DB_POOL") {
		t.Error("config.yaml: sink.dsn must take pool_max_conns from SINK_DB_POOL")
	}
}
