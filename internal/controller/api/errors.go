package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/store"
)

var (
	errUnauthorized = errors.New("a valid bearer token is required")
	errForbidden    = errors.New("this token's role may only read")
	errNameMismatch = errors.New("the body names another object than the URL")
	errTooLarge     = errors.New("request body too large")
)

// errorTable maps errors to an HTTP status and a stable code, the only place
// either is chosen (nats-server's errors.json). The first match wins.
var errorTable = []struct {
	err    error
	status int
	code   string
}{
	{errUnauthorized, http.StatusUnauthorized, "Unauthorized"},
	{errForbidden, http.StatusForbidden, "Forbidden"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "TooLarge"},
	{model.ErrInvalid, http.StatusBadRequest, "Invalid"},
	{errNameMismatch, http.StatusBadRequest, "Invalid"},
	{store.ErrParentNotFound, http.StatusNotFound, "ParentNotFound"},
	{store.ErrNotFound, http.StatusNotFound, "NotFound"},
	{store.ErrExists, http.StatusConflict, "AlreadyExists"},
	{store.ErrConflict, http.StatusConflict, "Conflict"},
	{store.ErrHasChildren, http.StatusConflict, "HasChildren"},
	{render.ErrUnresolved, http.StatusUnprocessableEntity, "Unresolved"},
	{compile.ErrConflict, http.StatusUnprocessableEntity, "ConflictingObjects"},
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what failed; Field is a JSON path into the request body or
// the intent that could not be compiled.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "Internal"
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			status, code = e.status, e.code
			break
		}
	}
	d := ErrorDetail{Code: code, Message: err.Error()}
	var fe *model.FieldError
	var re *render.Error
	switch {
	case errors.As(err, &fe):
		d.Field, d.Message = fe.Field, fe.Message
	case errors.As(err, &re):
		d.Field = re.Field
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
	}
	writeJSON(w, status, ErrorBody{d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}
