package reconcile

import (
	"testing"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/test/envtest"
)

func dnsEndpoint(name string, endpoints ...any) *unstructured.Unstructured {
	return managed(map[string]any{
		"apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
		"metadata": map[string]any{"name": name, "namespace": "shop"},
		"spec":     map[string]any{"endpoints": endpoints},
	})
}

func aRecords(t *testing.T, addr, name string) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := new(dns.Client).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Answer)
}

// Records appear in a real BIND when a DNSEndpoint is desired and disappear
// when it no longer is.
func TestRFC2136Backend(t *testing.T) {
	const key, secret = "weft-test.", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
	addr := envtest.StartBIND(t, "example.test", key, secret)
	target := Target{Name: "p1/dns/orders", Kind: "rfc2136", DNS: &DNSServer{Server: addr, Zone: "example.test", TSIGKeyName: key, TSIGSecret: secret}}
	h := newHarness(t)
	ep := dnsEndpoint("orders", map[string]any{"dnsName": "orders.example.test", "recordType": "A", "targets": []any{"192.0.2.10"}, "recordTTL": int64(60)})
	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{ep}})
	h.e.Trigger()
	h.drain(t)
	if s := h.sink.last()["orders"]; s.State != StateApplied {
		t.Fatalf("status = %+v", s)
	}
	if n := aRecords(t, addr, "orders.example.test."); n != 1 {
		t.Fatalf("%d A records after apply, want 1", n)
	}

	h.src.set(Desired{Target: target})
	h.e.Trigger()
	h.drain(t)
	if n := aRecords(t, addr, "orders.example.test."); n != 0 {
		t.Fatalf("%d A records after the endpoint left the desired state", n)
	}
	if s := h.sink.last()["orders"]; s.State != StateDeleted {
		t.Errorf("status = %+v", s)
	}
}
