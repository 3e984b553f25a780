package kube

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"weft.dev/weft/internal/resource"
)

func pod(name, ip string, ready bool, lbls map[string]string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	p.Status.PodIP = ip
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	return p
}

func connector(name string, spec resource.ConnectorSpec) resource.Connector {
	return resource.Connector{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func TestResolve(t *testing.T) {
	orders := map[string]string{"app": "orders"}
	deleting := pod("orders-4", "10.0.0.4", true, orders)
	deleting.DeletionTimestamp = &metav1.Time{}
	pods := []corev1.Pod{
		pod("orders-1", "10.0.0.1", true, orders),
		pod("orders-2", "10.0.0.2", false, orders),                      // not Ready
		pod("orders-3", "", true, orders),                               // no IP yet
		deleting,                                                        // terminating
		pod("orders-5", "10.0.0.5", true, orders),                       // Ready
		pod("web-1", "10.0.0.9", true, map[string]string{"app": "web"}), // another app
	}
	crs := []resource.Connector{
		connector("orders", resource.ConnectorSpec{Selector: "app=orders", Port: 8080}),
		connector("db", resource.ConnectorSpec{Host: "db.example", Port: 5432}),
		connector("none", resource.ConnectorSpec{Selector: "app=none", Port: 80}),
		connector("bad", resource.ConnectorSpec{Selector: "app=orders", Target: "x:1"}),
		connector("weighted", resource.ConnectorSpec{Selector: "app=orders", Port: 80, Capacity: 5}),
	}
	got, status := Resolve(crs, pods)
	var names []string
	targets := map[string]string{}
	caps := map[string]uint32{}
	for _, c := range got {
		names = append(names, c.Name)
		targets[c.Name], caps[c.Name] = c.Spec.Target, c.Spec.Capacity
		if c.Spec.Selector != "" || c.Labels[connectorLabel] == "" {
			t.Errorf("%s: selector %q, owner label %q: want no selector and its Connector named", c.Name, c.Spec.Selector, c.Labels[connectorLabel])
		}
	}
	want := []string{"orders.orders-1", "orders.orders-5", "db", "weighted.orders-1", "weighted.orders-5"}
	if !slices.Equal(names, want) {
		t.Fatalf("connectors %v, want %v", names, want)
	}
	if targets["orders.orders-5"] != "10.0.0.5:8080" || targets["db"] != "db.example:5432" {
		t.Errorf("targets %v", targets)
	}
	if caps["orders.orders-1"] != 1 || caps["weighted.orders-1"]+caps["weighted.orders-5"] != 5 {
		t.Errorf("capacities %v: want 1 a pod, or the set capacity shared", caps)
	}
	for name, want := range map[string]string{
		"orders": "PodsReady", "db": "Configured", "none": "NoReadyPods", "bad": "Invalid", "weighted": "PodsReady",
	} {
		if status[name].reason != want {
			t.Errorf("%s: status %+v, want reason %s", name, status[name], want)
		}
	}
	if m := status["orders"].message; m != "2 Ready pods: orders-1, orders-5" {
		t.Errorf("orders: message %q", m)
	}
	if m := status["bad"].message; !strings.Contains(m, "exactly one of target") {
		t.Errorf("bad: message %q", m)
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		capacity uint32
		n        int
		want     []uint32
	}{
		{0, 3, []uint32{1, 1, 1}},
		{5, 2, []uint32{3, 2}},
		{2, 3, []uint32{1, 1, 1}}, // never 0: a Ready pod always takes some traffic
		{6, 3, []uint32{2, 2, 2}},
	} {
		if got := split(c.capacity, c.n); !slices.Equal(got, c.want) {
			t.Errorf("split(%d, %d) = %v, want %v", c.capacity, c.n, got, c.want)
		}
	}
}
