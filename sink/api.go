package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/baitoru/baitoru-cdc/internal/httpjson"
)

// API limits.
const (
	// MaxBodyBytes bounds request bodies of the links API.
	MaxBodyBytes = 64 << 10
	// DefaultPageSize and MaxPageSize bound GET /v1/links pages.
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// API error codes, the "code" of {"error":{"code":...,"message":...}}.
const (
	ErrCodeUnauthorized     = "unauthorized"
	ErrCodeUnsupportedMedia = "unsupported_media_type"
	ErrCodeBodyTooLarge     = "body_too_large"
	ErrCodeInvalidJSON      = "invalid_json"
	ErrCodeInvalidRequest   = "invalid_request"
	ErrCodeNotFound         = "not_found"
	ErrCodeMethodNotAllowed = "method_not_allowed"
	ErrCodeInternal         = "internal"
)

// LinkFilter selects links for GET /v1/links.
type LinkFilter struct {
	Account string // exact match; empty: any
	Key     string // canonical key (CanonicalKey), exact match; empty: any
	Status  string // StatusActive, StatusStopped; empty: any
	AfterID int64  // links with a greater id (pagination)
	Limit   int
}

// LinkStore is what the links API needs from the database.
type LinkStore interface {
	// StartLink returns the active link of (account, key), creating it if
	// there is none; created says which. Safe against concurrent starts.
	StartLink(ctx context.Context, account, key string) (l Link, created bool, err error)
	// StopLink stops an active link (a stopped one is returned as is);
	// ErrLinkNotFound if id does not exist.
	StopLink(ctx context.Context, id int64) (Link, error)
	// Link returns one link; ErrLinkNotFound if absent.
	Link(ctx context.Context, id int64) (Link, error)
	// ListLinks returns links matching f in id order, at most f.Limit.
	ListLinks(ctx context.Context, f LinkFilter) ([]Link, error)
}

// API serves the links API:
//
//	POST   /v1/links       start a link (idempotent for an active pair)
//	GET    /v1/links       list: ?account=&key=&status=&limit=&cursor=
//	GET    /v1/links/{id}  one link
//	DELETE /v1/links/{id}  stop a link
//
// Every request needs "Authorization: Bearer <token>". Errors are JSON
// {"error":{"code":"...","message":"..."}}; bad input is always a 4xx.
type API struct {
	store  LinkStore
	token  [32]byte // SHA-256 of the token: compared in constant time, whatever the length
	logger *slog.Logger
	// changed, if set, is called after a link of key started or stopped,
	// before the API answers.
	changed func(ctx context.Context, key string) error
	// history, if set, requests a started link's history and shows its
	// progress.
	history *Histories
}

// historyTimeout bounds the requests to Baitoru's database an API call
// makes; what does not finish in time is retried by Histories.Run.
const historyTimeout = 5 * time.Second

// WithHistory makes the API request a started link's history through h
// (the link and its histories are recorded first, so an unreachable
// Baitoru database delays the history, never the link), show its progress
// on GET /v1/links/{id}, and cancel it when the link stops. Call it before
// serving.
func (a *API) WithHistory(h *Histories) { a.history = h }

// forwardHistory requests what is pending; a failure is logged, the
// request stays recorded and Histories.Run retries it.
func (a *API) forwardHistory(ctx context.Context) {
	if a.history == nil {
		return
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyTimeout)
	defer cancel()
	if _, err := a.history.Forward(hctx); err != nil {
		a.logger.Warn("link history not requested yet; it is retried", "err", err)
	}
}

// OnChange makes the API call f after it started or stopped a link of key,
// before answering (the service refreshes its link cache there, so a 2xx
// answer means this sink already follows the change). An error of f is
// logged; the NOTIFY of the change still reaches the cache. Call it before
// serving.
func (a *API) OnChange(f func(ctx context.Context, key string) error) { a.changed = f }

func (a *API) notify(ctx context.Context, key string) {
	if a.changed == nil {
		return
	}
	if err := a.changed(ctx, key); err != nil {
		a.logger.Warn("refresh link cache after a change", "link_key", key, "err", err)
	}
}

// NewAPI returns the links API; token must not be empty.
func NewAPI(store LinkStore, token string, logger *slog.Logger) (*API, error) {
	if token == "" {
		return nil, errors.New("links API token is empty")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{store: store, token: sha256.Sum256([]byte(token)), logger: logger}, nil
}

// Register adds the API's routes to mux. Serve mux through JSONErrors, so
// that an unknown path or method gets a JSON error too.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /v1/links", a.auth(a.start))
	mux.Handle("GET /v1/links", a.auth(a.list))
	mux.Handle("GET /v1/links/{id}", a.auth(a.get))
	mux.Handle("DELETE /v1/links/{id}", a.auth(a.stop))
}

// JSONErrors serves mux, answering what ServeMux would answer itself (404
// for a path no route has, 405 with Allow for a route's path with another
// method) with the API's JSON error body instead of plain text, so every
// error of the port is JSON, outside /v1/ too.
func JSONErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// ServeMux's own answer: learn its status and Allow header, then
		// answer in JSON.
		var c capture
		h.ServeHTTP(&c, r)
		switch c.status {
		case http.StatusNotFound:
			WriteError(w, http.StatusNotFound, ErrCodeNotFound, "no such endpoint: "+clipString(r.URL.Path))
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", c.header.Get("Allow"))
			WriteError(w, http.StatusMethodNotAllowed, ErrCodeMethodNotAllowed, r.Method+" is not allowed here; allowed: "+c.header.Get("Allow"))
		default: // a redirect (path cleaning): as ServeMux answers it
			mux.ServeHTTP(w, r)
		}
	})
}

// capture records the status and headers of a handler's answer.
type capture struct {
	header http.Header
	status int
}

func (c *capture) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}
func (c *capture) Write(b []byte) (int, error) { return len(b), nil }
func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (a *API) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(header, " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 {
			h(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="baitoru-cdc"`)
		var msg string
		switch {
		case header == "":
			msg = "no bearer token: send the header Authorization: Bearer <token>, the sink's sink.api.token (curl: -H \"Authorization: Bearer $LINKS_API_TOKEN\")"
		case strings.EqualFold(strings.TrimSpace(header), "Bearer"):
			msg = "the bearer token is empty: send the sink's sink.api.token as Authorization: Bearer <token>"
		case !ok || !strings.EqualFold(scheme, "Bearer"):
			msg = "the Authorization header is not a bearer token: send Authorization: Bearer <token>, the sink's sink.api.token"
		default:
			msg = "wrong bearer token: send the sink's sink.api.token (or the content of sink.api.token_file) as Authorization: Bearer <token>"
		}
		WriteError(w, http.StatusUnauthorized, ErrCodeUnauthorized, msg)
	})
}

// startRequest is the body of POST /v1/links.
type startRequest struct {
	Account string // kobot_account
	Key     string // link_key
}

func (a *API) start(w http.ResponseWriter, r *http.Request) {
	var req startRequest
	if !decodeBody(w, r, map[string]*string{"kobot_account": &req.Account, "link_key": &req.Key}, startBody) {
		return
	}
	if err := ValidateKey(req.Account); err != nil {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "kobot_account "+err.Error()+startBody)
		return
	}
	key, err := CanonicalKey(req.Key)
	if err != nil {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "link_key "+err.Error()+startBody)
		return
	}
	req.Key = key
	l, created, err := a.store.StartLink(r.Context(), req.Account, req.Key)
	if err != nil {
		a.internal(w, "start link", err)
		return
	}
	a.forwardHistory(r.Context())
	status := http.StatusOK
	if created {
		a.notify(r.Context(), l.Key)
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/links/"+strconv.FormatInt(l.ID, 10))
		a.logger.Info("link started", "link_id", l.ID, "kobot_account", l.Account, "link_key", l.Key)
	}
	httpjson.Write(w, status, l)
}

// ListResponse is the body of GET /v1/links.
type ListResponse struct {
	Links []Link `json:"links"`
	// NextCursor, when not empty, fetches the next page (?cursor=...).
	NextCursor string `json:"next_cursor,omitempty"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := LinkFilter{Limit: DefaultPageSize}
	one := func(name string) (string, bool) {
		vs := q[name]
		if len(vs) > 1 {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, name+" is given more than once")
			return "", false
		}
		if len(vs) == 0 {
			return "", true
		}
		return vs[0], true
	}
	var ok bool
	if f.Account, ok = one("account"); !ok {
		return
	}
	if f.Key, ok = one("key"); !ok {
		return
	}
	if f.Account != "" {
		if err := ValidateKey(f.Account); err != nil {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "account "+err.Error())
			return
		}
	}
	if f.Key != "" {
		key, err := CanonicalKey(f.Key)
		if err != nil {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "key "+err.Error())
			return
		}
		f.Key = key
	}
	if f.Status, ok = one("status"); !ok {
		return
	}
	if f.Status != "" && f.Status != StatusActive && f.Status != StatusStopped {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "status must be active or stopped")
		return
	}
	limit, ok := one("limit")
	if !ok {
		return
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxPageSize {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, fmt.Sprintf("limit must be an integer from 1 to %d", MaxPageSize))
			return
		}
		f.Limit = n
	}
	cursor, ok := one("cursor")
	if !ok {
		return
	}
	if cursor != "" {
		id, err := decodeCursor(cursor)
		if err != nil {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "cursor is not one this API returned")
			return
		}
		f.AfterID = id
	}
	want := f.Limit
	f.Limit++ // one more tells whether there is a next page
	links, err := a.store.ListLinks(r.Context(), f)
	if err != nil {
		a.internal(w, "list links", err)
		return
	}
	resp := ListResponse{Links: links}
	if len(links) > want {
		resp.Links = links[:want]
		resp.NextCursor = encodeCursor(links[want-1].ID)
	}
	if resp.Links == nil {
		resp.Links = []Link{}
	}
	httpjson.Write(w, http.StatusOK, resp)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	l, err := a.store.Link(r.Context(), id)
	if errors.Is(err, ErrLinkNotFound) {
		WriteError(w, http.StatusNotFound, ErrCodeNotFound, "no link with this id")
		return
	}
	if err != nil {
		a.internal(w, "get link", err)
		return
	}
	if a.history != nil {
		a.forwardHistory(r.Context())
		hctx, cancel := context.WithTimeout(r.Context(), historyTimeout)
		l.History, err = a.history.Progress(hctx, l.ID)
		cancel()
		if err != nil {
			a.internal(w, "get link history", err)
			return
		}
	}
	httpjson.Write(w, http.StatusOK, l)
}

func (a *API) stop(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	l, err := a.store.StopLink(r.Context(), id)
	if errors.Is(err, ErrLinkNotFound) {
		WriteError(w, http.StatusNotFound, ErrCodeNotFound, "no link with this id")
		return
	}
	if err != nil {
		a.internal(w, "stop link", err)
		return
	}
	a.notify(r.Context(), l.Key)
	if a.history != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), historyTimeout)
		if err := a.history.Cancel(hctx, l.ID); err != nil {
			a.logger.Warn("link stopped; its history could not be cancelled (its remaining rows are read but not pushed: the link is stopped)", "link_id", l.ID, "err", err)
		}
		cancel()
	}
	a.logger.Info("link stopped", "link_id", l.ID, "kobot_account", l.Account, "link_key", l.Key)
	httpjson.Write(w, http.StatusOK, l)
}

func (a *API) internal(w http.ResponseWriter, what string, err error) {
	a.logger.Error("links API", "op", what, "err", err)
	WriteError(w, http.StatusInternalServerError, ErrCodeInternal, what+" failed; see the sink's log")
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "link id must be a positive integer")
		return 0, false
	}
	return id, true
}

// startBody ends the message of every 400 of POST /v1/links: the body it
// takes.
const startBody = `; send {"kobot_account": "<Kobot's account id>", "link_key": "<the value of the link field, e.g. a company_id>"}`

// decodeBody reads one JSON object whose members are all in fields (exact
// names) and are strings, answering 415, 413 or 400 itself; want ends the
// message of a 400 (the body the endpoint takes).
func decodeBody(w http.ResponseWriter, r *http.Request, fields map[string]*string, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		WriteError(w, http.StatusUnsupportedMediaType, ErrCodeUnsupportedMedia, "Content-Type must be application/json: send the header Content-Type: application/json (curl: -H 'Content-Type: application/json')")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		WriteError(w, http.StatusRequestEntityTooLarge, ErrCodeBodyTooLarge, fmt.Sprintf("body is over %d bytes", MaxBodyBytes))
		return false
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidJSON, "cannot read the body")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidJSON, "body is empty"+want)
		return false
	}
	if !utf8.Valid(body) {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidJSON, "body is not valid UTF-8"+want)
		return false
	}
	members, err := objectMembers(body)
	if err != nil {
		WriteError(w, http.StatusBadRequest, ErrCodeInvalidJSON, "body is not a valid JSON object: "+err.Error()+syntaxAt(body)+want)
		return false
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		dst, known := fields[name]
		if !known {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidJSON, fmt.Sprintf("unknown field %q", clipString(name))+want)
			return false
		}
		raw := members[name]
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
			WriteError(w, http.StatusBadRequest, ErrCodeInvalidJSON, fmt.Sprintf("%s must be a string, not %s", name, jsonKind(raw))+want)
			return false
		}
	}
	return true
}

// syntaxAt says where body stops being JSON, as " at byte N (what the
// JSON parser found)", or "" when it is JSON (of another shape).
func syntaxAt(body []byte) string {
	var v any
	var se *json.SyntaxError
	err := json.Unmarshal(body, &v)
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf(" at byte %d (%s)", se.Offset, se.Error())
	case err != nil && errors.Is(err, io.ErrUnexpectedEOF):
		return " (it ends too early)"
	}
	return ""
}

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("after:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(string(b), "after:")
	if !ok {
		return 0, errors.New("bad cursor")
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, errors.New("bad cursor")
	}
	return id, nil
}

// ErrorBody is the JSON of every API error.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError writes {"error":{"code":code,"message":msg}} with status.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	httpjson.Write(w, status, b)
}
