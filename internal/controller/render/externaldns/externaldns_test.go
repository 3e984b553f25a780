package externaldns_test

import (
	"testing"

	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/externaldns"
	"weft.dev/weft/internal/controller/render/rendertest"
)

const inbound = `{"metadata":{"name":"orders-public"},"spec":{"type":"external-inbound","server":"orders","externalName":"orders.shop.example.com"}}`

func TestGolden(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"dns-provider-rfc2136", `{"metadata":{"name":"bind"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:5353","zone":"example.com","tsigKeyName":"weft","tsigSecret":"c2VjcmV0"}}`},
		{"dns-provider-external-dns", `{"metadata":{"name":"edns"},"spec":{"type":"dns-provider","provider":"external-dns","zone":"example.com","clusterSelector":{"region":"us-east"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := externaldns.Renderer{}.Render(rendertest.Input(rendertest.Intent(t, inbound), rendertest.Intent(t, tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) == 0 {
				t.Fatal("no DNSEndpoint rendered")
			}
			rendertest.Golden(t, tc.name, rendertest.YAML(t, ps))
		})
	}
}

// TestRFC2136 checks that both clusters' ingress addresses back the one name.
func TestRFC2136(t *testing.T) {
	ps, err := externaldns.Renderer{}.Render(rendertest.Input(rendertest.Intent(t, inbound),
		rendertest.Intent(t, `{"metadata":{"name":"bind"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:5353","zone":"example.com"}}`)))
	if err != nil || len(ps) != 1 || ps[0].Kind != render.TargetRFC2136 || ps[0].DNS.Zone != "example.com" {
		t.Fatalf("placements = %+v, %v", ps, err)
	}
	ep := ps[0].Object.Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if ep["dnsName"] != "orders.shop.example.com" || ep["recordType"] != "A" || len(ep["targets"].([]any)) != 2 {
		t.Errorf("endpoint = %v", ep)
	}
}
