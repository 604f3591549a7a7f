package sink_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
)

// startAPI serves the links API over a fresh database.
func startAPI(t *testing.T) (base string, store *postgres.Store) {
	t.Helper()
	integration(t)
	store, err := postgres.Open(testenv.PG(t).NewDatabase(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	api, err := sink.NewAPI(store, testToken, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(sink.JSONErrors(mux))
	t.Cleanup(srv.Close)
	return srv.URL, store
}

func errorBody(t *testing.T, b []byte) sink.ErrorBody {
	t.Helper()
	var e sink.ErrorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a JSON error body: %s", b)
	}
	return e
}

func TestAPIAuth(t *testing.T) {
	base, _ := startAPI(t)
	tests := []struct {
		name   string
		header string
		want   int
		// message: what a 401 says is wrong, and the fix.
		message string
	}{
		{"no header", "", http.StatusUnauthorized, `no bearer token: send the header Authorization: Bearer <token>, the sink's sink.api.token`},
		{"wrong token", "Bearer wrong-token-0123456789abcdef", http.StatusUnauthorized, "wrong bearer token: send the sink's sink.api.token (or the content of sink.api.token_file)"},
		{"prefix of the token", "Bearer " + testToken[:10], http.StatusUnauthorized, "wrong bearer token"},
		{"token plus more", "Bearer " + testToken + "x", http.StatusUnauthorized, "wrong bearer token"},
		{"basic scheme", "Basic " + testToken, http.StatusUnauthorized, "the Authorization header is not a bearer token: send Authorization: Bearer <token>"},
		{"token alone", testToken, http.StatusUnauthorized, "not a bearer token"},
		{"empty bearer", "Bearer ", http.StatusUnauthorized, "the bearer token is empty"},
		{"right token", "Bearer " + testToken, http.StatusOK, ""},
		{"scheme in lower case", "bearer " + testToken, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/v1/links", "/v1/links/1"} {
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var e sink.ErrorBody
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				want := tt.want
				if path == "/v1/links/1" && want == http.StatusOK {
					want = http.StatusNotFound
				}
				if resp.StatusCode != want {
					t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
				}
				if want == http.StatusUnauthorized && (e.Error.Code != sink.ErrCodeUnauthorized || resp.Header.Get("WWW-Authenticate") == "" ||
					!strings.Contains(e.Error.Message, tt.message) || strings.Contains(e.Error.Message, testToken)) {
					t.Errorf("%s: error %+v, WWW-Authenticate %q", path, e, resp.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	// Auth comes before the body is looked at.
	if status, b := call(t, base, "", http.MethodPost, "/v1/links", `{`); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated bad body: %d %s", status, b)
	}
}

func TestAPIRejectsBadBodies(t *testing.T) {
	base, _ := startAPI(t)
	big := `{"kobot_account":"a","link_key":"` + strings.Repeat("k", 70<<10) + `"}`
	tests := []struct {
		name, ctype, body string
		status            int
		code, message     string
	}{
		{"empty", "application/json", ``, 400, sink.ErrCodeInvalidJSON, "empty"},
		{"truncated", "application/json", `{"kobot_account":"a"`, 400, sink.ErrCodeInvalidJSON, "malformed JSON at byte 20 (unexpected end of JSON input)"},
		{"not JSON", "application/json", `kobot_account=a`, 400, sink.ErrCodeInvalidJSON, "not a valid JSON object: not JSON at byte 1 (invalid character 'k' looking for beginning of value)"},
		{"missing comma", "application/json", `{"kobot_account":"a" "link_key":"7"}`, 400, sink.ErrCodeInvalidJSON, "at byte 22 (invalid character '\"' after object key:value pair)"},
		{"array", "application/json", `[{"kobot_account":"a","link_key":"7"}]`, 400, sink.ErrCodeInvalidJSON, "want an object"},
		{"null", "application/json", `null`, 400, sink.ErrCodeInvalidJSON, "want an object"},
		{"duplicate field", "application/json", `{"kobot_account":"a","kobot_account":"b","link_key":"7"}`, 400, sink.ErrCodeInvalidJSON, "appears twice"},
		{"null account", "application/json", `{"kobot_account":null,"link_key":"7"}`, 400, sink.ErrCodeInvalidJSON, "kobot_account must be a string, not null"},
		{"number account", "application/json", `{"kobot_account":17,"link_key":"7"}`, 400, sink.ErrCodeInvalidJSON, "kobot_account must be a string, not a number"},
		{"number key", "application/json", `{"kobot_account":"a","link_key":7}`, 400, sink.ErrCodeInvalidJSON, "link_key must be a string, not a number"},
		{"unknown field", "application/json", `{"kobot_account":"a","link_key":"7","admin":true}`, 400, sink.ErrCodeInvalidJSON, `unknown field "admin"`},
		{"field in other case", "application/json", `{"Kobot_Account":"a","link_key":"7"}`, 400, sink.ErrCodeInvalidJSON, `unknown field "Kobot_Account"`},
		{"two objects", "application/json", `{"kobot_account":"a","link_key":"7"}{}`, 400, sink.ErrCodeInvalidJSON, "after the JSON object"},
		{"trailing brace", "application/json", `{"kobot_account":"a","link_key":"7"}}`, 400, sink.ErrCodeInvalidJSON, "after the JSON object"},
		{"missing key", "application/json", `{"kobot_account":"a"}`, 400, sink.ErrCodeInvalidRequest, "link_key is empty"},
		{"missing account", "application/json", `{"link_key":"7"}`, 400, sink.ErrCodeInvalidRequest, "kobot_account is empty"},
		{"control character", "application/json", `{"kobot_account":"a\u0000b","link_key":"7"}`, 400, sink.ErrCodeInvalidRequest, "control character"},
		{"newline", "application/json", `{"kobot_account":"a","link_key":"7\n8"}`, 400, sink.ErrCodeInvalidRequest, "control character"},
		{"too long", "application/json", `{"kobot_account":"` + strings.Repeat("a", 300) + `","link_key":"7"}`, 400, sink.ErrCodeInvalidRequest, "longer than 256"},
		{"invalid UTF-8", "application/json", "{\"kobot_account\":\"a\xff\",\"link_key\":\"7\"}", 400, sink.ErrCodeInvalidJSON, "UTF-8"},
		{"over 64 KiB", "application/json", big, 413, sink.ErrCodeBodyTooLarge, "over 65536 bytes"},
		{"form content type", "application/x-www-form-urlencoded", `kobot_account=a&link_key=7`, 415, sink.ErrCodeUnsupportedMedia, "application/json"},
		{"no content type", "", `{"kobot_account":"a","link_key":"7"}`, 415, sink.ErrCodeUnsupportedMedia, "application/json"},
		{"text plain", "text/plain", `{"kobot_account":"a","link_key":"7"}`, 415, sink.ErrCodeUnsupportedMedia, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/links", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e sink.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.status || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.message) {
				t.Fatalf("%d %+v, want %d %s containing %q", resp.StatusCode, e.Error, tt.status, tt.code, tt.message)
			}
			// A 400 says the body the endpoint takes.
			want := `; send {"kobot_account": "<Kobot's account id>", "link_key": "<the value of the link field, e.g. a company_id>"}`
			if tt.status == http.StatusBadRequest && !strings.HasSuffix(e.Error.Message, want) {
				t.Errorf("message %q does not end with the body to send", e.Error.Message)
			}
		})
	}
	// Nothing was created.
	_, b := call(t, base, testToken, http.MethodGet, "/v1/links", "")
	var list sink.ListResponse
	if err := json.Unmarshal(b, &list); err != nil || len(list.Links) != 0 {
		t.Fatalf("links after bad requests: %s", b)
	}
}

func TestAPIStartIsIdempotent(t *testing.T) {
	base, _ := startAPI(t)
	body := `{"kobot_account":"kobot-acme","link_key":"7"}`
	status, b := call(t, base, testToken, http.MethodPost, "/v1/links", body)
	var first sink.Link
	if err := json.Unmarshal(b, &first); status != http.StatusCreated || err != nil || first.ID == 0 ||
		first.Status != sink.StatusActive || first.Account != "kobot-acme" || first.Key != "7" || first.EndedAt != nil || first.CreatedAt.IsZero() {
		t.Fatalf("first start: %d %s", status, b)
	}
	status, b = call(t, base, testToken, http.MethodPost, "/v1/links", body)
	var again sink.Link
	if err := json.Unmarshal(b, &again); status != http.StatusOK || err != nil || again.ID != first.ID {
		t.Fatalf("duplicate start: %d %s, want 200 with id %d", status, b, first.ID)
	}

	// Concurrent starts of a new pair all get the same link.
	var wg sync.WaitGroup
	ids := make([]int64, 10)
	for i := range ids {
		wg.Go(func() {
			_, b := call(t, base, testToken, http.MethodPost, "/v1/links", `{"kobot_account":"kobot-acme","link_key":"8"}`)
			var l sink.Link
			_ = json.Unmarshal(b, &l)
			ids[i] = l.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == 0 || id != ids[0] {
			t.Fatalf("concurrent starts gave ids %v", ids)
		}
	}

	// Stop, then start again: a new link; the stopped one stays.
	status, b = call(t, base, testToken, http.MethodDelete, fmt.Sprintf("/v1/links/%d", first.ID), "")
	var stopped sink.Link
	if err := json.Unmarshal(b, &stopped); status != http.StatusOK || err != nil || stopped.Status != sink.StatusStopped || stopped.EndedAt == nil {
		t.Fatalf("stop: %d %s", status, b)
	}
	status, b = call(t, base, testToken, http.MethodDelete, fmt.Sprintf("/v1/links/%d", first.ID), "")
	var stopped2 sink.Link
	if err := json.Unmarshal(b, &stopped2); status != http.StatusOK || err != nil || !stopped2.EndedAt.Equal(*stopped.EndedAt) {
		t.Fatalf("second stop: %d %s, want the same stopped link", status, b)
	}
	status, b = call(t, base, testToken, http.MethodPost, "/v1/links", body)
	var restarted sink.Link
	if err := json.Unmarshal(b, &restarted); status != http.StatusCreated || err != nil || restarted.ID == first.ID {
		t.Fatalf("restart: %d %s", status, b)
	}
	status, b = call(t, base, testToken, http.MethodGet, fmt.Sprintf("/v1/links/%d", first.ID), "")
	if status != http.StatusOK || !strings.Contains(string(b), `"status":"stopped"`) {
		t.Fatalf("get stopped link: %d %s", status, b)
	}
}

func TestAPIListAndPaths(t *testing.T) {
	base, _ := startAPI(t)
	for i := range 7 {
		account := "kobot-acme"
		if i%2 == 1 {
			account = "kobot-globex"
		}
		if status, b := call(t, base, testToken, http.MethodPost, "/v1/links", fmt.Sprintf(`{"kobot_account":%q,"link_key":"%d"}`, account, i)); status != http.StatusCreated {
			t.Fatalf("start: %d %s", status, b)
		}
	}
	// SQL-looking values are plain data.
	evil := `x' OR '1'='1`
	if status, b := call(t, base, testToken, http.MethodPost, "/v1/links", `{"kobot_account":"kobot-acme","link_key":"`+evil+`; DROP TABLE links; --"}`); status != http.StatusCreated {
		t.Fatalf("start with quotes: %d %s", status, b)
	}
	list := func(query string) (int, sink.ListResponse) {
		t.Helper()
		status, b := call(t, base, testToken, http.MethodGet, "/v1/links"+query, "")
		var l sink.ListResponse
		if status == http.StatusOK {
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatalf("%s: %s", query, b)
			}
		} else {
			errorBody(t, b)
		}
		return status, l
	}
	// Page through all 8, three at a time.
	var all []sink.Link
	cursor := ""
	for pages := 0; ; pages++ {
		q := "?limit=3"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		status, l := list(q)
		if status != http.StatusOK || pages > 5 {
			t.Fatalf("page %d: %d", pages, status)
		}
		all = append(all, l.Links...)
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if len(all) != 8 {
		t.Fatalf("paged %d links, want 8", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("not in id order: %v", all)
		}
	}
	if _, l := list("?account=kobot-globex"); len(l.Links) != 3 {
		t.Fatalf("account filter: %d links", len(l.Links))
	}
	if _, l := list("?account=kobot-acme&key=4"); len(l.Links) != 1 || l.Links[0].Key != "4" {
		t.Fatalf("account+key filter: %+v", l.Links)
	}
	if _, l := list("?key=" + strings.ReplaceAll(evil, " ", "%20") + "%3B%20DROP%20TABLE%20links%3B%20--"); len(l.Links) != 1 {
		t.Fatalf("key with quotes: %+v", l.Links)
	}
	if _, l := list("?key=" + "x%27%20OR%20%271%27%3D%271"); len(l.Links) != 0 {
		t.Fatalf("injection-looking key matched %d links", len(l.Links))
	}
	if _, l := list("?status=stopped"); len(l.Links) != 0 {
		t.Fatalf("status filter: %+v", l.Links)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=-1", "?limit=ten", "?limit=99999999999999999999",
		"?cursor=garbage", "?cursor=YWZ0ZXI6LTU", "?cursor=", "?status=deleted", "?account=a&account=b", "?key=%00"} {
		want := http.StatusBadRequest
		if q == "?cursor=" {
			want = http.StatusOK // empty cursor: first page
		}
		if status, _ := list(q); status != want {
			t.Errorf("GET /v1/links%s: %d, want %d", q, status, want)
		}
	}

	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/links/abc", 400, sink.ErrCodeInvalidRequest},
		{http.MethodGet, "/v1/links/0", 400, sink.ErrCodeInvalidRequest},
		{http.MethodGet, "/v1/links/-3", 400, sink.ErrCodeInvalidRequest},
		{http.MethodGet, "/v1/links/99999999999999999999", 400, sink.ErrCodeInvalidRequest},
		{http.MethodGet, "/v1/links/424242", 404, sink.ErrCodeNotFound},
		{http.MethodDelete, "/v1/links/424242", 404, sink.ErrCodeNotFound},
		{http.MethodDelete, "/v1/links/1%27%3B", 400, sink.ErrCodeInvalidRequest},
		{http.MethodPut, "/v1/links", 405, sink.ErrCodeMethodNotAllowed},
		{http.MethodPatch, "/v1/links/1", 405, sink.ErrCodeMethodNotAllowed},
		{http.MethodGet, "/v1/nothing", 404, sink.ErrCodeNotFound},
	} {
		status, b := call(t, base, testToken, tc.method, tc.path, "")
		if e := errorBody(t, b); status != tc.status || e.Error.Code != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, status, e.Error.Code, tc.status, tc.code)
		}
	}
}
