// Package deploy holds the AWS deployment of baitoru-cdc: template.yaml (AWS
// SAM / CloudFormation: SNS, SQS with its DLQ, the sink and links API as
// Lambda functions, the connector as an ECS Fargate service, alarms, IAM,
// the release pipeline), buildspec.yml (CodeBuild), config.yaml (the
// configuration both run with) and the Grafana dashboard. Its tests parse
// the template with goformation and check it against the code: references,
// wiring, the IAM actions each role's code calls, the concurrency plan, and
// the metrics the dashboard queries. docs/aws.md is the guide.
package deploy
