package apitype

import "time"

// RevocationRequest is the body of POST /v1/revocations: either Statement,
// a revocation made elsewhere (base64 of its binary form), for this site to
// check, keep and pass on; or Self, a revocation of this site itself by its
// own identity key, for Reason. Self must be said: a site's revocation of
// itself cannot be undone, so an empty body is refused, not taken for it.
type RevocationRequest struct {
	Statement string `json:"statement,omitempty"`
	Self      bool   `json:"self,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Revocation is one revoked site as a site holds it: the answer of POST
// /v1/revocations and the items of GET /v1/revocations.
type Revocation struct {
	Site string `json:"site"`
	// Kind is "site" (signed by the site's own key), "organisation", or
	// "operational-key" (one operational key of the site, Key, is revoked;
	// the site is not).
	Kind string `json:"kind"`
	// Key is the revoked operational key (hex), for kind
	// "operational-key".
	Key    string    `json:"key,omitempty"`
	Issued time.Time `json:"issued"`
	Reason string    `json:"reason,omitempty"`
	// Statement is the signed statement, base64: hand it to any site
	// (`weft revocation add`) to take the revoked site out of a network
	// it is not linked to.
	Statement string `json:"statement"`
}
