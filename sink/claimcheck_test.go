package sink_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
	"github.com/baitoru/baitoru-cdc/sink"
)

// TestStoredEventsFromS3: a message whose body is an S3 pointer (the AWS
// extended clients' format, current and legacy names) is replaced by the
// stored event, whose size must match the size attribute, and that event
// is pushed to Kobot byte for byte; the object is never deleted. A missing
// object, a size mismatch, a pointer without its size attribute and an
// object over sink.s3.max_event_bytes go to the DLQ with their reason.
// A pointer with the most attributes the connector sends (10) keeps its
// body and ExtendedPayloadSize in the DLQ: redriven once its object is
// back, it is delivered.
func TestStoredEventsFromS3(t *testing.T) {
	integration(t)
	h := startHarness(t, harnessOptions{})
	ctx := t.Context()
	bucket := "sink-large-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := h.emu.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	h.startLink("kobot-acme", "7")
	// Over SNS's limit, multibyte (the size is in bytes).
	big := func(id string) string {
		ev := event(id, 7)
		return strings.Replace(ev, `"applied_at"`, `"description":"`+strings.Repeat("求人情報 ", 30000)+`","applied_at"`, 1)
	}
	put := func(key, body string) {
		if _, err := h.emu.S3().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send := func(body string, attrs map[string]string) {
		in := &awssqs.SendMessageInput{QueueUrl: aws.String(h.queueURL), MessageBody: aws.String(body),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"table": {DataType: aws.String("String"), StringValue: aws.String("public.applications")},
			}}
		for k, v := range attrs {
			typ := "Number"
			if !strings.HasSuffix(k, "Size") {
				typ = "String"
			}
			in.MessageAttributes[k] = sqstypes.MessageAttributeValue{DataType: aws.String(typ), StringValue: aws.String(v)}
		}
		if _, err := h.emu.SQS().SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	size := func(s string) string { return strconv.Itoa(len(s)) }
	pointer := func(key string) string {
		return string(s3pointer.Encode(s3pointer.Pointer{Bucket: bucket, Key: key}))
	}
	legacy := func(key string) string {
		return `["` + s3pointer.LegacyClass + `",{"s3BucketName":"` + bucket + `","s3Key":"` + key + `"}]`
	}

	current, old := big("0/9000000-1"), big("0/9000000-2")
	if len(current) <= sink.MaxEventBytes {
		t.Fatalf("test event of %d bytes is not over SNS's limit", len(current))
	}
	put("cdc/0/9000000-1", current)
	put("cdc/0/9000000-2", old)
	put("cdc/0/9000000-4", current) // sent with a wrong size
	put("cdc/0/9000000-5", current) // sent without a size
	tooBig := strings.Repeat(" ", 1<<20) + big("0/9000000-6")
	put("cdc/0/9000000-6", tooBig)
	send(pointer("cdc/0/9000000-1"), map[string]string{s3pointer.SizeAttribute: size(current)})
	send(legacy("cdc/0/9000000-2"), map[string]string{s3pointer.LegacySizeAttribute: size(old)})
	// As the connector sends it with 6 mapped attributes: 10 in all.
	missing := big("0/9000000-3")
	send(pointer("cdc/0/9000000-3"), map[string]string{s3pointer.SizeAttribute: size(missing),
		"op": "insert", "type": "baitoru.applications.insert", "a1": "1", "a2": "2", "a3": "3", "a4": "4", "a5": "5", "a6": "6"})
	send(pointer("cdc/0/9000000-4"), map[string]string{s3pointer.SizeAttribute: strconv.Itoa(len(current) - 1)})
	send(pointer("cdc/0/9000000-5"), nil)
	send(pointer("cdc/0/9000000-6"), map[string]string{s3pointer.SizeAttribute: size(tooBig)})

	waitFor(t, 15*time.Second, "two pushes", func() bool { return len(h.kobot.Log()) >= 2 })
	got := map[string][]byte{}
	for _, p := range h.kobot.Log() {
		if p.VerifyErr != nil {
			t.Errorf("push %s: signature: %v", p.ID, p.VerifyErr)
		}
		got[p.ID] = p.Body
	}
	for id, want := range map[string]string{"0/9000000-1": current, "0/9000000-2": old} {
		body, ok := got[id]
		if !ok {
			t.Errorf("event %s (stored in S3) not pushed; pushed %d", id, len(got))
			continue
		}
		// The push is the stored event with kobotaccount added.
		if len(body) < len(want) || !bytes.Contains(body, []byte(strings.Repeat("求人情報 ", 30000))) || !bytes.Contains(body, []byte(`"id":"`+id+`"`)) {
			t.Errorf("event %s pushed as %d bytes, not the stored %d", id, len(body), len(want))
		}
	}
	dlq := h.receiveDLQ(4, 15*time.Second)
	want := map[string]string{
		"cdc/0/9000000-3": sink.CodePayloadMissing,
		"cdc/0/9000000-4": sink.CodePayloadSize,
		"cdc/0/9000000-5": sink.CodeInvalidPointer,
		"cdc/0/9000000-6": sink.CodeTooLarge,
	}
	if len(dlq) != len(want) {
		t.Fatalf("%d messages in the DLQ, want %d", len(dlq), len(want))
	}
	var redrive sqstypes.Message
	for _, m := range dlq {
		p, err := s3pointer.Parse([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatalf("DLQ message is not the pointer: %s", aws.ToString(m.Body))
		}
		if p.Key == "cdc/0/9000000-3" {
			redrive = m
			if aws.ToString(m.Body) != pointer(p.Key) || attr(m, s3pointer.SizeAttribute) != size(missing) || len(m.MessageAttributes) != 10 {
				t.Errorf("DLQ copy of a pointer with 10 attributes: body %s, %s %q (want %s), %d attributes",
					aws.ToString(m.Body), s3pointer.SizeAttribute, attr(m, s3pointer.SizeAttribute), size(missing), len(m.MessageAttributes))
			}
			if r := attr(m, "reason"); !strings.Contains(r, "not kept, SQS allows 10: op, table, type") {
				t.Errorf("DLQ reason %q does not name the 3 attributes it could not keep", r)
			}
		}
		code, reason := attr(m, "reason_code"), attr(m, "reason")
		if code != want[p.Key] || !strings.Contains(reason, "s3://"+bucket+"/"+p.Key) {
			t.Errorf("DLQ %s: reason_code %q reason %q; want %q and the object named", p.Key, code, reason, want[p.Key])
		}
	}
	// The object is restored and the DLQ message redriven (SQS's
	// redrive moves body and attributes as they are; the emulator has no
	// StartMessageMoveTask, so the test moves it the same way).
	if redrive.Body == nil {
		t.Fatal("the pointer to the missing object is not in the DLQ")
	}
	put("cdc/0/9000000-3", missing)
	if _, err := h.emu.SQS().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(h.queueURL),
		MessageBody: redrive.Body, MessageAttributes: redrive.MessageAttributes}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the redriven pointer pushed", func() bool { return len(h.kobot.Log()) >= 3 })
	if p := h.kobot.Log()[2]; p.ID != "0/9000000-3" || !bytes.Contains(p.Body, []byte(strings.Repeat("求人情報 ", 30000))) {
		t.Errorf("third push %s of %d bytes, want the redriven stored event 0/9000000-3", p.ID, len(p.Body))
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return h.queueCount(h.queueURL) == 0 })
	keys, err := h.emu.ListObjects(ctx, bucket, "cdc/")
	if err != nil || len(keys) != 6 {
		t.Errorf("objects after delivery: %v (%v); the sink must delete none of the 6", keys, err)
	}
	if v := metric(t, h.reg, "baitoru_cdc_sink_events_read_from_s3_total", "", ""); v != 3 {
		t.Errorf("events_read_from_s3_total = %v, want 3", v)
	}
}
