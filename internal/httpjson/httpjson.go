// Package httpjson writes JSON HTTP responses, the one way every HTTP
// endpoint of baitoru-cdc answers: the links API, /healthz and /readyz.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers status with v as JSON (one line, HTML characters left as
// they are), marked not cacheable: every body is a live answer. An encoding
// error cannot be reported once the status is written; v must be a value
// json.Marshal accepts.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
