package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/kobottest"
)

func receipt(table, op, data string) kobottest.Receipt {
	return kobottest.Receipt{ReceivedAt: time.Now(), ID: "0/1-1", Account: account, Type: "t", Table: table, Op: op,
		LatencyMS: 12.5, Data: json.RawMessage(data)}
}

// TestAwait checks the demo's verdict: success only when every linked event
// arrived, none of the unlinked ones did, and the sink handled those.
func TestAwait(t *testing.T) {
	app := receipt("public.applications", "insert", `{"application_id":1003,"company_id":1,"posting_id":101}`)
	post := receipt("public.job_postings", "update", `{"posting_id":101,"company_id":1}`)
	other := receipt("public.applications", "insert", `{"application_id":1005,"company_id":2,"posting_id":102}`)
	dup := app
	dup.Duplicate = true
	cases := []struct {
		name     string
		receipts []kobottest.Receipt
		unlinked float64 // the sink's baitoru_cdc_sink_deliveries_total{result="unlinked"}
		wantErr  string
	}{
		{"all linked, unlinked dropped", []kobottest.Receipt{app, post}, 1, ""},
		{"redelivery is fine", []kobottest.Receipt{app, dup, post}, 1, ""},
		{"unlinked reached Kobot", []kobottest.Receipt{app, other, post}, 1, "events of unlinked companies reached Kobot: [public.applications/insert/1005]"},
		{"linked missing", []kobottest.Receipt{app}, 1, "1 of 2 linked events reached Kobot (missing [public.job_postings/update/101])"},
		{"unlinked not yet handled by the sink", []kobottest.Receipt{app, post}, 0, "2 of 2 linked events reached Kobot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "baitoru_cdc_sink_deliveries_total{result=\"unlinked\"} %v\nbaitoru_cdc_sink_deliveries_total{result=\"delivered\"} 2\nbaitoru_cdc_events_published_total{op=\"insert\",table=\"public.applications\"} 3\n", c.unlinked)
			}))
			defer srv.Close()
			var out bytes.Buffer
			d := &demo{check: true, timeout: 500 * time.Millisecond, out: &out, apiURL: srv.URL, metricsURL: srv.URL,
				receipts: make(chan kobottest.Receipt, 10)}
			for _, r := range c.receipts {
				d.receipts <- r
			}
			sc := &scenario{
				linked:   map[string]bool{"public.applications/insert/1003": true, "public.job_postings/update/101": true},
				unlinked: map[string]bool{"public.applications/insert/1005": true},
			}
			err := d.await(context.Background(), sc)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("await: %v\n%s", err, out.String())
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("await = %v, want an error containing %q\n%s", err, c.wantErr, out.String())
			}
			if c.wantErr == "" && !strings.Contains(out.String(), "OK: 2 linked events reached Kobot") {
				t.Errorf("no OK summary:\n%s", out.String())
			}
		})
	}
}

func TestReceiptKey(t *testing.T) {
	for _, c := range []struct {
		r    kobottest.Receipt
		want string
	}{
		{receipt("public.applications", "insert", `{"application_id":7,"posting_id":3}`), "public.applications/insert/7"},
		{receipt("public.job_postings", "update", `{"posting_id":3,"company_id":1}`), "public.job_postings/update/3"},
		{receipt("public.companies", "insert", `{"company_id":1}`), "public.companies/insert/?"},
	} {
		if got := receiptKey(c.r); got != c.want {
			t.Errorf("receiptKey(%s) = %s, want %s", c.r.Data, got, c.want)
		}
	}
}
