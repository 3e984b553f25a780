package weft_test

import (
	"testing"

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
		kinds[p.Cluster+"/"+p.Object.GetKind()]++
	}
	if kinds["east/"+resource.KindConnector] != 1 || kinds["west/"+resource.KindConnector] != 1 || kinds["west/"+resource.KindListener] != 1 || len(ps) != 3 {
		t.Errorf("placements = %v", kinds)
	}
}
