package model_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"weft.dev/weft/internal/controller/model"
)

func TestDecodeIntentFieldPaths(t *testing.T) {
	for _, tc := range []struct{ body, field string }{
		{`{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"a","clients":[{"service":"b","extra":1}]}}`, "spec.clients[0].extra"},
		{`{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"a","clients":[{"service":"B"}]}}`, "spec.clients[0].service"},
		{`{"metadata":{"name":"i"},"spec":{"type":"external-outbound","server":"a","clients":[{"fqdn":"not a host"}]}}`, "spec.clients[0].fqdn"},
		{`{"metadata":{"name":"i"},"spec":{"type":"external-inbound","server":"a","externalName":"x.example","tls":{"mode":"NONE"}}}`, "spec.tls.mode"},
		{`{"metadata":{"name":"i"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1","zone":"example.com"}}`, "spec.dnsServer"},
		{`{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"a","clients":[{"service":"b"}],"circuitBreaking":{"maxEjectionPercent":101}}}`, "spec.circuitBreaking.maxEjectionPercent"},
		{`{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"a","clients":[{"service":"b"}],"access":[{"paths":["relative"]}]}}`, "spec.access[0].paths[0]"},
	} {
		_, err := model.DecodeIntent([]byte(tc.body))
		var fe *model.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%s: err %v, want a field error on %s", tc.body, err, tc.field)
		}
	}
	in, err := model.DecodeIntent([]byte(`{"metadata":{"name":"d"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:53","zone":"example.com.","tsigKeyName":"k","tsigSecret":"c2VjcmV0"}}`))
	if err != nil || in.Spec.TSIGAlgorithm != "hmac-sha256" || in.Spec.TTL != 60 {
		t.Fatalf("dns-provider defaults: %+v, %v", in, err)
	}
}

// fuzzDecode checks the decoder of one kind of object, as the API runs it:
// it never panics, refuses only with errors that wrap ErrInvalid, and whatever
// it accepts survives a round trip unchanged (validation is idempotent, the
// defaults it fills in are accepted as sent). Unchanged means the same JSON:
// an empty list or map sent ("labels":{}) is left out when stored, and comes
// back nil, which means the same.
func fuzzDecode[T any, PT interface {
	*T
	model.Object
}](f *testing.F, seeds ...string) {
	// Shapes every kind must refuse cleanly.
	seeds = append(seeds, `{}`, `[]`, `null`, `""`, `{"metadata":{"name":"a"}}]`, `{"metadata":{"name":1}}`,
		`{"metadata":{"name":"a","labels":{"k":"v"},"resourceVersion":"3","creationTimestamp":"2026-01-02T03:04:05+01:00"}}`)
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj := PT(new(T))
		if err := model.DecodeObject(data, obj); err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		again, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		obj2 := PT(new(T))
		if err := model.DecodeObject(again, obj2); err != nil {
			t.Fatalf("accepted object fails after a round trip: %v\n%s", err, again)
		}
		if again2, err := json.Marshal(obj2); err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("round trip changed the object (%v):\n%s\n%s", err, again, again2)
		}
	})
}

func FuzzProjectDecode(f *testing.F) {
	fuzzDecode[model.Project](f, `{"metadata":{"name":"p1"},"spec":{"description":"shop"}}`)
}

func FuzzClusterDecode(f *testing.F) {
	fuzzDecode[model.Cluster](f,
		`{"metadata":{"name":"east","labels":{"region":"us-east"}},"spec":{"mesh":"istio","locality":"us-east/zone1","eastWestGateway":{"address":"192.0.2.10","port":15443},"kubeconfig":"apiVersion: v1"}}`,
		`{"metadata":{"name":"w"},"spec":{"weft":{"admin":"http://127.0.0.1:7070","token":"t"},"ingressGateway":{"address":"198.51.100.1","port":443},"domain":"example.com","network":"n1"}}`,
		`{"metadata":{"name":"h"},"spec":{"weft":{"admin":"127.0.0.1:7070"}}}`)
}

func FuzzAppDecode(f *testing.F) {
	fuzzDecode[model.App](f, `{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[
		{"name":"orders","namespace":"shop","port":8080,"protocol":"HTTP","serviceAccount":"orders","clusters":["east","west"]},
		{"name":"web","namespace":"shop","port":80,"protocol":"TCP","clusters":["west"]}]}}`)
}

func FuzzTrafficGroupDecode(f *testing.F) {
	fuzzDecode[model.TrafficGroup](f, `{"metadata":{"name":"g1"},"spec":{"description":"all of shop"}}`)
}

// FuzzIntentDecode covers every intent type.
func FuzzIntentDecode(f *testing.F) {
	fuzzDecode[model.Intent](f,
		`{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"protocol":"HTTP","port":8080,"mutualTLS":true,"circuitBreaking":{"maxConnections":1,"consecutiveErrors":1,"interval":"1s","baseEjectionTime":"1m","maxEjectionPercent":100}}}`,
		`{"metadata":{"name":"orders-access"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}],"loadBalancing":"LEAST_REQUEST","access":[{"methods":["GET"],"paths":["/orders/*"]}]}}`,
		`{"metadata":{"name":"o"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"api.example.com","port":443}],"protocol":"TLS","egressGateway":true}}`,
		`{"metadata":{"name":"i","labels":{"a":"b"}},"spec":{"type":"external-inbound","server":"orders","externalName":"o.example.com","tls":{"mode":"MUTUAL","credentialName":"c"},"access":[{"methods":["GET"],"paths":["/x/*"]}]}}`,
		`{"metadata":{"name":"p"},"spec":{"type":"external-inbound","server":"orders","externalPrefix":"orders"}}`,
		`{"metadata":{"name":"d"},"spec":{"type":"dns-provider","provider":"external-dns","zone":"example.com","clusterSelector":{"region":"us"},"namespace":"dns"}}`,
		`{"metadata":{"name":"b"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:53","zone":"example.com.","tsigKeyName":"k","tsigSecret":"c2VjcmV0","ttl":30}}`,
		`{"spec":{"type":1}}`)
}
