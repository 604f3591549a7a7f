package sink_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/sink"
)

// TestAPINeverAnswers5xx sweeps the links API with every method, odd paths
// and queries, and hostile bodies and content types, authenticated and
// not: every answer is a 4xx or a 2xx, never a 5xx, and every error is a
// JSON error body. Afterwards the API still works and holds only the links
// the well-formed requests created.
func TestAPINeverAnswers5xx(t *testing.T) {
	base, _ := startAPI(t)
	methods := []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodHead, http.MethodOptions}
	paths := []string{
		"/v1/links",
		"/v1/links/1",
		"/v1/links/abc",
		"/v1/links/1/extra",
		"/v1//links",
		"/v1/links/%2e%2e/%2e%2e/etc/passwd",
		"/v1/links?limit=5&cursor=%ff%fe",
		"/v1/links?account=%27%20OR%201%3D1%20--&key=%00",
		"/v1/links?limit=1e3&status=active&status=stopped",
		"/v1/links?key=" + strings.Repeat("k", 10<<10),
		"/v1/links/1?limit=2",
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	bodies := []struct{ ctype, body string }{
		{"", ""},
		{"application/json", "{"},
		{"application/json", `{"kobot_account":"kobot-acme","link_key":"1"}`},
		{"application/json", `{"kobot_account":"x'); DROP TABLE links; --","link_key":"1 OR 1=1"}`},
		{"application/json", `{"kobot_account":{"$ne":null},"link_key":["1"]}`},
		{"application/json", deep},
		{"application/json", `{"kobot_account":"a","link_key":"` + strings.Repeat("9", 1<<20) + `"}`},
		{"application/json; charset=utf-16", "\xff\xfe{\x00}\x00"},
		{"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n"},
	}
	for _, auth := range []string{"Bearer " + testToken, "", "Bearer " + testToken + "x", "Basic " + testToken, "Bearer " + strings.Repeat("t", 8<<10)} {
		for _, m := range methods {
			for _, p := range paths {
				for _, b := range bodies {
					req, err := http.NewRequest(m, base+p, strings.NewReader(b.body))
					if err != nil {
						t.Fatal(err)
					}
					if auth != "" {
						req.Header.Set("Authorization", auth)
					}
					if b.ctype != "" {
						req.Header.Set("Content-Type", b.ctype)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatalf("%s %s: %v", m, p[:min(len(p), 60)], err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					what := m + " " + p[:min(len(p), 60)] + " body " + b.body[:min(len(b.body), 30)] + " auth " + auth[:min(len(auth), 12)]
					if resp.StatusCode >= 500 {
						t.Fatalf("%s: %d %s", what, resp.StatusCode, body)
					}
					if resp.StatusCode >= 400 && m != http.MethodHead {
						var e sink.ErrorBody
						if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
							t.Fatalf("%s: %d with a body that is not a JSON error: %.200s", what, resp.StatusCode, body)
						}
					}
					if auth != "Bearer "+testToken && resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
						t.Fatalf("%s: %d without a valid token", what, resp.StatusCode)
					}
				}
			}
		}
	}
	// Still serving; only well-formed starts created links.
	status, b := call(t, base, testToken, http.MethodGet, "/v1/links?limit=100", "")
	var list sink.ListResponse
	if err := json.Unmarshal(b, &list); status != http.StatusOK || err != nil {
		t.Fatalf("list after the sweep: %d %s", status, b)
	}
	for _, l := range list.Links {
		if l.Account != "kobot-acme" && l.Account != "x'); DROP TABLE links; --" {
			t.Errorf("unexpected link %+v", l)
		}
	}
}
