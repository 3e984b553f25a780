package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is the server-side apply field manager of every object the
// controller applies to Kubernetes.
const FieldManager = "weft-controller"

// The inventory records at each cluster which kinds the controller has ever
// applied there, so that pruning lists only those kinds (kubectl's ApplySet
// design) and still finds them after a controller restart, when the engine
// remembers nothing.
const (
	inventoryNamespace = "kube-system"
	inventoryName      = "weft-controller-inventory"
	inventoryKey       = "groupKinds" // comma-separated Kind.group, sorted
)

// kubeRequestTimeout bounds each request, so that a cluster that accepts
// connections but never answers fails the pass instead of stalling a worker.
const kubeRequestTimeout = 30 * time.Second

func init() { RegisterBackend("kubernetes", newKubeBackend) }

// kubeBackend delivers objects with server-side apply through the dynamic
// client, mapping kinds to resources by discovery.
type kubeBackend struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

var _ Backend = (*kubeBackend)(nil)

func newKubeBackend(t Target) (Backend, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(t.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", t.Name, err)
	}
	cfg.Timeout = kubeRequestTimeout
	// No client-side rate limit: client-go's default (5 requests/s, burst 10)
	// made a pass that lists every kind and applies a dozen objects wait
	// seconds, so removals after a delete lagged by 3-5 s. Requests are
	// serial within a pass and passes are bounded by Options.Workers; the
	// API server's priority and fairness does the rest, as SIG API
	// Machinery advises and controller-runtime defaults to since v0.21.
	cfg.QPS = -1
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &kubeBackend{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// mapping resolves gk (at version, or the preferred one if empty). A kind
// unknown to the cached discovery may be a CRD installed since: the cache is
// dropped and the lookup tried once more.
func (k *kubeBackend) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	var versions []string
	if version != "" {
		versions = []string{version}
	}
	m, err := k.mapper.RESTMapping(gk, versions...)
	if meta.IsNoMatchError(err) {
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(gk, versions...)
	}
	return m, err
}

func (k *kubeBackend) resource(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return k.dyn.Resource(m.Resource).Namespace(namespace)
	}
	return k.dyn.Resource(m.Resource)
}

func (k *kubeBackend) Apply(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := k.mapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	body, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	force := true // the controller owns these objects: take fields back from whoever edited them
	_, err = k.resource(m, obj.GetNamespace()).Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	return err
}

func (k *kubeBackend) Delete(ctx context.Context, ref Ref) error {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return err
	}
	m, err := k.mapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
	if meta.IsNoMatchError(err) {
		return nil // its CRD is gone, and the object with it
	}
	if err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	err = k.resource(m, ref.Namespace).Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Managed lists managed objects of every kind in the inventory or in
// desired, recording in the inventory, before anything is applied, the kinds
// about to be applied. Kinds with no managed object left leave the inventory.
func (k *kubeBackend) Managed(ctx context.Context, desired []Ref) ([]Ref, error) {
	inv, err := k.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).
		Namespace(inventoryNamespace).Get(ctx, inventoryName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading inventory: %w", err)
	}
	var recorded []string
	if err == nil {
		if s, _, _ := unstructured.NestedString(inv.Object, "data", inventoryKey); s != "" {
			recorded = strings.Split(s, ",")
		}
	}
	kinds := slices.Clone(recorded)
	wanted := map[string]bool{}
	for _, r := range desired {
		gk := groupKind(r).String()
		wanted[gk] = true
		kinds = append(kinds, gk)
	}
	slices.Sort(kinds)
	kinds = slices.Compact(kinds)
	if !slices.Equal(kinds, recorded) {
		if err := k.writeInventory(ctx, kinds); err != nil {
			return nil, err
		}
	}

	var refs []Ref
	var keep []string
	for _, gkStr := range kinds {
		gk := schema.ParseGroupKind(gkStr)
		m, err := k.mapping(gk, "")
		if meta.IsNoMatchError(err) && !wanted[gkStr] {
			continue // CRD removed: nothing of this kind can remain
		}
		if err != nil {
			return nil, err
		}
		list, err := k.dyn.Resource(m.Resource).List(ctx, metav1.ListOptions{LabelSelector: ManagedByLabel + "=" + ManagedByValue})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gkStr, err)
		}
		for _, it := range list.Items {
			refs = append(refs, RefOf(&it))
		}
		if len(list.Items) > 0 || wanted[gkStr] {
			keep = append(keep, gkStr)
		}
	}
	if !slices.Equal(keep, kinds) {
		if err := k.writeInventory(ctx, keep); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

func (k *kubeBackend) writeInventory(ctx context.Context, kinds []string) error {
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": inventoryName, "namespace": inventoryNamespace},
		"data":     map[string]any{inventoryKey: strings.Join(kinds, ",")},
	}}
	body, err := cm.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	_, err = k.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(inventoryNamespace).
		Patch(ctx, inventoryName, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("writing inventory: %w", err)
	}
	return nil
}

func groupKind(r Ref) schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(r.APIVersion)
	return schema.GroupKind{Group: gv.Group, Kind: r.Kind}
}
