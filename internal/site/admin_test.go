package site

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
)

// FuzzDecodeObject feeds the body decoder of every PUT /v1/KIND/{name}: it
// must refuse or accept without panicking, and what it accepts is a valid
// object of that name that encodes and decodes to itself.
func FuzzDecodeObject(f *testing.F) {
	f.Add(uint8(0), []byte(`{"spec":{"address":"x","target":"127.0.0.1:9","protocol":"http","maxConnections":3}}`))
	f.Add(uint8(1), []byte(`{"metadata":{"name":"x"},"spec":{"address":"x","port":8080,"protocol":"http","hedge":"auto"}}`))
	f.Add(uint8(2), []byte(`{"spec":{"delivery":"persisted","retention":"24h"}}`))
	f.Add(uint8(3), []byte(`{"spec":{"delivery":"persisted"}}`))
	f.Add(uint8(4), []byte(`{"spec":{"topic":"orders.>","sink":"http://127.0.0.1:9/","retry":5,"backoffDelay":"1s"}}`))
	f.Add(uint8(0), []byte(`[[[[`))
	f.Add(uint8(5), []byte(`{"spec":{"cost":10,"token":{"spec":{"id":"a","secret":"b","issuerID":"00112233445566778899aabbccddeeff","issuerName":"b","addresses":["127.0.0.1:1"],"ca":"x"}}}}`))
	f.Add(uint8(6), []byte(`{"spec":{"address":"orders.>","organisations":["7d793037a0760186574b0282f2f435e7"]}}`))
	f.Add(uint8(7), []byte(`{"spec":{"address":"inventory","organisations":["00000000000000000000000000000000"]}}`))
	kinds := []func() object{
		func() object { return &resource.Connector{} },
		func() object { return &resource.Listener{} },
		func() object { return &resource.Topic{} },
		func() object { return &resource.Queue{} },
		func() object { return &resource.Subscription{} },
		func() object { return &resource.Link{} },
		func() object { return &resource.AddressExport{} },
		func() object { return &resource.AddressImport{} },
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		newObj := kinds[int(kind)%len(kinds)]
		obj := newObj()
		r := httptest.NewRequest("PUT", "/v1/things/x", bytes.NewReader(body))
		r.SetPathValue("name", "x")
		if decodeObject(r, obj) != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
		}
		if obj.GetName() != "x" {
			t.Fatalf("accepted the name %q for the path's x", obj.GetName())
		}
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("accepted object does not encode: %v", err)
		}
		again := newObj()
		r = httptest.NewRequest("PUT", "/v1/things/x", bytes.NewReader(b))
		r.SetPathValue("name", "x")
		if err := decodeObject(r, again); err != nil {
			t.Fatalf("accepted object %s does not decode again: %v", b, err)
		}
	})
}

func FuzzTokenRequest(f *testing.F) {
	f.Add(`{"expires":"15m","uses":3}`)
	f.Add(`{"uses":-1}`)
	f.Add(`{"expires":"-1s"}`)
	f.Add(`{"uses":0}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req apitype.TokenRequest
		r := httptest.NewRequest("POST", "/v1/tokens", strings.NewReader(body))
		if decodeBody(r, &req) != nil {
			return
		}
		ttl, uses, err := parseTokenRequest(req)
		if err == nil && (ttl <= 0 || uses < 1 || uses > identity.MaxTokenUses) {
			t.Fatalf("accepted %s as ttl %v, %d uses", body, ttl, uses)
		}
	})
}
