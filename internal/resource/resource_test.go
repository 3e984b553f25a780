package resource

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	in := `
apiVersion: weft.dev/v1alpha1
kind: Connector
metadata: {name: orders}
spec: {target: "10.0.0.5:8080"}
---
# a comment only
---
apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: orders}
spec: {port: 9090}
---
{"apiVersion":"weft.dev/v1alpha1","kind":"Link","metadata":{"name":"east"},"spec":{"cost":5}}
`
	got, err := Decode(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d objects, want 3", len(got))
	}
	c := got[0].Object.(*Connector)
	if c.Spec.Address != "orders" || c.Spec.Protocol != ProtocolTCP || c.Spec.Capacity != 1 {
		t.Errorf("connector defaults: %+v", c.Spec)
	}
	l := got[1].Object.(*Listener)
	if l.Spec.Host != "127.0.0.1" || l.Spec.Port != 9090 || l.Spec.Address != "orders" {
		t.Errorf("listener defaults: %+v", l.Spec)
	}
	if k := got[2].Object.(*Link); k.Spec.Cost != 5 || k.Name != "east" {
		t.Errorf("link: %+v", k)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"version", "apiVersion: v1\nkind: Listener\n", "document 1: invalid resource: apiVersion"},
		{"kind", "apiVersion: weft.dev/v1alpha1\nkind: Pod\n", "kind: \"Pod\""},
		{"unknown field", "apiVersion: weft.dev/v1alpha1\nkind: Listener\nmetadata: {name: a}\nspec: {port: 1, bogus: 2}\n", "bogus"},
		{"bad port", "apiVersion: weft.dev/v1alpha1\nkind: Listener\nmetadata: {name: a}\nspec: {port: 70000}\n", "spec.port"},
		{"bad target", "apiVersion: weft.dev/v1alpha1\nkind: Connector\nmetadata: {name: a}\nspec: {target: nope}\n", "spec.target"},
		{"bad protocol", "apiVersion: weft.dev/v1alpha1\nkind: Connector\nmetadata: {name: a}\nspec: {target: 'h:1', protocol: udp}\n", "spec.protocol"},
		{"bad name", "apiVersion: weft.dev/v1alpha1\nkind: Connector\nmetadata: {name: A_B}\nspec: {target: 'h:1'}\n", "metadata.name"},
		{"second doc", "apiVersion: weft.dev/v1alpha1\nkind: Connector\nmetadata: {name: a}\nspec: {target: 'h:1'}\n---\nkind: X\napiVersion: weft.dev/v1alpha1\n", "document 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) && tc.name != "second doc" {
				t.Errorf("err %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("apiVersion: weft.dev/v1alpha1\nkind: Connector\nmetadata: {name: a}\nspec: {target: 'h:1'}\n"))
	f.Add([]byte("{\"apiVersion\":\"weft.dev/v1alpha1\",\"kind\":\"Listener\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"port\":1}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := Decode(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.Object == nil {
				t.Fatal("nil object without error")
			}
		}
	})
}
