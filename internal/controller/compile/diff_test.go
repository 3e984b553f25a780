package compile

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(name string, spec map[string]any) Object {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"data":     spec,
	}}
	return Object{Ref: RefOf(u), Hash: Hash(u), Object: u}
}

func TestPlan(t *testing.T) {
	same := obj("same", map[string]any{"k": "v", "list": []any{"a", "b"}})
	// Built in Go with an int64 where the stored body has a float64: a
	// different hash, but no change.
	goBuilt := obj("numbers", map[string]any{"n": int64(3)})
	stored := obj("numbers", map[string]any{"n": float64(3)})
	changed := obj("changed", map[string]any{"k": "new", "list": []any{"a", "c"}, "same": map[string]any{"x": "y"}})
	older := obj("changed", map[string]any{"k": "old", "list": []any{"a", "b"}, "same": map[string]any{"x": "y"}})
	gone, foreign := obj("gone", nil), obj("foreign", nil)
	created := obj("created", nil)

	applied := map[Ref]Object{same.Ref: same, stored.Ref: stored, older.Ref: older, gone.Ref: gone, foreign.Ref: foreign}
	got := map[string]Change{}
	for _, c := range Plan([]Object{created, changed, goBuilt, same}, applied, []Ref{gone.Ref, same.Ref}) {
		got[c.Ref.Name] = c
	}
	want := map[string]string{"same": ActionUnchanged, "numbers": ActionUnchanged, "changed": ActionUpdate, "created": ActionCreate, "gone": ActionDelete}
	if len(got) != len(want) {
		t.Errorf("plan has %d changes, want %d (an unowned applied object is never deleted): %v", len(got), len(want), got)
	}
	for name, action := range want {
		if got[name].Action != action {
			t.Errorf("%s: action %q, want %q", name, got[name].Action, action)
		}
	}
	wantDiff := []FieldChange{{Path: "data.k", Old: "old", New: "new"}, {Path: "data.list[1]", Old: "b", New: "c"}}
	if d := got["changed"].Diff; !reflect.DeepEqual(d, wantDiff) {
		t.Errorf("diff = %+v, want %+v", d, wantDiff)
	}
	if d := got["numbers"].Diff; d != nil {
		t.Errorf("int64 against float64 differs: %+v", d)
	}
}

func TestDiff(t *testing.T) {
	old := map[string]any{"a": map[string]any{"b": []any{1.0, 2.0}, "gone": "x", "null": nil}, "same": []any{map[string]any{"k": "v"}}}
	new := map[string]any{"a": map[string]any{"b": []any{1.0}, "added": true}, "same": []any{map[string]any{"k": "v"}}}
	want := []FieldChange{
		{Path: "a.added", New: true},
		{Path: "a.b[1]", Old: 2.0},
		{Path: "a.gone", Old: "x"},
	}
	if got := Diff(old, new); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %+v, want %+v", got, want)
	}
	if got := Diff(old, old); got != nil {
		t.Errorf("Diff of a value with itself = %+v", got)
	}
}

// TestPlanStoredBodies: an applied object kept as its stored JSON is
// compared by hash, and decoded for the diff only when the hash differs.
func TestPlanStoredBodies(t *testing.T) {
	want := obj("x", map[string]any{"k": "new"})
	stored := func(o Object, raw string) Object { return Object{Ref: o.Ref, Hash: o.Hash, Raw: []byte(raw)} }
	older := obj("x", map[string]any{"k": "old"})
	for _, tc := range []struct {
		name    string
		applied Object
		action  string
		diff    []FieldChange
	}{
		// Not JSON at all: never decoded, since the hashes match.
		{"same hash", stored(want, "not decoded"), ActionUnchanged, nil},
		{"older", stored(older, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"ns"},"data":{"k":"old"}}`),
			ActionUpdate, []FieldChange{{Path: "data.k", Old: "old", New: "new"}}},
		{"undecodable", stored(older, `[]`), ActionUpdate, Diff(map[string]any{}, want.Object.Object)},
	} {
		got := Plan([]Object{want}, map[Ref]Object{want.Ref: tc.applied}, nil)
		if len(got) != 1 || got[0].Action != tc.action || !reflect.DeepEqual(got[0].Diff, tc.diff) {
			t.Errorf("%s: plan = %+v, want %s with diff %v", tc.name, got, tc.action, tc.diff)
		}
	}
}

// TestCompareRefsIsStringOrder: refs sort as their string forms, whatever
// their parts hold (separators, bytes below '/', prefixes of each other).
func TestCompareRefsIsStringOrder(t *testing.T) {
	parts := []string{"", "a", "a-b", "a.b", "a/b", "ab", "b", "v1", "networking.istio.io/v1", "a/"}
	var refs []Ref
	for _, v := range parts {
		for _, k := range parts[:6] {
			for _, ns := range parts[:5] {
				for _, n := range parts[1:7] {
					refs = append(refs, Ref{APIVersion: v, Kind: k, Namespace: ns, Name: n})
				}
			}
		}
	}
	for _, a := range refs {
		for _, b := range refs[:len(refs)/7] {
			if got, want := compareRefs(a, b), strings.Compare(a.String(), b.String()); got != want {
				t.Fatalf("compareRefs(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}
