package sns_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	awssns "github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/baitoru/baitoru-cdc/connector/sns"
)

// fakeSNS is an httptest server speaking the SNS query protocol (form
// request, XML answer) that aws-sdk-go-v2's sns client uses, for
// PublishBatch and GetTopicAttributes. It checks each PublishBatch against
// SNS's own limits, records it, and answers what respond decides.
type fakeSNS struct {
	srv *httptest.Server

	mu      sync.Mutex
	calls   []fakeCall
	respond func(n int, c fakeCall) fakeAnswer // n counts calls from 1
	topics  map[string]map[string]string       // GetTopicAttributes answers
}

// fakeCall is one PublishBatch request as SNS sees it.
type fakeCall struct {
	Topic   string
	Entries []fakeEntry
	Form    url.Values
}

type fakeEntry struct {
	ID, Message, GroupID, DedupID string
	Attrs                         map[string][2]string // name -> {type, value}
}

func (e fakeEntry) size() int {
	n := len(e.Message)
	for k, v := range e.Attrs {
		n += len(k) + len(v[0]) + len(v[1])
	}
	return n
}

func (c fakeCall) bodies() []string {
	var s []string
	for _, e := range c.Entries {
		s = append(s, e.Message)
	}
	return s
}

// fakeAnswer is what the fake answers: an error (Status >= 300 with Code,
// or Hang to never answer, or Drop to close the connection), or 200 with
// the entries whose ids are in Fail failed and the others successful.
type fakeAnswer struct {
	Status  int
	Code    string
	Message string
	Fail    map[string]fakeFailure
	Hang    bool
	Drop    bool
}

type fakeFailure struct {
	Code        string
	SenderFault bool
}

func newFakeSNS(t *testing.T, respond func(n int, c fakeCall) fakeAnswer) *fakeSNS {
	f := &fakeSNS{respond: respond, topics: map[string]map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSNS) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

var batchIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (f *fakeSNS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, 400, "MalformedQueryString", err.Error())
		return
	}
	switch r.PostForm.Get("Action") {
	case "GetTopicAttributes":
		f.mu.Lock()
		attrs, ok := f.topics[r.PostForm.Get("TopicArn")]
		f.mu.Unlock()
		if !ok {
			writeError(w, 404, "NotFound", "Topic does not exist")
			return
		}
		var b strings.Builder
		for k, v := range attrs {
			fmt.Fprintf(&b, "<entry><key>%s</key><value>%s</value></entry>", k, html.EscapeString(v))
		}
		fmt.Fprintf(w, `<GetTopicAttributesResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><GetTopicAttributesResult><Attributes>%s</Attributes></GetTopicAttributesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetTopicAttributesResponse>`, b.String())
		return
	case "PublishBatch":
	default:
		writeError(w, 400, "InvalidAction", "unsupported action")
		return
	}
	c := parseBatch(r.PostForm)
	// SNS's own checks, so that a wrong split fails loudly.
	if len(c.Entries) == 0 {
		writeError(w, 400, "EmptyBatchRequest", "The batch request doesn't contain any entries.")
		return
	}
	if len(c.Entries) > 10 {
		writeError(w, 400, "TooManyEntriesInBatchRequest", "The batch request contains more entries than permissible.")
		return
	}
	seen, total := map[string]bool{}, 0
	for _, e := range c.Entries {
		if !batchIDRe.MatchString(e.ID) {
			writeError(w, 400, "InvalidBatchEntryId", "bad id "+e.ID)
			return
		}
		if seen[e.ID] {
			writeError(w, 400, "BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id.")
			return
		}
		seen[e.ID] = true
		total += e.size()
	}
	if total > 262144 {
		writeError(w, 400, "BatchRequestTooLong", fmt.Sprintf("The length of all the messages put together is more than the limit: %d", total))
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	n := len(f.calls)
	f.mu.Unlock()
	a := fakeAnswer{}
	if f.respond != nil {
		a = f.respond(n, c)
	}
	switch {
	case a.Hang:
		<-r.Context().Done()
		return
	case a.Drop:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case a.Status >= 300:
		writeError(w, a.Status, a.Code, a.Message)
		return
	}
	var ok, failed strings.Builder
	for _, e := range c.Entries {
		if fl, bad := a.Fail[e.ID]; bad {
			fmt.Fprintf(&failed, "<member><Id>%s</Id><Code>%s</Code><Message>injected %s</Message><SenderFault>%t</SenderFault></member>", e.ID, fl.Code, fl.Code, fl.SenderFault)
			continue
		}
		fmt.Fprintf(&ok, "<member><Id>%s</Id><MessageId>m-%d-%s</MessageId></member>", e.ID, n, e.ID)
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>%s</Successful><Failed>%s</Failed></PublishBatchResult><ResponseMetadata><RequestId>r-%d</RequestId></ResponseMetadata></PublishBatchResponse>`, ok.String(), failed.String(), n)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>e</RequestId></ErrorResponse>`, typ, code, html.EscapeString(msg))
}

// parseBatch reads the PublishBatchRequestEntries.member.N.* form fields.
func parseBatch(form url.Values) fakeCall {
	c := fakeCall{Topic: form.Get("TopicArn"), Form: form}
	const p = "PublishBatchRequestEntries.member."
	var idx []int
	for k := range form {
		if rest, ok := strings.CutPrefix(k, p); ok && strings.HasSuffix(rest, ".Id") {
			if n, err := strconv.Atoi(strings.TrimSuffix(rest, ".Id")); err == nil {
				idx = append(idx, n)
			}
		}
	}
	sort.Ints(idx)
	for _, n := range idx {
		m := p + strconv.Itoa(n) + "."
		e := fakeEntry{
			ID:      form.Get(m + "Id"),
			Message: form.Get(m + "Message"),
			GroupID: form.Get(m + "MessageGroupId"),
			DedupID: form.Get(m + "MessageDeduplicationId"),
			Attrs:   map[string][2]string{},
		}
		for a := 1; ; a++ {
			am := m + "MessageAttributes.entry." + strconv.Itoa(a) + "."
			name := form.Get(am + "Name")
			if name == "" {
				break
			}
			e.Attrs[name] = [2]string{form.Get(am + "Value.DataType"), form.Get(am + "Value.StringValue")}
		}
		c.Entries = append(c.Entries, e)
	}
	return c
}

// client returns an SDK client built by sns.NewClient, pointed at the fake.
func (f *fakeSNS) client(t *testing.T) *awssns.Client {
	t.Helper()
	return newTestClient(t, f.srv.URL)
}

// newTestClient builds a client with sns.NewClient from test credentials in
// the environment (the default credential chain's first source).
func newTestClient(t *testing.T, endpoint string) *awssns.Client {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	c, err := sns.NewClient(context.Background(), "us-east-1", endpoint, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}
