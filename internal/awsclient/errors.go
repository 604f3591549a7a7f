package awsclient

import (
	"errors"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// throttleCodes are the error codes with which AWS says "slow down". They
// are retried whatever else the answer says.
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
	"RequestTimeTooSkewed":           true,
	"IDPCommunicationError":          true,
}

// Throttled reports whether code is one with which AWS says "slow down".
func Throttled(code string) bool { return throttleCodes[code] }

// Retryable reports whether a failed call may succeed when repeated:
// throttling, 5xx and 429 answers, and every error that is not an answer
// from AWS at all (network errors, timeouts of one attempt, unreadable
// responses, credential look-ups). Any other error answer (4xx: NotFound,
// NoSuchBucket, AccessDenied, InvalidParameter, KMS*...) is permanent. The
// callers that retry themselves (CallerRetries clients: the SNS publisher,
// the S3 payload store) decide with it.
func Retryable(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true
	}
	if throttleCodes[ae.ErrorCode()] || transientCodes[ae.ErrorCode()] {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		s := re.HTTPStatusCode()
		return s >= 500 || s == 429
	}
	return ae.ErrorFault() == smithy.FaultServer
}

// ErrorCode is the AWS error code of err, or "" when AWS did not answer.
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
