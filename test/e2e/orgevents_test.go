package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOrgEventCertCLI: an organisation issues an event client certificate
// with `weft org event-cert`; a site of the organisation, whose event API
// listens beyond loopback, binds it to a credential made with `weft
// credential create --organisation`, and a real TLS client presenting it
// publishes within the credential's patterns and no further. Another
// organisation's certificate is refused at the handshake.
func TestOrgEventCertCLI(t *testing.T) {
	a := startSite(t, "a", "--events", "0.0.0.0:0")
	dir := t.TempDir()
	// stdout alone: the key, or the files written.
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(weftBin, args...).Output()
		if err != nil {
			t.Fatalf("weft %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	keys := map[string]string{}
	for _, org := range []string{"acme", "other"} {
		keys[org] = filepath.Join(dir, org+".key")
		if err := os.WriteFile(keys[org], []byte(run("org", "create", org)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, org), 0o700); err != nil {
			t.Fatal(err)
		}
		run("org", "event-cert", "--org-key", keys[org], "--credential", "shop", "--cert-dir", filepath.Join(dir, org))
	}
	siteCert := filepath.Join(dir, "a.cert")
	if err := os.WriteFile(siteCert, []byte(run("org", "certify", "--org-key", keys["acme"], "--site", a.status().Site.ID)), 0o600); err != nil {
		t.Fatal(err)
	}
	a.weft("org", "install", siteCert)
	if out := a.weft("credential", "create", "shop", "--publish", "orders.>", "--organisation"); !strings.Contains(out, "weft org event-cert --credential shop") {
		t.Errorf("credential create --organisation:\n%s", out)
	}

	caPEM, err := os.ReadFile(filepath.Join(a.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	addr, err := os.ReadFile(filepath.Join(a.dir, "events.addr"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(string(addr))
	publish := func(org, topic string) (int, error) {
		t.Helper()
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, org, "shop.crt"), filepath.Join(dir, org, "shop.key"))
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "https://127.0.0.1:"+port+"/v1/topics/"+topic, strings.NewReader("x"))
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "t"} {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := publish("acme", "orders.created"); code != http.StatusAccepted {
		t.Errorf("the organisation's certificate: %d %v", code, err)
	}
	if code, err := publish("acme", "payments.made"); code != http.StatusForbidden {
		t.Errorf("outside the credential's patterns: %d %v", code, err)
	}
	if code, err := publish("other", "orders.created"); err == nil {
		t.Errorf("another organisation's certificate: %d, want a refused handshake", code)
	}
}
