package api

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/store"
)

// groupInput loads a group, its app, its intents and the project's clusters.
func groupInput(ctx context.Context, st *store.Store, project, app, version, group string) (*render.Input, error) {
	var a model.App
	if err := st.Get(ctx, store.Ref{Kind: store.KindApp, Key: project + "/" + app + "/" + version}, &a); err != nil {
		return nil, err
	}
	gkey := compile.GroupKey(project, app, version, group)
	var g model.TrafficGroup
	if err := st.Get(ctx, store.Ref{Kind: store.KindGroup, Key: gkey}, &g); err != nil {
		return nil, err
	}
	intents, err := store.List[model.Intent](ctx, st, store.KindIntent, store.Ref{Kind: store.KindGroup, Key: gkey})
	if err != nil {
		return nil, err
	}
	clusters, err := store.List[model.Cluster](ctx, st, store.KindCluster, store.Ref{Kind: store.KindProject, Key: project})
	if err != nil {
		return nil, err
	}
	in := &render.Input{Project: project, App: &a, Group: group, Clusters: map[string]*model.Cluster{}, Intents: intents}
	for _, c := range clusters {
		in.Clusters[c.Metadata.Name] = c
	}
	return in, nil
}

func groupPath(r *http.Request) (project, app, version, group string) {
	return r.PathValue("project"), r.PathValue("app"), r.PathValue("version"), r.PathValue("group")
}

// Plan and the other answers are apitype's; the aliases keep this file's
// names short.
type (
	Plan           = apitype.Plan
	TargetPlan     = apitype.TargetPlan
	ApplyResult    = apitype.GroupApplyResult
	GroupStatus    = apitype.GroupStatus
	TargetStatus   = apitype.TargetStatus
	ResourceStatus = apitype.ResourceStatus
)

// apiChanges converts compiled changes to their API form, which keeps
// apitype free of the controller's packages.
func apiChanges(cs []compile.Change) []apitype.Change {
	out := make([]apitype.Change, len(cs))
	for i, c := range cs {
		out[i] = apitype.Change{Target: c.Target, Action: c.Action, Ref: apiRef(c.Ref), Object: c.Object}
		for _, d := range c.Diff {
			out[i].Diff = append(out[i].Diff, apitype.FieldChange{Path: d.Path, Old: d.Old, New: d.New})
		}
	}
	return out
}

func apiRef(r compile.Ref) apitype.ObjectRef {
	return apitype.ObjectRef{APIVersion: r.APIVersion, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// plan compiles the group's intents with cache and diffs them against what
// each target last had applied, deleting what the group's previous release
// placed there.
func plan(ctx context.Context, st *store.Store, cache *compile.Cache, in *render.Input, gkey string) (*Plan, map[string]*compile.State, error) {
	states, err := cache.Compile(in)
	if err != nil {
		return nil, nil, err
	}
	rels, err := st.Releases(ctx, gkey)
	if err != nil {
		return nil, nil, err
	}
	prev := map[string]*compile.State{}
	if r := rels[gkey]; r != nil {
		prev = r.States
	}
	targets := map[string]compile.Target{}
	for n, s := range states {
		targets[n] = s.Target
	}
	for n, s := range prev {
		if _, ok := targets[n]; !ok {
			targets[n] = s.Target
		}
	}
	names := slices.Sorted(maps.Keys(targets))
	plans, err := compile.PlanTargets(len(names), func(i int) (compile.PlanInput, error) {
		in := compile.PlanInput{}
		if s := states[names[i]]; s != nil {
			in.Desired = s.Objects
		}
		if s := prev[names[i]]; s != nil {
			for _, o := range s.Objects {
				in.Owned = append(in.Owned, o.Ref)
			}
		}
		var err error
		in.Applied, err = st.Applied(ctx, names[i])
		return in, err
	})
	if err != nil {
		return nil, nil, err
	}
	p := &Plan{Clusters: map[string]*TargetPlan{}}
	for n, name := range names {
		t, changes := targets[name], plans[n]
		for i := range changes {
			changes[i].Target = name
		}
		key, m := t.Cluster, p.Clusters
		if t.Kind == render.TargetRFC2136 {
			key = name
			if p.DNS == nil {
				p.DNS = map[string]*TargetPlan{}
			}
			m = p.DNS
		}
		tp := m[key]
		if tp == nil {
			tp = &TargetPlan{Target: name, Kind: t.Kind, Objects: []apitype.Change{}}
			m[key] = tp
		} else {
			// A cluster with both a Kubernetes API and a weft site.
			tp.Kind = "mixed"
		}
		tp.Objects = append(tp.Objects, apiChanges(changes)...)
	}
	return p, states, nil
}

func (s *Server) handlePlan(st *store.Store, w http.ResponseWriter, r *http.Request) error {
	project, app, version, group := groupPath(r)
	in, err := groupInput(r.Context(), st, project, app, version, group)
	if err != nil {
		return err
	}
	p, _, err := plan(r.Context(), st, s.compiled, in, compile.GroupKey(project, app, version, group))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// handleApply makes the group's current intents its desired state. The plan it
// returns is relative to what the targets had before.
func (s *Server) handleApply(st *store.Store, w http.ResponseWriter, r *http.Request) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	project, app, version, group := groupPath(r)
	in, err := groupInput(r.Context(), st, project, app, version, group)
	if err != nil {
		return err
	}
	gkey := compile.GroupKey(project, app, version, group)
	p, states, err := plan(r.Context(), st, s.compiled, in, gkey)
	if err != nil {
		return err
	}
	gen, err := st.SaveRelease(r.Context(), gkey, states)
	if err != nil {
		return err
	}
	s.trigger()
	writeJSON(w, http.StatusAccepted, ApplyResult{Generation: gen, Targets: slices.Sorted(maps.Keys(states)), Plan: p})
	return nil
}

// noBody refuses a body other than nothing or {}: apply has no options, and a
// client that sent one (a dry run, say) must learn that it was not honoured
// rather than have the group released.
func noBody(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(w, r, maxSmallBody)
	if err != nil || len(bytes.Trim(data, " \t\r\n")) == 0 {
		return err
	}
	if err := model.Decode(data, &struct{}{}); err != nil {
		return fmt.Errorf("%w: apply takes no body, or {}; it releases the group's stored intents, so change those first (%v)", model.ErrInvalid, err)
	}
	return nil
}

// worse orders states so that a group is as bad as its worst resource.
var severity = []string{store.StateApplied, store.StateDeleted, store.StatePending, store.StateFailed}

func worse(a, b string) string {
	if slices.Index(severity, b) > slices.Index(severity, a) {
		return b
	}
	return a
}

func (s *Server) handleStatus(st *store.Store, w http.ResponseWriter, r *http.Request) error {
	project, app, version, group := groupPath(r)
	gkey := compile.GroupKey(project, app, version, group)
	var g model.TrafficGroup
	if err := st.Get(r.Context(), store.Ref{Kind: store.KindGroup, Key: gkey}, &g); err != nil {
		return err
	}
	rels, err := st.Releases(r.Context(), gkey)
	if err != nil {
		return err
	}
	out := &GroupStatus{State: store.StateApplied, Counts: map[string]int{}, Clusters: map[string]*TargetStatus{}}
	rel := rels[gkey]
	if rel == nil {
		out.State = "unapplied"
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	out.Generation, out.AppliedAt = rel.Generation, rel.At
	for _, name := range slices.Sorted(maps.Keys(rel.States)) {
		rs := rel.States[name]
		sts, err := st.Statuses(r.Context(), name)
		if err != nil {
			return err
		}
		key, m := rs.Target.Cluster, out.Clusters
		if rs.Target.Kind == render.TargetRFC2136 {
			key = name
			if out.DNS == nil {
				out.DNS = map[string]*TargetStatus{}
			}
			m = out.DNS
		}
		ts := m[key]
		if ts == nil {
			ts = &TargetStatus{State: store.StateApplied, Resources: []ResourceStatus{}}
			m[key] = ts
		}
		for _, o := range rs.Objects {
			res := ResourceStatus{Target: name, ObjectRef: apiRef(o.Ref), State: store.StatePending}
			if s, ok := sts[o.Ref]; ok {
				res.Attempts, res.At = s.Attempts, s.At
				// A status about another version of the object says nothing of
				// this one, except that delivering it keeps failing.
				if s.Hash == o.Hash || s.State == store.StateFailed {
					res.State, res.Error = s.State, s.Error
				}
			}
			ts.State = worse(ts.State, res.State)
			out.State = worse(out.State, res.State)
			out.Counts[res.State]++
			ts.Resources = append(ts.Resources, res)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
