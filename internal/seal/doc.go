// Package seal encrypts and authenticates service streams end to end,
// between the ingress site that opens a stream and the egress site that
// serves it, so that transit sites splice ciphertext they can neither read
// nor alter undetected.
//
// Each site has a static X25519 [Key], advertised in its site record. An
// ingress reaching an egress for the first time runs a Noise IK handshake
// (Noise_IK_25519_AESGCM_SHA256) whose prologue binds the stream's kind,
// address, origin and whole segment list; the result is a per-site-pair
// [Session], as WireGuard keeps one per peer. Every later stream derives
// its own keys from the session and a stream counter with HKDF, so a new
// stream costs two hashes, not a key agreement. Sessions are replaced after
// [Config.RekeyAfter]; stream keys ratchet every 2^24 records.
//
// [Initiator.Open] is the ingress side, [Responder.Accept] the egress side;
// both return a [Conn], the record layer (length-prefixed AES-128-GCM
// records with implicit counters). A direct stream, whose only hop is the
// link between the two sites, is not sealed: the link's mutual TLS is end
// to end already, and [Responder.AcceptDirect] admits one at the egress
// only from its origin's own link. The wire format is in spec.md.
package seal
