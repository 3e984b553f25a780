package site

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"weft.dev/weft/internal/identity"
)

// certCredentialPrefix marks the credential a client certificate stands
// for: the event credential whose hash is hashSecret(certCredentialPrefix
// + serial). It is never a bearer secret: eventsMTLS refuses it in a
// header, so only a verified certificate makes it.
const certCredentialPrefix = "weftcert:"

func certCredential(serial string) string { return certCredentialPrefix + serial }

// eventsMTLS puts the credential of a verified client certificate in the
// request, where the broker looks for one, and refuses a request that
// names a certificate's credential itself.
func eventsMTLS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), certCredentialPrefix) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft-events"`)
			http.Error(w, "a certificate credential is presented as a TLS client certificate, not in a header", http.StatusUnauthorized)
			return
		}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			r.Header.Set("Authorization", "Bearer "+certCredential(identity.CertSerial(r.TLS.VerifiedChains[0][0])))
		}
		next.ServeHTTP(w, r)
	})
}

// eventsTLS is the event port's TLS: the link listener's certificate, and
// client certificates verified against the site CA when given (a client
// without one uses a bearer credential, as over plain HTTP).
func (s *Site) eventsTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.serverCert.Load(), nil },
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      s.ca.Pool(),
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
