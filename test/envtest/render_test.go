package envtest_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/render"
	_ "weft.dev/weft/internal/controller/render/externaldns" // registers the externaldns renderer
	_ "weft.dev/weft/internal/controller/render/istio"       // registers the istio renderer
	"weft.dev/weft/internal/controller/render/rendertest"
	_ "weft.dev/weft/internal/controller/render/weft" // registers the weft renderer
	"weft.dev/weft/test/envtest"
)

var namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// dryRunApplier server-side applies objects in dry-run, so that every case
// is validated on its own and none leaves state for the next.
type dryRunApplier struct {
	dc     dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	ns     map[string]bool // namespaces created so far
}

func (a *dryRunApplier) apply(t *testing.T, u *unstructured.Unstructured) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	// Admission refuses objects in a missing namespace, dry-run or not.
	if ns := u.GetNamespace(); ns != "" && !a.ns[ns] {
		nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		_, err := a.dc.Resource(namespaces).Create(ctx, nsObj, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating namespace %s: %v", ns, err)
		}
		a.ns[ns] = true
	}
	body, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	_, err = a.dc.Resource(m.Resource).Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "weft-controller", Force: &force, DryRun: []string{metav1.DryRunAll}})
	return err
}

// TestRenderedObjectsAccepted validates every Kubernetes object that the
// renderers produce for their golden inputs, as the controller compiles them:
// each Istio object survives a round trip through the Istio Go types, and
// every object is accepted, by server-side apply, by a real kube-apiserver
// enforcing the OpenAPI schemas and CEL rules of Istio's and external-dns'
// CRDs.
func TestRenderedObjectsAccepted(t *testing.T) {
	k := envtest.StartKubeAPIServer(t)
	envtest.InstallIstioCRDs(t, k.Config)
	a := &dryRunApplier{
		dc:     dynamic.NewForConfigOrDie(k.Config),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(k.Config))),
		ns:     map[string]bool{},
	}

	kinds := map[string]int{}
	var withEndpoints *unstructured.Unstructured
	for _, tc := range slices.Concat(rendertest.IstioCases, rendertest.DNSCases, rendertest.WeftCases) {
		states, err := compile.Compile(tc.Input(t))
		if err != nil {
			t.Fatalf("%s: %v", tc.Name, err)
		}
		for _, name := range slices.Sorted(maps.Keys(states)) {
			st := states[name]
			if st.Target.Kind != render.TargetKubernetes {
				continue // weft sites and DNS servers are not Kubernetes APIs
			}
			for _, o := range st.Objects {
				u, err := o.Body()
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case rendertest.IsIstio(u):
					rendertest.RoundTrip(t, u)
				case u.GetKind() != "DNSEndpoint":
					t.Errorf("%s: %s placed %s, which this test does not know to validate", tc.Name, name, o.Ref)
				}
				if err := a.apply(t, u); err != nil {
					t.Errorf("%s: the API server refused %s for %s: %v", tc.Name, o.Ref, name, err)
				}
				kinds[u.GetKind()]++
				if _, ok := u.Object["spec"].(map[string]any)["endpoints"]; ok && u.GetKind() == "ServiceEntry" {
					withEndpoints = u
				}
			}
		}
	}
	t.Logf("objects validated, by kind: %v", kinds)
	for _, want := range []string{"ServiceEntry", "DestinationRule", "Gateway", "VirtualService", "AuthorizationPolicy", "PeerAuthentication", "DNSEndpoint"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among the golden outputs: the test no longer covers that kind", want)
		}
	}

	// The same path refuses what Istio's CEL rules forbid: were it to accept
	// this, the acceptances above would prove nothing.
	if withEndpoints == nil {
		t.Fatal("no rendered ServiceEntry with endpoints to break")
	}
	bad := withEndpoints.DeepCopy()
	if err := unstructured.SetNestedField(bad.Object, "NONE", "spec", "resolution"); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(t, bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "NONE") {
		t.Fatalf("ServiceEntry with resolution NONE and endpoints: err = %v, want Istio's validation error", err)
	}
}
