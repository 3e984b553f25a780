package compile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/rendertest"
)

// planCase is one target's plan inputs.
type planCase struct {
	name string
	in   compile.PlanInput
}

// TestPlanGolden holds the plans of a varied corpus, byte for byte, to
// testdata/plan.golden, written by the serial Plan of main at a980c6e (one
// target after another, every plan sorted): the compiled objects of the
// renderers' golden inputs and of the generated project, each target
// planned against applied objects that are the same, absent, labelled,
// changed deep inside (strings, numbers, booleans, members removed, arrays
// grown and shrunk, a type changed), stored with other whitespace or keys
// out of order, or with a hash of another version; with owned objects to
// delete, unowned ones to keep, and some targets' desired objects out of
// order. PlanTargets, on four goroutines, must plan them as Plan does one
// by one.
func TestPlanGolden(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	cases := planCorpus(t)
	serial := make([][]compile.Change, len(cases))
	for i, c := range cases {
		serial[i] = compile.Plan(c.in.Desired, c.in.Applied, c.in.Owned)
	}
	rendertest.Golden(t, "plan", writePlans(t, cases, serial))

	parallel, err := compile.PlanTargets(len(cases), func(i int) (compile.PlanInput, error) { return cases[i].in, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := writePlans(t, cases, parallel), writePlans(t, cases, serial); !bytes.Equal(got, want) {
		t.Errorf("PlanTargets planned otherwise than Plan target by target:\n--- PlanTargets\n%s\n--- Plan\n%s", got, want)
	}
}

// TestPlanTargetsError: of several targets that fail to load, the first by
// index is reported, as a serial loop stopping there would.
func TestPlanTargetsError(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, failing := range [][]int{{0}, {99}, {3, 70}, {70, 3, 50}} {
		_, err := compile.PlanTargets(100, func(i int) (compile.PlanInput, error) {
			if slices.Contains(failing, i) {
				return compile.PlanInput{}, fmt.Errorf("target %d", i)
			}
			return compile.PlanInput{}, nil
		})
		if want := fmt.Sprintf("target %d", slices.Min(failing)); err == nil || err.Error() != want {
			t.Errorf("targets %v failing: error %v, want %s", failing, err, want)
		}
	}
	plans, err := compile.PlanTargets(0, func(int) (compile.PlanInput, error) { return compile.PlanInput{}, errors.New("called") })
	if err != nil || len(plans) != 0 {
		t.Errorf("no targets: %v, %v", plans, err)
	}
}

// writePlans writes each case's plan, a change per line as the API encodes
// it.
func writePlans(t *testing.T, cases []planCase, plans [][]compile.Change) []byte {
	t.Helper()
	var out bytes.Buffer
	for i, c := range cases {
		fmt.Fprintf(&out, "# %s\n", c.name)
		for _, ch := range plans[i] {
			ch.Target = c.name
			data, err := json.Marshal(ch)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "%s\n", data)
		}
	}
	return out.Bytes()
}

// planCorpus compiles the renderers' golden inputs and the generated project
// and pairs each target's objects with applied objects that differ from
// them in the ways planning meets.
func planCorpus(t *testing.T) []planCase {
	t.Helper()
	var cases []planCase
	n := 0
	inputs := map[string]func() map[string]*compile.State{}
	for _, c := range slices.Concat(rendertest.IstioCases, rendertest.WeftCases, rendertest.DNSCases) {
		inputs["case "+c.Name] = func() map[string]*compile.State { return compileOrFail(t, c.Input(t)) }
	}
	inputs["generated"] = func() map[string]*compile.State { return compileOrFail(t, variedInput(t)) }
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		states := inputs[name]()
		for _, tn := range slices.Sorted(maps.Keys(states)) {
			desired := states[tn].Objects
			applied := map[compile.Ref]compile.Object{}
			var owned []compile.Ref
			for k, o := range desired {
				n++
				if a, ok := appliedVersion(t, o, n); ok {
					applied[o.Ref] = a
				}
				if k%4 == 0 {
					owned = append(owned, o.Ref)
				}
			}
			// Applied objects no longer desired: owned ones are deleted,
			// others (another group's) kept.
			for k := range 3 {
				ref := compile.Ref{APIVersion: "v1", Kind: "ConfigMap", Namespace: "gone", Name: fmt.Sprintf("%s-%d", tn, k)}
				applied[ref] = compile.Object{Ref: ref, Hash: "0", Raw: []byte(`{"apiVersion":"v1"}`)}
				if k != 1 {
					owned = append(owned, ref)
				}
			}
			owned = append(owned, compile.Ref{APIVersion: "v1", Kind: "ConfigMap", Name: "owned-never-applied"})
			if n%3 == 0 {
				desired = slices.Clone(desired)
				slices.Reverse(desired)
			}
			cases = append(cases, planCase{name: name + " " + tn, in: compile.PlanInput{Desired: desired, Applied: applied, Owned: owned}})
		}
	}
	return cases
}

func compileOrFail(t *testing.T, in *render.Input) map[string]*compile.State {
	t.Helper()
	states, err := compile.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	return states
}

// appliedVersion is what a target holds of the desired object o, the n-th
// of the corpus: ok is false where it holds none.
func appliedVersion(t *testing.T, o compile.Object, n int) (compile.Object, bool) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(o.Raw, &body); err != nil {
		t.Fatal(err)
	}
	marshal := func(v any) []byte {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	stored := func(raw []byte) (compile.Object, bool) {
		return compile.Object{Ref: o.Ref, Hash: compile.HashJSON(raw), Raw: raw}, true
	}
	switch n % 10 {
	case 0:
		return compile.Object{}, false
	case 1:
		return o, true
	case 2: // the benchmark's change: a label the desired object lacks
		meta := body["metadata"].(map[string]any)
		labels, _ := meta["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
			meta["labels"] = labels
		}
		labels["bench"] = "older"
		return stored(marshal(body))
	case 3: // the same body under another version's hash: walked, unchanged
		return compile.Object{Ref: o.Ref, Hash: "another", Raw: o.Raw}, true
	case 4: // other whitespace
		data, err := json.MarshalIndent(body, " ", "\t")
		if err != nil {
			t.Fatal(err)
		}
		return stored(data)
	case 5: // keys out of order at the top, one repeated
		keys := slices.Sorted(maps.Keys(body))
		slices.Reverse(keys)
		var b bytes.Buffer
		b.WriteString(`{"kind":"Older",`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%s", marshal(k), marshal(body[k]))
		}
		b.WriteByte('}')
		return stored(b.Bytes())
	}
	// Changed deep inside: the k-th leaf, in sorted key order, changed
	// according to its type, and the k-th container grown or shrunk.
	k := n / 10 % 7
	leaf, container := 0, 0
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			if container++; container == k && len(v) > 0 {
				delete(v, slices.Sorted(maps.Keys(v))[len(v)-1])
			}
			for _, key := range slices.Sorted(maps.Keys(v)) {
				v[key] = walk(v[key])
			}
			return v
		case []any:
			if container++; container == k {
				if len(v) > 1 {
					v = v[:len(v)-1]
				} else {
					v = append(v, "added", map[string]any{"x": 1.5})
				}
			}
			for i := range v {
				v[i] = walk(v[i])
			}
			return v
		}
		if leaf++; leaf%(k+2) != 0 {
			return v
		}
		switch v := v.(type) {
		case string:
			if n%2 == 0 {
				return v + "-old\u00e9\"\\"
			}
			return map[string]any{"was": v}
		case float64:
			return v + 1
		case bool:
			return !v
		}
		return "was null"
	}
	return stored(marshal(walk(body)))
}
