package compile

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Actions of a planned change.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionDelete    = "delete"
	ActionUnchanged = "unchanged"
)

// FieldChange is one differing field, by JSON path.
type FieldChange struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// Change is what a plan does to one object of a target.
type Change struct {
	Target string          `json:"target,omitempty"`
	Action string          `json:"action"`
	Ref    Ref             `json:"ref"`
	Object json.RawMessage `json:"object,omitempty"` // the desired object's JSON; none for deletes
	Diff   []FieldChange   `json:"diff,omitempty"`
}

// Plan compares desired objects with the ones last applied to the target.
// Applied objects not desired are deleted only if owned (the group released
// them before), so that a plan for one group never removes another's objects.
//
// A desired object's JSON is its Raw, or written from its Object; only the
// objects whose hashes differ from the applied ones are diffed.
func Plan(desired []Object, applied map[Ref]Object, owned []Ref) []Change {
	out := make([]Change, 0, len(desired))
	for _, d := range desired {
		old, ok := applied[d.Ref]
		body := d.JSON()
		switch {
		case !ok:
			out = append(out, Change{Action: ActionCreate, Ref: d.Ref, Object: body})
		case old.Hash != "" && old.Hash == d.Hash:
			// Equal hashes are equal bodies. Most objects of a plan are
			// unchanged, and walking them field by field dominated planning.
			out = append(out, Change{Action: ActionUnchanged, Ref: d.Ref, Object: body})
		default:
			diff := bodyDiff(old, d)
			action := ActionUpdate
			if len(diff) == 0 {
				action = ActionUnchanged
			}
			out = append(out, Change{Action: action, Ref: d.Ref, Object: body, Diff: diff})
		}
	}
	if len(owned) > 0 {
		// Only a plan that may delete needs the desired references by key.
		want := make(map[Ref]bool, len(desired))
		for _, d := range desired {
			want[d.Ref] = true
		}
		for _, r := range owned {
			if want[r] {
				continue
			}
			if _, ok := applied[r]; ok {
				out = append(out, Change{Action: ActionDelete, Ref: r})
			}
		}
	}
	// Desired objects come sorted (State.Objects is), and a plan without
	// deletes then is too: checking costs a comparison per change, where
	// the sort costs several.
	if !slices.IsSortedFunc(out, func(a, b Change) int { return compareRefs(a.Ref, b.Ref) }) {
		sortByRef(out, func(c Change) Ref { return c.Ref })
	}
	return out
}

// PlanInput is what Plan compares for one target.
type PlanInput struct {
	Desired []Object
	Applied map[Ref]Object
	Owned   []Ref
}

// PlanTargets plans n targets, the i-th against what load(i) returns, on up
// to GOMAXPROCS goroutines (load is called concurrently, once per target),
// and returns each target's Plan in index order, or the error load returned
// for the lowest index. A traffic group's targets are independent, and each
// holds only a few of the group's objects: planned one after another, a
// group's plan ran on one core.
func PlanTargets(n int, load func(i int) (PlanInput, error)) ([][]Change, error) {
	out, errs := make([][]Change, n), make([]error, n)
	parallel(n, func(i int) {
		in, err := load(i)
		if err != nil {
			errs[i] = err
			return
		}
		out[i] = Plan(in.Desired, in.Applied, in.Owned)
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// bodyDiff is Diff of the bodies of old and new. Bodies that are both JSON
// are diffed without decoding them (diffJSON), wherever that finds what
// decoding them would.
func bodyDiff(old, new Object) []FieldChange {
	if old.Object == nil && new.Object == nil {
		if diff, ok := diffJSON(old.Raw, new.Raw); ok {
			return diff
		}
	}
	// A stored body the store checked is a JSON object; one that still
	// does not decode differs in every field.
	var was, want map[string]any
	if u, err := old.Body(); err == nil && u != nil {
		was = u.Object
	}
	if u, err := new.Body(); err == nil && u != nil {
		want = u.Object
	}
	return Diff(was, want)
}

// sortByRef sorts s stably by the string form of each element's reference,
// comparing without building those strings: Ref.String allocates, and a
// sort compares n log n times. ref takes its element by value: a pointer to
// the comparison's arguments would move them to the heap, an allocation per
// comparison.
func sortByRef[T any](s []T, ref func(T) Ref) {
	slices.SortStableFunc(s, func(a, b T) int { return compareRefs(ref(a), ref(b)) })
}

// compareRefs is strings.Compare(a.String(), b.String()).
func compareRefs(a, b Ref) int {
	aa, an := a.parts()
	ba, bn := b.parts()
	as, bs := aa[:an], ba[:bn]
	for i := range min(an, bn) {
		x, y := as[i], bs[i]
		if x == y {
			continue
		}
		for k := range min(len(x), len(y)) {
			if x[k] != y[k] {
				return cmp.Compare(x[k], y[k])
			}
		}
		// One part is a prefix of the other: what follows it decides, a
		// separator or the end against the longer part's next byte.
		return strings.Compare(strings.Join(as[i:], "/"), strings.Join(bs[i:], "/"))
	}
	return cmp.Compare(an, bn)
}

// parts are the first n of the parts r's string form joins with "/".
func (r Ref) parts() (parts [4]string, n int) {
	if r.Namespace == "" {
		return [4]string{r.APIVersion, r.Kind, r.Name}, 3
	}
	return [4]string{r.APIVersion, r.Kind, r.Namespace, r.Name}, 4
}

// Diff returns the changed leaves between two JSON-shaped values, in path order.
// Lists are compared element by element.
func Diff(old, new any) []FieldChange {
	var out []FieldChange
	diff("", old, new, &out)
	return out
}

func diff(path string, old, new any, out *[]FieldChange) {
	if equal(old, new) {
		return // without sorting keys or building paths, which was most of a diff's cost
	}
	om, oOK := asMap(old)
	nm, nOK := asMap(new)
	if oOK && nOK {
		keys := make([]string, 0, len(om)+len(nm))
		for k := range om {
			keys = append(keys, k)
		}
		for k := range nm {
			if _, ok := om[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			diff(p, om[k], nm[k], out)
		}
		return
	}
	ol, oOK := old.([]any)
	nl, nOK := new.([]any)
	if oOK && nOK {
		for i := range max(len(ol), len(nl)) {
			var o, n any
			if i < len(ol) {
				o = ol[i]
			}
			if i < len(nl) {
				n = nl[i]
			}
			diff(fmt.Sprintf("%s[%d]", path, i), o, n, out)
		}
		return
	}
	*out = append(*out, FieldChange{Path: path, Old: old, New: new})
}

// equal reports whether diff would find no change between a and b. It may
// report a difference where diff finds none (a key holding null on one side
// and missing on the other), which only costs diff a walk.
func equal(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			if bv, ok := b[k]; !ok || !equal(av, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case nil:
		return nil, false
	}
	return nil, false
}

// normalize makes numbers comparable whether they came from JSON (float64) or
// were built in Go (int64).
func normalize(v any) any {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case int32:
		return float64(n)
	}
	return v
}
