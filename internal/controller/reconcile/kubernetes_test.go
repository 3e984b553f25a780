package reconcile

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clientmetrics "k8s.io/client-go/tools/metrics"

	"weft.dev/weft/test/envtest"
)

var (
	gvrConfigMap    = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrServiceEntry = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	gvrDestRule     = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

func managed(o map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: o}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedByValue
	u.SetLabels(labels)
	return u
}

func serviceEntry(name, resolution string) *unstructured.Unstructured {
	return managed(map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"hosts":      []any{name + ".shop.global"},
			"location":   "MESH_INTERNAL",
			"resolution": resolution,
			"ports":      []any{map[string]any{"number": int64(8080), "name": "http", "protocol": "HTTP"}},
			"endpoints":  []any{map[string]any{"address": "192.0.2.10", "ports": map[string]any{"http": int64(15443)}, "locality": "us-east/zone1"}},
		},
	})
}

func destinationRule(name string) *unstructured.Unstructured {
	return managed(map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"host": name + ".shop.global",
			"trafficPolicy": map[string]any{
				"tls":              map[string]any{"mode": "ISTIO_MUTUAL"},
				"connectionPool":   map[string]any{"tcp": map[string]any{"maxConnections": int64(1)}, "http": map[string]any{"http1MaxPendingRequests": int64(1)}},
				"outlierDetection": map[string]any{"consecutive5xxErrors": int64(1), "interval": "1s", "baseEjectionTime": "1m", "maxEjectionPercent": int64(100)},
			},
		},
	})
}

func configMap(name, v string) *unstructured.Unstructured {
	return managed(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"data":     map[string]any{"v": v},
	})
}

func exists(t *testing.T, dc dynamic.Interface, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	o, err := dc.Resource(gvr).Namespace("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s %s: %v", gvr.Resource, name, err)
	}
	return o
}

// TestKubernetesBackend drives the engine against a real kube-apiserver with
// Istio's CRDs: server-side apply, validation failures in status, pruning
// (also by an engine that restarted and remembers nothing), and a cluster
// that is down during apply and gets its state once back.
func TestKubernetesBackend(t *testing.T) {
	throttled := observeThrottling()
	kube := envtest.StartKubeAPIServer(t)
	envtest.InstallIstioCRDs(t, kube.Config)
	dc := dynamic.NewForConfigOrDie(kube.Config)
	target := Target{Name: "p1/east/kubernetes", Kind: "kubernetes", Kubeconfig: kube.Kubeconfig}

	h := newHarness(t)
	invalid := serviceEntry("invalid", "NONE") // NONE with endpoints: Istio's CEL rule refuses it
	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{
		serviceEntry("orders", "STATIC"), destinationRule("orders"), configMap("settings", "1"), invalid,
	}})
	h.e.Trigger()
	h.drain(t)

	if n := throttled.count(); n != 0 {
		t.Errorf("%d of the backend's requests went through a client-side rate limiter, which delays a pass, and removals, by seconds", n)
	}
	se := exists(t, dc, gvrServiceEntry, "orders")
	if se == nil || exists(t, dc, gvrDestRule, "orders") == nil || exists(t, dc, gvrConfigMap, "settings") == nil {
		t.Fatal("applied objects missing")
	}
	if mf := se.GetManagedFields(); len(mf) == 0 || mf[0].Manager != FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("ServiceEntry not server-side applied by %s: %+v", FieldManager, mf)
	}
	if exists(t, dc, gvrServiceEntry, "invalid") != nil {
		t.Fatal("the API server accepted a ServiceEntry with resolution NONE and endpoints")
	}
	last := h.sink.last()
	if s := last["invalid"]; s.State != StateFailed || !strings.Contains(s.Error, "NONE") {
		t.Errorf("invalid ServiceEntry status = %+v, want failed with Istio's validation message", s)
	} else {
		t.Logf("refused as expected: %s", s.Error)
	}
	for _, name := range []string{"orders", "settings"} {
		if last[name].State != StateApplied {
			t.Errorf("%s status = %+v", name, last[name])
		}
	}

	// Someone edits a managed field by hand: the next pass takes it back.
	cm := exists(t, dc, gvrConfigMap, "settings")
	unstructured.SetNestedField(cm.Object, "edited", "data", "v")
	if _, err := dc.Resource(gvrConfigMap).Namespace("default").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The invalid object left the target backing off: the repair comes with
	// the retry, which a trigger does not hasten.
	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{serviceEntry("orders", "STATIC"), destinationRule("orders"), configMap("settings", "1")}})
	h.e.Trigger()
	h.drain(t)
	if v, _, _ := unstructured.NestedString(exists(t, dc, gvrConfigMap, "settings").Object, "data", "v"); v != "edited" {
		t.Fatalf("a trigger bypassed the backoff: v = %q", v)
	}
	h.clock.Step(h.clock.nextTimer(t))
	h.waitQueued(t)
	h.drain(t)
	if v, _, _ := unstructured.NestedString(exists(t, dc, gvrConfigMap, "settings").Object, "data", "v"); v != "1" {
		t.Errorf("drift not repaired: v = %q", v)
	}

	// A fresh engine (a controller restart) whose desired state no longer
	// has any ConfigMap still prunes it, through the cluster's inventory.
	h2 := newHarness(t)
	h2.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{serviceEntry("orders", "STATIC")}})
	h2.e.Trigger()
	h2.drain(t)
	if exists(t, dc, gvrConfigMap, "settings") != nil || exists(t, dc, gvrDestRule, "orders") != nil {
		t.Fatal("undesired ConfigMap or DestinationRule not pruned after restart")
	}
	if exists(t, dc, gvrServiceEntry, "orders") == nil {
		t.Fatal("desired ServiceEntry deleted")
	}
	// Kinds leave the inventory on the pass after their last object went.
	h2.e.Trigger()
	h2.drain(t)
	invCM, err := dc.Resource(gvrConfigMap).Namespace(inventoryNamespace).Get(context.Background(), inventoryName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kinds, _, _ := unstructured.NestedString(invCM.Object, "data", inventoryKey); kinds != "ServiceEntry.networking.istio.io" {
		t.Errorf("inventory = %q, want only the kind still in use", kinds)
	}

	// The cluster goes down; the desired state changes meanwhile; the target
	// backs off, and once the cluster is back it gets the current state.
	kube.Stop()
	h2.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{serviceEntry("orders", "STATIC"), configMap("later", "2")}})
	h2.e.Trigger()
	h2.drain(t)
	if s := h2.sink.last()["later"]; s.State != StateFailed || s.Attempts != 1 {
		t.Fatalf("status while the cluster is down = %+v", s)
	}
	kube.Start()
	d := h2.clock.nextTimer(t)
	h2.clock.Step(d)
	h2.waitQueued(t)
	h2.drain(t)
	if cm := exists(t, dc, gvrConfigMap, "later"); cm == nil {
		t.Fatal("state not delivered after the cluster came back")
	}
	if s := h2.sink.last()["later"]; s.State != StateApplied {
		t.Errorf("status after recovery = %+v", s)
	}
	var states []string
	for _, s := range h2.sink.all {
		if s.Ref.Name == "later" {
			states = append(states, s.State)
		}
	}
	if !slices.Equal(states, []string{StatePending, StateFailed, StateApplied}) {
		t.Errorf("statuses of the late object: %v", states)
	}
}

// throttleCounter counts the backend's requests (the only ones sent with its
// timeout) that passed through a client-side rate limiter. client-go reports
// every such wait, even a zero one.
type throttleCounter struct{ n atomic.Int64 }

func (c *throttleCounter) Observe(_ context.Context, _ string, u url.URL, _ time.Duration) {
	if u.Query().Get("timeout") == kubeRequestTimeout.String() {
		c.n.Add(1)
	}
}

func (c *throttleCounter) count() int64 { return c.n.Load() }

// observeThrottling installs a throttleCounter as client-go's rate limiter
// latency metric. client-go takes metrics once per process, so only one test
// may call it.
func observeThrottling() *throttleCounter {
	c := &throttleCounter{}
	clientmetrics.Register(clientmetrics.RegisterOpts{RateLimiterLatency: c})
	return c
}
