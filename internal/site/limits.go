package site

import (
	"fmt"

	"weft.dev/weft/internal/routing"
)

// Limits on the configuration one site holds. They are input limits, checked
// where a change arrives, so that what the site announces always fits in a
// site record (routing's limits) and a client can never make it fail later.
// They are variables so that a test can reach them cheaply.
var (
	maxLinks      = routing.MaxLinks      // inbound and outbound together
	maxConnectors = routing.MaxConnectors // each announces its address
	maxListeners  = 4096                  // each holds a port
	// maxTokens bounds the tokens kept (until a day after they expire),
	// each of which the state file carries.
	maxTokens = 1024
)

// LimitError is a change refused because it would break a limit. The admin
// API answers it with 409 and code LimitReached.
type LimitError struct {
	Limit string // what is limited, as in weft_limit_refusals_total{limit}
	Max   int
	Hint  string // what the user can do
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit reached: a site holds at most %d %s; %s", e.Max, e.Limit, e.Hint)
}

func limitError(limit string, max int, hint string) error {
	return &LimitError{Limit: limit, Max: max, Hint: hint}
}
