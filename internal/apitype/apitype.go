// Package apitype holds the request and response bodies of weft's HTTP APIs:
// a site's admin API (/v1 on its admin address), the error answers of its
// event API, and the controller's API (/v2). The servers (internal/site,
// internal/events/broker, internal/controller/api) answer with these types
// and the clients (cmd/weft, the controller's weft backend, through
// internal/apiclient) decode them, so that no client imports a server to
// read its answers. Tailscale's client/tailscale/apitype is the model.
//
// It is a leaf of weft's upper half: it imports only internal/resource,
// whose objects are the admin API's bodies and which imports nothing of
// weft. Controller answers that carry compiled objects use the plain JSON
// forms below (ObjectRef, Change) rather than the compile package's types,
// which would pull in the controller; the controller converts.
package apitype

// List is every collection answer: {"items": [...]}.
type List[T any] struct {
	Items []T `json:"items"`
}

// Version describes the running binary: what `weft version` prints and
// GET /version answers, from runtime/debug.ReadBuildInfo.
type Version struct {
	// Module is the main module's version: a tag, a pseudo-version, or
	// "(devel)" for a build outside version control.
	Module string `json:"module"`
	// Revision is the VCS commit the binary was built from, when known.
	Revision string `json:"revision,omitempty"`
	// RevisionTime is the commit's time (RFC 3339), when known.
	RevisionTime string `json:"revisionTime,omitempty"`
	// Modified says the working tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// Go is the Go toolchain that built the binary.
	Go string `json:"go"`
}
