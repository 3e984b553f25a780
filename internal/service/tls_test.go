package service

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"weft.dev/weft/internal/service/grpctest"
)

// testCert is a self-signed certificate for 127.0.0.1 and target.test,
// with its PEM files in a temporary directory.
type testCert struct {
	cert              tls.Certificate
	pool              *x509.CertPool
	certFile, keyFile string // the certificate is also its own CA file
}

func newTestCert(t *testing.T) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "target.test"},
		DNSNames:     []string{"target.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(c.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if c.cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	c.pool.AppendCertsFromPEM(certPEM)
	return c
}

// tlsWorld is a with an HTTPS listener for "web" and b's connector to
// target over TLS, verified for target.test.
func tlsWorld(t *testing.T, cert *testCert, target string) string {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	c := httpConnector("web", "web", target)
	c.Spec.TargetTLS, c.Spec.TargetCA, c.Spec.TargetServerName = true, cert.certFile, "target.test"
	w.connector("b", c)
	l := httpListener("web", "")
	l.Spec.TLSCert, l.Spec.TLSKey = cert.certFile, cert.keyFile
	return w.listener("a", l)
}

func TestHTTPSFrontsHTTPS(t *testing.T) {
	cert := newTestCert(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := tlsWorld(t, cert, srv.Listener.Addr().String())

	for _, alpn := range []string{"h2", "http/1.1"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool, NextProtos: []string{alpn}}, ForceAttemptHTTP2: alpn == "h2"}
		t.Cleanup(tr.CloseIdleConnections)
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr)
		if err != nil {
			t.Fatalf("%s: %v", alpn, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The listener's ALPN choice is the version the target gets (its
		// own ALPN offers both).
		want := map[string]string{"h2": "HTTP/2.0", "http/1.1": "HTTP/2.0"}[alpn]
		if resp.TLS == nil || resp.TLS.NegotiatedProtocol != alpn || string(body) != want {
			t.Errorf("%s: negotiated %v, target saw %q", alpn, resp.TLS.NegotiatedProtocol, body)
		}
	}
}

func TestGRPCOverTLS(t *testing.T) {
	cert := newTestCert(t)
	srv, err := grpctest.Start("at-b", &cert.cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	addr := tlsWorld(t, cert, srv.Addr)
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(cert.pool, "target.test")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	resp, err := testpb.NewTestServiceClient(cc).UnaryCall(grpcContext(t), &testpb.SimpleRequest{ResponseSize: 3})
	if err != nil || resp.ServerId != "at-b" {
		t.Fatalf("%v %v", resp, err)
	}
}

func TestTargetTLSRefusesAnUntrustedTarget(t *testing.T) {
	cert, other := newTestCert(t), newTestCert(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{other.cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := tlsWorld(t, cert, srv.Listener.Addr().String())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool}}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502: the target's certificate is not from the CA", resp.StatusCode)
	}
}

func TestListenerTLSMissingFiles(t *testing.T) {
	w := newWorld(t, "a")
	l := httpListener("web", "")
	l.Spec.TLSCert, l.Spec.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	if err := l.Default(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.site("a").m.SetListener(l); err == nil {
		t.Error("listener with missing certificate files started")
	}
}
