// Package console serves weft's web consoles: the site console on a site's
// admin address and the controller console on the controller's API address.
// Both share one login, one session store, one Server-Sent Events stream of
// snapshots and one set of embedded assets, so the console works with no
// network beyond its own address (no CDN, no external fonts).
//
// Authentication is the API's own credential: the login form posts it once,
// the server keeps it in a session and gives the browser only a random
// session token in an HttpOnly, SameSite=Strict cookie. The credential never
// travels in a URL. State-changing requests (login, logout) are refused
// across origins (net/http's CrossOriginProtection); everything else the
// console serves is read-only.
//
// What the console shows comes from a Snapshot function of its host,
// called for each open page every Interval and pushed as one JSON event;
// the page renders it with plain JavaScript and SVG. The site's snapshot
// carries request and byte rates from a Sampler, a small ring of samples of
// the site's own Prometheus counters.
package console
