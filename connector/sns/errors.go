package sns

import "strings"

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
