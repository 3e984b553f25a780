// Package controller benchmarks the intent controller's compile and plan: 10,000
// intents across 100 clusters, reporting time and memory.
package controller

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	_ "weft.dev/weft/internal/controller/render/externaldns"
	_ "weft.dev/weft/internal/controller/render/istio"
	_ "weft.dev/weft/internal/controller/render/weft"
)

const (
	nClusters = 100
	nServices = 1000
	nGroups   = 100 // of 100 intents each
	nIntents  = 10000
)

// inputs builds 100 Istio clusters (every tenth with a weft site), one app of
// 1,000 services each running in 3 clusters, and 10,000 intents of every
// connectivity type spread over 100 traffic groups.
func inputs() []*render.Input {
	clusters := map[string]*model.Cluster{}
	for i := range nClusters {
		c := &model.Cluster{Metadata: model.Metadata{Name: fmt.Sprintf("c%03d", i)}, Spec: model.ClusterSpec{
			Mesh: model.MeshIstio, Locality: fmt.Sprintf("r%d/z%d", i%10, i), Domain: "example.com",
			EastWestGateway: &model.Endpoint{Address: fmt.Sprintf("10.%d.0.1", i), Port: 15443},
			IngressGateway:  &model.Endpoint{Address: fmt.Sprintf("10.%d.0.2", i), Port: 443},
		}}
		if i%10 == 0 {
			c.Spec.Weft = &model.WeftSite{Admin: fmt.Sprintf("http://10.%d.0.3:8080", i)}
		}
		clusters[c.Metadata.Name] = c
	}
	app := &model.App{Metadata: model.Metadata{Name: "big"}, Spec: model.AppSpec{Version: "v1"}}
	for i := range nServices {
		app.Spec.Services = append(app.Spec.Services, model.Service{
			Name: fmt.Sprintf("s%04d", i), Namespace: fmt.Sprintf("ns%d", i%20), Port: 8080, Protocol: "HTTP", ServiceAccount: "sa",
			Clusters: []string{fmt.Sprintf("c%03d", i%nClusters), fmt.Sprintf("c%03d", (i+37)%nClusters), fmt.Sprintf("c%03d", (i+71)%nClusters)},
		})
	}
	types := []string{model.TypeIntercluster, model.TypeIntercluster, model.TypeIntracluster, model.TypeExternalOutbound, model.TypeExternalInbound}
	var out []*render.Input
	for g := range nGroups {
		in := &render.Input{Project: "p", App: app, Group: fmt.Sprintf("g%03d", g), Clusters: clusters}
		for j := range nIntents / nGroups {
			n := g*(nIntents/nGroups) + j
			it := &model.Intent{Metadata: model.Metadata{Name: fmt.Sprintf("i%05d", n)}, Spec: model.IntentSpec{
				Type: types[n%len(types)], Server: fmt.Sprintf("s%04d", n%nServices), MutualTLS: true,
				CircuitBreaking: &model.CircuitBreaking{MaxConnections: 10, ConsecutiveErrors: 5, Interval: "10s", BaseEjectionTime: "30s", MaxEjectionPercent: 50},
			}}
			switch it.Spec.Type {
			case model.TypeIntercluster, model.TypeIntracluster:
				it.Spec.Clients = []model.Client{{Service: fmt.Sprintf("s%04d", (n+1)%nServices)}}
			case model.TypeExternalOutbound:
				it.Spec.Clients = []model.Client{{FQDN: fmt.Sprintf("api%d.example.net", n)}}
				it.Spec.EgressGateway = true
			case model.TypeExternalInbound:
				it.Spec.ExternalName = fmt.Sprintf("svc%d.example.com", n)
			}
			if err := it.Validate(); err != nil {
				panic(err)
			}
			in.Intents = append(in.Intents, it)
		}
		out = append(out, in)
	}
	return out
}

// compileAndPlan compiles every group with compileFn and plans its targets
// against applied, as the API's plan does: targets in name order, planned
// together.
func compileAndPlan(b *testing.B, compileFn func(*render.Input) (map[string]*compile.State, error), ins []*render.Input,
	applied map[string]map[compile.Ref]compile.Object) (objects, changes int) {
	for _, in := range ins {
		states, err := compileFn(in)
		if err != nil {
			b.Fatal(err)
		}
		names := slices.Sorted(maps.Keys(states))
		plans, err := compile.PlanTargets(len(names), func(i int) (compile.PlanInput, error) {
			return compile.PlanInput{Desired: states[names[i]].Objects, Applied: applied[names[i]]}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for i, plan := range plans {
			objects += len(states[names[i]].Objects)
			for _, ch := range plan {
				if ch.Action != compile.ActionUnchanged {
					changes++
				}
			}
		}
	}
	return objects, changes
}

// BenchmarkCompilePlan10kIntents100Clusters compiles and plans all 10,000
// intents per iteration, against targets that already have the desired state
// ("unchanged": the steady state, where plans compare hashes) or have an older
// version of every object ("changed": the worst case for the diff, every
// object decoded and compared field by field).
func BenchmarkCompilePlan10kIntents100Clusters(b *testing.B) {
	ins := inputs()
	unchanged := map[string]map[compile.Ref]compile.Object{}
	changed := map[string]map[compile.Ref]compile.Object{}
	for _, in := range ins {
		states, err := compile.Compile(in)
		if err != nil {
			b.Fatal(err)
		}
		for name, st := range states {
			if unchanged[name] == nil {
				unchanged[name] = map[compile.Ref]compile.Object{}
				changed[name] = map[compile.Ref]compile.Object{}
			}
			// As store.Applied returns them: hash and stored JSON.
			for _, o := range st.Objects {
				u := body(b, o)
				unchanged[name][o.Ref] = stored(b, o.Ref, u)
				if err := unstructured.SetNestedField(u.Object, "older", "metadata", "labels", "bench"); err != nil {
					b.Fatal(err)
				}
				changed[name][o.Ref] = stored(b, o.Ref, u)
			}
		}
	}
	for _, bc := range []struct {
		name    string
		applied map[string]map[compile.Ref]compile.Object
	}{{"unchanged", unchanged}, {"changed", changed}} {
		b.Run(bc.name, func(b *testing.B) {
			var objects, changes int
			m := measure(b, 1, func() { objects, changes = compileAndPlan(b, compile.Compile, ins, bc.applied) })
			b.ReportMetric(float64(objects), "objects/op")
			fmt.Printf("summary (%s): %d intents x %d clusters -> %d objects (%d changed); %s\n",
				bc.name, nIntents, nClusters, objects, changes, m)
		})
	}
	// One intent of one group changes, and that group is compiled and
	// planned again, as the plan and apply endpoints do: through their
	// compile.Cache, which has compiled the group before.
	b.Run("one-intent-changed", func(b *testing.B) {
		cache := compile.NewCache()
		if _, err := cache.Compile(ins[0]); err != nil {
			b.Fatal(err)
		}
		// Each op re-plans replans times, so that one op is long enough
		// to time on a busy machine; each re-plan changes the intent
		// again, so that none finds it compiled already.
		const replans = 20
		var objects, changes, n int
		m := measure(b, replans, func() {
			for range replans {
				n++
				objects, changes = compileAndPlan(b, cache.Compile, []*render.Input{changeOne(ins[0], n)}, unchanged)
			}
		})
		fmt.Printf("summary (one intent changed): its group of %d intents -> %d objects (%d changed); %s\n",
			len(ins[0].Intents), objects, changes, m)
	})
}

// body is a compiled object's body, decoded: compiles before the typed
// renderer kept it decoded (Object), compiles since keep its JSON (Raw).
func body(b *testing.B, o compile.Object) *unstructured.Unstructured {
	if o.Object != nil {
		return o.Object.DeepCopy()
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(o.Raw, &u.Object); err != nil {
		b.Fatal(err)
	}
	return u
}

// stored is u as the store keeps it.
func stored(b *testing.B, ref compile.Ref, u *unstructured.Unstructured) compile.Object {
	raw, err := json.Marshal(u.Object)
	if err != nil {
		b.Fatal(err)
	}
	return compile.Object{Ref: ref, Hash: compile.Hash(u), Raw: raw}
}

// changeOne returns in with its first intent's circuit breaking changed by n.
func changeOne(in *render.Input, n int) *render.Input {
	out := *in
	out.Intents = slices.Clone(in.Intents)
	it := *out.Intents[0]
	cb := *it.Spec.CircuitBreaking
	cb.MaxConnections += n
	it.Spec.CircuitBreaking = &cb
	out.Intents[0] = &it
	return &out
}

// measure runs f, which does runs runs, b.N times and describes the time
// each run took, by the clock and in CPU (user+system, which a loaded
// machine moves less), and the heap in use after.
func measure(b *testing.B, runs int, f func()) string {
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := cpuTime(b), time.Now()
	for b.Loop() {
		f()
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := time.Duration(b.N * runs)
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
	return fmt.Sprintf("%v per run, %v CPU per run over %d runs; heap in use %d MiB",
		(elapsed / n).Round(time.Millisecond/10), (cpu / n).Round(time.Millisecond/10), b.N*runs, ms.HeapInuse>>20)
}

// cpuTime is the CPU the process has used, garbage collection included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
