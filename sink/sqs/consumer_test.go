package sqs

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
)

func TestAttrText(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"kobot answered 400", 100, "kobot answered 400"},
		{"", 100, "-"},
		{"a\x00b\x07c", 100, "a?b?c"},
		{"line\nbreak\ttab", 100, "line\nbreak\ttab"},
		{"bad \xff utf8", 100, "bad ? utf8"},
		{"会社会社", 7, "会社"}, // never cut inside a character
		{strings.Repeat("x", 2000), 1000, strings.Repeat("x", 1000)},
	}
	for _, tt := range tests {
		got := attrText(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) || len(got) > tt.n {
			t.Errorf("attrText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestReceiveCount(t *testing.T) {
	for in, want := range map[string]int{"": 1, "1": 1, "4": 4, "0": 1, "-2": 1, "x": 1} {
		if got := ReceiveCount(map[string]string{"ApproximateReceiveCount": in}); got != want {
			t.Errorf("ReceiveCount(%q) = %d, want %d", in, got, want)
		}
	}
	if ReceiveCount(nil) != 1 {
		t.Error("ReceiveCount(nil) != 1")
	}
}

// TestDeadLetterAttributes: the DLQ copy of a message has at most 10
// attributes; an S3 pointer's size attribute is always among them (a
// redriven pointer is read again), then the reason, then the original
// attributes by name; those that did not fit are named in the reason.
func TestDeadLetterAttributes(t *testing.T) {
	str := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	num := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(v)}
	}
	// A pointer as the connector sends it at its most: table, op, type,
	// 6 mapped attributes and ExtendedPayloadSize.
	full := map[string]types.MessageAttributeValue{
		"table": str("public.job_postings"), "op": str("insert"), "type": str("baitoru.job_postings.insert"),
		"a1": str("1"), "a2": str("2"), "a3": str("3"), "a4": str("4"), "a5": str("5"), "a6": str("6"),
		s3pointer.SizeAttribute: num("300000"),
	}
	legacy := maps.Clone(full)
	delete(legacy, s3pointer.SizeAttribute)
	legacy[s3pointer.LegacySizeAttribute] = num("300000")
	tests := []struct {
		name    string
		in      map[string]types.MessageAttributeValue
		kept    []string // original attributes kept besides the size
		size    string   // the size attribute that must be kept
		dropped string   // named in the reason
	}{
		{"pointer with 10 attributes", full, []string{"a1", "a2", "a3", "a4", "a5", "a6"}, s3pointer.SizeAttribute, "op, table, type"},
		{"legacy pointer", legacy, []string{"a1", "a2", "a3", "a4", "a5", "a6"}, s3pointer.LegacySizeAttribute, "op, table, type"},
		{"event with 3 attributes", map[string]types.MessageAttributeValue{"table": str("t"), "op": str("insert"), "type": str("x")},
			[]string{"op", "table", "type"}, "", ""},
		{"no attributes", nil, nil, "", ""},
		{"redriven twice: its old reason is replaced", map[string]types.MessageAttributeValue{
			AttrReason: str("old"), AttrReasonCode: str("old"), s3pointer.SizeAttribute: num("7"), "table": str("t")},
			[]string{"table"}, s3pointer.SizeAttribute, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := DeadLetter{Message: types.Message{MessageId: aws.String("m-1"), MessageAttributes: tt.in}, Code: "payload_missing", Reason: "stored event not found"}
			got := deadLetterAttributes(m)
			if len(got) > maxAttributes {
				t.Errorf("%d attributes, SQS allows %d", len(got), maxAttributes)
			}
			want := append([]string{AttrReason, AttrReasonCode, AttrSourceMessageID}, tt.kept...)
			if tt.size != "" {
				want = append(want, tt.size)
				if v := got[tt.size]; aws.ToString(v.StringValue) != aws.ToString(tt.in[tt.size].StringValue) || aws.ToString(v.DataType) != "Number" {
					t.Errorf("%s = %+v, want the original's", tt.size, v)
				}
			}
			slices.Sort(want)
			if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, want) {
				t.Errorf("attributes %v, want %v", names, want)
			}
			reason := aws.ToString(got[AttrReason].StringValue)
			if !strings.HasPrefix(reason, m.Reason) || aws.ToString(got[AttrReasonCode].StringValue) != m.Code || aws.ToString(got[AttrSourceMessageID].StringValue) != "m-1" {
				t.Errorf("reason attributes: %q %q %q", reason, aws.ToString(got[AttrReasonCode].StringValue), aws.ToString(got[AttrSourceMessageID].StringValue))
			}
			if tt.dropped != "" && !strings.Contains(reason, "not kept, SQS allows 10: "+tt.dropped+")") {
				t.Errorf("reason %q does not name the dropped attributes %s", reason, tt.dropped)
			}
			if tt.dropped == "" && strings.Contains(reason, "not kept") {
				t.Errorf("reason %q names dropped attributes; none was", reason)
			}
		})
	}
}

// TestWithWaiting checks what a processor takes at once: the batch handed
// to it and those already waiting, up to mergeBatches, in order, never
// waiting for one.
func TestWithWaiting(t *testing.T) {
	batch := func(from, n int) []types.Message {
		var b []types.Message
		for i := from; i < from+n; i++ {
			b = append(b, types.Message{MessageId: aws.String(strconv.Itoa(i))})
		}
		return b
	}
	ids := func(msgs []types.Message) string {
		var s []string
		for _, m := range msgs {
			s = append(s, aws.ToString(m.MessageId))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name    string
		waiting int // batches of 2 waiting
		closed  bool
		want    string
		left    int
	}{
		{name: "none waiting", want: "0,1"},
		{name: "one waiting", waiting: 1, want: "0,1,2,3"},
		{name: "more than mergeBatches waiting", waiting: mergeBatches + 1, want: "0,1,2,3,4,5", left: 2},
		{name: "closed after one", waiting: 1, closed: true, want: "0,1,2,3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := make(chan []types.Message, 10)
			for i := range tc.waiting {
				ch <- batch(2+2*i, 2)
			}
			if tc.closed {
				close(ch)
			}
			if got := ids(withWaiting(batch(0, 2), ch)); got != tc.want {
				t.Errorf("withWaiting took %s, want %s", got, tc.want)
			}
			if len(ch) != tc.left {
				t.Errorf("%d batches left waiting, want %d", len(ch), tc.left)
			}
		})
	}
}
