package service

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/resource"
)

func TestAddressViewLocalPart(t *testing.T) {
	local := func(name, proto string, maxConns, maxReqs uint32) localConnector {
		return localConnector{c: &connector{}, name: name, spec: resource.ConnectorSpec{
			Protocol: proto, Capacity: 1, MaxConnections: maxConns, MaxRequests: maxReqs,
			Outlier: resource.OutlierSpec{ConsecutiveErrors: len(name), BaseEjection: metav1.Duration{Duration: time.Second}},
		}}
	}
	for _, tc := range []struct {
		name      string
		local     []localConnector
		tcp, http balance.Limits
		instances []balance.Key
		outlier   int // ConsecutiveErrors of the configuration
	}{
		{name: "none", outlier: balance.DefaultConsecutiveErrors},
		{
			name:      "limits add up",
			local:     []localConnector{local("h1", "http", 1, 2), local("h22", "http", 3, 4)},
			tcp:       balance.Limits{MaxConnections: 4, MaxRequests: 6},
			http:      balance.Limits{MaxConnections: 4, MaxRequests: 6},
			instances: []balance.Key{"h1", "h22"},
			outlier:   2, // the first http connector by name
		},
		{
			name:      "one unlimited connector makes the site unlimited",
			local:     []localConnector{local("h1", "http", 1, 2), local("h22", "http", 0, 4)},
			tcp:       balance.Limits{MaxRequests: 6},
			http:      balance.Limits{MaxRequests: 6},
			instances: []balance.Key{"h1", "h22"},
			outlier:   2,
		},
		{
			name:      "tcp connectors count for tcp only",
			local:     []localConnector{local("h1", "http", 1, 0), local("t333", "tcp", 5, 0)},
			tcp:       balance.Limits{MaxConnections: 6},
			http:      balance.Limits{MaxConnections: 1},
			instances: []balance.Key{"h1"},
			outlier:   2,
		},
	} {
		v := newAddressView([16]byte{1}, "web", nil, tc.local)
		if got := localLimits(v.local, ""); got != tc.tcp {
			t.Errorf("%s: tcp limits %+v, want %+v", tc.name, got, tc.tcp)
		}
		if got := localLimits(v.local, resource.ProtocolHTTP); got != tc.http {
			t.Errorf("%s: http limits %+v, want %+v", tc.name, got, tc.http)
		}
		var keys []balance.Key
		for _, c := range v.instances {
			keys = append(keys, c.Key)
		}
		if len(keys) != len(tc.instances) || len(keys) > 0 && keys[len(keys)-1] != tc.instances[len(keys)-1] {
			t.Errorf("%s: instances %v, want %v", tc.name, keys, tc.instances)
		}
		if got := v.outlier.Outlier.ConsecutiveErrors; got != tc.outlier {
			t.Errorf("%s: outlier configuration from the wrong connector: %d errors, want %d", tc.name, got, tc.outlier)
		}
	}
}

func TestAddressViewCandidates(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("b", "c", 2)
	w.connector("a", tcpConnector("web", "web", "127.0.0.1:1"))
	w.connector("b", httpConnector("web", "web", "127.0.0.1:1"))
	w.connector("c", httpConnector("web", "web", "127.0.0.1:1"))
	a := w.site("a")
	lc := a.m.localConnectorsLocked(a.m.lookup("web"))
	lc[0].spec.MaxConnections = 7
	v := newAddressView(a.fs.ID, "web", a.Table(), lc)
	if len(v.tcp.list) != 3 || v.tcp.list[0].Limits.MaxConnections != 7 || v.tcp.list[2].Cost != 3 {
		t.Errorf("tcp candidates %+v: want a (with its limit), b, c by cost", v.tcp.list)
	}
	if len(v.http.list) != 2 || v.http.routes[v.http.list[1].Key].SiteName != "c" {
		t.Errorf("http candidates %+v: want b and c, a serves tcp", v.http.list)
	}
	if !v.reaches(v.http.routes[v.http.list[1].Key].Path) || v.reaches(nil) {
		t.Error("reaches: the path to c is not reached, or the empty one is")
	}
}

// TestDepartedSitesLoseTheirPooledStreams: a keeps idle link streams to
// b for the next requests. When b no longer serves the address, the new
// table makes a close them at once rather than after the idle timeout.
func TestDepartedSitesLoseTheirPooledStreams(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", 2)
	atB, atC := startBackend(t, "at-b"), startBackend(t, "at-c")
	w.connector("b", httpConnector("web", "web", atB.addr))
	w.connector("c", httpConnector("web", "web", atC.addr))
	url := "http://" + w.listener("a", httpListener("web", ""))
	client := newClient(t)
	if _, body, err := get(client, url); err != nil || body != "at-b" {
		t.Fatalf("first request: %q %v", body, err)
	}
	a, b := w.site("a"), w.site("b")
	toB := a.fs.Session(b.fs.ID)
	if toB.Stats().StreamsActive == 0 {
		t.Fatal("no pooled stream to b after a request")
	}

	b.m.DeleteConnector("web")
	w.route()
	if n := len(a.m.lookup("web").allRemotes()); n != 0 {
		t.Errorf("%d pooled transports at a, want none: b's is gone", n)
	}
	waitFor(t, "the idle stream to b to close", func() bool { return toB.Stats().StreamsActive == 0 })
	if _, body, err := get(client, url); err != nil || body != "at-c" {
		t.Errorf("after b left: %q %v", body, err)
	}
}
