package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"weft.dev/weft/internal/siteid"
)

// Validity periods. The CA outlives many restarts because peers hold
// certificates chained to it; the server certificate is cheap to re-make, so
// the site should make a fresh one at each start.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a peer whose clock lags the issuer's
	// still accepts a certificate made a moment ago.
	clockSkew = time.Hour
)

var (
	// ErrBadCSR is returned (wrapped) by [CA.SignClient] for a certificate
	// request that does not parse, is not self-signed correctly or has a key
	// other than ECDSA P-256. The redeemer should retry with a key from [NewKey].
	ErrBadCSR = errors.New("identity: bad certificate request")
	// ErrNoSiteID is returned (wrapped) by [PeerSiteID] for a certificate that
	// does not carry exactly one weft://site/<id> URI SAN: it was not issued
	// by a weft CA for a site.
	ErrNoSiteID = errors.New("identity: certificate carries no weft site ID")
	// ErrBadCA is returned (wrapped) by [LoadCA] when the PEM input is not a
	// weft CA certificate with its matching private key.
	ErrBadCA = errors.New("identity: bad CA certificate or key")
)

// CA is a site's own certificate authority. It signs the site's link server
// certificate and the client certificates of sites that redeem its tokens.
// A CA is immutable after creation and safe for concurrent use.
type CA struct {
	site    siteid.ID
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a self-signed P-256 CA for site, valid from now (backdated for
// clock skew) for [CAValidity]. name is informational (the subject CN).
func NewCA(site siteid.ID, name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: new CA key: %w", err)
	}
	subject := pkix.Name{CommonName: name, Organization: []string{"weft"}, OrganizationalUnit: []string{"site CA"}}
	return selfSign(key, subject, nil, site, now)
}

// Recertify returns the same CA (same key, same subject) certified anew for
// site, valid from now for [CAValidity]. It is how a site moves to a new ID
// without losing its links: a certificate signed by the old CA certificate
// also chains to the new one (same issuer name, same key, same key ID), and
// a peer holding the old CA certificate still accepts what the new one
// signs.
func (c *CA) Recertify(site siteid.ID, now time.Time) (*CA, error) {
	return selfSign(c.key, c.cert.Subject, c.cert.SubjectKeyId, site, now)
}

// selfSign makes the CA certificate of key for site; a nil keyID lets
// crypto/x509 derive it from the key.
func selfSign(key *ecdsa.PrivateKey, subject pkix.Name, keyID []byte, site siteid.ID, now time.Time) (*CA, error) {
	if site.IsZero() {
		return nil, errors.New("identity: CA for a zero site ID")
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		SubjectKeyId:          keyID,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Path length 0: a peer can never use a certificate we issued to
		// mint further certificates that chain to us.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:           []*url.URL{SiteURI(site)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("identity: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("identity: CA certificate: %w", err)
	}
	return &CA{site: site, cert: cert, certPEM: pemEncode("CERTIFICATE", der), key: key}, nil
}

// LoadCA restores a CA saved with [CA.CertPEM] and [CA.KeyPEM]. It checks that
// the certificate is a CA carrying a site ID and that the key matches it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCA, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%w: certificate is not a CA", ErrBadCA)
	}
	site, err := PeerSiteID(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCA, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCA, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: key does not match certificate", ErrBadCA)
	}
	return &CA{site: site, cert: cert, certPEM: pemEncode("CERTIFICATE", cert.Raw), key: key}, nil
}

// Site returns the ID of the site this CA belongs to.
func (c *CA) Site() siteid.ID { return c.site }

// Name returns the site name recorded when the CA was made.
func (c *CA) Name() string { return c.cert.Subject.CommonName }

// Certificate returns the parsed CA certificate; the caller must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the CA certificate in PEM form, as put into access tokens.
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// KeyPEM returns the CA private key as PKCS#8 PEM. The caller must store it
// readable only by the site (mode 0600).
func (c *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, fmt.Errorf("identity: marshal CA key: %w", err)
	}
	return pemEncode("PRIVATE KEY", der), nil
}

// Pool returns a new pool holding only this CA, so the caller may add to it
// without affecting the CA.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// ServerCertificate makes a fresh key and a certificate for the site's link
// listener, valid for [ServerValidity]. hosts become DNS or IP SANs (they are
// informational: clients check the site URI, not names, because addresses
// may be NATed); the URI SAN weft://site/<id> is what clients verify.
func (c *CA) ServerCertificate(now time.Time, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: c.Name(), Organization: []string{"weft"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     c.clampNotAfter(now.Add(ServerValidity)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		URIs:         []*url.URL{SiteURI(c.site)},
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// NewKey is the redeemer's side of issuance: a fresh P-256 key (PKCS#8 PEM,
// to be kept secret) and a CSR proving possession of it. The CSR carries no
// meaningful subject: the issuer sets identity from what it authenticated.
func NewKey() (keyPEM []byte, csrDER []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: new key: %w", err)
	}
	csrDER, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "weft link"},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: new CSR: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: marshal key: %w", err)
	}
	return pemEncode("PRIVATE KEY", der), csrDER, nil
}

// SignClient issues a link client certificate for peer from csrDER, valid
// from now for ttl (never past the CA's own expiry). Only the CSR's public
// key is used, after checking its self-signature: subject and SANs are set
// here, binding the certificate to peer by the URI SAN weft://site/<hex>.
// The returned serial (see [CertSerial]) is what the caller must record as
// issued to peer, so that [ServerTLSConfig]'s allowed func can accept it.
func (c *CA) SignClient(now time.Time, csrDER []byte, peer siteid.ID, peerName string, ttl time.Duration) (certPEM []byte, serial string, err error) {
	if peer.IsZero() {
		return nil, "", errors.New("identity: sign client: zero peer site ID")
	}
	return c.signClient(now, csrDER, peerName, SiteURI(peer), ttl)
}

// SignEventClient signs a client certificate for the event API credential
// name, bound to it by the URI SAN weft://event-credential/<name>; the
// caller records the serial as the credential's. Link listeners refuse it:
// its serial is issued to no link.
func (c *CA) SignEventClient(now time.Time, csrDER []byte, name string, ttl time.Duration) (certPEM []byte, serial string, err error) {
	return c.signClient(now, csrDER, name, eventCredentialURI(name), ttl)
}

func (c *CA) signClient(now time.Time, csrDER []byte, name string, uri *url.URL, ttl time.Duration) (certPEM []byte, serial string, err error) {
	if ttl <= 0 {
		return nil, "", fmt.Errorf("identity: sign client: ttl %v must be positive", ttl)
	}
	pub, err := csrKey(csrDER)
	if err != nil {
		return nil, "", err
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"weft"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     c.clampNotAfter(now.Add(ttl)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{uri},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, "", fmt.Errorf("identity: sign client: %w", err)
	}
	return pemEncode("CERTIFICATE", der), serialText(sn), nil
}

// CheckCSR reports whether [CA.SignClient] would accept csrDER, wrapping
// [ErrBadCSR] if not. An issuer should call it before [TokenStore.Redeem],
// so that a bad request does not spend a token use.
func CheckCSR(csrDER []byte) error {
	_, err := csrKey(csrDER)
	return err
}

func csrKey(csrDER []byte) (*ecdsa.PublicKey, error) {
	if len(csrDER) > maxCSRLen {
		return nil, fmt.Errorf("%w: %d bytes, want at most %d", ErrBadCSR, len(csrDER), maxCSRLen)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: key must be ECDSA P-256", ErrBadCSR)
	}
	return pub, nil
}

// clampNotAfter keeps a leaf from outliving the CA that vouches for it.
func (c *CA) clampNotAfter(t time.Time) time.Time {
	if t.After(c.cert.NotAfter) {
		return c.cert.NotAfter
	}
	return t
}

// CertSerial returns a certificate's serial in the form [CA.SignClient]
// returns and the allowed func of [ServerTLSConfig] receives.
func CertSerial(cert *x509.Certificate) string { return serialText(cert.SerialNumber) }

func serialText(n *big.Int) string { return n.Text(16) }

// PeerSiteID returns the site a certificate was issued for, from its single
// weft://site/<hex> URI SAN. It does not verify the certificate: call it on
// a verified chain's leaf.
func PeerSiteID(cert *x509.Certificate) (siteid.ID, error) {
	var (
		id    siteid.ID
		found int
	)
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		found++
		if u.Host != uriHost || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/") {
			return siteid.ID{}, fmt.Errorf("%w: malformed URI %q", ErrNoSiteID, truncate(u.String(), 80))
		}
		v, err := siteid.Parse(u.Path[1:])
		if err != nil {
			return siteid.ID{}, fmt.Errorf("%w: %w", ErrNoSiteID, err)
		}
		id = v
	}
	switch {
	case found == 0:
		return siteid.ID{}, ErrNoSiteID
	case found > 1:
		return siteid.ID{}, fmt.Errorf("%w: %d weft URIs, want 1", ErrNoSiteID, found)
	case id.IsZero():
		return siteid.ID{}, fmt.Errorf("%w: zero site ID", ErrNoSiteID)
	}
	return id, nil
}

// ParseCertPEM parses the first CERTIFICATE block of b, as found in
// [Token.CAPEM] and [RedeemResponse.CertPEM].
func ParseCertPEM(b []byte) (*x509.Certificate, error) { return parseCertPEM(b) }

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no CERTIFICATE PEM block")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no private key PEM block")
	}
	var (
		k   crypto.PrivateKey
		err error
	)
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	return ek, nil
}

// X509KeyPair builds the link client credential from the key of [NewKey]
// and the certificate of [CA.SignClient], checking that they match.
func X509KeyPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: key pair: %w", err)
	}
	return c, nil
}

func randomSerial() (*big.Int, error) {
	// 128 random bits, the top one cleared: serials must be positive and
	// within 20 octets, and unpredictable so revocation keys cannot collide.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("identity: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
