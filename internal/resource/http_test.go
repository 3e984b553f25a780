package resource

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHTTPDefaults(t *testing.T) {
	got, err := Decode(strings.NewReader(`
apiVersion: weft.dev/v1alpha1
kind: Connector
metadata: {name: web}
spec: {target: "127.0.0.1:80", protocol: http, maxRequests: 4, outlier: {consecutiveErrors: 2, baseEjection: 2s}}
---
apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: web}
spec: {port: 0, protocol: http, hedge: 50ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := got[0].Object.(*Connector)
	o := c.Spec.Outlier
	if c.Spec.MaxRequests != 4 || o.ConsecutiveErrors != 2 || o.BaseEjection.Duration != 2*time.Second ||
		o.Interval.Duration != DefaultOutlierInterval || o.MaxEjectionPercent != DefaultOutlierMaxEjectionPercent {
		t.Errorf("connector: %+v", c.Spec)
	}
	l := got[1].Object.(*Listener)
	if l.Spec.Hedge != "50ms" || l.Spec.Retries == nil || *l.Spec.Retries != DefaultRetries {
		t.Errorf("listener: %+v", l.Spec)
	}
	var plain Listener
	plain.Name = "x"
	if err := plain.Default(); err != nil || plain.Spec.Hedge != HedgeOff {
		t.Errorf("plain listener: %v %+v", err, plain.Spec)
	}
}

func TestHTTPInvalid(t *testing.T) {
	for _, spec := range []string{
		`kind: Listener
spec: {address: a, hedge: sometimes}`,
		`kind: Listener
spec: {address: a, hedge: -5ms}`,
		`kind: Listener
spec: {address: a, retries: -1}`,
		`kind: Connector
spec: {address: a, target: "h:1", outlier: {maxEjectionPercent: 101}}`,
		`kind: Connector
spec: {address: a, target: "h:1", outlier: {consecutiveErrors: -2}}`,
		`kind: Connector
spec: {address: a, target: "h:1", outlier: {interval: -1s}}`,
	} {
		_, err := Decode(strings.NewReader("apiVersion: weft.dev/v1alpha1\n" + spec))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", spec, err)
		}
	}
}
