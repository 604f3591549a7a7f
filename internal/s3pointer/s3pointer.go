// Package s3pointer is the wire format of a message whose body was stored in
// S3 (the claim-check pattern), as the AWS extended clients write and read
// it (the SNS extended clients for Java and Python, the SQS extended client
// for Java), so that their consumers read baitoru-cdc's large events
// unchanged and the sink reads pointers those clients wrote:
//
//   - the message body is a pointer,
//     ["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"…","s3Key":"…"}]
//     (older SQS clients wrote the class com.amazon.sqs.javamessaging.MessageS3Pointer);
//   - the message attribute ExtendedPayloadSize (type Number; older clients:
//     SQSLargePayloadSize) is the UTF-8 byte length of the original body;
//   - the object holds the original body, byte for byte.
//
// The connector writes the current names; readers accept both.
package s3pointer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Names of the format.
const (
	// Class is the pointer class name written in the body.
	Class = "software.amazon.payloadoffloading.PayloadS3Pointer"
	// LegacyClass is the class name older SQS extended clients wrote.
	LegacyClass = "com.amazon.sqs.javamessaging.MessageS3Pointer"
	// SizeAttribute is the message attribute holding the original body's
	// size in bytes (type Number).
	SizeAttribute = "ExtendedPayloadSize"
	// LegacySizeAttribute is its older name.
	LegacySizeAttribute = "SQSLargePayloadSize"
	// SizeAttributeType is the attribute's data type.
	SizeAttributeType = "Number"
)

// Pointer names the S3 object holding a message body.
type Pointer struct {
	Bucket string `json:"s3BucketName"`
	Key    string `json:"s3Key"`
}

// String is "s3://bucket/key".
func (p Pointer) String() string { return "s3://" + p.Bucket + "/" + p.Key }

// Encode returns the message body pointing at p:
// ["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"…","s3Key":"…"}].
func Encode(p Pointer) []byte {
	b := make([]byte, 0, len(Class)+len(p.Bucket)+len(p.Key)+40)
	b = append(b, `["`+Class+`",{"s3BucketName":`...)
	b = appendString(b, p.Bucket)
	b = append(b, `,"s3Key":`...)
	b = appendString(b, p.Key)
	return append(b, "}]"...)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// ErrInvalid is wrapped by the errors of Parse and ParseSize: the message
// claims to be a pointer but is not a usable one.
var ErrInvalid = errors.New("invalid S3 pointer")

// IsPointer reports whether body looks like a pointer (a JSON array): an
// event is always a JSON object, so a body starting with '[' is either a
// pointer or invalid. It reads the first non-space byte only.
func IsPointer(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '['
}

// Parse reads a pointer body of either class name. The error wraps
// ErrInvalid and says what is wrong.
func Parse(body []byte) (Pointer, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(body, &parts); err != nil {
		return Pointer{}, fmt.Errorf("%w: not a JSON array: %v", ErrInvalid, err)
	}
	if len(parts) != 2 {
		return Pointer{}, fmt.Errorf("%w: %d elements, want 2 (class name, pointer)", ErrInvalid, len(parts))
	}
	var class string
	if err := json.Unmarshal(parts[0], &class); err != nil {
		return Pointer{}, fmt.Errorf("%w: the first element is not a class name", ErrInvalid)
	}
	if class != Class && class != LegacyClass {
		return Pointer{}, fmt.Errorf("%w: class %.100q, want %s or %s", ErrInvalid, class, Class, LegacyClass)
	}
	var p Pointer
	if err := json.Unmarshal(parts[1], &p); err != nil {
		return Pointer{}, fmt.Errorf("%w: the second element is not an object of s3BucketName and s3Key", ErrInvalid)
	}
	if p.Bucket == "" || p.Key == "" {
		return Pointer{}, fmt.Errorf("%w: s3BucketName or s3Key is empty", ErrInvalid)
	}
	return p, nil
}

// ParseSize reads the value of a size attribute: a whole number of bytes,
// at least 0. The error wraps ErrInvalid.
func ParseSize(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: size attribute %.40q is not a byte count", ErrInvalid, v)
	}
	return n, nil
}

// Size finds the size attribute among a message's attributes (the current
// name first, then the legacy one) through get, which returns an
// attribute's string value. ok is false when neither is there.
func Size(get func(name string) (string, bool)) (value string, ok bool) {
	if v, ok := get(SizeAttribute); ok {
		return v, true
	}
	return get(LegacySizeAttribute)
}
