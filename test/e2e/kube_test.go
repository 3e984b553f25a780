package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/resource"
	"weft.dev/weft/test/envtest"
)

// kubeNS is the namespace each test cluster's site runs in.
const kubeNS = "weft"

// siteAccount is the site's ServiceAccount in deploy/kubernetes/rbac.yaml.
const siteAccount = "system:serviceaccount:" + kubeNS + ":weft-site"

// kubeCluster is a kube-apiserver with RBAC, weft's CRDs, the namespace
// and deploy/kubernetes/rbac.yaml applied, by server-side apply as
// `kubectl apply --server-side` would (kubectl is not a Debian package).
type kubeCluster struct {
	t        *testing.T
	api      *envtest.KubeAPI
	c        client.Client
	dc       dynamic.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	linkPort int // of the cluster's site
}

func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
	k := &kubeCluster{t: t, api: envtest.StartKubeAPIServerRBAC(t)}
	envtest.InstallWeftCRDs(t, k.api.Config)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := resource.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var err error
	if k.c, err = client.New(k.api.Config, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	k.dc = dynamic.NewForConfigOrDie(k.api.Config)
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(k.api.Config)))
	k.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeNS}})
	// A controller-manager would make the namespace's default
	// ServiceAccount, which admission wants for every pod; none runs here.
	k.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: kubeNS, Name: "default"}})
	k.applyFiles(repoPath(t, "deploy/kubernetes/rbac.yaml"), false)
	return k
}

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), rel)
}

// apply server-side applies every document of a YAML stream, namespaced
// ones in kubeNS, as `kubectl apply --server-side` would; with dryRun the
// API server validates and admits them but stores nothing.
func (k *kubeCluster) apply(stream []byte, dryRun bool) error {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			return err
		}
		if len(u.Object) == 0 {
			continue // comments only
		}
		gvk := u.GroupVersionKind()
		m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: %w", gvk, err)
		}
		ri := k.dc.Resource(m.Resource).Namespace("")
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			u.SetNamespace(kubeNS)
			ri = k.dc.Resource(m.Resource).Namespace(kubeNS)
		}
		body, err := u.MarshalJSON()
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: "weft-e2e", Force: ptrTo(true)}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts); err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// applyFiles applies the YAML files under dir (recursively).
func (k *kubeCluster) applyFiles(dir string, dryRun bool) {
	k.t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := k.apply(b, dryRun); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		k.t.Logf("applied %s (dry run %v)", p, dryRun)
		return nil
	})
	if err != nil {
		k.t.Fatal(err)
	}
}

func (k *kubeCluster) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (k *kubeCluster) create(obj client.Object) {
	k.t.Helper()
	ctx, cancel := k.ctx()
	defer cancel()
	if err := k.c.Create(ctx, obj); err != nil {
		k.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// get reads the object of obj's name into obj; false if it does not exist.
func (k *kubeCluster) get(name string, obj client.Object) bool {
	k.t.Helper()
	ctx, cancel := k.ctx()
	defer cancel()
	err := k.c.Get(ctx, client.ObjectKey{Namespace: kubeNS, Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		k.t.Fatal(err)
	}
	return err == nil
}

// kubeconfigAs writes a kubeconfig that impersonates user.
func (k *kubeCluster) kubeconfigAs(user string) string {
	k.t.Helper()
	p := filepath.Join(k.t.TempDir(), "as.kubeconfig")
	if err := os.WriteFile(p, k.api.KubeconfigAs(user), 0o600); err != nil {
		k.t.Fatal(err)
	}
	return p
}

// startKubeSite runs a site in Kubernetes mode with the ServiceAccount of
// deploy/kubernetes/rbac.yaml, listeners on loopback. Its link port stays
// across restarts, as a Service's port does, since peers dial the
// addresses in the tokens they redeemed.
func (k *kubeCluster) startKubeSite(name string) *site {
	k.t.Helper()
	if k.linkPort == 0 {
		k.linkPort = freePort(k.t)
	}
	return startSite(k.t, name, "--kubernetes", "--namespace", kubeNS, "--kubeconfig", k.kubeconfigAs(siteAccount),
		"--listener-host", "127.0.0.1", "--link-listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(k.linkPort)))
}

// readyCond returns the Ready condition of conds, or nil.
func readyCond(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, resource.ConditionReady)
}

func isReady(conds []metav1.Condition) bool {
	c := readyCond(conds)
	return c != nil && c.Status == metav1.ConditionTrue
}

// pod is a Pod as a kubelet would report it: the test creates it, gives it
// an IP where a backend listens and sets its Ready condition.
func (k *kubeCluster) pod(name, ip string, lbls map[string]string) {
	k.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: kubeNS, Name: name, Labels: lbls},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}}}
	k.create(p)
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.Phase = corev1.PodRunning
	ctx, cancel := k.ctx()
	defer cancel()
	if err := k.c.Status().Update(ctx, p); err != nil {
		k.t.Fatal(err)
	}
}

// setPodReady sets a pod's Ready condition through the status subresource,
// as its kubelet would after a readiness probe.
func (k *kubeCluster) setPodReady(name string, ready bool) {
	k.t.Helper()
	var p corev1.Pod
	k.get(name, &p)
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}
	ctx, cancel := k.ctx()
	defer cancel()
	if err := k.c.Status().Update(ctx, &p); err != nil {
		k.t.Fatal(err)
	}
}

// echoOn is echoServer on a given loopback address, standing for a pod.
func echoOn(t *testing.T, name, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, name, ln)
}

// TestKubernetes is issue 15's scenario: two clusters, a site in Kubernetes
// mode in each, linked by an AccessGrant and an AccessToken applied as
// kubectl would; a Connector in B selecting labelled pods and a Listener in A.
func TestKubernetes(t *testing.T) {
	a, b := startKubeCluster(t), startKubeCluster(t)
	siteA := a.startKubeSite("east")
	b.startKubeSite("west")

	// Link: AccessGrant in A, its token applied as an AccessToken in B.
	grant := &resource.AccessGrant{ObjectMeta: metav1.ObjectMeta{Namespace: kubeNS, Name: "to-east"}}
	grantYAML, _ := yaml.Marshal(map[string]any{"apiVersion": resource.APIVersion, "kind": resource.KindAccessGrant,
		"metadata": map[string]any{"name": "to-east"}, "spec": map[string]any{"expires": "10m"}})
	if err := a.apply(grantYAML, false); err != nil {
		t.Fatalf("applying the AccessGrant: %v", err)
	}
	waitFor(t, 30*time.Second, "the AccessGrant's token", func() bool {
		return a.get("to-east", grant) && grant.Status.Token != nil && isReady(grant.Status.Conditions)
	})
	tokYAML, _ := yaml.Marshal(map[string]any{"apiVersion": resource.APIVersion, "kind": resource.KindAccessToken,
		"metadata": map[string]any{"name": "east"}, "spec": grant.Status.Token})
	if err := b.apply(tokYAML, false); err != nil {
		t.Fatalf("applying the AccessToken: %v", err)
	}
	var tok resource.AccessToken
	waitFor(t, 60*time.Second, "the AccessToken redeemed", func() bool {
		return b.get("east", &tok) && isReady(tok.Status.Conditions)
	})
	var linkB resource.Link
	waitFor(t, 30*time.Second, "Link east in B up", func() bool {
		return b.get("east", &linkB) && isReady(linkB.Status.Conditions) && linkB.Status.PeerName == "east"
	})
	waitFor(t, 30*time.Second, "an inbound Link in A, up", func() bool {
		var ls resource.LinkList
		ctx, cancel := a.ctx()
		defer cancel()
		if err := a.c.List(ctx, &ls, client.InNamespace(kubeNS)); err != nil {
			return false
		}
		for _, l := range ls.Items {
			if l.Status.Inbound && l.Status.PeerName == "west" && isReady(l.Status.Conditions) {
				return true
			}
		}
		return false
	})

	// Backends: two pods in B on 127.0.0.2 and 127.0.0.3, one port.
	port := freePort(t)
	echoOn(t, "orders-1", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	echoOn(t, "orders-2", net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
	orders := map[string]string{"app": "orders"}
	b.pod("orders-1", "127.0.0.2", orders)
	b.pod("orders-2", "127.0.0.3", orders)
	b.pod("other", "127.0.0.4", map[string]string{"app": "other"})
	b.setPodReady("orders-1", true)
	b.setPodReady("other", true)
	b.create(&resource.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: kubeNS, Name: "orders"},
		Spec: resource.ConnectorSpec{Selector: "app=orders", Port: port}})
	var conn resource.Connector
	waitFor(t, 30*time.Second, "Connector orders Ready with one pod", func() bool {
		return b.get("orders", &conn) && isReady(conn.Status.Conditions) && strings.HasPrefix(readyCond(conn.Status.Conditions).Message, "1 Ready pods")
	})

	// Listener in A: its Service and its port.
	lport := freePort(t)
	a.create(&resource.Listener{ObjectMeta: metav1.ObjectMeta{Namespace: kubeNS, Name: "orders"},
		Spec: resource.ListenerSpec{Port: lport}})
	var svc corev1.Service
	waitFor(t, 30*time.Second, "Service orders in A", func() bool { return a.get("orders", &svc) })
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != int32(lport) || svc.Spec.Ports[0].TargetPort.IntValue() != lport {
		t.Fatalf("Service orders ports = %+v, want port and targetPort %d", svc.Spec.Ports, lport)
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != "weft-site" {
		t.Fatalf("Service orders selects %v, not the site's pods", svc.Spec.Selector)
	}
	if o := metav1.GetControllerOf(&svc); o == nil || o.Kind != resource.KindListener || o.Name != "orders" {
		t.Fatalf("Service orders is owned by %+v, want its Listener", o)
	}
	var lis resource.Listener
	waitFor(t, 30*time.Second, "Listener orders Ready", func() bool { return a.get("orders", &lis) && isReady(lis.Status.Conditions) })

	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(lport))
	waitFor(t, 30*time.Second, "a client through A's listener reaching orders-1", func() bool {
		g, err := greeting(listen)
		return err == nil && g == "orders-1"
	})

	// A pod that becomes Ready takes connections; one that stops being
	// Ready takes no new ones.
	b.setPodReady("orders-2", true)
	start := time.Now()
	// Connections held open to orders-1 make it the busier target, so that
	// the balancer sends the next one to orders-2 once it is a target.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	waitFor(t, 10*time.Second, "orders-2 answering once Ready", func() bool {
		c, err := net.DialTimeout("tcp", listen, 2*time.Second)
		if err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		held = append(held, c)
		return strings.TrimSpace(line) == "orders-2"
	})
	t.Logf("a pod made Ready took a connection after %v", time.Since(start))
	b.setPodReady("orders-1", false)
	start = time.Now()
	waitFor(t, 10*time.Second, "orders-1 out of rotation once not Ready", func() bool {
		for range 10 {
			if g, err := greeting(listen); err != nil || g != "orders-2" {
				return false
			}
		}
		return true
	})
	t.Logf("a pod made not-Ready stopped taking connections after %v (measured with 10 in a row)", time.Since(start))
	waitFor(t, 10*time.Second, "Connector status naming orders-2 only", func() bool {
		return b.get("orders", &conn) && readyCond(conn.Status.Conditions).Message == "1 Ready pods: orders-2"
	})
	b.setPodReady("orders-2", false)
	waitFor(t, 10*time.Second, "Connector NoReadyPods", func() bool {
		if !b.get("orders", &conn) {
			return false
		}
		c := readyCond(conn.Status.Conditions)
		return c != nil && c.Reason == "NoReadyPods"
	})

	// Deleting the Listener deletes its Service and closes its port.
	ctx, cancel := a.ctx()
	defer cancel()
	if err := a.c.Delete(ctx, &lis); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "Service orders deleted", func() bool { return !a.get("orders", &svc) })
	waitFor(t, 10*time.Second, "the listener's port closed", func() bool {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if out := siteA.weft("listener", "list"); strings.Contains(out, "orders") {
		t.Fatalf("site A still lists listener orders:\n%s", out)
	}

	// A rescheduled site (a new pod, an empty data directory) keeps its
	// ID and its links: they are in its Secret.
	id := siteA.status().Site.ID
	siteA.stop(syscall.SIGKILL)
	siteA2 := a.startKubeSite("east")
	if got := siteA2.status().Site.ID; got != id {
		t.Fatalf("site east came back as %s, was %s", got, id)
	}
	waitFor(t, 30*time.Second, "the link from west up again", func() bool {
		for _, l := range siteA2.status().Links {
			if l.Status.PeerName == "west" && l.Status.State == "up" {
				return true
			}
		}
		return false
	})
}

// TestKubernetesManifests checks deploy/kubernetes against a real API
// server: the manifests pass a server-side dry run, the CRDs refuse bad
// specs with messages that say what is wrong, and the site's Role is
// needed: without one of its rules the site does not start.
func TestKubernetesManifests(t *testing.T) {
	k := startKubeCluster(t)
	k.applyFiles(repoPath(t, "deploy/kubernetes"), true)

	// The chart, rendered by Helm's own library (tools/helm-template: no
	// helm binary here), with its CRDs the generated ones.
	render := exec.Command("go", "-C", repoPath(t, "tools/helm-template"), "run", ".",
		repoPath(t, "deploy/helm/weft"), "weft", kubeNS, "links.serviceType=LoadBalancer")
	rendered, err := render.Output()
	if err != nil {
		t.Fatalf("rendering the chart: %v\n%s", err, errOutput(err))
	}
	if err := k.apply(rendered, true); err != nil {
		t.Fatalf("the chart's manifests: %v\n%s", err, rendered)
	}
	crds, err := filepath.Glob(repoPath(t, "deploy/kubernetes/crds/*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs: %v", err)
	}
	for _, f := range crds {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(repoPath(t, "deploy/helm/weft/crds/"+filepath.Base(f)))
		if err != nil || string(got) != string(want) {
			t.Errorf("deploy/helm/weft/crds/%s differs from deploy/kubernetes/crds (%v): copy it", filepath.Base(f), err)
		}
	}

	bad := []struct {
		name, yaml, want string
	}{
		{"listener without a port", `kind: Listener
metadata: {name: l1}
spec: {address: orders}`, `spec.port: Required value`},
		{"listener port 0", `kind: Listener
metadata: {name: l2}
spec: {port: 0}`, `spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1`},
		{"listener protocol", `kind: Listener
metadata: {name: l3}
spec: {port: 80, protocol: udp}`, `spec.protocol: Unsupported value: "udp": supported values: "tcp", "http"`},
		{"connector with target and selector", `kind: Connector
metadata: {name: c1}
spec: {target: "10.0.0.1:80", selector: app=orders, port: 80}`, `set exactly one of target, host (with port) and selector (with port)`},
		{"connector selector without port", `kind: Connector
metadata: {name: c2}
spec: {selector: app=orders}`, `host and selector need a port`},
		{"token without secret", `kind: AccessToken
metadata: {name: t1}
spec: {id: x, expires: "2030-01-01T00:00:00Z", uses: 1, issuerID: i, issuerName: east, addresses: ["a:1"], ca: pem}`, `spec.secret: Required value`},
		{"subscription with topic and queue", `kind: Subscription
metadata: {name: s1}
spec: {topic: a, queue: b, sink: "http://x"}`, `set exactly one of spec.topic and spec.queue`},
		{"grant uses", `kind: AccessGrant
metadata: {name: g1}
spec: {uses: 0}`, `spec.uses: Invalid value: 0: spec.uses in body should be greater than or equal to 1`},
	}
	for _, c := range bad {
		err := k.apply([]byte("apiVersion: weft.dev/v1alpha1\n"+c.yaml+"\n"), false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: apply = %v, want an error containing %q", c.name, err, c.want)
		}
	}

	// The Role without the rule that lets the site create its state Secret.
	rbac, err := os.ReadFile(repoPath(t, "deploy/kubernetes/rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var less []string
	for _, doc := range strings.Split(string(rbac), "\n---\n") {
		doc = strings.ReplaceAll(doc, "name: weft-site\n", "name: weft-site-less\n")
		doc = strings.Replace(doc, "  - apiGroups: [\"\"]\n    resources: [secrets]\n    verbs: [create]\n", "", 1)
		less = append(less, doc)
	}
	lessYAML := strings.Join(less, "\n---\n")
	if lessYAML == strings.ReplaceAll(string(rbac), "name: weft-site\n", "name: weft-site-less\n") {
		t.Fatal("rbac.yaml has no rule letting the site create secrets to remove")
	}
	if err := k.apply([]byte(lessYAML), false); err != nil {
		t.Fatalf("applying the reduced Role: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, "site", "run", "--name", "less", "--data", t.TempDir(), "--kubernetes",
		"--namespace", kubeNS, "--kubeconfig", k.kubeconfigAs("system:serviceaccount:"+kubeNS+":weft-site-less"))
	out2, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "forbidden") || !strings.Contains(string(out2), "weft-site-state") {
		t.Fatalf("a site without permission to create its Secret: %v\n%s\nwant it to fail saying the Secret is forbidden", err, out2)
	}
}

func errOutput(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
