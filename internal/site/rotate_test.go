package site

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
)

// echoServer answers each line with the same line until the client
// closes; it stops with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// stream is a client connection through a's listener to b's connector.
func openStream(t *testing.T, a, b *testSite) (net.Conn, *bufio.Reader) {
	t.Helper()
	target := echoServer(t)
	c := resource.Connector{Spec: resource.ConnectorSpec{Address: "echo", Target: target}}
	c.Name = "echo"
	if code, _ := b.api("PUT", "/v1/connectors/echo", c, nil); code >= 300 {
		t.Fatalf("connector: %d", code)
	}
	waitFor(t, "a to see the echo connector", func() bool { return len(a.Table().Candidates("echo")) == 1 })
	return dialListener(t, a)
}

// dialListener connects to a's listener for the echo address, making it
// the first time.
func dialListener(t *testing.T, a *testSite) (net.Conn, *bufio.Reader) {
	t.Helper()
	l := resource.Listener{Spec: resource.ListenerSpec{Address: "echo"}}
	l.Name = "echo"
	addr, err := a.svc.SetListener(l)
	must(t, err)
	conn, err := net.Dial("tcp", addr.String())
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

// streamAcrossLink starts a linked to b and a stream from a's listener to
// an echo server behind b's connector, which has carried a line.
func streamAcrossLink(t *testing.T) (a, b *testSite, conn net.Conn, r *bufio.Reader) {
	a, b = startSite(t, "a"), startSite(t, "b")
	linkSites(t, a, b)
	conn, r = openStream(t, a, b)
	echo(t, conn, r, "before")
	return a, b, conn, r
}

// redial closes a's session to b and waits for the link to come back.
func redial(t *testing.T, a *testSite) {
	t.Helper()
	a.liveOutbound("b").sess.Close()
	waitFor(t, "the link to come back", func() bool { return a.liveOutbound("b") != nil })
}

func echo(t *testing.T, conn net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(conn, line); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo %q: got %q, %v", line, got, err)
	}
}

func (s *testSite) outboundCert(t *testing.T, name string) string {
	t.Helper()
	ol := s.outbound(name)
	if ol == nil {
		t.Fatalf("no outbound link %s", name)
	}
	cert, err := identity.ParseCertPEM([]byte(ol.CertPEM))
	must(t, err)
	return identity.CertSerial(cert)
}

// Rotating a link's certificate happens over the live link: a stream open
// across it carries on, the issuer admits only the new certificate from
// then on, and the link's next session comes up with it.
func TestLinkRotationKeepsStreams(t *testing.T) {
	a, b, conn, r := streamAcrossLink(t)
	old := a.outboundCert(t, "b")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, a.RotateLink(ctx, "b"))
	serial := a.outboundCert(t, "b")
	if serial == old {
		t.Fatal("the certificate did not change")
	}
	if got := b.state().Inbound[0].Serial; got != serial {
		t.Fatalf("issuer admits serial %s, the dialer holds %s", got, serial)
	}
	echo(t, conn, r, "after the rotation, same stream")

	// The next session uses the new certificate; the old one is refused.
	redial(t, a)
	if _, ref := b.admitPeer(a.ID(), old); ref == nil {
		t.Error("the issuer still admits the old certificate")
	}
	if err := b.RotateLink(ctx, "a"); err == nil {
		t.Error("the issuer rotated a link it did not dial")
	}
}

// The rotation messages come from a linked peer: bounded, strict, never a
// panic, whatever the bytes.
func FuzzRotateMessages(f *testing.F) {
	_, csr, _ := identity.NewKey()
	f.Add(encodeControl(ctlRotate, rotateRequest{CSR: csr})[1:])
	f.Add(encodeControl(ctlRotated, rotateAnswer{Error: "no"})[1:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var req rotateRequest
		if decodeStrict(b, &req) == nil {
			identity.CheckCSR(req.CSR)
		}
		var a rotateAnswer
		if decodeStrict(b, &a) == nil && (len(b) > maxHello || !json.Valid(b)) {
			t.Fatalf("accepted %q as an answer", b)
		}
	})
}

// The link listener's certificate is renewed while the site runs: new
// handshakes get the new one, a stream across an established link carries
// on, and the link comes back up with it.
func TestServerCertificateRenewalKeepsStreams(t *testing.T) {
	a, b, conn, r := streamAcrossLink(t)
	presented := func() string {
		t.Helper()
		pool, err := poolFromPEM(string(b.ca.CertPEM()))
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := dialAny(ctx, []string{b.LinkAddr().String()}, identity.ClientTLSConfig(pool, b.ID(), nil, identity.ALPNRedeem))
		must(t, err)
		defer c.Close()
		return identity.CertSerial(c.ConnectionState().PeerCertificates[0])
	}
	old := presented()
	if b.serverCertDue(time.Now()) {
		t.Fatal("a fresh certificate is due")
	}
	if !b.serverCertDue(time.Now().Add(300 * 24 * time.Hour)) {
		t.Fatal("a certificate with 65 of 365 days left is not due")
	}
	must(t, b.renewServerCerts(time.Now()))
	if presented() == old {
		t.Fatal("the listener still presents the old certificate")
	}
	echo(t, conn, r, "after the renewal, same stream")
	redial(t, a)
}
