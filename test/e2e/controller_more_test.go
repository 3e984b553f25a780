package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"weft.dev/weft/test/envtest"
)

var (
	gvrVS          = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	gvrDNSEndpoint = schema.GroupVersionResource{Group: "externaldns.k8s.io", Version: "v1alpha1", Resource: "dnsendpoints"}
)

// ingressClusterBody is clusterBody with an ingress gateway, whose address
// published names take.
func ingressClusterBody(t *testing.T, name, region, gwAddr, ingressAddr string, k *envtest.KubeAPI) string {
	t.Helper()
	var cl map[string]any
	if err := json.Unmarshal([]byte(clusterBody(name, region, gwAddr, k)), &cl); err != nil {
		t.Fatal(err)
	}
	cl["spec"].(map[string]any)["ingressGateway"] = map[string]any{"address": ingressAddr, "port": 443}
	body, _ := json.Marshal(cl)
	return string(body)
}

// dnsEndpoints lists the DNSEndpoints in the cluster (nil if it cannot).
func dnsEndpoints(t *testing.T, dc dynamic.Interface) []unstructured.Unstructured {
	t.Helper()
	l, err := dc.Resource(gvrDNSEndpoint).List(kubeCtx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing DNSEndpoints: %v", err)
	}
	return l.Items
}

// TestControllerExternalDNSAndEgress drives the real controller against two
// real kube-apiservers. A dns-provider intent with the external-dns provider
// lands a DNSEndpoint in the cluster its selector picks, and only there, and
// withdraws it when the intent is deleted. An external-outbound intent with
// egressGateway lands its MESH_EXTERNAL ServiceEntry and the egress Gateway,
// VirtualServices and DestinationRule, and deleting it removes them.
func TestControllerExternalDNSAndEgress(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two kube-apiservers")
	}
	east, eastDC := startIstioCluster(t)
	west, westDC := startIstioCluster(t)
	c := startController(t, t.TempDir())

	const group = "/v2/projects/p1/apps/shop/v1/traffic-groups/g1"
	c.call("POST", "/v2/projects", `{"metadata":{"name":"p1"}}`, http.StatusCreated)
	c.call("POST", "/v2/projects/p1/clusters", ingressClusterBody(t, "east", "us-east", "192.0.2.10", "198.51.100.10", east), http.StatusCreated)
	c.call("POST", "/v2/projects/p1/clusters", ingressClusterBody(t, "west", "us-west", "192.0.2.20", "198.51.100.20", west), http.StatusCreated)
	c.call("POST", "/v2/projects/p1/apps", `{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[
		{"name":"orders","namespace":"shop","port":8080,"protocol":"HTTP","serviceAccount":"orders","clusters":["east","west"]},
		{"name":"web","namespace":"shop","port":80,"protocol":"HTTP","serviceAccount":"web","clusters":["west"]}]}}`, http.StatusCreated)
	c.call("POST", "/v2/projects/p1/apps/shop/v1/traffic-groups", `{"metadata":{"name":"g1"}}`, http.StatusCreated)
	c.call("POST", group+"/intents", `{"metadata":{"name":"orders-public"},"spec":{"type":"external-inbound","server":"orders","externalName":"orders.shop.example.com"}}`, http.StatusCreated)
	c.call("POST", group+"/intents", `{"metadata":{"name":"edns"},"spec":{"type":"dns-provider","provider":"external-dns","zone":"example.com","clusterSelector":{"region":"us-east"}}}`, http.StatusCreated)
	c.call("POST", group+"/intents", `{"metadata":{"name":"web-payments"},"spec":{"type":"external-outbound","server":"web",
		"clients":[{"fqdn":"api.payments.example"},{"fqdn":"audit.example","port":8443}],"protocol":"TLS","egressGateway":true}}`, http.StatusCreated)
	c.call("POST", group+"/apply", "", http.StatusAccepted)
	waitFor(t, 60*time.Second, "status applied", func() bool { return c.status(group).State == "applied" })

	// Each object egress needs, in the cluster where web runs.
	egress := []struct {
		gvr  schema.GroupVersionResource
		name string
	}{
		{gvrSE, "web-payments"},
		{gvrGW, "web-payments-egress"},
		{gvrDR, "web-payments-egress"},
		{gvrVS, "web-payments-egress-0"},
		{gvrVS, "web-payments-egress-1"},
	}

	t.Run("external-dns DNSEndpoint lands in the selected cluster", func(t *testing.T) {
		ep := kubeGet(eastDC, gvrDNSEndpoint, "default", "edns-orders-shop-example-com")
		if ep == nil {
			t.Fatal("east has no DNSEndpoint edns-orders-shop-example-com")
		}
		eps, _, _ := unstructured.NestedSlice(ep.Object, "spec", "endpoints")
		if len(eps) != 1 {
			t.Fatalf("endpoints = %v, want one", eps)
		}
		e := eps[0].(map[string]any)
		targets, _, _ := unstructured.NestedStringSlice(e, "targets")
		if e["dnsName"] != "orders.shop.example.com" || e["recordType"] != "A" || !slices.Equal(targets, []string{"198.51.100.10"}) {
			t.Errorf("endpoint = %v, want orders.shop.example.com A 198.51.100.10", e)
		}
		if l := dnsEndpoints(t, westDC); len(l) != 0 {
			t.Errorf("west, which the selector leaves out, has DNSEndpoints %v", l)
		}
	})

	t.Run("external-outbound with egressGateway lands its egress objects", func(t *testing.T) {
		for _, o := range egress {
			if kubeGet(westDC, o.gvr, "shop", o.name) == nil {
				t.Errorf("west has no %s %s", o.gvr.Resource, o.name)
			}
		}
		se := kubeGet(westDC, gvrSE, "shop", "web-payments")
		if se == nil {
			t.FailNow()
		}
		// MESH_EXTERNAL is the zero value of Istio's enum, which the Istio
		// types leave out and the server defaults to.
		loc, _, _ := unstructured.NestedString(se.Object, "spec", "location")
		hosts, _, _ := unstructured.NestedStringSlice(se.Object, "spec", "hosts")
		if (loc != "" && loc != "MESH_EXTERNAL") || !slices.Equal(hosts, []string{"api.payments.example", "audit.example"}) {
			t.Errorf("ServiceEntry location %q hosts %v, want MESH_EXTERNAL for api.payments.example and audit.example", loc, hosts)
		}
		if kubeGet(eastDC, gvrSE, "shop", "web-payments") != nil {
			t.Error("east, where web does not run, got the egress ServiceEntry")
		}
	})

	t.Run("deleting the dns-provider intent withdraws the DNSEndpoint", func(t *testing.T) {
		c.call("DELETE", group+"/intents/edns", "", http.StatusNoContent)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		waitFor(t, 60*time.Second, "east's DNSEndpoint removed", func() bool {
			return gone(eastDC, gvrDNSEndpoint, "default", "edns-orders-shop-example-com")
		})
		if kubeGet(eastDC, gvrGW, "shop", "orders-public-ingress") == nil {
			t.Error("deleting the dns-provider intent removed the exposed service's ingress Gateway")
		}
	})

	t.Run("deleting the external-outbound intent removes its egress objects", func(t *testing.T) {
		c.call("DELETE", group+"/intents/web-payments", "", http.StatusNoContent)
		c.call("POST", group+"/apply", "", http.StatusAccepted)
		waitFor(t, 60*time.Second, "west's egress objects removed", func() bool {
			for _, o := range egress {
				if !gone(westDC, o.gvr, "shop", o.name) {
					return false
				}
			}
			return true
		})
		waitFor(t, 30*time.Second, "status applied", func() bool { return c.status(group).State == "applied" })
	})
}
