package envtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeVersion is the Kubernetes release whose kube-apiserver the tests run;
// tools/kube-apiserver builds it.
const KubeVersion = "v1.33.4"

// KubeAPI is a running kube-apiserver backed by its own etcd.
type KubeAPI struct {
	URL        string       // https://127.0.0.1:port
	Kubeconfig []byte       // cluster-admin, by bearer token
	Config     *rest.Config // the same credentials

	t    testing.TB
	argv []string
	log  string
	proc *process
}

// KubeAPIServerPath returns where the kube-apiserver binary is expected:
// $WEFT_KUBE_APISERVER, else the cache that .ci/install-controller-deps.sh
// fills.
func KubeAPIServerPath() string {
	if p := os.Getenv("WEFT_KUBE_APISERVER"); p != "" {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "weft", "kube-apiserver-"+KubeVersion)
}

// StartKubeAPIServer starts etcd and kube-apiserver on free loopback ports
// and waits until the API server reports ready. Authentication is a static
// token in system:masters; authorization allows everything.
func StartKubeAPIServer(t testing.TB) *KubeAPI {
	t.Helper()
	return startKubeAPIServer(t, "AlwaysAllow")
}

// StartKubeAPIServerRBAC is StartKubeAPIServer with RBAC authorization, as
// a real cluster has: the admin token is still in system:masters, and may
// impersonate a service account to test what its Roles allow.
func StartKubeAPIServerRBAC(t testing.TB) *KubeAPI {
	t.Helper()
	return startKubeAPIServer(t, "RBAC")
}

func startKubeAPIServer(t testing.TB, authz string) *KubeAPI {
	t.Helper()
	apiserver := need(t, "kube-apiserver "+KubeVersion, KubeAPIServerPath())
	etcdBin := need(t, "etcd (Debian package etcd-server)", "etcd", "/usr/bin/etcd")
	dir := tempDir(t, "kube")

	var etcdURL string
	onFreePorts(t, func() bool {
		clientPort, peerPort := freePort(t), freePort(t)
		etcdURL = "http://" + loopback(clientPort)
		os.RemoveAll(filepath.Join(dir, "etcd")) // an earlier try's
		os.Remove(filepath.Join(dir, "etcd.log"))
		etcd := start(t, "etcd", filepath.Join(dir, "etcd.log"), nil, etcdBin,
			"--name=envtest", "--data-dir="+filepath.Join(dir, "etcd"),
			"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
			"--listen-peer-urls=http://"+loopback(peerPort), "--initial-advertise-peer-urls=http://"+loopback(peerPort),
			"--initial-cluster=envtest=http://"+loopback(peerPort),
			"--log-level=warn")
		t.Cleanup(etcd.stop)
		return etcd.waitReady(t, 30*time.Second, func(ctx context.Context) error {
			return httpOK(ctx, http.DefaultClient, etcdURL+"/health")
		})
	})

	caPEM, certPEM, keyPEM := servingCert(t)
	saKey := rsaKeyPEM(t)
	token := randomHex(t, 16)
	k := &KubeAPI{t: t, log: filepath.Join(dir, "kube-apiserver.log")}
	t.Cleanup(k.Stop)
	onFreePorts(t, func() bool {
		port := freePort(t)
		k.URL = "https://" + loopback(port)
		k.argv = []string{apiserver,
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + writeFile(t, dir, "serving.crt", string(certPEM)),
			"--tls-private-key-file=" + writeFile(t, dir, "serving.key", string(keyPEM)),
			"--token-auth-file=" + writeFile(t, dir, "tokens.csv", token+",envtest-admin,envtest-admin,system:masters\n"),
			"--authorization-mode=" + authz,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + writeFile(t, dir, "sa.key", string(saKey)),
			"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
			"--service-cluster-ip-range=10.0.0.0/24",
			// Nothing here runs nodes or an aggregation layer; leaving out the
			// machinery for them keeps a 2-core machine responsive.
			"--endpoint-reconciler-type=none",
			"--enable-priority-and-fairness=false",
			"--profiling=false",
			"--v=0",
		}

		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: k.URL, CertificateAuthorityData: caPEM}
		cfg.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{Token: token}
		cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
		cfg.CurrentContext = "envtest"
		var err error
		if k.Kubeconfig, err = clientcmd.Write(*cfg); err != nil {
			t.Fatal(err)
		}
		if k.Config, err = clientcmd.RESTConfigFromKubeConfig(k.Kubeconfig); err != nil {
			t.Fatal(err)
		}
		os.Remove(k.log) // an earlier try's
		return k.start()
	})
	return k
}

// KubeconfigAs is Kubeconfig with the admin impersonating user (such as
// system:serviceaccount:NS:NAME), so that a client using it has exactly
// what RBAC grants that user.
func (k *KubeAPI) KubeconfigAs(user string) []byte {
	k.t.Helper()
	cfg, err := clientcmd.Load(k.Kubeconfig)
	if err != nil {
		k.t.Fatal(err)
	}
	cfg.AuthInfos["envtest"].Impersonate = user
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		k.t.Fatal(err)
	}
	return b
}

// Stop stops the API server, keeping etcd and its data: the cluster looks
// down to clients until Start. Stop is idempotent.
func (k *KubeAPI) Stop() {
	if k.proc != nil {
		k.proc.stop()
	}
}

// Start starts the API server (again, after Stop) on the same address with
// the same credentials and waits until it is ready.
func (k *KubeAPI) Start() {
	k.t.Helper()
	if !k.start() {
		k.t.Fatalf("envtest: kube-apiserver cannot have its address %s again: another process took it", k.URL)
	}
}

// start is Start, reporting false when another process took the port.
func (k *KubeAPI) start() bool {
	k.t.Helper()
	k.proc = start(k.t, "kube-apiserver", k.log, nil, k.argv...)
	hc, err := rest.HTTPClientFor(k.Config)
	if err != nil {
		k.t.Fatal(err)
	}
	return k.proc.waitReady(k.t, 90*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, hc, k.URL+"/readyz")
	})
}

func httpOK(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// servingCert makes a throwaway CA and a certificate for 127.0.0.1 signed
// by it, all PEM.
func servingCert(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft envtest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// rsaKeyPEM makes the service-account signing key, which kube-apiserver
// requires even though no test mints service-account tokens.
func rsaKeyPEM(t testing.TB) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
