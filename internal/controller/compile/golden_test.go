package compile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/rendertest"
)

// TestCompileGolden holds every compiled object, byte for byte, and its hash
// to testdata/compile.golden: the renderers' golden inputs and a varied
// generated project (every intent type, mesh and weft clusters, clusters
// whose gateways have names, sites in Kubernetes mode, access rules with
// characters JSON escapes, sub-second durations, every load-balancing
// policy). The file was written by the map-building renderer; the bytes a
// compile writes, and so the hashes in stored releases and statuses, must
// not move when the rendering does.
func TestCompileGolden(t *testing.T) {
	var out bytes.Buffer
	for _, c := range slices.Concat(rendertest.IstioCases, rendertest.WeftCases, rendertest.DNSCases) {
		writeStates(t, &out, "case "+c.Name, c.Input(t))
	}
	writeStates(t, &out, "generated", variedInput(t))
	rendertest.Golden(t, "compile", out.Bytes())
}

// writeStates compiles in and writes each target's objects: reference,
// hash and canonical JSON, checking that the hash is of that JSON.
func writeStates(t *testing.T, out *bytes.Buffer, name string, in *render.Input) {
	t.Helper()
	states, err := compile.Compile(in)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fmt.Fprintf(out, "## %s\n", name)
	for _, tn := range slices.Sorted(maps.Keys(states)) {
		fmt.Fprintf(out, "# %s\n", tn)
		for _, o := range states[tn].Objects {
			data := canonical(t, o)
			sum := sha256.Sum256(data)
			if h := hex.EncodeToString(sum[:8]); h != o.Hash {
				t.Errorf("%s %s: hash %s, but its JSON hashes to %s", tn, o.Ref, o.Hash, h)
			}
			fmt.Fprintf(out, "%s %s\n%s\n", o.Ref, o.Hash, data)
		}
	}
}

// canonical is o's JSON as a release stores it.
func canonical(t *testing.T, o compile.Object) []byte {
	t.Helper()
	if o.Raw != nil {
		return o.Raw
	}
	data, err := json.Marshal(o.Object.Object)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// variedInput is a project of 12 clusters (Istio or none, some with weft
// sites, two in Kubernetes mode, gateways by address or by name) and 40
// services, with 60 intents varying every field the renderers read.
func variedInput(t *testing.T) *render.Input {
	t.Helper()
	const nClusters, nServices, nIntents = 12, 60, 60
	clusters := map[string]*model.Cluster{}
	for i := range nClusters {
		c := &model.Cluster{Metadata: model.Metadata{Name: fmt.Sprintf("c%02d", i), Labels: map[string]string{"region": fmt.Sprintf("r%d", i%3)}},
			Spec: model.ClusterSpec{Mesh: model.MeshIstio, Locality: fmt.Sprintf("r%d/z%d", i%3, i), Domain: fmt.Sprintf("c%d.example.com", i),
				EastWestGateway: &model.Endpoint{Address: fmt.Sprintf("10.%d.0.1", i), Port: 15443},
				IngressGateway:  &model.Endpoint{Address: fmt.Sprintf("10.%d.0.2", i), Port: 443}}}
		switch i % 4 {
		case 1:
			c.Spec.EastWestGateway.Address = fmt.Sprintf("ew.c%d.example.net", i)
			c.Spec.Network = fmt.Sprintf("net-%d", i%2)
		case 2:
			c.Spec.Weft = &model.WeftSite{Admin: fmt.Sprintf("http://10.%d.0.3:8080", i), Token: "tok"}
			if i%8 == 6 {
				c.Spec.Weft = &model.WeftSite{Namespace: "weft-system"}
				c.Spec.Kubeconfig = "apiVersion: v1\nkind: Config\n"
			}
		case 3:
			if i == 11 {
				c.Spec.Mesh = model.MeshNone
				c.Spec.EastWestGateway = nil
				c.Spec.Weft = &model.WeftSite{Admin: "http://10.11.0.3:8080"}
			}
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("cluster %d: %v", i, err)
		}
		clusters[c.Metadata.Name] = c
	}
	protos := []string{"HTTP", "HTTP2", "GRPC", "TCP", "TLS"}
	app := &model.App{Metadata: model.Metadata{Name: "varied"}, Spec: model.AppSpec{Version: "v2"}}
	for i := range nServices {
		s := model.Service{Name: fmt.Sprintf("svc-%02d", i), Namespace: fmt.Sprintf("ns-%d", i%5), Port: 8000 + i, Protocol: protos[i%len(protos)],
			ServiceAccount: fmt.Sprintf("sa-%d", i%3)}
		for j := range 1 + i%3 {
			s.Clusters = append(s.Clusters, fmt.Sprintf("c%02d", (i+5*j)%nClusters))
		}
		app.Spec.Services = append(app.Spec.Services, s)
	}
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	types := []string{model.TypeIntercluster, model.TypeIntracluster, model.TypeExternalOutbound, model.TypeExternalInbound}
	lbs := []string{"", "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH"}
	durations := []string{"", "1s", "250ms", "1.5s", "2m", "1.001s"}
	accesses := [][]model.AccessRule{nil, {{Methods: []string{"GET"}, Paths: []string{"/a/*", "/b&c<d>"}}},
		{{Paths: []string{"/q?x=\"y\"\\z"}}, {Methods: []string{"POST", "PUT"}}}}
	in := &render.Input{Project: "proj", App: app, Group: "grp", Clusters: clusters}
	for n := range nIntents {
		it := &model.Intent{Metadata: model.Metadata{Name: fmt.Sprintf("it-%02d", n)}, Spec: model.IntentSpec{
			Type: types[n%len(types)], Server: fmt.Sprintf("svc-%02d", n%nServices), MutualTLS: n%3 != 0,
			LoadBalancing: lbs[n%len(lbs)], Access: accesses[n%len(accesses)],
		}}
		if n%5 == 0 {
			it.Spec.Port = 9000 + n
		}
		if n%2 == 0 {
			it.Spec.CircuitBreaking = &model.CircuitBreaking{MaxConnections: n, HTTP1MaxPendingRequests: n % 3, HTTP2MaxRequests: n % 4,
				MaxRequestsPerConnection: n % 5, ConsecutiveErrors: n % 6, Interval: durations[n%len(durations)],
				BaseEjectionTime: durations[(n+1)%len(durations)], MaxEjectionPercent: n % 101}
		}
		switch it.Spec.Type {
		case model.TypeIntercluster, model.TypeIntracluster:
			it.Spec.Clients = []model.Client{{Service: fmt.Sprintf("svc-%02d", (n+7)%nServices)}}
			if n%3 == 0 {
				it.Spec.Clients = append(it.Spec.Clients, model.Client{Service: fmt.Sprintf("svc-%02d", (n+13)%nServices)})
			}
		case model.TypeExternalOutbound:
			it.Spec.Protocol = []string{"", "TLS", "HTTPS", "HTTP"}[n%4]
			it.Spec.Clients = []model.Client{{FQDN: fmt.Sprintf("api%d.example.net", n)}, {FQDN: fmt.Sprintf("cdn%d.example.org", n), Port: 8443 + n%2}}
			it.Spec.EgressGateway = n%3 != 1
		case model.TypeExternalInbound:
			if n%3 == 0 {
				it.Spec.ExternalPrefix = fmt.Sprintf("pre%d", n)
			} else {
				it.Spec.ExternalName = fmt.Sprintf("name%d.example.com", n)
			}
			if n%2 == 1 {
				it.Spec.TLS = &model.InboundTLS{Mode: []string{"SIMPLE", "MUTUAL"}[n%4/2], CredentialName: "cred"}
			}
		}
		if err := it.Validate(); err != nil {
			t.Fatalf("intent %d: %v", n, err)
		}
		in.Intents = append(in.Intents, it)
	}
	for _, b := range []string{
		`{"metadata":{"name":"zz-dns-bind"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:5353","zone":"example.com","tsigKeyName":"weft","tsigSecret":"c2VjcmV0","ttl":300}}`,
		`{"metadata":{"name":"zz-dns-edns"},"spec":{"type":"dns-provider","provider":"external-dns","zone":"example.com","namespace":"dns","clusterSelector":{"region":"r1"}}}`,
	} {
		in.Intents = append(in.Intents, rendertest.Intent(t, b))
	}
	return in
}
