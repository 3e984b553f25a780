package apitype

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is every error answer of every weft API:
// {"error":{"code","message","field"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what failed. Code is stable (one of the Code constants);
// Message says what to do next; Field, when set, is the JSON path of the
// request field at fault.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error codes of the site admin API, the event API and the controller API.
const (
	CodeInvalid            = "Invalid"            // a request body or field is not valid
	CodeMalformedEvent     = "MalformedEvent"     // not a CloudEvent
	CodeBadSubject         = "BadSubject"         // a topic or queue name or pattern breaks the rules
	CodeBadLastEventID     = "BadLastEventID"     // Last-Event-ID is not an event seq
	CodeLinkRefused        = "LinkRefused"        // the token was refused or cannot be redeemed
	CodeUnauthorized       = "Unauthorized"       // no or a wrong bearer token (or event credential)
	CodeForbidden          = "Forbidden"          // the token or credential does not allow this
	CodeNotFound           = "NotFound"           // no such object or path
	CodeParentNotFound     = "ParentNotFound"     // the object's parent does not exist
	CodeNoConsumer         = "NoConsumer"         // a queue has no consumer anywhere reachable
	CodeAlreadyExists      = "AlreadyExists"      // create of an object that exists
	CodeConflict           = "Conflict"           // a stale resourceVersion
	CodeHasChildren        = "HasChildren"        // delete of an object with children
	CodeLimitReached       = "LimitReached"       // a site limit (links, listeners, ...)
	CodeListenFailed       = "ListenFailed"       // a listener's port cannot be bound
	CodeNameInUse          = "NameInUse"          // the name is taken by an object of another kind
	CodeWrongKind          = "WrongKind"          // the name is a queue, not a topic, or the reverse
	CodeTooLarge           = "TooLarge"           // a request body over its limit
	CodeEventTooLarge      = "EventTooLarge"      // an event over the size limit
	CodeUnsupportedFormat  = "UnsupportedFormat"  // an event format the site does not read
	CodeUnresolved         = "Unresolved"         // an intent names what does not exist
	CodeConflictingObjects = "ConflictingObjects" // intents compile to clashing objects
	CodeBusy               = "Busy"               // too many concurrent publishes
	CodeTooManySubs        = "TooManySubscriptions"
	CodeTooManyClientSubs  = "TooManyClientSubscriptions"
	CodeTooManyInterests   = "TooManyInterests"
	CodeInternal           = "Internal"     // a bug or an I/O failure
	CodeNotSaved           = "NotSaved"     // the site could not save the change; nothing changed
	CodeBackPressure       = "BackPressure" // persisted destinations are not keeping up
	CodeConsumerBehind     = "ConsumerBehind"
	CodeLinkNotUp          = "LinkNotUp" // the link was made but did not come up in time
)

// statuses is the one table of error codes and their HTTP status, for every
// weft API: a code means the same status wherever it is answered. Servers
// map their errors to a code; the status comes from here (nats-server's
// errors.json).
var statuses = map[string]int{
	CodeInvalid:            http.StatusBadRequest,
	CodeMalformedEvent:     http.StatusBadRequest,
	CodeBadSubject:         http.StatusBadRequest,
	CodeBadLastEventID:     http.StatusBadRequest,
	CodeLinkRefused:        http.StatusBadRequest,
	CodeUnauthorized:       http.StatusUnauthorized,
	CodeForbidden:          http.StatusForbidden,
	CodeNotFound:           http.StatusNotFound,
	CodeParentNotFound:     http.StatusNotFound,
	CodeNoConsumer:         http.StatusNotFound,
	CodeAlreadyExists:      http.StatusConflict,
	CodeConflict:           http.StatusConflict,
	CodeHasChildren:        http.StatusConflict,
	CodeLimitReached:       http.StatusConflict,
	CodeListenFailed:       http.StatusConflict,
	CodeNameInUse:          http.StatusConflict,
	CodeWrongKind:          http.StatusConflict,
	CodeTooLarge:           http.StatusRequestEntityTooLarge,
	CodeEventTooLarge:      http.StatusRequestEntityTooLarge,
	CodeUnsupportedFormat:  http.StatusUnsupportedMediaType,
	CodeUnresolved:         http.StatusUnprocessableEntity,
	CodeConflictingObjects: http.StatusUnprocessableEntity,
	CodeBusy:               http.StatusTooManyRequests,
	CodeTooManySubs:        http.StatusTooManyRequests,
	CodeTooManyClientSubs:  http.StatusTooManyRequests,
	CodeTooManyInterests:   http.StatusTooManyRequests,
	CodeInternal:           http.StatusInternalServerError,
	CodeNotSaved:           http.StatusInternalServerError,
	CodeBackPressure:       http.StatusServiceUnavailable,
	CodeConsumerBehind:     http.StatusServiceUnavailable,
	CodeLinkNotUp:          http.StatusGatewayTimeout,
}

// StatusOf is the HTTP status of an error code; an unknown code is a 500, so
// that a server with a code missing from the table fails loudly in tests.
func StatusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Codes lists every error code, for documentation and tests.
func Codes() map[string]int {
	out := make(map[string]int, len(statuses))
	for c, s := range statuses {
		out[c] = s
	}
	return out
}

// WriteError answers d with its code's status as an ErrorBody. Headers the
// caller wants with it (Retry-After, WWW-Authenticate) must be set before.
func WriteError(w http.ResponseWriter, d ErrorDetail) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(StatusOf(d.Code))
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(ErrorBody{d}) // a client that went away cannot be told
}
