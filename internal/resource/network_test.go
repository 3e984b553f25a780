package resource

import (
	"errors"
	"strings"
	"testing"
)

func TestNetworkDecodeAndValidate(t *testing.T) {
	objs, err := Decode(strings.NewReader(`apiVersion: weft.dev/v1alpha1
kind: Network
metadata: {name: blue}
spec: {cidr: 100.100.0.0/16}
---
apiVersion: weft.dev/v1alpha1
kind: NetworkAttachment
metadata: {name: app1}
spec: {network: blue, netns: app1, ip: 100.100.1.7, dns: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, a := objs[0].Object.(*Network), objs[1].Object.(*NetworkAttachment)
	if n.Spec.MTU != 1400 || a.Spec.Netns != "app1" || !a.Spec.DNS {
		t.Fatalf("decoded %+v %+v", n, a)
	}
	for name, o := range map[string]Object{
		"cidr":       &Network{Spec: NetworkSpec{CIDR: "fd00::/64"}},
		"no network": &NetworkAttachment{Spec: NetworkAttachmentSpec{Netns: "x"}},
		"no netns":   &NetworkAttachment{Spec: NetworkAttachmentSpec{Network: "x"}},
		"ip":         &NetworkAttachment{Spec: NetworkAttachmentSpec{Network: "x", Netns: "x", IP: "100.100.1"}},
	} {
		o.SetName("x")
		var fe *FieldError
		if err := o.Default(); !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a field error", name, err)
		}
	}
}
