package apitype

import (
	"time"

	"weft.dev/weft/internal/resource"
)

// Status is GET /v1/status, what `weft status` shows: this site, its links,
// the network's sites and every reachable address with where it is served.
type Status struct {
	Site       SiteView             `json:"site"`
	Links      []resource.Link      `json:"links"`
	Sites      []SiteRouteView      `json:"sites"`
	Addresses  []AddressView        `json:"addresses"`
	Listeners  []ListenerView       `json:"listeners"`
	Connectors []resource.Connector `json:"connectors"`
	Bridges    []resource.Bridge    `json:"bridges,omitempty"`
}

// SiteView identifies a site and its addresses.
type SiteView struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Admin string `json:"admin,omitempty"`
	Link  string `json:"link,omitempty"`
	// Events is the event API's address.
	Events string `json:"events,omitempty"`
}

// SiteRouteView is a reachable site with the cost and path to it.
type SiteRouteView struct {
	ID   string   `json:"id"`
	Name string   `json:"name"`
	Cost uint64   `json:"cost"`
	Path []string `json:"path"` // site names after this one
}

// AddressView is an address and the sites that serve it, cheapest first.
type AddressView struct {
	Address string            `json:"address"`
	Sites   []AddressSiteView `json:"sites"`
	// Instances are this site's own http connectors for the address, as
	// its connector-side balancer sees them.
	Instances []CandidateView `json:"instances,omitempty"`
}

// AddressSiteView is one site serving an address, with this site's
// balancing state of it once traffic was balanced here.
type AddressSiteView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Cost     uint64 `json:"cost"`
	Protocol string `json:"protocol"`
	Capacity uint32 `json:"capacity"`
	CandidateView
}

// CandidateView is a balancing candidate's state: ok, saturated or ejected
// (until EjectedUntil), its latency estimate and its load.
type CandidateView struct {
	Connector    string     `json:"connector,omitempty"` // for instances
	State        string     `json:"state,omitempty"`
	EjectedUntil *time.Time `json:"ejectedUntil,omitempty"`
	EWMA         string     `json:"ewma,omitempty"`
	InFlight     uint32     `json:"inFlight"`
	Connections  uint32     `json:"connections"`
	TimesEjected int        `json:"timesEjected,omitempty"`
	// Recent is the answers of the last minute; Share their part of all
	// candidates' answers, in percent.
	Recent uint64  `json:"recent,omitempty"`
	Share  float64 `json:"share,omitempty"`
}

// ListenerView is a listener with the address it actually listens on.
type ListenerView struct {
	resource.Listener
	Listen string `json:"listen,omitempty"`
	// Warning says why clients of the listener are turned away now, such
	// as no connector for its address anywhere reachable; empty when it
	// has somewhere to send them.
	Warning string `json:"warning,omitempty"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// Expires is how long the token may be redeemed, a Go duration; default
	// 15m.
	Expires string `json:"expires,omitempty"`
	// Uses is how many sites may redeem it; default 1 when absent. Zero is
	// refused rather than taken as the default.
	Uses *int `json:"uses,omitempty"`
}

// TokenView is an outstanding access token at its issuer, without its
// secret: GET /v1/tokens.
type TokenView struct {
	Name     string    `json:"name"`
	ID       string    `json:"id"`
	Expires  time.Time `json:"expires"`
	Uses     int       `json:"uses"`
	Redeemed int       `json:"redeemed"`
	// State is active, expired or used-up.
	State string `json:"state"`
}

// Token states.
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenUsedUp  = "used-up"
)

// ApplyResult says what POST /v1/apply did with one document.
type ApplyResult struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Result string `json:"result"` // one of the Apply* constants
	// Error is why the document failed; set only with ApplyFailed.
	Error *ErrorDetail `json:"error,omitempty"`
}

// Results of applying one document.
const (
	ApplyCreated    = "created"
	ApplyConfigured = "configured" // it existed and changed
	ApplyUnchanged  = "unchanged"
	ApplyFailed     = "failed"
)

// ApplyResponse is POST /v1/apply's answer: one result per document, in the
// order of the file. A document that fails does not stop the others; Failed
// counts them, and a client must treat Failed > 0 as a failure.
type ApplyResponse struct {
	Items  []ApplyResult `json:"items"`
	Failed int           `json:"failed"`
}

// EventConfig is GET /v1/events: the site's topics, queues and push
// subscriptions.
type EventConfig struct {
	Topics        []resource.Topic        `json:"topics"`
	Queues        []resource.Queue        `json:"queues"`
	Subscriptions []resource.Subscription `json:"subscriptions"`
}
