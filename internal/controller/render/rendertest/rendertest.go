// Package rendertest holds the fixtures and golden-file helpers that renderer,
// compiler and benchmark tests share: the project of issue 5 and YAML goldens
// regenerated with -update.
package rendertest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// Project is the project of issue 5: clusters east and west with Istio and
// east-west gateways, and app shop v1 with services orders (east, west) and web
// (west). East and west also run weft sites and ingress gateways.
func Project() (map[string]*model.Cluster, *model.App) {
	clusters := map[string]*model.Cluster{}
	for _, c := range []struct{ name, region, ew, ingress string }{
		{"east", "us-east", "192.0.2.10", "198.51.100.10"},
		{"west", "us-west", "192.0.2.20", "198.51.100.20"},
	} {
		cl := &model.Cluster{
			Metadata: model.Metadata{Name: c.name, Labels: map[string]string{"region": c.region}},
			Spec: model.ClusterSpec{
				Mesh: model.MeshIstio, Locality: c.region + "/zone1", Domain: c.name + ".example.com",
				EastWestGateway: &model.Endpoint{Address: c.ew, Port: 15443},
				IngressGateway:  &model.Endpoint{Address: c.ingress, Port: 443},
				Weft:            &model.WeftSite{Admin: "http://127.0.0.1:9" + map[string]string{"east": "001", "west": "002"}[c.name], Token: "t-" + c.name},
			},
		}
		if err := cl.Validate(); err != nil {
			panic(err)
		}
		clusters[c.name] = cl
	}
	app := &model.App{Metadata: model.Metadata{Name: "shop"}, Spec: model.AppSpec{Version: "v1", Services: []model.Service{
		{Name: "orders", Namespace: "shop", Port: 8080, Protocol: "HTTP", ServiceAccount: "orders", Clusters: []string{"east", "west"}},
		{Name: "web", Namespace: "shop", Port: 80, Protocol: "HTTP", ServiceAccount: "web", Clusters: []string{"west"}},
	}}}
	if err := app.Validate(); err != nil {
		panic(err)
	}
	return clusters, app
}

// Intent decodes and validates an intent body, failing the test if it is invalid.
func Intent(t testing.TB, body string) *model.Intent {
	t.Helper()
	in, err := model.DecodeIntent([]byte(body))
	if err != nil {
		t.Fatalf("intent %s: %v", body, err)
	}
	return in
}

// Input is the project of issue 5 with the given intents in group g1.
func Input(intents ...*model.Intent) *render.Input {
	clusters, app := Project()
	return &render.Input{Project: "p1", App: app, Group: "g1", Clusters: clusters, Intents: intents}
}

// YAML returns the placements as YAML documents.
func YAML(t testing.TB, ps []render.Placement) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range ps {
		where := p.Cluster
		if p.Kind == render.TargetRFC2136 {
			where = p.DNS.Server + " " + p.DNSKey
		}
		data, err := yaml.Marshal(p.Object.Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("# " + p.Kind + " " + where + "\n---\n")
		buf.Write(data)
	}
	return buf.Bytes()
}

// Golden compares got with testdata/name.golden, or rewrites it with -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
