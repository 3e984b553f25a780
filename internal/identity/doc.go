// Package identity holds what a weft site needs to prove who it is and to
// decide whom it talks to: its identity key ([SiteKey]), whose hash is its
// [siteid.ID] and which certifies the operational keys (package opkey) that
// make its proofs ([Prover]), its own certificate authority ([CA]), the certificates that bind link endpoints to site IDs,
// the access tokens an issuer hands out ([TokenStore]) and the messages of
// token redemption ([RedeemRequest], [RedeemResponse]).
//
// Trust model: the site that accepts a link issues the credentials for it.
// A redeemer dials the issuer with ALPN [ALPNRedeem], verifying the issuer
// against the CA certificate carried in the token, proves the token secret
// and sends a certificate request; the issuer answers with a client
// certificate whose only identity is the URI SAN weft://site/<hex id>.
// The redeemer proves its identity key on the redemption connection
// ([RedeemRequest.Prove]), so a certificate names only a site that asked
// for it. Later links use ALPN [ALPNLink] and mutual TLS 1.3 with that
// certificate;
// the issuer accepts a certificate only while its serial is one it issued to
// that peer and has not revoked.
//
// The package does no I/O of its own beyond the readers and writers handed
// in, and takes the current time as an argument, so the site package owns
// files, sockets and clocks.
package identity
