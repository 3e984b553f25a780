package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"weft.dev/weft/internal/apitype"
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

// errorTable maps errors to their stable code, the only place one is
// chosen; the HTTP status comes from apitype's table, shared with the site
// and event APIs. The first match wins.
var errorTable = []struct {
	err  error
	code string
}{
	{errUnauthorized, apitype.CodeUnauthorized},
	{errForbidden, apitype.CodeForbidden},
	{errTooLarge, apitype.CodeTooLarge},
	{model.ErrInvalid, apitype.CodeInvalid},
	{errNameMismatch, apitype.CodeInvalid},
	{store.ErrParentNotFound, apitype.CodeParentNotFound},
	{store.ErrNotFound, apitype.CodeNotFound},
	{store.ErrExists, apitype.CodeAlreadyExists},
	{store.ErrConflict, apitype.CodeConflict},
	{store.ErrHasChildren, apitype.CodeHasChildren},
	{render.ErrUnresolved, apitype.CodeUnresolved},
	{compile.ErrConflict, apitype.CodeConflictingObjects},
}

// ErrorBody is every error response; kept under this name for the API's
// tests and OpenAPI document.
type ErrorBody = apitype.ErrorBody

func writeError(w http.ResponseWriter, err error) {
	d := apitype.ErrorDetail{Code: apitype.CodeInternal, Message: err.Error()}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			d.Code = e.code
			break
		}
	}
	var fe *model.FieldError
	var re *render.Error
	switch {
	case errors.As(err, &fe):
		d.Field, d.Message = fe.Field, fe.Message
	case errors.As(err, &re):
		d.Field = re.Field
	}
	if d.Code == apitype.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
	}
	apitype.WriteError(w, d)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}
