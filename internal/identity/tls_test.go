package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"weft.dev/weft/internal/siteid"
)

// pair runs a real TLS handshake over net.Pipe, then srvFn and cliFn on the
// two ends. Each side closes its end when done, so a failure on one side
// unblocks the other; the deadline bounds a test that would otherwise hang.
func pair(t *testing.T, srvCfg, cliCfg *tls.Config, srvFn, cliFn func(*tls.Conn) error) (srvErr, cliErr error) {
	t.Helper()
	c1, c2 := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)
	errc := make(chan error, 1)
	go func() {
		defer c1.Close()
		conn := tls.Server(c1, srvCfg)
		err := conn.Handshake()
		if err == nil && srvFn != nil {
			err = srvFn(conn)
		}
		errc <- err
	}()
	func() {
		defer c2.Close()
		conn := tls.Client(c2, cliCfg)
		cliErr = conn.Handshake()
		if cliErr == nil && cliFn != nil {
			cliErr = cliFn(conn)
		}
	}()
	return <-errc, cliErr
}

// In TLS 1.3 the client finishes its handshake before the server has judged
// its certificate, so a link client only knows it was accepted once it reads
// something: the server says "k" after its handshake succeeds.
func serverSaysOK(c *tls.Conn) error {
	_, err := c.Write([]byte("k"))
	return err
}

func clientHearsOK(c *tls.Conn) error {
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'k' {
		return fmt.Errorf("got %q", b)
	}
	return nil
}

// issuer is the accepting side of links: its CA, listener certificate and
// the serials it issued, per peer.
type issuer struct {
	ca     *CA
	server tls.Certificate

	mu     sync.Mutex
	issued map[string]siteid.ID // serial -> peer it was issued to; deleted = revoked
	asked  []string             // serials allowed was asked about
}

func newIssuer(t *testing.T, name string, now time.Time) *issuer {
	t.Helper()
	ca := mustCA(t, name, now)
	srv, err := ca.ServerCertificate(now, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{ca: ca, server: srv, issued: map[string]siteid.ID{}}
}

func (is *issuer) allowed(peer siteid.ID, serial string) error {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.asked = append(is.asked, serial)
	owner, ok := is.issued[serial]
	if !ok {
		return errors.New("serial not issued or revoked")
	}
	if owner != peer {
		return fmt.Errorf("serial issued to %s", owner)
	}
	return nil
}

func (is *issuer) tlsConfig() *tls.Config { return ServerTLSConfig(is.ca, is.server, is.allowed) }

// clientCert makes a link credential for peer signed by ca, recording it as
// issued to recordAs (which a test may set to another site).
func (is *issuer) clientCert(t *testing.T, ca *CA, peer, recordAs siteid.ID, now time.Time, ttl time.Duration) (*tls.Certificate, string) {
	t.Helper()
	keyPEM, csr, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, serial, err := ca.SignClient(now, csr, peer, "redeemer", ttl)
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	is.issued[serial] = recordAs
	is.mu.Unlock()
	c, err := X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c, serial
}

func TestLinkHandshake(t *testing.T) {
	now := time.Now()
	is := newIssuer(t, "issuer", now)
	redeemer := mustSiteID(t)
	pool := is.ca.Pool()

	good, goodSerial := is.clientCert(t, is.ca, redeemer, redeemer, now, time.Hour)
	revoked, revokedSerial := is.clientCert(t, is.ca, redeemer, redeemer, now, time.Hour)
	is.mu.Lock()
	delete(is.issued, revokedSerial)
	is.mu.Unlock()
	// Signed by this CA for redeemer, but the issuer's records say the
	// serial belongs to another site.
	notForPeer, _ := is.clientCert(t, is.ca, redeemer, mustSiteID(t), now, time.Hour)
	expired, _ := is.clientCert(t, is.ca, redeemer, redeemer, now.Add(-3*time.Hour), time.Hour)
	foreignCA := mustCA(t, "stranger", now)
	foreign, _ := is.clientCert(t, foreignCA, redeemer, redeemer, now, time.Hour)
	// The issuer's own listener certificate chains to the CA and carries a
	// site URI, but is not a client certificate.
	serverAsClient := is.server

	tests := []struct {
		name     string
		cli      *tls.Config
		fails    bool  // the client must see an error
		srvFails bool  // the server must see an error
		cliErr   error // if set, the client's error must wrap it
	}{
		{name: "good client cert", cli: ClientTLSConfig(pool, is.ca.Site(), good, ALPNLink)},
		{name: "other CA", cli: ClientTLSConfig(pool, is.ca.Site(), foreign, ALPNLink), fails: true, srvFails: true},
		{name: "revoked serial", cli: ClientTLSConfig(pool, is.ca.Site(), revoked, ALPNLink), fails: true, srvFails: true},
		{name: "not issued for peer", cli: ClientTLSConfig(pool, is.ca.Site(), notForPeer, ALPNLink), fails: true, srvFails: true},
		{name: "expired cert", cli: ClientTLSConfig(pool, is.ca.Site(), expired, ALPNLink), fails: true, srvFails: true},
		{name: "server cert as client cert", cli: ClientTLSConfig(pool, is.ca.Site(), &serverAsClient, ALPNLink), fails: true, srvFails: true},
		{name: "no client cert on link", cli: ClientTLSConfig(pool, is.ca.Site(), nil, ALPNLink), fails: true, srvFails: true},
		{name: "wrong issuer ID", cli: ClientTLSConfig(pool, mustSiteID(t), good, ALPNLink), fails: true, srvFails: true, cliErr: ErrWrongSite},
		{name: "issuer not in pool", cli: ClientTLSConfig(foreignCA.Pool(), is.ca.Site(), good, ALPNLink), fails: true, srvFails: true},
		{name: "unknown ALPN", cli: ClientTLSConfig(pool, is.ca.Site(), good, "h2"), fails: true, srvFails: true},
		{name: "both ALPNs offered", cli: func() *tls.Config {
			c := ClientTLSConfig(pool, is.ca.Site(), good, ALPNLink)
			c.NextProtos = []string{ALPNRedeem, ALPNLink}
			return c
		}(), fails: true, srvFails: true},
		{name: "redeem without client cert", cli: ClientTLSConfig(pool, is.ca.Site(), nil, ALPNRedeem)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvErr, cliErr := pair(t, is.tlsConfig(), tt.cli, serverSaysOK,
				func(c *tls.Conn) error {
					if got, want := c.ConnectionState().NegotiatedProtocol, tt.cli.NextProtos[0]; got != want {
						return fmt.Errorf("ALPN %q, want %q", got, want)
					}
					return clientHearsOK(c)
				})
			if !tt.fails {
				if srvErr != nil || cliErr != nil {
					t.Fatalf("server err %v, client err %v; want success", srvErr, cliErr)
				}
				return
			}
			if cliErr == nil {
				t.Errorf("client succeeded, want refusal")
			}
			if tt.cliErr != nil && !errors.Is(cliErr, tt.cliErr) {
				t.Errorf("client err %v, want %v", cliErr, tt.cliErr)
			}
			if tt.srvFails && srvErr == nil {
				t.Errorf("server accepted, want refusal")
			}
			t.Logf("server: %v; client: %v", srvErr, cliErr)
		})
	}

	// allowed saw the good serial, and the server saw the peer's site.
	is.mu.Lock()
	defer is.mu.Unlock()
	if len(is.asked) == 0 || is.asked[0] != goodSerial {
		t.Errorf("allowed asked about %v, want %s first", is.asked, goodSerial)
	}
}

func TestLinkServerSeesPeer(t *testing.T) {
	now := time.Now()
	is := newIssuer(t, "issuer", now)
	redeemer := mustSiteID(t)
	cert, _ := is.clientCert(t, is.ca, redeemer, redeemer, now, time.Hour)
	var peer siteid.ID
	srvErr, cliErr := pair(t, is.tlsConfig(), ClientTLSConfig(is.ca.Pool(), is.ca.Site(), cert, ALPNLink),
		func(c *tls.Conn) error {
			var err error
			peer, err = PeerSiteID(c.ConnectionState().PeerCertificates[0])
			if err != nil {
				return err
			}
			return serverSaysOK(c)
		}, clientHearsOK)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("server %v, client %v", srvErr, cliErr)
	}
	if peer != redeemer {
		t.Fatalf("server sees peer %s, want %s", peer, redeemer)
	}
}

// TestRedeemThenLink walks the whole exchange: a redeemer proves a token over
// the redeem ALPN, gets a certificate, links with it, and a replay of the
// same token is refused as already redeemed.
func TestRedeemThenLink(t *testing.T) {
	now := time.Now()
	is := newIssuer(t, "issuer", now)
	var store TokenStore
	id, secret, _, err := store.Issue(now, 15*time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok := Token{ID: id, Secret: secret, IssuerID: is.ca.Site(), IssuerName: is.ca.Name(), Addresses: []string{"127.0.0.1:1"}, CAPEM: is.ca.CertPEM()}
	pool, err := tok.IssuerPool()
	if err != nil {
		t.Fatal(err)
	}
	redeemerKey, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}

	serveRedeem := func(c *tls.Conn) error {
		req, err := ReadRequest(c)
		if err != nil {
			return err
		}
		resp := &RedeemResponse{IssuerID: is.ca.Site(), IssuerName: is.ca.Name()}
		binding, err := RedeemBinding(c.ConnectionState())
		if err == nil {
			_, err = req.CheckProof(binding, now)
		}
		if err == nil {
			err = store.Redeem(now, req.TokenID, req.Secret, req.SiteID)
		}
		if err == nil {
			var serial string
			resp.CertPEM, serial, err = is.ca.SignClient(now, req.CSR, req.SiteID, req.SiteName, time.Hour)
			if err == nil {
				is.mu.Lock()
				is.issued[serial] = req.SiteID
				is.mu.Unlock()
			}
		}
		if err != nil {
			resp = &RedeemResponse{Code: ErrorCode(err), Message: err.Error()}
		}
		return WriteMessage(c, resp)
	}
	redeem := func() (*tls.Certificate, error) {
		keyPEM, csr, err := NewKey()
		if err != nil {
			return nil, err
		}
		var cert *tls.Certificate
		srvErr, cliErr := pair(t, is.tlsConfig(), ClientTLSConfig(pool, tok.IssuerID, nil, ALPNRedeem), serveRedeem,
			func(c *tls.Conn) error {
				req := &RedeemRequest{TokenID: tok.ID, Secret: tok.Secret, SiteName: "west", CSR: csr}
				binding, err := RedeemBinding(c.ConnectionState())
				if err != nil {
					return err
				}
				req.Prove(redeemerKey, binding)
				if err := WriteMessage(c, req); err != nil {
					return err
				}
				resp, err := ReadResponse(c)
				if err != nil {
					return err
				}
				if err := ResponseError(resp); err != nil {
					return err
				}
				if resp.IssuerID != tok.IssuerID {
					return fmt.Errorf("issuer %s", resp.IssuerID)
				}
				kp, err := X509KeyPair(resp.CertPEM, keyPEM)
				cert = &kp
				return err
			})
		if srvErr != nil {
			t.Fatalf("issuer side: %v", srvErr)
		}
		return cert, cliErr
	}

	cert, err := redeem()
	if err != nil {
		t.Fatal(err)
	}
	srvErr, cliErr := pair(t, is.tlsConfig(), ClientTLSConfig(pool, tok.IssuerID, cert, ALPNLink), serverSaysOK, clientHearsOK)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("link with redeemed cert: server %v, client %v", srvErr, cliErr)
	}
	if _, err := redeem(); !errors.Is(err, ErrTokenAlreadyRedeemed) {
		t.Fatalf("replay: err = %v, want ErrTokenAlreadyRedeemed", err)
	}
}

func TestTokenIssuerPoolRejectsMismatch(t *testing.T) {
	ca := mustCA(t, "a", t0)
	tok := Token{ID: "x", Secret: "y", IssuerID: mustSiteID(t), Addresses: []string{"h:1"}, CAPEM: ca.CertPEM()}
	if _, err := tok.IssuerPool(); !errors.Is(err, ErrWrongSite) {
		t.Fatalf("err = %v, want ErrWrongSite", err)
	}
	tok.IssuerID = ca.Site()
	p, err := tok.IssuerPool()
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(ca.Pool()) {
		t.Fatal("pool differs from CA's")
	}
	tok.CAPEM = []byte("junk")
	if _, err := tok.IssuerPool(); err == nil {
		t.Fatal("junk CA accepted")
	}
}
