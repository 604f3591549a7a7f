package sns

import (
	"errors"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// throttleCodes are the error codes with which AWS says "slow down". They
// are retried whatever SenderFault says.
var throttleCodes = map[string]bool{
	"Throttling":                             true,
	"ThrottlingException":                    true,
	"ThrottledException":                     true,
	"Throttled":                              true,
	"RequestThrottledException":              true,
	"RequestThrottled":                       true,
	"TooManyRequestsException":               true,
	"TooManyRequests":                        true,
	"ProvisionedThroughputExceededException": true,
	"RequestLimitExceeded":                   true,
	"BandwidthLimitExceeded":                 true,
	"LimitExceededException":                 true,
	"SlowDown":                               true,
	"PriorRequestNotComplete":                true,
	"KMSThrottling":                          true,
}

// transientCodes are other error codes that a later attempt can succeed
// past: server-side failures, and expired credentials or signatures, which
// the SDK refreshes on the next attempt.
var transientCodes = map[string]bool{
	"InternalError":                  true,
	"InternalFailure":                true,
	"ServiceUnavailable":             true,
	"RequestTimeout":                 true,
	"RequestTimeoutException":        true,
	"TransactionInProgressException": true,
	"ExpiredToken":                   true,
	"ExpiredTokenException":          true,
	"RequestExpired":                 true,
	"IDPCommunicationError":          true,
}

func retryableCode(code string) bool { return throttleCodes[code] || transientCodes[code] }

// retryable reports whether a failed PublishBatch or GetTopicAttributes
// call may succeed when repeated: throttling, 5xx and 429 answers, and
// every error that is not an answer from SNS at all (network errors,
// timeouts of one attempt, unreadable responses, credential look-ups).
// Any other error answer (4xx: NotFound, AuthorizationError,
// InvalidParameter, KMS*...) is permanent.
func retryable(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true
	}
	if retryableCode(ae.ErrorCode()) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		s := re.HTTPStatusCode()
		return s >= 500 || s == 429
	}
	return ae.ErrorFault() == smithy.FaultServer
}

// errorCode is the AWS error code of err, or "" when SNS did not answer.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// hint tells the operator what a permanent error code usually means.
func hint(code string) string {
	switch {
	case code == "NotFound":
		return "the topic does not exist: check sns.topic_arn and the tables' topic_arn, and the region"
	case code == "AuthorizationError" || code == "AccessDenied" || code == "AccessDeniedException":
		return "the connector's AWS identity is not allowed this action on the topic: allow sns:Publish (and sns:GetTopicAttributes for check) on it"
	case code == "InvalidClientTokenId" || code == "SignatureDoesNotMatch" || code == "UnrecognizedClientException" || code == "InvalidSecurity":
		return "AWS refused the credentials: check the connector's AWS credentials and region"
	case strings.HasPrefix(code, "KMS"):
		return "the topic's KMS key cannot be used: check the key's state and the connector's kms:GenerateDataKey and kms:Decrypt permissions"
	case code == "InvalidParameter" || code == "ParameterValueInvalid" || code == "ValidationException":
		return "SNS refused the message: check the table's mapping (attributes, key) and the topic type"
	}
	return ""
}

// Allowed characters of a MessageGroupId and MessageDeduplicationId: SNS
// accepts alphanumerics and the punctuation !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
// (every printable ASCII character but the space), 1 to 128 of them.
const maxFIFOID = 128

func validFIFOID(s string) bool {
	if len(s) == 0 || len(s) > maxFIFOID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
