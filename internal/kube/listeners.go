package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"weft.dev/weft/internal/resource"
)

// syncListeners makes the site's listeners and their Services match the
// Listener resources. The Services are also owned by their Listener, so a
// cluster's garbage collector removes them should the site be down.
func (r *reconciler) syncListeners(ctx context.Context) (ctrl.Result, error) {
	var list resource.ListenerList
	if err := r.c.List(ctx, &list, client.InNamespace(r.ns)); err != nil {
		return ctrl.Result{}, err
	}
	want := map[string]bool{}
	var errs []error
	for i := range list.Items {
		l := &list.Items[i]
		if l.DeletionTimestamp != nil {
			continue
		}
		want[l.Name] = true
		rd := r.applyListener(ctx, l)
		errs = append(errs, r.setStatus(ctx, l, &l.Status, rd))
	}
	errs = append(errs, r.prune(resource.KindListener, want))
	var svcs corev1.ServiceList
	if err := r.c.List(ctx, &svcs, client.InNamespace(r.ns), client.MatchingLabels{managedByLabel: managedBy}); err != nil {
		return ctrl.Result{}, err
	}
	for i := range svcs.Items {
		if svc := &svcs.Items[i]; !want[svc.Name] {
			errs = append(errs, client.IgnoreNotFound(r.c.Delete(ctx, svc)))
			r.log.Info("Service deleted: its Listener is gone", "service", svc.Name)
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

func (r *reconciler) applyListener(ctx context.Context, cr *resource.Listener) ready {
	l := &resource.Listener{ObjectMeta: metav1.ObjectMeta{Name: cr.Name}, Spec: *cr.Spec.DeepCopy()}
	if l.Spec.Host == "" {
		l.Spec.Host = r.m.opts.ListenerHost
	}
	if err := l.Default(); err != nil {
		return failed("Invalid", err)
	}
	if l.Spec.Port == 0 {
		return ready{reason: "Invalid", message: "spec.port: a Listener in Kubernetes needs a fixed port for its Service"}
	}
	if _, _, err := r.site.Apply(ctx, l); err != nil {
		return failed("ListenFailed", err)
	}
	if err := r.ensureService(ctx, cr, l.Spec.Port, l.Spec.Protocol); err != nil {
		return failed("ServiceFailed", err)
	}
	return ready{ok: true, reason: "Listening", message: fmt.Sprintf("listening on %s:%d; Service %s selects the site's pods", l.Spec.Host, l.Spec.Port, cr.Name)}
}

// ensureService creates or updates the Listener's Service. A Service of
// that name that the site did not make is left alone and reported.
func (r *reconciler) ensureService(ctx context.Context, l *resource.Listener, port int, protocol string) error {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: l.Name}}
	err := r.c.Get(ctx, client.ObjectKeyFromObject(svc), svc)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case svc.Labels[managedByLabel] != managedBy:
		return fmt.Errorf("a Service %s exists that weft did not make: rename the Listener or delete that Service", l.Name)
	}
	_, err = controllerutil.CreateOrUpdate(ctx, r.c, svc, func() error {
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels[managedByLabel] = managedBy
		svc.Spec.Selector = maps.Clone(r.m.podLabels)
		svc.Spec.Ports = []corev1.ServicePort{{
			Name: protocol, Protocol: corev1.ProtocolTCP,
			Port: int32(port), TargetPort: intstr.FromInt32(int32(port)),
		}}
		return controllerutil.SetControllerReference(l, svc, r.c.Scheme())
	})
	return err
}
