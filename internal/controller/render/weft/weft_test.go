package weft_test

import (
	"testing"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/rendertest"
	"weft.dev/weft/internal/controller/render/weft"
	"weft.dev/weft/internal/resource"
)

func TestGolden(t *testing.T) {
	tc := rendertest.WeftCases[0]
	ps, err := weft.Renderer{}.Render(tc.Input(t))
	if err != nil {
		t.Fatal(err)
	}
	rendertest.Golden(t, tc.Name, rendertest.YAML(t, ps))
	// Connectors where orders runs (east, west), a listener where web runs (west).
	kinds := map[string]int{}
	for _, p := range ps {
		kinds[p.Cluster+"/"+p.Object.Kind]++
	}
	if kinds["east/"+resource.KindConnector] != 1 || kinds["west/"+resource.KindConnector] != 1 || kinds["west/"+resource.KindListener] != 1 || len(ps) != 3 {
		t.Errorf("placements = %v", kinds)
	}
}

// A cluster whose site runs in Kubernetes mode gets the same resources as
// CRs in the site's namespace, delivered through its Kubernetes API.
func TestKubernetesSite(t *testing.T) {
	tc := rendertest.WeftCases[0]
	in := tc.Input(t)
	in.Clusters["west"].Spec.Weft = &model.WeftSite{Namespace: "shop"}
	ps, err := weft.Renderer{}.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ps {
		switch {
		case p.Cluster == "west" && (p.Kind != render.TargetKubernetes || p.Object.Namespace != "shop"):
			t.Errorf("west %s: target %s, namespace %q: want kubernetes, shop", p.Object.Kind, p.Kind, p.Object.Namespace)
		case p.Cluster == "west":
			n++
		case p.Kind != render.TargetWeft || p.Object.Namespace != "":
			t.Errorf("%s %s: target %s, namespace %q: want weft, none", p.Cluster, p.Object.Kind, p.Kind, p.Object.Namespace)
		}
	}
	if n != 2 {
		t.Errorf("%d objects for west, want its connector and listener", n)
	}
}
