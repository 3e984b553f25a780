package externaldns_test

import (
	"testing"

	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/externaldns"
	"weft.dev/weft/internal/controller/render/rendertest"
)

func TestGolden(t *testing.T) {
	for _, tc := range rendertest.DNSCases {
		t.Run(tc.Name, func(t *testing.T) {
			ps, err := externaldns.Renderer{}.Render(tc.Input(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) == 0 {
				t.Fatal("no DNSEndpoint rendered")
			}
			rendertest.Golden(t, tc.Name, rendertest.YAML(t, ps))
		})
	}
}

// TestRFC2136 checks that both clusters' ingress addresses back the one name.
func TestRFC2136(t *testing.T) {
	ps, err := externaldns.Renderer{}.Render(rendertest.Input(rendertest.Intent(t, rendertest.InboundName),
		rendertest.Intent(t, `{"metadata":{"name":"bind"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:5353","zone":"example.com"}}`)))
	if err != nil || len(ps) != 1 || ps[0].Kind != render.TargetRFC2136 || ps[0].DNS.Zone != "example.com" {
		t.Fatalf("placements = %+v, %v", ps, err)
	}
	ep := ps[0].Object.Spec.(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if ep["dnsName"] != "orders.shop.example.com" || ep["recordType"] != "A" || len(ep["targets"].([]any)) != 2 {
		t.Errorf("endpoint = %v", ep)
	}
}
