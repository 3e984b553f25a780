package resource

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeEventKinds(t *testing.T) {
	objs, err := Decode(strings.NewReader(`apiVersion: weft.dev/v1alpha1
kind: Topic
metadata: {name: orders.created}
spec: {delivery: persisted}
---
apiVersion: weft.dev/v1alpha1
kind: Queue
metadata: {name: jobs}
---
apiVersion: weft.dev/v1alpha1
kind: Subscription
metadata: {name: audit}
spec: {topic: "orders.>", sink: "http://127.0.0.1:8080/", retry: 5, backoff: linear}
`))
	if err != nil {
		t.Fatal(err)
	}
	tp, q, s := objs[0].Object.(*Topic), objs[1].Object.(*Queue), objs[2].Object.(*Subscription)
	if tp.Spec.Delivery != DeliveryPersisted || tp.Spec.Retention != "24h" || q.Spec.Delivery != DeliveryVolatile ||
		s.Spec.Retry != 5 || s.Spec.Backoff != "linear" || s.Spec.BackoffDelay != "500ms" {
		t.Fatalf("defaults: %+v %+v %+v", tp.Spec, q.Spec, s.Spec)
	}
}

func TestEventKindsRefused(t *testing.T) {
	for name, obj := range map[string]interface{ Default() error }{
		"topic delivery":  &Topic{Spec: TopicSpec{Delivery: "sometimes"}},
		"topic retention": &Topic{Spec: TopicSpec{Retention: "-1h"}},
		"queue delivery":  &Queue{Spec: QueueSpec{Delivery: "sometimes"}},
		"no address":      &Subscription{Spec: SubscriptionSpec{Sink: "http://x/"}},
		"both addresses":  &Subscription{Spec: SubscriptionSpec{Topic: "a", Queue: "b", Sink: "http://x/"}},
		"sink":            &Subscription{Spec: SubscriptionSpec{Topic: "a", Sink: "ftp://x/"}},
		"dead letter":     &Subscription{Spec: SubscriptionSpec{Topic: "a", Sink: "http://x/", DeadLetter: "nope"}},
		"backoff":         &Subscription{Spec: SubscriptionSpec{Topic: "a", Sink: "http://x/", Backoff: "random"}},
		"retry":           &Subscription{Spec: SubscriptionSpec{Topic: "a", Sink: "http://x/", Retry: -1}},
	} {
		switch o := obj.(type) {
		case *Topic:
			o.Name = "t"
		case *Queue:
			o.Name = "q"
		case *Subscription:
			o.Name = "s"
		}
		if err := obj.Default(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
