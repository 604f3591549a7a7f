package sns

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/cenkalti/backoff/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
)

// topicFix is what to do about a topic the connector cannot reach.
const topicFix = "check the ARN, sns.region/sns.endpoint, and that the connector's AWS identity may sns:GetTopicAttributes and sns:Publish on it"

// TopicError says why the connector cannot publish to a topic: what is
// wrong and how to fix it (the `check` command shows the same two). It
// wraps connector.ErrPermanent unless retrying may help (Retry: no answer
// from SNS, throttling, a server error).
type TopicError struct {
	ARN     string
	Problem string
	Fix     string
	Retry   bool
	cause   error
}

func (e *TopicError) Error() string {
	return "sns topic " + e.ARN + ": " + e.Problem + "; fix: " + e.Fix
}

func (e *TopicError) Unwrap() []error {
	if e.Retry {
		return []error{e.cause}
	}
	return []error{e.cause, connector.ErrPermanent}
}

// CheckTopic checks that the connector can publish to the topic as the
// configuration means it: the topic exists, the connector's AWS identity may
// read it, and it is a FIFO topic exactly when its ARN ends in ".fifo". It
// returns whether the topic is a FIFO topic, or a *TopicError.
func (p *Publisher) CheckTopic(ctx context.Context, arn string) (fifo bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.api.GetTopicAttributes(cctx, &awssns.GetTopicAttributesInput{TopicArn: aws.String(arn)})
	var ce *awsclient.CredentialsError
	if errors.As(err, &ce) {
		return false, &TopicError{ARN: arn, Problem: "cannot be checked: " + ce.Problem(), Fix: ce.Fix(), cause: err}
	}
	if err != nil {
		problem := "not reachable: " + err.Error()
		if code := awsclient.ErrorCode(err); code != "" {
			problem = "refused by SNS: " + err.Error()
			if h := hint(code); h != "" {
				problem += " (" + h + ")"
			}
		}
		return false, &TopicError{ARN: arn, Problem: problem, Fix: topicFix, Retry: ctx.Err() != nil || awsclient.Retryable(err), cause: err}
	}
	fifo = strings.HasSuffix(arn, ".fifo")
	if v, ok := out.Attributes["FifoTopic"]; ok {
		fifo = v == "true"
	}
	if want := strings.HasSuffix(arn, ".fifo"); fifo != want {
		kind := map[bool]string{true: "a FIFO topic", false: "a standard topic"}
		return fifo, &TopicError{ARN: arn, Problem: "is " + kind[fifo] + " but the config treats it as " + kind[want] + " (ARN suffix .fifo)",
			Fix: "use the topic's real ARN", cause: errors.New("topic kind")}
	}
	return fifo, nil
}

// VerifyTopics checks every topic with CheckTopic before the connector reads
// anything (run calls it at start). A problem that retrying may fix is tried
// again with the publisher's retry backoff, each retry logged with the
// attempt and the next delay, for at most within; the first problem that
// remains is returned (a *TopicError). An outage that begins later is the
// publisher's to retry, as always.
func (p *Publisher) VerifyTopics(ctx context.Context, arns []string, within time.Duration) error {
	for _, arn := range arns {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = p.opts.RetryInitial, p.opts.RetryMax
		attempt := 0
		_, err := backoff.Retry(ctx, func() (bool, error) {
			attempt++
			fifo, err := p.CheckTopic(ctx, arn)
			var te *TopicError
			if errors.As(err, &te) && !te.Retry {
				return fifo, backoff.Permanent(err)
			}
			return fifo, err
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(within),
			backoff.WithNotify(func(err error, next time.Duration) {
				p.log.Warn("sns topic not reachable; retrying", "topic", arn, "attempt", attempt,
					"retry_in", next.Round(time.Millisecond).String(), "gives_up_after", within.String(), "error", err)
			}))
		if err != nil {
			return err
		}
	}
	return nil
}
