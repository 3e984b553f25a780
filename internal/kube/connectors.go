package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"weft.dev/weft/internal/resource"
)

// syncConnectors makes the site's connectors match the Connector resources,
// a selector's Ready pods resolved now: any change of a Connector or a pod
// in the namespace runs it, so a pod that becomes Ready takes new
// connections, and one that stops being Ready stops taking them, as soon as
// the watch reports it.
func (r *reconciler) syncConnectors(ctx context.Context) (ctrl.Result, error) {
	var list resource.ConnectorList
	if err := r.c.List(ctx, &list, client.InNamespace(r.ns)); err != nil {
		return ctrl.Result{}, err
	}
	var pods corev1.PodList
	if err := r.c.List(ctx, &pods, client.InNamespace(r.ns)); err != nil {
		return ctrl.Result{}, err
	}
	want, status := Resolve(list.Items, pods.Items)
	names := map[string]bool{}
	var errs []error
	for i := range want {
		names[want[i].Name] = true
		if _, _, err := r.site.Apply(ctx, &want[i]); err != nil {
			owner := want[i].Labels[connectorLabel]
			status[owner] = failed("ApplyFailed", err)
		}
	}
	errs = append(errs, r.prune(resource.KindConnector, names))
	for i := range list.Items {
		c := &list.Items[i]
		if rd, ok := status[c.Name]; ok {
			errs = append(errs, r.setStatus(ctx, c, &c.Status, rd))
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// connectorLabel names, on a connector Resolve makes, the Connector
// resource it comes from.
const connectorLabel = "weft.dev/connector"

// Resolve turns Connector resources into the site's connectors: one per
// resource with a target or host, one per Ready matching pod with a
// selector, named resource.pod. It returns each resource's Ready condition
// by name. Pure: the caller lists the resources and pods.
func Resolve(crs []resource.Connector, pods []corev1.Pod) ([]resource.Connector, map[string]ready) {
	var out []resource.Connector
	status := map[string]ready{}
	for i := range crs {
		cr := &crs[i]
		if cr.DeletionTimestamp != nil {
			continue
		}
		c := resource.Connector{ObjectMeta: metav1.ObjectMeta{Name: cr.Name,
			Labels: map[string]string{connectorLabel: cr.Name}}, Spec: *cr.Spec.DeepCopy()}
		if err := c.Default(); err != nil {
			status[cr.Name] = failed("Invalid", err)
			continue
		}
		if c.Spec.Selector == "" {
			out = append(out, c)
			status[cr.Name] = ready{ok: true, reason: "Configured", message: "target " + c.Spec.Target}
			continue
		}
		sel, _ := labels.Parse(c.Spec.Selector) // Default checked it
		var ips []string
		var names []string
		for j := range pods {
			p := &pods[j]
			if !sel.Matches(labels.Set(p.Labels)) || !podReady(p) {
				continue
			}
			ips = append(ips, p.Status.PodIP)
			names = append(names, p.Name)
		}
		if len(ips) == 0 {
			status[cr.Name] = ready{reason: "NoReadyPods", message: fmt.Sprintf("no Ready pod matches %s", c.Spec.Selector)}
			continue
		}
		caps := split(cr.Spec.Capacity, len(ips))
		for j, ip := range ips {
			pc := resource.Connector{ObjectMeta: metav1.ObjectMeta{Name: cr.Name + "." + names[j],
				Labels: map[string]string{connectorLabel: cr.Name}}, Spec: *c.Spec.DeepCopy()}
			pc.Spec.Selector, pc.Spec.Port, pc.Spec.Capacity = "", 0, caps[j]
			pc.Spec.Target = net.JoinHostPort(ip, strconv.Itoa(c.Spec.Port))
			if err := pc.Default(); err != nil {
				status[cr.Name] = failed("Invalid", fmt.Errorf("pod %s: %w", names[j], err))
				continue
			}
			out = append(out, pc)
		}
		sort.Strings(names)
		status[cr.Name] = ready{ok: true, reason: "PodsReady",
			message: fmt.Sprintf("%d Ready pods: %s", len(names), strings.Join(names, ", "))}
	}
	return out, status
}

// split shares a Connector's capacity among n pods: 1 each when it is unset,
// so that the address's capacity is the number of Ready pods; else as evenly
// as whole numbers allow, at least 1 each.
func split(capacity uint32, n int) []uint32 {
	base, rem := capacity/uint32(n), capacity%uint32(n)
	if base == 0 {
		base, rem = 1, 0
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = base
		if uint32(i) < rem {
			out[i]++
		}
	}
	return out
}

// podReady is a kubelet's view of a pod that may take traffic: an IP, the
// Ready condition true, and not being deleted.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
