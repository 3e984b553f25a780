package istio_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/istio"
	"weft.dev/weft/internal/controller/render/rendertest"
)

const (
	intercluster = `{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],
	"protocol":"HTTP","port":8080,"mutualTLS":true,"circuitBreaking":{"maxConnections":1,"http1MaxPendingRequests":1,"consecutiveErrors":1,"interval":"1s","baseEjectionTime":"1m","maxEjectionPercent":100}}}`
	intracluster = `{"metadata":{"name":"web-orders-local"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}],
	"mutualTLS":true,"access":[{"methods":["GET","POST"],"paths":["/orders/*"]}]}}`
	outbound = `{"metadata":{"name":"web-payments"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"api.payments.example"},{"fqdn":"audit.example","port":8443}],
	"protocol":"TLS","egressGateway":true}}`
	outboundHTTP = `{"metadata":{"name":"web-news"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"news.example"}],"egressGateway":true,"mutualTLS":true}}`
	inbound      = `{"metadata":{"name":"orders-public"},"spec":{"type":"external-inbound","server":"orders","externalName":"orders.shop.example.com",
	"tls":{"mode":"MUTUAL","credentialName":"orders-cert"},"mutualTLS":true,"access":[{"methods":["GET"],"paths":["/orders/*"]}]}}`
	inboundPrefix = `{"metadata":{"name":"orders-plain"},"spec":{"type":"external-inbound","server":"orders","externalPrefix":"orders"}}`
)

func renderIstio(t *testing.T, bodies ...string) []render.Placement {
	t.Helper()
	var intents = rendertest.Input().Intents
	for _, b := range bodies {
		intents = append(intents, rendertest.Intent(t, b))
	}
	ps, err := istio.Renderer{}.Render(rendertest.Input(intents...))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		roundTrip(t, p.Object)
	}
	return ps
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"intercluster", intercluster},
		{"intracluster", intracluster},
		{"external-outbound-tls", outbound},
		{"external-outbound-http", outboundHTTP},
		{"external-inbound", inbound},
		{"external-inbound-prefix", inboundPrefix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rendertest.Golden(t, tc.name, rendertest.YAML(t, renderIstio(t, tc.body)))
		})
	}
}

// find returns the placement of kind/name in cluster, or fails.
func find(t *testing.T, ps []render.Placement, cluster, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, p := range ps {
		if p.Cluster == cluster && p.Object.GetKind() == kind && p.Object.GetName() == name {
			return p.Object
		}
	}
	t.Fatalf("no %s %s in cluster %s", kind, name, cluster)
	return nil
}

func has(ps []render.Placement, cluster, kind string) bool {
	return slices.ContainsFunc(ps, func(p render.Placement) bool { return p.Cluster == cluster && p.Object.GetKind() == kind })
}

// TestIntercluster checks the assertions field by field, independently of
// the golden file.
func TestIntercluster(t *testing.T) {
	ps := renderIstio(t, intercluster)
	var se netv1.ServiceEntry
	fromUnstructured(t, find(t, ps, "west", "ServiceEntry", "web-orders"), &se)
	if len(se.Spec.Endpoints) != 1 || se.Spec.Endpoints[0].Address != "192.0.2.10" || se.Spec.Endpoints[0].Ports["http-8080"] != 15443 {
		t.Errorf("west ServiceEntry endpoints = %v, want 192.0.2.10 with http-8080: 15443", se.Spec.Endpoints)
	}
	if se.Spec.Endpoints[0].Locality != "us-east/zone1" || se.Spec.Hosts[0] != "orders.shop.svc.cluster.local" {
		t.Errorf("west ServiceEntry = %v", &se.Spec)
	}
	var dr netv1.DestinationRule
	fromUnstructured(t, find(t, ps, "west", "DestinationRule", "web-orders"), &dr)
	tp := dr.Spec.TrafficPolicy
	if tp.GetTls().GetMode().String() != "ISTIO_MUTUAL" {
		t.Errorf("tls = %v", tp.GetTls())
	}
	if tp.GetConnectionPool().GetTcp().GetMaxConnections() != 1 || tp.GetConnectionPool().GetHttp().GetHttp1MaxPendingRequests() != 1 {
		t.Errorf("connectionPool = %v", tp.GetConnectionPool())
	}
	od := tp.GetOutlierDetection()
	if od.GetConsecutive_5XxErrors().GetValue() != 1 || od.GetInterval().AsDuration().String() != "1s" ||
		od.GetBaseEjectionTime().AsDuration().String() != "1m0s" || od.GetMaxEjectionPercent() != 100 || od.GetConsecutiveErrors() != 0 {
		t.Errorf("outlierDetection = %v", od)
	}
	fo := tp.GetLoadBalancer().GetLocalityLbSetting().GetFailover()
	if len(fo) != 1 || fo[0].From != "us-west" || fo[0].To != "us-east" {
		t.Errorf("failover = %v", fo)
	}
	var gw netv1.Gateway
	fromUnstructured(t, find(t, ps, "east", "Gateway", istio.CrossNetworkGateway), &gw)
	if s := gw.Spec.Servers[0]; s.GetTls().GetMode().String() != "AUTO_PASSTHROUGH" || s.GetPort().GetNumber() != 15443 {
		t.Errorf("east Gateway server = %v", s)
	}
	if has(ps, "east", "DestinationRule") || has(ps, "west", "Gateway") {
		t.Error("east has no clients and west serves no remote client: no DestinationRule in east, no Gateway in west")
	}
	var ap secv1.AuthorizationPolicy
	fromUnstructured(t, find(t, ps, "east", "AuthorizationPolicy", "web-orders"), &ap)
	if got := ap.Spec.Rules[0].From[0].Source.Principals; !slices.Equal(got, []string{"cluster.local/ns/shop/sa/web"}) {
		t.Errorf("east AuthorizationPolicy principals = %v", got)
	}
	find(t, ps, "east", "PeerAuthentication", "web-orders")
}

func TestIntracluster(t *testing.T) {
	ps := renderIstio(t, intracluster)
	for _, c := range []string{"east", "west"} {
		var deny, allow secv1.AuthorizationPolicy
		fromUnstructured(t, find(t, ps, c, "AuthorizationPolicy", istio.DenyAll), &deny)
		if deny.Spec.Rules != nil || deny.Spec.Action != 0 {
			t.Errorf("%s deny-all = %v, want an empty spec", c, &deny.Spec)
		}
		fromUnstructured(t, find(t, ps, c, "AuthorizationPolicy", "web-orders-local"), &allow)
		r := allow.Spec.Rules[0]
		if !slices.Equal(r.From[0].Source.Principals, []string{"cluster.local/ns/shop/sa/web"}) {
			t.Errorf("%s principals = %v", c, r.From[0].Source.Principals)
		}
		if op := r.To[0].Operation; !slices.Equal(op.Methods, []string{"GET", "POST"}) || !slices.Equal(op.Paths, []string{"/orders/*"}) || !slices.Equal(op.Ports, []string{"8080"}) {
			t.Errorf("%s operation = %v", c, op)
		}
		var pa secv1.PeerAuthentication
		fromUnstructured(t, find(t, ps, c, "PeerAuthentication", "web-orders-local"), &pa)
		if pa.Spec.GetMtls().GetMode().String() != "STRICT" {
			t.Errorf("%s PeerAuthentication = %v", c, &pa.Spec)
		}
	}
}

func TestExternal(t *testing.T) {
	ps := renderIstio(t, outbound, inbound)
	var se netv1.ServiceEntry
	fromUnstructured(t, find(t, ps, "west", "ServiceEntry", "web-payments"), &se)
	if se.Spec.Location.String() != "MESH_EXTERNAL" || !slices.Equal(se.Spec.Hosts, []string{"api.payments.example", "audit.example"}) || len(se.Spec.Ports) != 2 {
		t.Errorf("outbound ServiceEntry = %v", &se.Spec)
	}
	find(t, ps, "west", "Gateway", "web-payments-egress")
	find(t, ps, "west", "DestinationRule", "web-payments-egress")
	find(t, ps, "west", "VirtualService", "web-payments-egress-1")
	if has(ps, "east", "ServiceEntry") {
		t.Error("web does not run in east")
	}
	var gw netv1.Gateway
	fromUnstructured(t, find(t, ps, "east", "Gateway", "orders-public-ingress"), &gw)
	if tls := gw.Spec.Servers[0].GetTls(); tls.GetMode().String() != "MUTUAL" || tls.GetCredentialName() != "orders-cert" {
		t.Errorf("ingress tls = %v", tls)
	}
	find(t, ps, "west", "VirtualService", "orders-public-ingress")
}

func TestUnresolved(t *testing.T) {
	bad := rendertest.Intent(t, `{"metadata":{"name":"x"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"nope"}]}}`)
	_, err := istio.Renderer{}.Render(rendertest.Input(bad))
	var re *render.Error
	if !asRenderError(err, &re) || re.Field != "spec.clients[0].service" {
		t.Fatalf("err = %v, want a render.Error on spec.clients[0].service", err)
	}
	noGW := rendertest.Input(rendertest.Intent(t, intercluster))
	noGW.Clusters["east"].Spec.EastWestGateway = nil
	if _, err := (istio.Renderer{}).Render(noGW); err == nil || !strings.Contains(err.Error(), "eastWestGateway") {
		t.Fatalf("err = %v, want a missing east-west gateway", err)
	}
}

func asRenderError(err error, target **render.Error) bool {
	e, ok := err.(*render.Error)
	if ok {
		*target = e
	}
	return ok
}

func specOf(obj any) proto.Message {
	switch o := obj.(type) {
	case *netv1.ServiceEntry:
		return &o.Spec
	case *netv1.DestinationRule:
		return &o.Spec
	case *netv1.Gateway:
		return &o.Spec
	case *netv1.VirtualService:
		return &o.Spec
	case *secv1.AuthorizationPolicy:
		return &o.Spec
	case *secv1.PeerAuthentication:
		return &o.Spec
	}
	return nil
}

func typedFor(kind string) any {
	switch kind {
	case "ServiceEntry":
		return &netv1.ServiceEntry{}
	case "DestinationRule":
		return &netv1.DestinationRule{}
	case "Gateway":
		return &netv1.Gateway{}
	case "VirtualService":
		return &netv1.VirtualService{}
	case "AuthorizationPolicy":
		return &secv1.AuthorizationPolicy{}
	case "PeerAuthentication":
		return &secv1.PeerAuthentication{}
	}
	return nil
}

// fromUnstructured decodes u's spec strictly (unknown fields are errors, unlike
// the Istio types' own UnmarshalJSON) into the typed object.
func fromUnstructured(t *testing.T, u *unstructured.Unstructured, typed any) {
	t.Helper()
	spec, _ := json.Marshal(u.Object["spec"])
	if err := protojson.Unmarshal(spec, specOf(typed)); err != nil {
		t.Fatalf("%s %s: spec does not decode as Istio's type: %v\n%s", u.GetKind(), u.GetName(), err, spec)
	}
}

// roundTrip checks that u is exactly an Istio object: decoded strictly into the
// Istio Go type at the right version and encoded again, it is unchanged.
func roundTrip(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	want := map[string]string{
		"ServiceEntry": istio.NetworkingV1, "DestinationRule": istio.NetworkingV1, "Gateway": istio.NetworkingV1,
		"VirtualService": istio.NetworkingV1, "AuthorizationPolicy": istio.SecurityV1, "PeerAuthentication": istio.SecurityV1,
	}[u.GetKind()]
	if want == "" || u.GetAPIVersion() != want {
		t.Fatalf("%s %s has apiVersion %s, want %s", u.GetKind(), u.GetName(), u.GetAPIVersion(), want)
	}
	typed := typedFor(u.GetKind())
	data, _ := json.Marshal(u.Object)
	if err := json.Unmarshal(data, typed); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	fromUnstructured(t, u, typed)
	again, err := json.Marshal(typed)
	if err != nil {
		t.Fatal(err)
	}
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
