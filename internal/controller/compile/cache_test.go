package compile_test

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	_ "weft.dev/weft/internal/controller/render/externaldns"
	_ "weft.dev/weft/internal/controller/render/istio"
	"weft.dev/weft/internal/controller/render/rendertest"
	_ "weft.dev/weft/internal/controller/render/weft"
)

// TestCacheCompilesAsCompile: whatever changes between compiles (nothing, one
// intent, a cluster, the intents' set), a Cache's compile equals Compile's,
// and an unchanged intent keeps its very objects.
func TestCacheCompilesAsCompile(t *testing.T) {
	// The golden inputs' intents, each that compiles together with those
	// before it (two golden intents may want one object differently).
	var all []*model.Intent
	for _, c := range slices.Concat(rendertest.IstioCases, rendertest.WeftCases, rendertest.DNSCases) {
		for _, b := range c.Intents {
			it := rendertest.Intent(t, b)
			if slices.ContainsFunc(all, func(x *model.Intent) bool { return x.Metadata.Name == it.Metadata.Name }) {
				continue
			}
			with := append(slices.Clone(all), it)
			slices.SortFunc(with, func(a, b *model.Intent) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
			if _, err := compile.Compile(rendertest.Input(with...)); err == nil {
				all = with
			}
		}
	}
	ci := slices.IndexFunc(all, func(x *model.Intent) bool { return x.Spec.CircuitBreaking != nil })
	oi := slices.IndexFunc(all, func(x *model.Intent) bool {
		return x.Spec.CircuitBreaking == nil && x.Spec.Type != model.TypeDNSProvider
	})
	if len(all) < 5 || ci < 0 || oi < 0 {
		t.Fatalf("%d golden intents compile together; want one with circuit breaking (the test changes it) and one without", len(all))
	}
	changedName, other := all[ci].Metadata.Name, all[oi].Metadata.Name
	in := rendertest.Input(all...)
	cache := compile.NewCache()
	check := func(step string, in *render.Input) map[string]*compile.State {
		t.Helper()
		want, err := compile.Compile(in)
		if err != nil {
			t.Fatalf("%s: Compile: %v", step, err)
		}
		got, err := cache.Compile(in)
		if err != nil {
			t.Fatalf("%s: Cache.Compile: %v", step, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the cache's compile differs from Compile's", step)
		}
		return got
	}
	first := check("first compile", in)
	again := check("unchanged", in)
	same := func(a, b map[string]*compile.State, intent string) (reused, rendered int) {
		for name, st := range a {
			for i, o := range st.Objects {
				if !bytes.Contains(o.Raw, []byte(`"`+render.IntentLabel+`":"`+intent+`"`)) {
					continue
				}
				if &o.Raw[0] == &b[name].Objects[i].Raw[0] {
					reused++
				} else {
					rendered++
				}
			}
		}
		return reused, rendered
	}
	if r, n := same(first, again, changedName); r == 0 || n != 0 {
		t.Errorf("unchanged: %s's objects: %d reused, %d rendered again; want all reused", changedName, r, n)
	}

	// One intent changes: only its objects are new.
	changed := *in
	changed.Intents = slices.Clone(in.Intents)
	i := slices.IndexFunc(changed.Intents, func(x *model.Intent) bool { return x.Metadata.Name == changedName })
	it := *changed.Intents[i]
	cb := *it.Spec.CircuitBreaking
	cb.MaxConnections++
	it.Spec.CircuitBreaking = &cb
	changed.Intents[i] = &it
	third := check("one intent changed", &changed)
	if r, n := same(again, third, changedName); n == 0 {
		t.Errorf("%s changed but its %d objects were reused", changedName, r)
	}
	if r, n := same(again, third, other); r == 0 || n != 0 {
		t.Errorf("%s did not change, yet %d of its objects were rendered again (%d reused)", other, n, r)
	}

	// A cluster changes: everything is rendered again.
	moved := changed
	moved.Clusters = map[string]*model.Cluster{}
	for k, c := range changed.Clusters {
		cc := *c
		if cc.Spec.EastWestGateway != nil {
			gw := *cc.Spec.EastWestGateway
			gw.Port++
			cc.Spec.EastWestGateway = &gw
		}
		moved.Clusters[k] = &cc
	}
	fourth := check("clusters changed", &moved)
	if r, _ := same(third, fourth, other); r != 0 {
		t.Errorf("the clusters changed, yet %d objects of %s were reused", r, other)
	}

	// Intents go and come back.
	fewer := moved
	fewer.Intents = moved.Intents[:len(moved.Intents)/2]
	check("half the intents", &fewer)
	check("all intents again", &moved)
	check("all intents again, cached", &moved)
}
