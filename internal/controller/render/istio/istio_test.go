package istio_test

import (
	"slices"
	"strings"
	"testing"

	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/istio"
	"weft.dev/weft/internal/controller/render/rendertest"
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
		rendertest.RoundTrip(t, rendertest.Unstructured(t, p.Object))
	}
	return ps
}

func TestGolden(t *testing.T) {
	for _, tc := range rendertest.IstioCases {
		t.Run(tc.Name, func(t *testing.T) {
			rendertest.Golden(t, tc.Name, rendertest.YAML(t, renderIstio(t, tc.Intents...)))
		})
	}
}

// find returns the placement of kind/name in cluster, or fails.
func find(t *testing.T, ps []render.Placement, cluster, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, p := range ps {
		if p.Cluster == cluster && p.Object.Kind == kind && p.Object.Name == name {
			return rendertest.Unstructured(t, p.Object)
		}
	}
	t.Fatalf("no %s %s in cluster %s", kind, name, cluster)
	return nil
}

func has(ps []render.Placement, cluster, kind string) bool {
	return slices.ContainsFunc(ps, func(p render.Placement) bool { return p.Cluster == cluster && p.Object.Kind == kind })
}

// TestIntercluster checks the assertions field by field, independently of
// the golden file.
func TestIntercluster(t *testing.T) {
	ps := renderIstio(t, rendertest.Intercluster)
	se := rendertest.Decode(t, find(t, ps, "west", "ServiceEntry", "web-orders")).(*netv1.ServiceEntry)
	if len(se.Spec.Endpoints) != 1 || se.Spec.Endpoints[0].Address != "192.0.2.10" || se.Spec.Endpoints[0].Ports["http-8080"] != 15443 {
		t.Errorf("west ServiceEntry endpoints = %v, want 192.0.2.10 with http-8080: 15443", se.Spec.Endpoints)
	}
	if se.Spec.Endpoints[0].Locality != "us-east/zone1" || se.Spec.Hosts[0] != "orders.shop.svc.cluster.local" {
		t.Errorf("west ServiceEntry = %v", &se.Spec)
	}
	dr := rendertest.Decode(t, find(t, ps, "west", "DestinationRule", "web-orders")).(*netv1.DestinationRule)
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
	gw := rendertest.Decode(t, find(t, ps, "east", "Gateway", istio.CrossNetworkGateway)).(*netv1.Gateway)
	if s := gw.Spec.Servers[0]; s.GetTls().GetMode().String() != "AUTO_PASSTHROUGH" || s.GetPort().GetNumber() != 15443 {
		t.Errorf("east Gateway server = %v", s)
	}
	if has(ps, "east", "DestinationRule") || has(ps, "west", "Gateway") {
		t.Error("east has no clients and west serves no remote client: no DestinationRule in east, no Gateway in west")
	}
	ap := rendertest.Decode(t, find(t, ps, "east", "AuthorizationPolicy", "web-orders")).(*secv1.AuthorizationPolicy)
	if got := ap.Spec.Rules[0].From[0].Source.Principals; !slices.Equal(got, []string{"cluster.local/ns/shop/sa/web"}) {
		t.Errorf("east AuthorizationPolicy principals = %v", got)
	}
	find(t, ps, "east", "PeerAuthentication", "web-orders")
}

func TestIntracluster(t *testing.T) {
	ps := renderIstio(t, rendertest.Intracluster)
	for _, c := range []string{"east", "west"} {
		deny := rendertest.Decode(t, find(t, ps, c, "AuthorizationPolicy", istio.DenyAll)).(*secv1.AuthorizationPolicy)
		if deny.Spec.Rules != nil || deny.Spec.Action != 0 {
			t.Errorf("%s deny-all = %v, want an empty spec", c, &deny.Spec)
		}
		allow := rendertest.Decode(t, find(t, ps, c, "AuthorizationPolicy", "web-orders-local")).(*secv1.AuthorizationPolicy)
		r := allow.Spec.Rules[0]
		if !slices.Equal(r.From[0].Source.Principals, []string{"cluster.local/ns/shop/sa/web"}) {
			t.Errorf("%s principals = %v", c, r.From[0].Source.Principals)
		}
		if op := r.To[0].Operation; !slices.Equal(op.Methods, []string{"GET", "POST"}) || !slices.Equal(op.Paths, []string{"/orders/*"}) || !slices.Equal(op.Ports, []string{"8080"}) {
			t.Errorf("%s operation = %v", c, op)
		}
		pa := rendertest.Decode(t, find(t, ps, c, "PeerAuthentication", "web-orders-local")).(*secv1.PeerAuthentication)
		if pa.Spec.GetMtls().GetMode().String() != "STRICT" {
			t.Errorf("%s PeerAuthentication = %v", c, &pa.Spec)
		}
	}
}

func TestExternal(t *testing.T) {
	ps := renderIstio(t, rendertest.OutboundTLS, rendertest.InboundMutual)
	se := rendertest.Decode(t, find(t, ps, "west", "ServiceEntry", "web-payments")).(*netv1.ServiceEntry)
	if se.Spec.Location.String() != "MESH_EXTERNAL" || !slices.Equal(se.Spec.Hosts, []string{"api.payments.example", "audit.example"}) || len(se.Spec.Ports) != 2 {
		t.Errorf("outbound ServiceEntry = %v", &se.Spec)
	}
	find(t, ps, "west", "Gateway", "web-payments-egress")
	find(t, ps, "west", "DestinationRule", "web-payments-egress")
	find(t, ps, "west", "VirtualService", "web-payments-egress-1")
	if has(ps, "east", "ServiceEntry") {
		t.Error("web does not run in east")
	}
	gw := rendertest.Decode(t, find(t, ps, "east", "Gateway", "orders-public-ingress")).(*netv1.Gateway)
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
	noGW := rendertest.Input(rendertest.Intent(t, rendertest.Intercluster))
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
