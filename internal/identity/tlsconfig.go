package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"weft.dev/weft/internal/siteid"
)

// ALPN protocol names. A link listener serves both on one port; the client
// offers exactly one, and that choice decides whether a client certificate is
// required.
const (
	// ALPNLink is mutual TLS with a client certificate issued by the
	// listener's CA.
	ALPNLink = "weft-link/1"
	// ALPNRedeem carries token redemption; the client has no certificate yet.
	ALPNRedeem = "weft-redeem/1"
)

// ErrWrongSite is returned (wrapped) from a client handshake when the server's
// certificate chains to the expected CA but names a different site.
var ErrWrongSite = errors.New("identity: peer is not the expected site")

// ServerTLSConfig returns the TLS 1.3 config for a site's link listener.
// For [ALPNLink] it requires a client certificate chained to ca that names
// a site, then, if allowed is not nil, asks it whether the certificate's
// (peer, serial) is one this site issued to that peer and has not revoked;
// allowed must be safe for concurrent use. A caller that passes nil must
// decide admission itself once the handshake is done, which lets it tell a
// refused peer why (a TLS alert cannot carry the reason). For [ALPNRedeem]
// no client certificate is asked for. A client offering neither, or both, is
// refused.
//
// The caller may set fields such as Time or KeyLogWriter on the returned
// config before use; they carry into every handshake.
func ServerTLSConfig(ca *CA, server tls.Certificate, allowed func(peer siteid.ID, serial string) error) *tls.Config {
	if ca == nil {
		panic("identity: ServerTLSConfig needs a CA")
	}
	pool := ca.Pool()
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{server},
		NextProtos:   []string{ALPNLink, ALPNRedeem},
		// Resumption would skip presenting the client certificate again;
		// links are long-lived, so a full handshake costs little and every
		// link re-proves its credential.
		SessionTicketsDisabled: true,
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		link := slices.Contains(hello.SupportedProtos, ALPNLink)
		redeem := slices.Contains(hello.SupportedProtos, ALPNRedeem)
		if link == redeem {
			return nil, fmt.Errorf("identity: client must offer exactly one of ALPN %q or %q, offered %q",
				ALPNLink, ALPNRedeem, hello.SupportedProtos)
		}
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		if redeem {
			cfg.NextProtos = []string{ALPNRedeem}
			cfg.ClientAuth = tls.NoClientCert
			return cfg, nil
		}
		cfg.NextProtos = []string{ALPNLink}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
		// crypto/tls has already verified the chain to ca and the
		// ClientAuth extended key usage; what remains is whether this
		// site still stands behind this particular certificate.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("identity: no client certificate")
			}
			leaf := cs.PeerCertificates[0]
			peer, err := PeerSiteID(leaf)
			if err != nil {
				return err
			}
			if allowed == nil {
				return nil
			}
			serial := CertSerial(leaf)
			if err := allowed(peer, serial); err != nil {
				return fmt.Errorf("identity: client certificate of site %s (serial %s) refused: %w", peer, serial, err)
			}
			return nil
		}
		return cfg, nil
	}
	return base
}

// ClientTLSConfig returns the TLS 1.3 config for dialing an issuer's link
// listener with the given ALPN ([ALPNLink] or [ALPNRedeem]). The server must
// present a certificate chaining to issuerCA whose URI SAN names issuerID.
// Host names are deliberately not checked: the dialed address may be NATed or
// a bare IP, and the site URI is the identity that matters. clientCert may be
// nil for redemption; when set it is always sent, even if the server's list
// of acceptable CAs does not match, so that the server reports the problem.
// Certificate validity is judged at the returned config's Time, if the caller
// sets one, else at the current time.
func ClientTLSConfig(issuerCA *x509.CertPool, issuerID siteid.ID, clientCert *tls.Certificate, alpn string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		// The server name is the expected site's ID: a site that moved to
		// a key-derived ID answers a peer asking for its old one with a
		// certificate naming that (see ServeLegacyID).
		ServerName: issuerID.String(),
		// Name checks are replaced by the VerifyConnection below, which
		// does the chain verification itself.
		InsecureSkipVerify: true,
	}
	if clientCert != nil {
		cert := clientCert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != alpn {
			return fmt.Errorf("identity: server did not agree to ALPN %q (got %q)", alpn, cs.NegotiatedProtocol)
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("identity: server sent no certificate")
		}
		now := time.Now()
		if cfg.Time != nil {
			now = cfg.Time()
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots:         issuerCA,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return fmt.Errorf("identity: verify issuer %s: %w", issuerID, err)
		}
		got, err := PeerSiteID(leaf)
		if err != nil {
			return err
		}
		if got != issuerID {
			return fmt.Errorf("%w: want %s, server is %s", ErrWrongSite, issuerID, got)
		}
		return nil
	}
	return cfg
}

// ServeLegacyID makes a server config from [ServerTLSConfig] present cert,
// which names the site's former ID legacy, to clients that ask for legacy
// by server name, as [ClientTLSConfig] does: peers that linked to the site
// before it moved to a key-derived ID keep the ID they pinned. Everyone
// else gets the config's own certificate.
func ServeLegacyID(cfg *tls.Config, legacy siteid.ID, cert tls.Certificate) {
	current := cfg.Certificates[0]
	name := legacy.String()
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == name {
			return &cert, nil
		}
		return &current, nil
	}
}
