package apitype

import "time"

// EventCredentialRequest is the body of POST /v1/event-credentials: a
// bearer credential for the event API, allowed to publish to the subjects
// its Publish patterns cover and to subscribe to the patterns and queues its
// Subscribe patterns cover ('*' one token, '>' the rest).
type EventCredentialRequest struct {
	Name      string   `json:"name"`
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	// Expires is how long the credential is valid, a Go duration; empty
	// for no expiry.
	Expires string `json:"expires,omitempty"`
	// Cert asks for a client certificate and key, issued by the site's CA,
	// instead of a bearer secret: a client presenting it over TLS on the
	// event port gets this credential's permissions.
	Cert bool `json:"cert,omitempty"`
	// Organisation makes the credential stand for the client
	// certificates that the site's organisation issues for its name
	// (`weft org event-cert`), at every site of the organisation that has
	// a credential of the name, instead of a bearer secret.
	Organisation bool `json:"organisation,omitempty"`
}

// EventCredentialView is a credential without its secret: GET
// /v1/event-credentials.
type EventCredentialView struct {
	Name      string     `json:"name"`
	Publish   []string   `json:"publish"`
	Subscribe []string   `json:"subscribe"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires,omitempty"`
	// State is active or expired.
	State string `json:"state"`
}

// Event credential states.
const (
	CredentialActive  = "active"
	CredentialExpired = "expired"
)

// EventCredentialCreated answers POST /v1/event-credentials. Secret is the
// bearer token: the site keeps only its hash, so this is the one time it is
// shown.
type EventCredentialCreated struct {
	EventCredentialView
	Secret string `json:"secret,omitempty"`
	// CertPEM, KeyPEM and CAPEM are the client certificate, its private
	// key and the site CA that the event port's certificate chains to,
	// for a credential made with Cert; shown only now.
	CertPEM string `json:"certPEM,omitempty"`
	KeyPEM  string `json:"keyPEM,omitempty"`
	CAPEM   string `json:"caPEM,omitempty"`
	// Organisation is the ID of the organisation whose certificates for
	// this credential's name stand for it, for a credential made with
	// Organisation.
	Organisation string `json:"organisation,omitempty"`
}
