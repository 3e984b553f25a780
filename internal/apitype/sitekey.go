package apitype

import "time"

// KeyRotationRequest is the body of POST /v1/site/rotate-key.
type KeyRotationRequest struct {
	// RevokePrevious also revokes the operational key replaced, so every
	// site refuses what it signed from then on (a key that may have
	// leaked).
	RevokePrevious bool `json:"revokePrevious,omitempty"`
}

// KeyRotation is the answer of POST /v1/site/rotate-key: the site's new
// operational key, certified by its identity key (the site ID does not
// change), and its new seal key.
type KeyRotation struct {
	Site      string    `json:"site"`
	Serial    uint64    `json:"serial"`
	Key       string    `json:"key"` // the operational public key, hex
	NotAfter  time.Time `json:"notAfter"`
	SealKey   string    `json:"sealKey"` // the X25519 static key, hex
	Previous  string    `json:"previous"`
	Revoked   bool      `json:"revoked,omitempty"` // Previous is revoked
	Statement string    `json:"statement,omitempty"`
}
