// Package push is the delivery policy of push subscriptions, Knative's
// data-plane contract as pure functions: which answers are final, and how
// long to wait before each retry.
package push

import (
	"net/http"
	"time"
)

// Outcome is what one delivery attempt means.
type Outcome int

const (
	// Delivered: the sink took the event (2xx).
	Delivered Outcome = iota
	// Retry: a transient failure (5xx, 404, 409, 429, other statuses, or
	// no answer at all); try again after the backoff.
	Retry
	// Failed: the sink refused the event for good (400 and the other 4xx);
	// retrying cannot help, so it goes to the dead-letter sink at once.
	Failed
)

// Classify maps an HTTP status (0 for a transport error) to an outcome.
func Classify(status int) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Delivered
	case status == http.StatusNotFound, status == http.StatusConflict, status == http.StatusTooManyRequests:
		return Retry
	case status >= 400 && status < 500:
		return Failed
	default:
		return Retry
	}
}

// Policy is a subscription's retry policy.
type Policy struct {
	Retry       int  // attempts after the first
	Exponential bool // delay*2^n, else delay*(n+1)
	Delay       time.Duration
}

// maxDelay caps one wait, so a long exponential series does not overflow or
// stall a subscription for hours.
const maxDelay = time.Minute

// Backoff is the wait before retry n (0 for the first retry).
func (p Policy) Backoff(n int) time.Duration {
	var d time.Duration
	if p.Exponential {
		d = p.Delay << min(n, 30)
	} else {
		d = p.Delay * time.Duration(n+1)
	}
	if d <= 0 || d > maxDelay {
		return maxDelay
	}
	return d
}
