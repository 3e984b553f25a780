package model_test

import (
	"encoding/json"
	"errors"
	"reflect"
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

// FuzzIntentDecode checks that the decoder never panics and that whatever it
// accepts survives a round trip unchanged (validation is idempotent).
func FuzzIntentDecode(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"protocol":"HTTP","port":8080,"mutualTLS":true,"circuitBreaking":{"maxConnections":1,"consecutiveErrors":1,"interval":"1s","baseEjectionTime":"1m","maxEjectionPercent":100}}}`,
		`{"metadata":{"name":"o"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"api.example.com","port":443}],"protocol":"TLS","egressGateway":true}}`,
		`{"metadata":{"name":"i","labels":{"a":"b"}},"spec":{"type":"external-inbound","server":"orders","externalName":"o.example.com","tls":{"mode":"MUTUAL","credentialName":"c"},"access":[{"methods":["GET"],"paths":["/x/*"]}]}}`,
		`{"metadata":{"name":"d"},"spec":{"type":"dns-provider","provider":"external-dns","zone":"example.com","clusterSelector":{"region":"us"}}}`,
		`{}`, `[]`, `null`, `{"spec":{"type":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := model.DecodeIntent(data)
		if err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		in2, err := model.DecodeIntent(again)
		if err != nil {
			t.Fatalf("accepted intent fails after a round trip: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(in, in2) {
			t.Fatalf("round trip changed the intent:\n%+v\n%+v", in, in2)
		}
	})
}
