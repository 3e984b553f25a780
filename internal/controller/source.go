package controller

import (
	"context"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/reconcile"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/store"
)

// Source is the desired state of every target: the union of the released
// states of all traffic groups, with each cluster's current credentials. It
// reads the store on every call, so a restarted controller resumes from it.
type Source struct{ Store *store.Store }

var _ reconcile.Source = Source{}

// Desired implements reconcile.Source. Every target a release ever named is
// returned, with no objects if none is desired now, so that the engine prunes
// it even after a restart.
func (s Source) Desired(ctx context.Context) ([]reconcile.Desired, error) {
	known, err := s.Store.KnownTargets(ctx)
	if err != nil {
		return nil, err
	}
	rels, err := s.Store.Releases(ctx, "")
	if err != nil {
		return nil, err
	}
	clusters, err := currentClusters(ctx, s.Store)
	if err != nil {
		return nil, err
	}
	objects := map[string][]compile.Object{}
	groups := make([]string, 0, len(rels))
	for g := range rels {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	seen := map[string]map[compile.Ref]bool{}
	for _, g := range groups {
		for name, st := range rels[g].States {
			if seen[name] == nil {
				seen[name] = map[compile.Ref]bool{}
			}
			for _, o := range st.Objects {
				// Groups that place the same shared object (the cross-network
				// Gateway, a namespace's deny-all) render it identically; if two
				// disagree, the first group by name wins, deterministically.
				if !seen[name][o.Ref] {
					seen[name][o.Ref] = true
					objects[name] = append(objects[name], o)
				}
			}
		}
	}
	out := make([]reconcile.Desired, 0, len(known))
	for _, name := range slices.Sorted(maps.Keys(known)) {
		t := known[name]
		project, _, _ := strings.Cut(name, "/")
		if c := clusters[project+"/"+t.Cluster]; c != nil && t.Kind != render.TargetRFC2136 {
			// Credentials changed since the release take effect now.
			t = compile.ClusterTarget(project, c, t.Kind)
		}
		d := reconcile.Desired{Target: toEngineTarget(t), Objects: []*unstructured.Unstructured{}}
		for _, o := range objects[name] {
			d.Objects = append(d.Objects, o.Object)
		}
		out = append(out, d)
	}
	return out, nil
}

// currentClusters returns every cluster, keyed by project/cluster.
func currentClusters(ctx context.Context, st *store.Store) (map[string]*model.Cluster, error) {
	projects, err := store.List[model.Project](ctx, st, store.KindProject, store.Root)
	if err != nil {
		return nil, err
	}
	out := map[string]*model.Cluster{}
	for _, p := range projects {
		cs, err := store.List[model.Cluster](ctx, st, store.KindCluster, store.Ref{Kind: store.KindProject, Key: p.Metadata.Name})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out[p.Metadata.Name+"/"+c.Metadata.Name] = c
		}
	}
	return out, nil
}

func toEngineTarget(t compile.Target) reconcile.Target {
	rt := reconcile.Target{Name: t.Name, Kind: t.Kind, Kubeconfig: t.Kubeconfig, WeftAdmin: t.WeftAdmin, WeftToken: t.WeftToken}
	if t.DNS != nil {
		rt.DNS = &reconcile.DNSServer{Server: t.DNS.Server, Zone: t.DNS.Zone, TSIGKeyName: t.DNS.TSIGKeyName,
			TSIGSecret: t.DNS.TSIGSecret, TSIGAlgorithm: t.DNS.TSIGAlgorithm}
	}
	return rt
}

// StatusSink records the engine's statuses in the store.
type StatusSink struct{ Store *store.Store }

var _ reconcile.StatusSink = StatusSink{}

// RecordStatus implements reconcile.StatusSink.
func (s StatusSink) RecordStatus(ctx context.Context, st reconcile.Status) error {
	return s.Store.RecordStatus(ctx, store.Status{
		Target: st.Target,
		Ref:    compile.Ref{APIVersion: st.Ref.APIVersion, Kind: st.Ref.Kind, Namespace: st.Ref.Namespace, Name: st.Ref.Name},
		State:  st.State, Error: st.Error, Attempts: st.Attempts, At: st.At, Hash: st.Hash,
	})
}
