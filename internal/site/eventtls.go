package site

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/policy"
)

// certCredentialPrefix marks the credential a client certificate stands
// for: the event credential whose hash is hashSecret(certCredentialPrefix
// + serial). It is never a bearer secret: eventsMTLS refuses it in a
// header, so only a verified certificate makes it.
const certCredentialPrefix = "weftcert:"

func certCredential(serial string) string { return certCredentialPrefix + serial }

// orgCredential is the credential that a client certificate issued by the
// organisation org for the credential name stands for (`weft org
// event-cert`); the organisation's ID keeps it apart from serials, and from
// the certificates of an organisation the site has left.
func orgCredential(org policy.OrgID, name string) string {
	return certCredentialPrefix + "org/" + org.String() + "/" + name
}

// eventsMTLS puts the credential of a client certificate, which the
// handshake verified, in the request, where the broker looks for one, and
// refuses a request that names a certificate's credential itself.
func (s *Site) eventsMTLS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		unauthorized := func(msg string) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft-events"`)
			http.Error(w, msg, http.StatusUnauthorized)
		}
		if strings.Contains(r.Header.Get("Authorization"), certCredentialPrefix) {
			unauthorized("a certificate credential is presented as a TLS client certificate, not in a header")
			return
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			// Checked again: the site may have left its organisation,
			// or the certificate expired, since the handshake.
			cred, err := s.clientCredential(r.TLS.PeerCertificates, time.Now())
			if err != nil {
				unauthorized(err.Error())
				return
			}
			r.Header.Set("Authorization", "Bearer "+cred)
		}
		next.ServeHTTP(w, r)
	})
}

// clientCredential checks an event client's certificates (leaf first) and
// returns the credential they stand for: a certificate of the site CA
// stands for the credential of its serial, one that this site's
// organisation issued for the credential of its name.
func (s *Site) clientCredential(certs []*x509.Certificate, now time.Time) (string, error) {
	leaf, inter := certs[0], x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: s.ca.Pool(), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err == nil {
		return certCredential(identity.CertSerial(leaf)), nil
	}
	org, ok := s.orgCert()
	if !ok {
		return "", fmt.Errorf("the client certificate is not from this site's CA (%w), and the site is in no organisation", err)
	}
	name, err := identity.VerifyOrgEventClient(certs, org.OrgKey[:], now)
	if err != nil {
		return "", err
	}
	return orgCredential(org.Org(), name), nil
}

// orgCert is the certificate of the organisation this site is in, if it
// is in one.
func (s *Site) orgCert() (*policy.Cert, bool) {
	p, err := ownPolicy(s.state())
	if err != nil || p.Cert == nil || p.Cert.Verify(s.id) != nil {
		return nil, false
	}
	return p.Cert, true
}

// eventsTLS is the event port's TLS: the link listener's certificate, and
// client certificates from the site CA or the site's organisation when
// given (a client without one uses a bearer credential, as over plain
// HTTP).
func (s *Site) eventsTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.serverCert.Load(), nil },
		// Two roots, one of them the organisation's key, which is no
		// X.509 pool: VerifyConnection checks.
		ClientAuth: tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			_, err := s.clientCredential(cs.PeerCertificates, time.Now())
			return err
		},
	}
}

// sniffTLS serves TLS and plain HTTP on one port: a connection whose first
// byte is a TLS handshake record (0x16) is served as TLS. The first byte is
// read off the accept loop, so a silent client holds up no one.
type sniffTLS struct {
	net.Listener
	cfg   *tls.Config
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex // guards pending
	pending map[net.Conn]struct{}
}

// sniffTimeout bounds the wait for a new connection's first byte.
const sniffTimeout = 10 * time.Second

func newSniffTLS(ln net.Listener, cfg *tls.Config) *sniffTLS {
	l := &sniffTLS{Listener: ln, cfg: cfg, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{}),
		pending: map[net.Conn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *sniffTLS) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.errc <- err
			return
		}
		l.mu.Lock()
		l.pending[c] = struct{}{}
		l.mu.Unlock()
		go l.sniff(c)
	}
}

func (l *sniffTLS) sniff(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		c.Close()
		return
	}
	var out net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == 0x16 {
		out = tls.Server(out, l.cfg)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

func (l *sniffTLS) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err
		return nil, err
	}
}

func (l *sniffTLS) Close() error {
	l.once.Do(func() { close(l.done) })
	err := l.Listener.Close()
	l.mu.Lock()
	for c := range l.pending {
		c.Close()
	}
	l.mu.Unlock()
	return err
}

// peekedConn reads first what sniffing buffered.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
