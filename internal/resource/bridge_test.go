package resource

import (
	"errors"
	"strings"
	"testing"
)

func TestBridgeDecodeAndValidate(t *testing.T) {
	objs, err := Decode(strings.NewReader(`apiVersion: weft.dev/v1alpha1
kind: Bridge
metadata: {name: plant-mqtt}
spec:
  broker: mqtt://127.0.0.1:1883
  auth: {secretFile: /etc/weft/plant-mqtt.yaml}
  in:
  - {from: "sensors/+/temp", topic: plant.temp}
  out:
  - {topic: orders.created, to: "orders"}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := objs[0].Object.(*Bridge)
	if b.Kind != KindBridge || b.Spec.In[0].From != "sensors/+/temp" || b.Spec.Out[0].To != "orders" || BridgeScheme(b.Spec.Broker) != "mqtt" {
		t.Fatalf("decoded %+v", b)
	}
	for name, tc := range map[string]struct {
		b     Bridge
		field string
	}{
		"no broker":      {Bridge{Spec: BridgeSpec{Out: []BridgeOut{{Topic: "a", To: "b"}}}}, "spec.broker"},
		"unknown scheme": {Bridge{Spec: BridgeSpec{Broker: "redis://h:1", Out: []BridgeOut{{Topic: "a", To: "b"}}}}, "spec.broker"},
		"credentials":    {Bridge{Spec: BridgeSpec{Broker: "amqp://u:p@h:1", Out: []BridgeOut{{Topic: "a", To: "b"}}}}, "spec.broker"},
		"nothing":        {Bridge{Spec: BridgeSpec{Broker: "nats://h:1"}}, "spec"},
		"in both":        {Bridge{Spec: BridgeSpec{Broker: "nats://h:1", In: []BridgeIn{{From: "x", Topic: "a", Queue: "b"}}}}, "spec.in[0]"},
		"in no from":     {Bridge{Spec: BridgeSpec{Broker: "nats://h:1", In: []BridgeIn{{Topic: "a"}}}}, "spec.in[0].from"},
		"out no to":      {Bridge{Spec: BridgeSpec{Broker: "kafka://h:1", Out: []BridgeOut{{Topic: "a"}}}}, "spec.out[0].to"},
		"out both":       {Bridge{Spec: BridgeSpec{Broker: "nats://h:1", Out: []BridgeOut{{Topic: "a", Queue: "b", To: "c"}}}}, "spec.out[0]"},
		"out neither":    {Bridge{Spec: BridgeSpec{Broker: "nats://h:1", Out: []BridgeOut{{To: "c"}}}}, "spec.out[0]"},
	} {
		tc.b.Name = "b"
		err := tc.b.Default()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want an error in %s", name, err, tc.field)
		}
	}
	for in, want := range map[string]string{"amqps://h:1": "amqp", "mqtts://h:1": "mqtt", "nats://h:1": "nats", "kafka://h:1": "kafka", "::": ""} {
		if got := BridgeScheme(in); got != want {
			t.Errorf("BridgeScheme(%q) = %q, want %q", in, got, want)
		}
	}
}
