package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
	"weft.dev/weft/test/envtest"
)

// controllerProc is one `weft controller run` process on a free port.
type controllerProc struct {
	t    *testing.T
	dir  string
	args []string
	cmd  *exec.Cmd
	proc *child.Process
	log  *logbuf.Buffer
	url  string
	tok  string
}

// startController runs the controller with its data in dir; extra flags go to
// `controller run`. It returns once the API answers.
func startController(t *testing.T, dir string, extra ...string) *controllerProc {
	t.Helper()
	c := &controllerProc{t: t, dir: dir, log: &logbuf.Buffer{},
		args: append([]string{"--data", dir, "controller", "run", "--listen", "127.0.0.1:0", "--max-backoff", "2s"}, extra...)}
	c.start()
	t.Cleanup(func() {
		c.stop(syscall.SIGTERM)
		if t.Failed() {
			// A sync that never lands says why only here: a target's error
			// is retried and logged, not returned to the test.
			t.Logf("log of the controller on %s:\n%s", c.dir, c.log.String())
		}
	})
	return c
}

func (c *controllerProc) start() {
	c.t.Helper()
	// A stale address from the previous run must not be mistaken for this one's.
	os.Remove(filepath.Join(c.dir, "api.addr"))
	c.cmd = exec.Command(weftBin, c.args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// Through child.Start, the controller dies with this test binary.
	p, err := child.Start(c.cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	c.proc = p
	waitFor(c.t, 30*time.Second, "controller API", func() bool {
		addr, err1 := os.ReadFile(filepath.Join(c.dir, "api.addr"))
		tok, err2 := os.ReadFile(filepath.Join(c.dir, "admin.token"))
		if err1 != nil || err2 != nil {
			return false
		}
		c.url, c.tok = "http://"+strings.TrimSpace(string(addr)), strings.TrimSpace(string(tok))
		resp, err := http.Get(c.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (c *controllerProc) stop(sig syscall.Signal) {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(sig)
	c.proc.Wait()
	c.cmd = nil
}

// call sends body (JSON text or nil) and fails the test unless the status is want.
func (c *controllerProc) call(method, path, body string, want int) []byte {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %s, want %d: %s\ncontroller log:\n%s", method, path, resp.Status, want, out, c.log.String())
	}
	return out
}

// refusedOnDataDir runs another `weft controller run` on holder's data
// directory, with extra flags, and checks that it exits at once with a
// non-zero status and a message naming holder's pid, leaving holder serving
// and its files as they were.
func refusedOnDataDir(t *testing.T, holder *controllerProc, extra ...string) {
	t.Helper()
	addrFile := filepath.Join(holder.dir, "api.addr")
	addr, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	args := append([]string{"--data", holder.dir, "controller", "run", "--listen", "127.0.0.1:0"}, extra...)
	out, err := exec.CommandContext(ctx, weftBin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second controller on %s was still running after 10s:\n%s", holder.dir, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Fatalf("a second controller on %s ended with %v, want a non-zero exit status:\n%s", holder.dir, err, out)
	}
	want := fmt.Sprintf("data directory %s is in use by pid %d", holder.dir, holder.cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Fatalf("a second controller on %s said %q, want %q", holder.dir, out, want)
	}
	t.Logf("second controller refused after %v: %s", time.Since(start), strings.TrimSpace(string(out)))
	if now, _ := os.ReadFile(addrFile); string(now) != string(addr) {
		t.Errorf("the refused controller changed api.addr from %q to %q", addr, now)
	}
	resp, err := http.Get(holder.url + "/healthz")
	if err != nil {
		t.Fatalf("the first controller no longer serves: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the first controller answers /healthz with %s", resp.Status)
	}
}

// TestControllerDataDirInUse: a second controller on a SQLite controller's
// data directory would lead beside it; it is refused.
func TestControllerDataDirInUse(t *testing.T) {
	c := startController(t, t.TempDir())
	refusedOnDataDir(t, c)
	// Released on shutdown: the directory serves a new controller at once.
	c.stop(syscall.SIGTERM)
	c.start()
}

// groupStatus is the part of GET .../status the tests look at.
type groupStatus struct {
	State    string `json:"state"`
	Clusters map[string]struct {
		State     string `json:"state"`
		Resources []struct {
			Kind  string `json:"kind"`
			Name  string `json:"name"`
			State string `json:"state"`
			Error string `json:"error"`
		} `json:"resources"`
	} `json:"clusters"`
}

func (c *controllerProc) status(path string) groupStatus {
	var s groupStatus
	if err := json.Unmarshal(c.call("GET", path+"/status", "", http.StatusOK), &s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// clusterState is the state of the status entry whose target names cluster.
func (s groupStatus) clusterState(cluster string) string {
	for name, ts := range s.Clusters {
		if name == cluster || strings.Contains(name, "/"+cluster+"/") || strings.HasPrefix(name, cluster+"/") {
			return ts.State
		}
	}
	return ""
}

var (
	gvrSE   = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	gvrDR   = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
	gvrGW   = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
	gvrAP   = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	gvrNS   = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	kubeCtx = context.Background()
)

// startIstioCluster starts a kube-apiserver with Istio's CRDs and the
// namespaces a mesh would already have.
func startIstioCluster(t *testing.T) (*envtest.KubeAPI, dynamic.Interface) {
	t.Helper()
	k := envtest.StartKubeAPIServer(t)
	envtest.InstallIstioCRDs(t, k.Config)
	dc := dynamic.NewForConfigOrDie(k.Config)
	for _, ns := range []string{"shop", "istio-system"} {
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		if _, err := dc.Resource(gvrNS).Create(kubeCtx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return k, dc
}

// kubeGet returns the object, or nil if it does not exist (or the API is down).
func kubeGet(dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	ctx, cancel := context.WithTimeout(kubeCtx, 5*time.Second)
	defer cancel()
	o, err := dc.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return o
}

func gone(dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) bool {
	ctx, cancel := context.WithTimeout(kubeCtx, 5*time.Second)
	defer cancel()
	_, err := dc.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

func clusterBody(name, region, gwAddr string, k *envtest.KubeAPI) string {
	kc, _ := json.Marshal(string(k.Kubeconfig))
	return fmt.Sprintf(`{"metadata":{"name":%q,"labels":{"region":%q}},"spec":{"mesh":"istio","locality":"%s/zone1","eastWestGateway":{"address":%q,"port":15443},"kubeconfig":%s}}`,
		name, region, region, gwAddr, kc)
}

// TestControllerIstioClusters drives the real controller against two real
// kube-apiservers standing for clusters east and west: the request
// sequence, an outage during apply, a SIGKILL mid-sync and a deletion.
func TestControllerIstioClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two kube-apiservers")
	}
	east, eastDC := startIstioCluster(t)
	west, westDC := startIstioCluster(t)
	c := startController(t, t.TempDir())

	const group = "/v2/projects/p1/apps/shop/v1/traffic-groups/g1"
	c.call("POST", "/v2/projects", `{"metadata":{"name":"p1"}}`, http.StatusCreated)
	c.call("POST", "/v2/projects/p1/clusters", clusterBody("east", "us-east", "192.0.2.10", east), http.StatusCreated)
	c.call("POST", "/v2/projects/p1/clusters", clusterBody("west", "us-west", "192.0.2.20", west), http.StatusCreated)
	c.call("POST", "/v2/projects/p1/apps", `{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[
		{"name":"orders","namespace":"shop","port":8080,"protocol":"HTTP","serviceAccount":"orders","clusters":["east","west"]},
		{"name":"web","namespace":"shop","port":80,"protocol":"HTTP","serviceAccount":"web","clusters":["west"]}]}}`, http.StatusCreated)
	c.call("POST", "/v2/projects/p1/apps/shop/v1/traffic-groups", `{"metadata":{"name":"g1"}}`, http.StatusCreated)
	c.call("POST", group+"/intents", `{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],
		"protocol":"HTTP","port":8080,"mutualTLS":true,"circuitBreaking":{"maxConnections":1,"http1MaxPendingRequests":1,"consecutiveErrors":1,"interval":"1s","baseEjectionTime":"1m","maxEjectionPercent":100}}}`, http.StatusCreated)
	var plan struct {
		Clusters map[string]json.RawMessage `json:"clusters"`
	}
	if err := json.Unmarshal(c.call("GET", group+"/plan", "", http.StatusOK), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Clusters["east"] == nil || plan.Clusters["west"] == nil {
		t.Fatalf("plan has clusters %v, want east and west", plan.Clusters)
	}

	t.Run("apply reaches both clusters", func(t *testing.T) {
		start := time.Now()
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		var se *unstructured.Unstructured
		waitFor(t, 60*time.Second, "west's ServiceEntry", func() bool {
			se = kubeGet(westDC, gvrSE, "shop", "web-orders")
			return se != nil
		})
		eps, _, _ := unstructured.NestedSlice(se.Object, "spec", "endpoints")
		if len(eps) != 1 || eps[0].(map[string]any)["address"] != "192.0.2.10" || !strings.Contains(fmt.Sprint(eps[0]), "15443") {
			t.Fatalf("west's ServiceEntry endpoints = %v, want 192.0.2.10:15443", eps)
		}
		waitFor(t, 60*time.Second, "west's DestinationRule", func() bool { return kubeGet(westDC, gvrDR, "shop", "web-orders") != nil })
		var gw *unstructured.Unstructured
		waitFor(t, 60*time.Second, "east's cross-network Gateway", func() bool {
			gw = kubeGet(eastDC, gvrGW, "istio-system", "weft-cross-network")
			return gw != nil
		})
		if !strings.Contains(fmt.Sprint(gw.Object["spec"]), "AUTO_PASSTHROUGH") {
			t.Fatalf("east's Gateway is not AUTO_PASSTHROUGH: %v", gw.Object["spec"])
		}
		waitFor(t, 30*time.Second, "status applied", func() bool { return c.status(group).State == "applied" })
		t.Logf("apply to applied in both clusters: %v", time.Since(start))
	})

	t.Run("a cluster down during apply gets its state when back", func(t *testing.T) {
		start := time.Now()
		west.Stop()
		c.call("POST", group+"/intents", `{"metadata":{"name":"orders-access"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}]}}`, http.StatusCreated)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		waitFor(t, 60*time.Second, "west failed in status", func() bool { return c.status(group).clusterState("west") == "failed" })
		west.Start()
		waitFor(t, 90*time.Second, "west's AuthorizationPolicy after the outage", func() bool {
			return kubeGet(westDC, gvrAP, "shop", "orders-access") != nil
		})
		waitFor(t, 30*time.Second, "status applied after the outage", func() bool { return c.status(group).State == "applied" })
		t.Logf("outage, recovery and sync: %v", time.Since(start))
	})

	t.Run("SIGKILL right after apply resumes after restart", func(t *testing.T) {
		start := time.Now()
		c.call("POST", group+"/intents", `{"metadata":{"name":"web-access"},"spec":{"type":"intracluster","server":"web","clients":[{"service":"orders"}]}}`, http.StatusCreated)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		// Killed right after apply returns: the release is stored, the sync
		// of it has at most begun.
		c.stop(syscall.SIGKILL)
		synced := kubeGet(westDC, gvrAP, "shop", "web-access") != nil
		c.start()
		waitFor(t, 60*time.Second, "west's AuthorizationPolicy after the restart", func() bool {
			return kubeGet(westDC, gvrAP, "shop", "web-access") != nil
		})
		waitFor(t, 30*time.Second, "status applied after the restart", func() bool { return c.status(group).State == "applied" })
		t.Logf("synced before the kill: %v; kill, restart and sync: %v", synced, time.Since(start))
	})

	t.Run("SIGKILL while a cluster is unreachable resumes after restart", func(t *testing.T) {
		start := time.Now()
		west.Stop()
		c.call("POST", group+"/intents", `{"metadata":{"name":"web-only"},"spec":{"type":"intracluster","server":"web","clients":[{"service":"web"}]}}`, http.StatusCreated)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		// The sync has been tried and is retrying with backoff when the kill lands.
		waitFor(t, 60*time.Second, "west failed in status", func() bool { return c.status(group).clusterState("west") == "failed" })
		c.stop(syscall.SIGKILL)
		west.Start()
		c.start()
		waitFor(t, 60*time.Second, "west's AuthorizationPolicy after kill, outage and restart", func() bool {
			return kubeGet(westDC, gvrAP, "shop", "web-only") != nil
		})
		waitFor(t, 30*time.Second, "status applied after the restart", func() bool { return c.status(group).State == "applied" })
		t.Logf("outage, kill, restart and sync: %v", time.Since(start))
	})

	t.Run("deleting an intent removes its resources", func(t *testing.T) {
		start := time.Now()
		c.call("DELETE", group+"/intents/web-orders", "", http.StatusNoContent)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		waitFor(t, 60*time.Second, "west's ServiceEntry and DestinationRule removed", func() bool {
			return gone(westDC, gvrSE, "shop", "web-orders") && gone(westDC, gvrDR, "shop", "web-orders")
		})
		waitFor(t, 60*time.Second, "east's server-side ServiceEntry removed", func() bool {
			return gone(eastDC, gvrSE, "shop", "web-orders-server")
		})
		if kubeGet(westDC, gvrAP, "shop", "orders-access") == nil {
			t.Fatal("deleting one intent removed another's AuthorizationPolicy")
		}
		t.Logf("delete to removal: %v", time.Since(start))
	})

	t.Run("dns-provider records appear and disappear in BIND", func(t *testing.T) {
		start := time.Now()
		const zone, key, secret = "example.com.", "weft-key.", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
		bind := envtest.StartBIND(t, zone, key, secret)
		// east gets an ingress gateway, whose address the published name takes.
		var cl map[string]any
		if err := json.Unmarshal(c.call("GET", "/v2/projects/p1/clusters/east", "", http.StatusOK), &cl); err != nil {
			t.Fatal(err)
		}
		cl["spec"].(map[string]any)["ingressGateway"] = map[string]any{"address": "198.51.100.1", "port": 443}
		body, _ := json.Marshal(cl)
		c.call("PUT", "/v2/projects/p1/clusters/east", string(body), http.StatusOK)
		c.call("POST", group+"/intents", `{"metadata":{"name":"orders-public"},"spec":{"type":"external-inbound","server":"orders","externalName":"orders.shop.example.com"}}`, http.StatusCreated)
		c.call("POST", group+"/intents", fmt.Sprintf(`{"metadata":{"name":"bind"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":%q,"zone":%q,"tsigKeyName":%q,"tsigSecret":%q}}`,
			bind, zone, key, secret), http.StatusCreated)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		waitFor(t, 60*time.Second, "orders.shop.example.com A 198.51.100.1 in BIND", func() bool {
			a, ok := lookupA(bind, "orders.shop.example.com.")
			return ok && slices.Equal(a, []string{"198.51.100.1"})
		})
		appeared := time.Since(start)
		c.call("DELETE", group+"/intents/bind", "", http.StatusNoContent)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		waitFor(t, 60*time.Second, "orders.shop.example.com gone from BIND", func() bool {
			a, ok := lookupA(bind, "orders.shop.example.com.")
			return ok && len(a) == 0
		})
		t.Logf("record appeared after %v, gone after %v", appeared, time.Since(start))
	})
}

// lookupA asks the server for name's A records; ok is false unless the server
// answered authoritatively (NXDOMAIN counts as an answer with no records).
func lookupA(server, name string) (addrs []string, ok bool) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := new(dns.Client).Exchange(m, server)
	if err != nil || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError) {
		return nil, false
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out, true
}

// leaderGauge reads weft_controller_leader from the controller's /metrics:
// 1 or 0, or -1 if it cannot be read.
func (c *controllerProc) leaderGauge() int {
	resp, err := http.Get(c.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		switch strings.TrimSpace(line) {
		case "weft_controller_leader 1":
			return 1
		case "weft_controller_leader 0":
			return 0
		}
	}
	return -1
}

// freePort returns a TCP port free on every interface, for a server the test
// cannot start on port 0 itself. It is picked at random below the kernel's
// ephemeral range, so that no outgoing connection, and most likely no other
// test, takes it before the server binds it.
func freePort(t *testing.T) int {
	t.Helper()
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &ephemeral)
	}
	const lowest = 10000
	for range 100 {
		p := lowest + rand.IntN(max(ephemeral-lowest, 1000))
		if ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p)); err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no free port in 100 tries between %d and %d", lowest, ephemeral)
	return 0
}

// siteHas reports whether the weft site's admin API lists the named object
// in collection (listeners, connectors).
func siteHas(admin, token, collection, name string) bool {
	req, _ := http.NewRequest("GET", admin+"/v1/"+collection, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	type item struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	var list struct {
		Items []item `json:"items"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
		return false
	}
	return slices.ContainsFunc(list.Items, func(it item) bool { return it.Metadata.Name == name })
}

// TestControllerReplicas runs two controllers on one real PostgreSQL with a
// real weft site as the target: exactly one leads and syncs; when it is
// SIGKILLed the other takes over and syncs what is written afterwards.
func TestControllerReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and a weft site")
	}
	dsn := envtest.StartPostgres(t)
	t.Setenv("WEFT_BINARY", weftBin) // the site runs the binary under test
	admin, siteTok := envtest.StartWeftSite(t, "east")

	dirA, dirB := t.TempDir(), t.TempDir()
	a := startController(t, dirA, "--db", dsn)
	// The admin token is in the shared store; only the first replica wrote it.
	tok, err := os.ReadFile(filepath.Join(dirA, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "admin.token"), tok, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startController(t, dirB, "--db", dsn)
	// Replicas share the database, never a data directory.
	refusedOnDataDir(t, a, "--db", dsn)

	var leader, standby *controllerProc
	waitFor(t, 30*time.Second, "exactly one leader", func() bool {
		ga, gb := a.leaderGauge(), b.leaderGauge()
		switch {
		case ga == 1 && gb == 0:
			leader, standby = a, b
		case ga == 0 && gb == 1:
			leader, standby = b, a
		default:
			return false
		}
		return true
	})
	// Leadership must stay put while the leader lives.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if leader.leaderGauge() != 1 || standby.leaderGauge() != 0 {
			t.Fatalf("leadership moved or was shared: leader %d, standby %d", leader.leaderGauge(), standby.leaderGauge())
		}
	}

	const group = "/v2/projects/p1/apps/shop/v1/traffic-groups/g1"
	kb, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "east"},
		"spec": map[string]any{"weft": map[string]any{"admin": admin, "token": siteTok}}})
	// Written through the standby: the leader must notice the store changed.
	standby.call("POST", "/v2/projects", `{"metadata":{"name":"p1"}}`, http.StatusCreated)
	standby.call("POST", "/v2/projects/p1/clusters", string(kb), http.StatusCreated)
	// The site opens its Listener on the service's port on every interface,
	// so the port must be free. A fixed 8080 was not whenever anything else
	// held it, such as the site of an earlier run that was killed (envtest's
	// processes outlive a killed test binary): the sync then failed until the
	// wait below timed out.
	standby.call("POST", "/v2/projects/p1/apps", fmt.Sprintf(`{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[
		{"name":"orders","namespace":"shop","port":%d,"protocol":"HTTP","serviceAccount":"orders","clusters":["east"]},
		{"name":"web","namespace":"shop","port":80,"protocol":"HTTP","serviceAccount":"web","clusters":["east"]}]}}`, freePort(t)), http.StatusCreated)
	standby.call("POST", "/v2/projects/p1/apps/shop/v1/traffic-groups", `{"metadata":{"name":"g1"}}`, http.StatusCreated)
	// The intent goes in and is released through the command line.
	intent := filepath.Join(t.TempDir(), "intent.yaml")
	if err := os.WriteFile(intent, []byte("kind: Intent\nmetadata:\n  name: web-orders\nspec:\n  type: intracluster\n  server: orders\n  clients:\n  - service: web\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		sel := []string{"--project", "p1", "--app", "shop", "--version", "v1", "--group", "g1"}
		out, err := exec.Command(weftBin, append(append([]string{"--controller", standby.url, "--data", standby.dir}, args...), sel...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("weft %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cli("intent", "apply", "-f", intent)
	start := time.Now()
	cli("plan", "--apply")
	waitFor(t, 30*time.Second, "the site's Connector and Listener", func() bool {
		return siteHas(admin, siteTok, "connectors", "orders-shop") && siteHas(admin, siteTok, "listeners", "orders-shop")
	})
	t.Logf("apply through the standby to the site: %v", time.Since(start))
	waitFor(t, 30*time.Second, "weft status to show applied", func() bool {
		out, err := exec.Command(weftBin, "--controller", standby.url, "--data", standby.dir, "status").CombinedOutput()
		return err == nil && strings.Contains(string(out), "applied") && !strings.Contains(string(out), "pending")
	})

	start = time.Now()
	leader.stop(syscall.SIGKILL)
	waitFor(t, 60*time.Second, "the standby to take over", func() bool { return standby.leaderGauge() == 1 })
	t.Logf("takeover after SIGKILL: %v", time.Since(start))

	standby.call("DELETE", group+"/intents/web-orders", "", http.StatusNoContent)
	standby.call("POST", group+"/apply", "", http.StatusAccepted)
	waitFor(t, 30*time.Second, "the site's Connector and Listener removed by the new leader", func() bool {
		return !siteHas(admin, siteTok, "connectors", "orders-shop") && !siteHas(admin, siteTok, "listeners", "orders-shop")
	})
}
