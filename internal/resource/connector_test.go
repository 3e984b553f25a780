package resource

import (
	"errors"
	"strings"
	"testing"
)

func TestConnectorTargets(t *testing.T) {
	for _, c := range []struct {
		name       string
		spec       ConnectorSpec
		wantTarget string
		wantErr    string
	}{
		{"target", ConnectorSpec{Target: "10.0.0.1:80"}, "10.0.0.1:80", ""},
		{"host and port", ConnectorSpec{Host: "db.example", Port: 5432}, "db.example:5432", ""},
		{"ipv6 host", ConnectorSpec{Host: "::1", Port: 80}, "[::1]:80", ""},
		{"selector stays", ConnectorSpec{Selector: "app=orders,tier in (web)", Port: 80}, "", ""},
		{"nothing", ConnectorSpec{}, "", "set exactly one of target"},
		{"two", ConnectorSpec{Target: "a:1", Selector: "app=x", Port: 1}, "", "set exactly one of target"},
		{"host without port", ConnectorSpec{Host: "db"}, "", "spec.port"},
		{"selector without port", ConnectorSpec{Selector: "app=x"}, "", "spec.port"},
		{"bad selector", ConnectorSpec{Selector: "app in (x", Port: 1}, "", "spec.selector"},
	} {
		k := Connector{Spec: c.spec}
		k.Name = "c"
		err := k.Default()
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantErr)
		case err == nil && k.Spec.Target != c.wantTarget:
			t.Errorf("%s: target %q, want %q", c.name, k.Spec.Target, c.wantTarget)
		}
	}
}

// A Listener read back from a cluster carries status; weft apply accepts
// the same document.
func TestDecodeWithStatus(t *testing.T) {
	objs, err := Decode(strings.NewReader(`apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: orders}
spec: {port: 8080}
status:
  observedGeneration: 1
  conditions:
  - {type: Ready, status: "True", reason: Listening, message: ok, lastTransitionTime: "2026-01-01T00:00:00Z"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if l := objs[0].Object.(*Listener); l.Spec.Port != 8080 || len(l.Status.Conditions) != 1 {
		t.Fatalf("%+v", l)
	}
}
