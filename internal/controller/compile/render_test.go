package compile

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
)

// fakeRenderer renders an intent named render-error-* to an error, one
// named elsewhere-* to an object in a cluster the input does not have (a
// placement error), and any other to one object in cluster c1.
type fakeRenderer struct{}

var errFake = errors.New("fake render error")

func (fakeRenderer) Render(in *render.Input) ([]render.Placement, error) {
	return render.RenderEach(in, fakeRenderer{})
}

func (fakeRenderer) RenderIntent(in *render.Input, it *model.Intent) ([]render.Placement, error) {
	name := it.Metadata.Name
	cluster := "c1"
	switch {
	case strings.HasPrefix(name, "render-error-"):
		return nil, fmt.Errorf("%w: %s", errFake, name)
	case strings.HasPrefix(name, "elsewhere-"):
		cluster = "nowhere"
	}
	obj := &render.Object{APIVersion: "v1", Kind: "ConfigMap", Namespace: "ns", Name: name, Spec: map[string]any{"k": name}}
	return []render.Placement{{Kind: render.TargetKubernetes, Cluster: cluster, Object: obj}}, nil
}

// TestRenderIntentsIsSerial: rendering intents on several goroutines returns
// what rendering them in order and then placing them does: placements in
// intent order, the first render error before any placement error.
func TestRenderIntentsIsSerial(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	input := func(names ...string) *render.Input {
		in := &render.Input{Project: "p", Group: "g", App: &model.App{}, Clusters: map[string]*model.Cluster{"c1": {Metadata: model.Metadata{Name: "c1"}}}}
		for _, n := range names {
			in.Intents = append(in.Intents, &model.Intent{Metadata: model.Metadata{Name: n}})
		}
		return in
	}
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("ok-%03d", i))
	}
	for _, tc := range []struct {
		name    string
		intents []string
		idx     []int // nil: all
		err     string
	}{
		{"all render", many, nil, ""},
		{"some", many, []int{3, 7, 150, 199}, ""},
		{"none", many, []int{}, ""},
		{"render errors after a placement error", append([]string{"ok", "elsewhere-1", "render-error-2", "render-error-3"}, many...), nil, "render-error-2"},
		{"placement errors", append(append([]string{"ok"}, many...), "elsewhere-1", "elsewhere-2"), nil, `"nowhere"`},
		{"an error not selected", []string{"render-error-1", "ok"}, []int{1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(tc.intents...)
			idx := tc.idx
			if idx == nil {
				for i := range in.Intents {
					idx = append(idx, i)
				}
			}
			got, err := renderIntents(in, "fake", fakeRenderer{}, idx)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want the first in order, %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(idx) {
				t.Fatalf("%d intents placed, want %d", len(got), len(idx))
			}
			for k, ps := range got {
				want := in.Intents[idx[k]].Metadata.Name
				if len(ps) != 1 || ps[0].obj.Ref.Name != want || ps[0].target.Cluster != "c1" {
					t.Fatalf("placements of intent %d = %+v, want %s's object in c1", k, ps, want)
				}
			}
		})
	}
}
