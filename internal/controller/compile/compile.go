// Package compile turns a traffic group's intents into the desired objects of
// every target (a cluster's Kubernetes API, its weft site, a DNS server), by
// running every registered renderer, and diffs them against what a target has.
package compile

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/canonjson"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
)

// ErrConflict is wrapped when two intents want different objects under one name.
var ErrConflict = errors.New("conflicting objects")

// ProjectLabel names the project on every object, next to the managed-by label.
const ProjectLabel = "weft.dev/project"

// Target is where desired objects are delivered; it mirrors the sync engine's
// target so that the store can keep it without importing the engine.
type Target struct {
	Name       string            `json:"name"` // p1/east/kubernetes, p1/east/weft, p1/dns/shop/v1/g1/<intent>
	Kind       string            `json:"kind"` // render.Target*
	Cluster    string            `json:"cluster,omitempty"`
	Kubeconfig []byte            `json:"kubeconfig,omitempty"`
	WeftAdmin  string            `json:"weftAdmin,omitempty"`
	WeftToken  string            `json:"weftToken,omitempty"`
	DNS        *render.DNSServer `json:"dns,omitempty"`
}

// Ref names an object within a target.
type Ref struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.APIVersion + "/" + r.Kind + "/" + r.Name
	}
	return r.APIVersion + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// RefOf returns u's reference.
func RefOf(u *unstructured.Unstructured) Ref {
	return Ref{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// Object is an object with the hash of its canonical JSON.
type Object struct {
	Ref  Ref
	Hash string
	// The body: either Object or Raw, its JSON. A compiled object has Raw,
	// its canonical JSON, which Hash is of; an applied object read from the
	// store has Raw, its stored JSON. A plan decodes them only where hashes
	// differ, so that the steady state, where every hash matches, builds
	// and holds bytes rather than trees of maps. Raw is shared between
	// compiles and targets: never modify it.
	Object *unstructured.Unstructured
	Raw    []byte
}

// Body returns the object, decoding Raw if there is no Object.
func (o Object) Body() (*unstructured.Unstructured, error) {
	if o.Object != nil || o.Raw == nil {
		return o.Object, nil
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(o.Raw, &u.Object); err != nil {
		return nil, fmt.Errorf("object %s: %w", o.Ref, err)
	}
	return u, nil
}

// JSON returns the object's JSON: Raw, or Object marshalled (nil if there is
// neither).
func (o Object) JSON() json.RawMessage {
	if o.Raw != nil || o.Object == nil {
		return o.Raw
	}
	data, err := json.Marshal(o.Object.Object)
	if err != nil {
		panic("compile: object does not marshal: " + err.Error()) // built from JSON
	}
	return data
}

// State is the desired state of one target.
type State struct {
	Target  Target
	Objects []Object // sorted by Ref
}

// GroupKey names a traffic group across projects and apps.
func GroupKey(project, app, version, group string) string {
	return project + "/" + app + "/" + version + "/" + group
}

// Compile renders in with every registered renderer and returns the desired state
// of each target, keyed by target name. Two placements of one object in one
// target must be equal (shared objects such as the cross-network Gateway are).
func Compile(in *render.Input) (map[string]*State, error) {
	all := make([]int, len(in.Intents))
	for i := range all {
		all[i] = i
	}
	return compileWith(in, func(r render.Named) ([]placed, error) {
		ir, ok := r.Renderer.(render.IntentRenderer)
		if !ok {
			return renderAll(in, r)
		}
		per, err := renderIntents(in, r.Name, ir, all)
		return slices.Concat(per...), err
	})
}

// renderAll renders in with r, which renders all intents at once, and
// places what it rendered.
func renderAll(in *render.Input, r render.Named) ([]placed, error) {
	ps, err := r.Renderer.Render(in)
	if err != nil {
		return nil, fmt.Errorf("%s renderer: %w", r.Name, err)
	}
	return place(in, r.Name, ps)
}

// renderIntents renders the intents of in at the indexes idx with ir (whose
// Render is RenderEach) and places each intent's objects. Intents render
// independently, so they are spread over GOMAXPROCS goroutines; what is
// returned is what rendering them in order and then placing them would
// return: their placements in the order of idx, or the first render error
// in that order if any intent fails to render, else the first placement
// error.
func renderIntents(in *render.Input, name string, ir render.IntentRenderer, idx []int) ([][]placed, error) {
	out := make([][]placed, len(idx))
	renderErrs, placeErrs := make([]error, len(idx)), make([]error, len(idx))
	parallel(len(idx), func(k int) {
		ps, err := ir.RenderIntent(in, in.Intents[idx[k]])
		if err != nil {
			renderErrs[k] = fmt.Errorf("%s renderer: %w", name, err)
			return
		}
		out[k], placeErrs[k] = place(in, name, ps)
	})
	for _, errs := range [][]error{renderErrs, placeErrs} {
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// parallel calls f with 0 to n-1, on up to GOMAXPROCS goroutines.
func parallel(n int, f func(int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// placed is a rendered object in its target, labelled and hashed. Its
// target is shared with the other placements in it that place resolved.
type placed struct {
	target *Target
	obj    Object
}

// compileWith builds the targets' states from what placeAll returns for
// each registered renderer, in name order.
func compileWith(in *render.Input, placeAll func(render.Named) ([]placed, error)) (map[string]*State, error) {
	states := map[string]*State{}
	for _, r := range render.Registered() {
		ps, err := placeAll(r)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			st := states[p.target.Name]
			if st == nil {
				st = &State{Target: *p.target}
				states[p.target.Name] = st
			}
			st.Objects = append(st.Objects, p.obj)
		}
	}
	// Sorted, two placements of one object are neighbours: the first stays
	// (the sort is stable), and any other must be the same object. Targets
	// in name order, so that of several conflicts the same one is reported.
	for _, name := range slices.Sorted(maps.Keys(states)) {
		st := states[name]
		SortObjects(st.Objects)
		objs := st.Objects[:0]
		for i, o := range st.Objects {
			if i > 0 && o.Ref == objs[len(objs)-1].Ref {
				if o.Hash != objs[len(objs)-1].Hash {
					return nil, fmt.Errorf("%w: %s in %s is rendered twice, differently", ErrConflict, o.Ref, name)
				}
				continue
			}
			objs = append(objs, o)
		}
		clear(st.Objects[len(objs):]) // no longer referenced from the backing array
		st.Objects = objs
	}
	return states, nil
}

// place resolves each placement's target and writes its object's canonical
// JSON, labelled with the project, and hashes it: once per object, however
// many clusters a renderer placed it in.
func place(in *render.Input, renderer string, ps []render.Placement) ([]placed, error) {
	out := make([]placed, 0, len(ps))
	written := make(map[*render.Object]Object, len(ps))
	// An intent's objects go to a few targets, each resolved once.
	targets := map[targetKey]*Target{}
	w := writers.Get().(*canonjson.Writer)
	defer writers.Put(w)
	for _, p := range ps {
		k := targetKey{p.Kind, p.Cluster, p.DNSKey, p.DNS}
		t := targets[k]
		if t == nil {
			resolved, err := target(in, p)
			if err != nil {
				return nil, err
			}
			t = &resolved
			targets[k] = t
		}
		o, ok := written[p.Object]
		if !ok {
			w.Buf = w.Buf[:0]
			if err := p.Object.AppendJSON(w, ProjectLabel, in.Project); err != nil {
				return nil, fmt.Errorf("%s renderer: %w", renderer, err)
			}
			raw := slices.Clone(w.Buf)
			ref := Ref{APIVersion: p.Object.APIVersion, Kind: p.Object.Kind, Namespace: p.Object.Namespace, Name: p.Object.Name}
			o = Object{Ref: ref, Hash: HashJSON(raw), Raw: raw}
			written[p.Object] = o
		}
		out = append(out, placed{target: t, obj: o})
	}
	return out, nil
}

// SortObjects orders objects by reference.
func SortObjects(objs []Object) { sortByRef(objs, func(o Object) Ref { return o.Ref }) }

// targetKey is what target reads of a placement.
type targetKey struct {
	kind, cluster, dnsKey string
	dns                   *render.DNSServer
}

func target(in *render.Input, p render.Placement) (Target, error) {
	switch p.Kind {
	case render.TargetKubernetes, render.TargetWeft:
		c := in.Clusters[p.Cluster]
		if c == nil {
			return Target{}, fmt.Errorf("%w: renderer placed an object in unknown cluster %q", render.ErrUnresolved, p.Cluster)
		}
		return ClusterTarget(in.Project, c, p.Kind), nil
	case render.TargetRFC2136:
		return Target{
			Name: in.Project + "/dns/" + in.App.Metadata.Name + "/" + in.App.Spec.Version + "/" + in.Group + "/" + p.DNSKey,
			Kind: render.TargetRFC2136, DNS: p.DNS,
		}, nil
	}
	panic("compile: renderer returned unknown target kind " + p.Kind)
}

// ClusterTarget is cluster c's target of the given kind, with its current
// credentials.
func ClusterTarget(project string, c *model.Cluster, kind string) Target {
	t := Target{Name: project + "/" + c.Metadata.Name + "/" + kind, Kind: kind, Cluster: c.Metadata.Name}
	switch kind {
	case render.TargetKubernetes:
		if c.Spec.Kubeconfig != "" {
			t.Kubeconfig = []byte(c.Spec.Kubeconfig)
		}
	case render.TargetWeft:
		if c.Spec.Weft != nil {
			t.WeftAdmin, t.WeftToken = c.Spec.Weft.Admin, c.Spec.Weft.Token
		}
	}
	return t
}
