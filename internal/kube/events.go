package kube

import (
	"context"
	"errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"weft.dev/weft/internal/resource"
)

// syncEvents makes the site's topics, queues and subscriptions match their
// resources.
func (r *reconciler) syncEvents(ctx context.Context) (ctrl.Result, error) {
	var (
		ts resource.TopicList
		qs resource.QueueList
		ss resource.SubscriptionList
	)
	for _, l := range []client.ObjectList{&ts, &qs, &ss} {
		if err := r.c.List(ctx, l, client.InNamespace(r.ns)); err != nil {
			return ctrl.Result{}, err
		}
	}
	type item struct {
		cr    client.Object
		st    *resource.Status
		clean resource.Object
	}
	var items []item
	for i := range ts.Items {
		t := &ts.Items[i]
		items = append(items, item{t, &t.Status, &resource.Topic{ObjectMeta: metav1.ObjectMeta{Name: t.Name}, Spec: t.Spec}})
	}
	for i := range qs.Items {
		q := &qs.Items[i]
		items = append(items, item{q, &q.Status, &resource.Queue{ObjectMeta: metav1.ObjectMeta{Name: q.Name}, Spec: q.Spec}})
	}
	for i := range ss.Items {
		s := &ss.Items[i]
		items = append(items, item{s, &s.Status, &resource.Subscription{ObjectMeta: metav1.ObjectMeta{Name: s.Name}, Spec: s.Spec}})
	}
	want := map[string]map[string]bool{resource.KindTopic: {}, resource.KindQueue: {}, resource.KindSubscription: {}}
	var errs []error
	for _, it := range items {
		if it.cr.GetDeletionTimestamp() != nil {
			continue
		}
		// What the site has stays while a new spec fails.
		rd := ready{ok: true, reason: "Applied"}
		err := it.clean.Default()
		want[it.clean.GetObjectKind().GroupVersionKind().Kind][it.clean.GetName()] = true
		if err != nil {
			rd = failed("Invalid", err)
		} else if _, _, err := r.site.Apply(ctx, it.clean); err != nil {
			rd = failed("ApplyFailed", err)
		}
		errs = append(errs, r.setStatus(ctx, it.cr, it.st, rd))
	}
	for kind, names := range want {
		errs = append(errs, r.prune(kind, names))
	}
	return ctrl.Result{}, errors.Join(errs...)
}
