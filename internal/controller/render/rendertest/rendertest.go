// Package rendertest holds the fixtures and golden-file helpers that renderer,
// compiler and benchmark tests share: the project of issue 5, the golden
// inputs of every renderer, YAML goldens regenerated with -update, and the
// round trip of rendered objects through the Istio Go types.
package rendertest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/controller/canonjson"
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
		data, err := yaml.Marshal(Unstructured(t, p.Object).Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("# " + p.Kind + " " + where + "\n---\n")
		buf.Write(data)
	}
	return buf.Bytes()
}

// Unstructured is o as the API server gets it: its JSON, decoded.
func Unstructured(t testing.TB, o *render.Object) *unstructured.Unstructured {
	t.Helper()
	var w canonjson.Writer
	if err := o.AppendJSON(&w, "", ""); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(w.Buf, &u.Object); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Name, err)
	}
	return u
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

// Intent bodies of the golden inputs, over the project of issue 5.
const (
	Intercluster = `{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],
	"protocol":"HTTP","port":8080,"mutualTLS":true,"circuitBreaking":{"maxConnections":1,"http1MaxPendingRequests":1,"consecutiveErrors":1,"interval":"1s","baseEjectionTime":"1m","maxEjectionPercent":100}}}`
	Intracluster = `{"metadata":{"name":"web-orders-local"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}],
	"mutualTLS":true,"access":[{"methods":["GET","POST"],"paths":["/orders/*"]}]}}`
	OutboundTLS = `{"metadata":{"name":"web-payments"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"api.payments.example"},{"fqdn":"audit.example","port":8443}],
	"protocol":"TLS","egressGateway":true}}`
	OutboundHTTP   = `{"metadata":{"name":"web-news"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"news.example"}],"egressGateway":true,"mutualTLS":true}}`
	OutboundDirect = `{"metadata":{"name":"web-weather"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"weather.example"},{"fqdn":"tiles.weather.example","port":8443}],"protocol":"HTTPS"}}`
	InboundMutual  = `{"metadata":{"name":"orders-public"},"spec":{"type":"external-inbound","server":"orders","externalName":"orders.shop.example.com",
	"tls":{"mode":"MUTUAL","credentialName":"orders-cert"},"mutualTLS":true,"access":[{"methods":["GET"],"paths":["/orders/*"]}]}}`
	InboundSimple = `{"metadata":{"name":"orders-tls"},"spec":{"type":"external-inbound","server":"orders","externalPrefix":"shop","tls":{"mode":"SIMPLE","credentialName":"shop-cert"}}}`
	InboundPrefix = `{"metadata":{"name":"orders-plain"},"spec":{"type":"external-inbound","server":"orders","externalPrefix":"orders"}}`
	// InboundName is the exposed service that the dns-provider inputs publish.
	InboundName      = `{"metadata":{"name":"orders-public"},"spec":{"type":"external-inbound","server":"orders","externalName":"orders.shop.example.com"}}`
	DNSRFC2136       = `{"metadata":{"name":"bind"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:5353","zone":"example.com","tsigKeyName":"weft","tsigSecret":"c2VjcmV0"}}`
	DNSExternalDNS   = `{"metadata":{"name":"edns"},"spec":{"type":"dns-provider","provider":"external-dns","zone":"example.com","clusterSelector":{"region":"us-east"}}}`
	WeftIntercluster = `{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"circuitBreaking":{"maxConnections":7}}}`
)

// Case is a golden input: intents rendered together, named as their golden file.
type Case struct {
	Name    string
	Intents []string
}

// Input decodes the case's intents into the project of issue 5.
func (c Case) Input(t testing.TB) *render.Input {
	t.Helper()
	intents := make([]*model.Intent, 0, len(c.Intents))
	for _, b := range c.Intents {
		intents = append(intents, Intent(t, b))
	}
	return Input(intents...)
}

// Golden inputs of each renderer. test/envtest applies everything they render
// to a real kube-apiserver, so a case added here is validated there too.
var (
	IstioCases = []Case{
		{"intercluster", []string{Intercluster}},
		{"intracluster", []string{Intracluster}},
		{"external-outbound-tls", []string{OutboundTLS}},
		{"external-outbound-http", []string{OutboundHTTP}},
		{"external-outbound-direct", []string{OutboundDirect}},
		{"external-inbound", []string{InboundMutual}},
		{"external-inbound-simple", []string{InboundSimple}},
		{"external-inbound-prefix", []string{InboundPrefix}},
	}
	DNSCases = []Case{
		{"dns-provider-rfc2136", []string{InboundName, DNSRFC2136}},
		{"dns-provider-external-dns", []string{InboundName, DNSExternalDNS}},
	}
	WeftCases = []Case{
		{"intercluster", []string{WeftIntercluster}},
	}
)

// typedIstio returns an empty Istio Go object of kind at apiVersion, and its
// spec as a protobuf message, or nils for a kind that is not Istio's.
func typedIstio(apiVersion, kind string) (obj any, spec proto.Message) {
	switch apiVersion + " " + kind {
	case "networking.istio.io/v1 ServiceEntry":
		o := &netv1.ServiceEntry{}
		return o, &o.Spec
	case "networking.istio.io/v1 DestinationRule":
		o := &netv1.DestinationRule{}
		return o, &o.Spec
	case "networking.istio.io/v1 Gateway":
		o := &netv1.Gateway{}
		return o, &o.Spec
	case "networking.istio.io/v1 VirtualService":
		o := &netv1.VirtualService{}
		return o, &o.Spec
	case "security.istio.io/v1 AuthorizationPolicy":
		o := &secv1.AuthorizationPolicy{}
		return o, &o.Spec
	case "security.istio.io/v1 PeerAuthentication":
		o := &secv1.PeerAuthentication{}
		return o, &o.Spec
	}
	return nil, nil
}

// IsIstio reports whether u is of an Istio kind at the version the renderer
// targets.
func IsIstio(u *unstructured.Unstructured) bool {
	obj, _ := typedIstio(u.GetAPIVersion(), u.GetKind())
	return obj != nil
}

// Decode decodes u into the Istio Go type of its kind, the spec strictly
// (unknown fields are errors, unlike the Istio types' own UnmarshalJSON), and
// returns the typed object.
func Decode(t testing.TB, u *unstructured.Unstructured) any {
	t.Helper()
	obj, spec := typedIstio(u.GetAPIVersion(), u.GetKind())
	if obj == nil {
		t.Fatalf("%s %s: %s is not an Istio kind at the renderer's version", u.GetKind(), u.GetName(), u.GetAPIVersion())
	}
	data, _ := json.Marshal(u.Object)
	if err := json.Unmarshal(data, obj); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	specJSON, _ := json.Marshal(u.Object["spec"])
	if err := protojson.Unmarshal(specJSON, spec); err != nil {
		t.Fatalf("%s %s: spec does not decode as Istio's type: %v\n%s", u.GetKind(), u.GetName(), err, specJSON)
	}
	return obj
}

// RoundTrip checks that u is exactly an Istio object: decoded strictly into
// the Istio Go type at the right version and encoded again, it is unchanged.
func RoundTrip(t testing.TB, u *unstructured.Unstructured) {
	t.Helper()
	again, err := json.Marshal(Decode(t, u))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(u.Object)
	var got, orig map[string]any
	_ = json.Unmarshal(again, &got)
	_ = json.Unmarshal(data, &orig)
	// The typed object always carries these; the rendered one leaves them to the server.
	delete(got["metadata"].(map[string]any), "creationTimestamp")
	if st, ok := got["status"].(map[string]any); ok && len(st) == 0 {
		delete(got, "status")
	}
	if !reflect.DeepEqual(got, orig) {
		t.Errorf("%s %s changed in a round trip through the Istio types:\n got %s\nwant %s", u.GetKind(), u.GetName(), again, data)
	}
}
