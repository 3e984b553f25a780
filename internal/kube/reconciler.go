package kube

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"weft.dev/weft/internal/resource"
)

// Labels on what the site creates: Services, Links, its Secret.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "weft-site"
)

// persistTimeout bounds one write of the state Secret.
const persistTimeout = 10 * time.Second

// linkRefresh is how often link state, which has no Kubernetes event, is
// copied into the Link resources' status.
const linkRefresh = time.Second

// reconciler holds the controllers' shared view. Each controller has one
// worker (controller-runtime's default), so the fields below are only
// touched by that worker: knownLinks by the links controller alone.
type reconciler struct {
	m    *Mode
	site Site
	c    client.Client
	ns   string
	log  *slog.Logger

	// knownLinks are the site's links that have had a Link resource while
	// this process ran: one that has none now was deleted by a user, and
	// the link goes too. A link without a resource that is not known gets
	// one (new inbound links, and at start).
	knownLinks map[string]bool
}

// syncAll is the one key of the controllers that sync a whole kind at once.
var syncAll = []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "all"}}}

func enqueueAll(context.Context, client.Object) []reconcile.Request { return syncAll }

func (r *reconciler) setup(mgr ctrl.Manager) error {
	r.knownLinks = map[string]bool{}
	all := handler.EnqueueRequestsFromMapFunc(enqueueAll)
	steps := []struct {
		name    string
		watches []client.Object
		sync    func(ctx context.Context) (ctrl.Result, error)
	}{
		{"listeners", []client.Object{&resource.Listener{}, &corev1.Service{}}, r.syncListeners},
		{"connectors", []client.Object{&resource.Connector{}, &corev1.Pod{}}, r.syncConnectors},
		{"links", []client.Object{&resource.Link{}, &resource.Site{}}, r.syncLinks},
		{"events", []client.Object{&resource.Topic{}, &resource.Queue{}, &resource.Subscription{}}, r.syncEvents},
	}
	for _, s := range steps {
		// One sync at start, watch events or not: it prunes what the
		// site kept of resources deleted while it was down, and starts
		// the links controller's periodic refresh.
		b := ctrl.NewControllerManagedBy(mgr).Named(s.name).WatchesRawSource(source.Func(
			func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
				q.Add(syncAll[0])
				return nil
			}))
		for _, w := range s.watches {
			b = b.Watches(w, all)
		}
		sync := s.sync
		if err := b.Complete(reconcile.Func(func(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
			return sync(ctx)
		})); err != nil {
			return err
		}
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("accessgrants").For(&resource.AccessGrant{}).
		Complete(reconcile.Func(r.reconcileGrant)); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("accesstokens").For(&resource.AccessToken{}).
		Complete(reconcile.Func(r.reconcileToken))
}

// ready is the outcome of applying one resource, as its Ready condition.
type ready struct {
	ok      bool
	reason  string
	message string
}

func failed(reason string, err error) ready { return ready{reason: reason, message: err.Error()} }

// setStatus sets st's Ready condition and writes obj's status if that
// changed anything.
func (r *reconciler) setStatus(ctx context.Context, obj client.Object, st *resource.Status, rd ready) error {
	c := metav1.Condition{Type: resource.ConditionReady, Status: metav1.ConditionFalse, Reason: rd.reason,
		Message: rd.message, ObservedGeneration: obj.GetGeneration()}
	if rd.ok {
		c.Status = metav1.ConditionTrue
	}
	changed := meta.SetStatusCondition(&st.Conditions, c)
	if st.ObservedGeneration != obj.GetGeneration() {
		st.ObservedGeneration, changed = obj.GetGeneration(), true
	}
	if !changed {
		return nil
	}
	return client.IgnoreNotFound(r.c.Status().Update(ctx, obj))
}

// prune deletes the site's objects of kind that are not in want.
func (r *reconciler) prune(kind string, want map[string]bool) error {
	for _, n := range r.site.Names(kind) {
		if want[n] {
			continue
		}
		if _, err := r.site.Delete(kind, n); err != nil {
			return err
		}
		r.log.Info("removed: its resource is gone", "kind", kind, "name", n)
	}
	return nil
}
