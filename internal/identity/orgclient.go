package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"time"

	"weft.dev/weft/internal/resource"
)

// An organisation (package policy: an Ed25519 key that certifies its sites)
// issues event API client certificates itself, so that one certificate
// works at every site it certified, where a site's own CA issues them for
// that site only. The organisation key signs the certificate directly,
// through a self-signed X.509 CA certificate of that key which the client
// presents with it; a site accepts the chain when the CA's key is the key
// of the organisation whose certificate it carries, and binds the
// certificate by its credential name (URI SAN weft://event-credential/NAME)
// to that site's credential of the name: the organisation says who the
// client is, each site what it may do.

// ErrOrgClient is returned (wrapped) by [VerifyOrgEventClient].
var ErrOrgClient = errors.New("identity: not an event client certificate of this site's organisation")

// maxOrgClientLife bounds an organisation's event client certificate.
const maxOrgClientLife = 10 * 365 * 24 * time.Hour

// SignOrgEventClient makes a client certificate for the event credential
// name with a new key, signed by the organisation key orgKey (the
// organisation orgName), valid from now for ttl. certPEM is the
// certificate followed by the organisation's CA certificate: the client
// presents both.
func SignOrgEventClient(orgKey ed25519.PrivateKey, orgName, name string, now time.Time, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := resource.ValidateName(name); err != nil {
		return nil, nil, fmt.Errorf("identity: credential name: %w", err)
	}
	if ttl <= 0 || ttl > maxOrgClientLife {
		return nil, nil, fmt.Errorf("identity: certificate life %v: want more than 0 and at most %v", ttl, maxOrgClientLife)
	}
	keyPEM, csr, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	pub, err := csrKey(csr)
	if err != nil {
		return nil, nil, err
	}
	caSerial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(ttl)
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: orgName, Organization: []string{"weft"}, OrganizationalUnit: []string{"organisation CA"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, orgKey.Public(), orgKey)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: organisation CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"weft"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{eventCredentialURI(name)},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, pub, orgKey)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: sign organisation client: %w", err)
	}
	return append(pemEncode("CERTIFICATE", der), pemEncode("CERTIFICATE", caDER)...), keyPEM, nil
}

func eventCredentialURI(name string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: "event-credential", Path: "/" + name}
}

// VerifyOrgEventClient checks a client's certificates as a TLS handshake
// presents them (leaf first): one of the others must be a self-signed CA
// certificate of orgKey, the leaf must chain to it for client
// authentication at now, and it must name exactly one event credential. It
// returns that credential's name.
func VerifyOrgEventClient(certs []*x509.Certificate, orgKey ed25519.PublicKey, now time.Time) (string, error) {
	if len(certs) < 2 {
		return "", fmt.Errorf("%w: present the certificate with the organisation CA certificate after it (as `weft org event-cert` writes them)", ErrOrgClient)
	}
	roots, found := x509.NewCertPool(), false
	for _, c := range certs[1:] {
		k, ok := c.PublicKey.(ed25519.PublicKey)
		if ok && k.Equal(orgKey) && c.IsCA && bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("%w: no CA certificate of the organisation's key in the chain", ErrOrgClient)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrOrgClient, err)
	}
	var name string
	for _, u := range leaf.URIs {
		if u.Scheme != uriScheme || u.Host != "event-credential" {
			continue
		}
		if name != "" {
			return "", fmt.Errorf("%w: it names more than one event credential", ErrOrgClient)
		}
		name = u.Path[min(1, len(u.Path)):]
	}
	if err := resource.ValidateName(name); err != nil {
		return "", fmt.Errorf("%w: it names no valid event credential: %w", ErrOrgClient, err)
	}
	return name, nil
}
