package envtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestKubeAPIServer(t *testing.T) {
	k := StartKubeAPIServer(t)
	ctx := context.Background()

	// The kubeconfig alone is enough to reach the server.
	cfg, err := clientcmd.RESTConfigFromKubeConfig(k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Data survives a restart of the API server; in between it is down.
	k.Stop()
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "probe", metav1.GetOptions{}); err == nil {
		t.Fatal("API server answered while stopped")
	}
	k.Start()
	got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "probe", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("after restart: %v %v", got, err)
	}

	InstallIstioCRDs(t, k.Config)
	dc := dynamic.NewForConfigOrDie(k.Config)
	se := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	// Istio's CEL rule: resolution NONE may not carry endpoints. A server
	// that accepts this is not enforcing the CRDs' validation.
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": "bad", "namespace": "default"},
		"spec": map[string]any{
			"hosts": []any{"orders.shop.global"}, "resolution": "NONE",
			"ports":     []any{map[string]any{"number": int64(8080), "name": "http", "protocol": "HTTP"}},
			"endpoints": []any{map[string]any{"address": "192.0.2.10"}},
		},
	}}
	_, err = dc.Resource(se).Namespace("default").Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "NONE") {
		t.Fatalf("ServiceEntry with resolution NONE and endpoints: err = %v, want a validation error", err)
	}
	dnsEP := schema.GroupVersionResource{Group: "externaldns.k8s.io", Version: "v1alpha1", Resource: "dnsendpoints"}
	if _, err := dc.Resource(dnsEP).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("DNSEndpoint CRD not served: %v", err)
	}
}

func TestPostgres(t *testing.T) {
	dsn := StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1 + 1").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT 1 + 1 = %d, %v", n, err)
	}
}

func TestBIND(t *testing.T) {
	const key, secret = "weft-test.", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
	addr := StartBIND(t, "example.test", key, secret)
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{key: secret}}

	// A signed update is accepted, and the record answers queries.
	u := new(dns.Msg)
	u.SetUpdate("example.test.")
	rr, _ := dns.NewRR("www.example.test. 30 IN A 192.0.2.1")
	u.Insert([]dns.RR{rr})
	u.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	if r, _, err := c.Exchange(u, addr); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("signed update: %v %v", r, err)
	}
	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	r, _, err := c.Exchange(q, addr)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("query after update: %v %v", r, err)
	}

	// An unsigned update is refused.
	u = new(dns.Msg)
	u.SetUpdate("example.test.")
	rr, _ = dns.NewRR("evil.example.test. 30 IN A 192.0.2.66")
	u.Insert([]dns.RR{rr})
	if r, _, err := c.Exchange(u, addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned update: want REFUSED, got %v %v", r, err)
	}
}

// A server that lost its port to another process between freePort and its
// bind is started again on new ports; one that failed otherwise is not
// taken for that.
func TestPortTakenIsRetried(t *testing.T) {
	dir := t.TempDir()
	tries := 0
	onFreePorts(t, func() bool {
		tries++
		// The first two lose the port, as etcd says it; the third binds.
		script := `echo "listen tcp 127.0.0.1:1: bind: address already in use" >&2; exit 1`
		if tries == 3 {
			script = `exec sleep 60`
		}
		os.Remove(filepath.Join(dir, "server.log")) // an earlier try's
		p := start(t, "server", filepath.Join(dir, "server.log"), nil, "/bin/sh", "-c", script)
		t.Cleanup(p.stop)
		return p.waitReady(t, 10*time.Second, func(context.Context) error {
			if tries < 3 {
				return errors.New("not listening")
			}
			return nil
		})
	})
	if tries != 3 {
		t.Fatalf("%d tries, want 3", tries)
	}
}
