package kube

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"weft.dev/weft/internal/resource"
)

// reconcileGrant issues the token an AccessGrant asks for, once, into its
// status.
func (r *reconciler) reconcileGrant(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var g resource.AccessGrant
	if err := r.c.Get(ctx, req.NamespacedName, &g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if g.Status.Token != nil {
		if exp := g.Status.Token.Expires.Time; time.Now().Before(exp) {
			return ctrl.Result{RequeueAfter: time.Until(exp)}, nil
		}
		return ctrl.Result{}, r.setStatus(ctx, &g, &g.Status.Status, ready{reason: "Expired",
			message: "the token expired: delete and re-create this AccessGrant for a new one"})
	}
	spec := resource.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: g.Name}, Spec: g.Spec}
	if err := spec.Default(); err != nil {
		return ctrl.Result{}, r.setStatus(ctx, &g, &g.Status.Status, failed("Invalid", err))
	}
	ttl, _ := time.ParseDuration(spec.Spec.Expires) // Default checked it
	tok, err := r.site.IssueToken(ttl, spec.Spec.Uses)
	if err != nil {
		return ctrl.Result{}, errors.Join(err, r.setStatus(ctx, &g, &g.Status.Status, failed("IssueFailed", err)))
	}
	g.Status.Token = &tok.Spec
	meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{Type: resource.ConditionReady, Status: metav1.ConditionTrue,
		Reason: "Issued", ObservedGeneration: g.Generation,
		Message: fmt.Sprintf("apply status.token as the spec of an AccessToken at the site that should link to %s; it expires at %s",
			r.site.Name(), tok.Spec.Expires.UTC().Format(time.RFC3339))})
	g.Status.ObservedGeneration = g.Generation
	return ctrl.Result{RequeueAfter: ttl}, r.c.Status().Update(ctx, &g)
}

// reconcileToken redeems an AccessToken into a link of its name, as
// applying it with `weft apply` does; redeeming again is a no-op.
func (r *reconciler) reconcileToken(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var t resource.AccessToken
	if err := r.c.Get(ctx, req.NamespacedName, &t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if c := meta.FindStatusCondition(t.Status.Conditions, resource.ConditionReady); c != nil &&
		c.Status == metav1.ConditionTrue && c.ObservedGeneration == t.Generation {
		return ctrl.Result{}, nil
	}
	tok := &resource.AccessToken{ObjectMeta: metav1.ObjectMeta{Name: t.Name}, Spec: t.Spec}
	if err := tok.Default(); err != nil {
		return ctrl.Result{}, r.setStatus(ctx, &t, &t.Status, failed("Invalid", err))
	}
	l := &resource.Link{ObjectMeta: metav1.ObjectMeta{Name: t.Name}, Spec: resource.LinkSpec{Token: tok}}
	if err := l.Default(); err != nil {
		return ctrl.Result{}, r.setStatus(ctx, &t, &t.Status, failed("Invalid", err))
	}
	if _, _, err := r.site.Apply(ctx, l); err != nil {
		return ctrl.Result{}, errors.Join(err, r.setStatus(ctx, &t, &t.Status, failed("RedeemFailed", err)))
	}
	return ctrl.Result{}, r.setStatus(ctx, &t, &t.Status, ready{ok: true, reason: "Redeemed",
		message: fmt.Sprintf("link %s to site %s made; see its Link", t.Name, t.Spec.IssuerName)})
}

// syncLinks keeps one Link resource per link of the site, with its state in
// status; it deletes the link of a Link resource a user deleted, and
// redeems the token of a Link resource that carries one. Link state has no
// watch event, so it runs again every linkRefresh.
func (r *reconciler) syncLinks(ctx context.Context) (ctrl.Result, error) {
	again := ctrl.Result{RequeueAfter: linkRefresh}
	if err := r.syncSite(ctx); err != nil {
		return again, err
	}
	var list resource.LinkList
	if err := r.c.List(ctx, &list, client.InNamespace(r.ns)); err != nil {
		return again, err
	}
	links := r.site.Links()
	var errs []error
	crs := map[string]*resource.Link{}
	for i := range list.Items {
		cr := &list.Items[i]
		crs[cr.Name] = cr
		has := slices.ContainsFunc(links, func(l resource.Link) bool { return l.Name == cr.Name })
		if has || cr.Spec.Token == nil || cr.DeletionTimestamp != nil {
			continue
		}
		l := &resource.Link{ObjectMeta: metav1.ObjectMeta{Name: cr.Name}, Spec: resource.LinkSpec{Cost: cr.Spec.Cost, Token: cr.Spec.Token}}
		if err := l.Default(); err != nil {
			errs = append(errs, r.setLinkStatus(ctx, cr, resource.LinkStatus{State: "down", Error: err.Error()}))
			continue
		}
		if _, _, err := r.site.Apply(ctx, l); err != nil {
			errs = append(errs, r.setLinkStatus(ctx, cr, resource.LinkStatus{State: "down", Error: err.Error()}))
		}
		r.knownLinks[cr.Name] = true
	}
	if len(list.Items) > 0 {
		links = r.site.Links()
	}
	for _, l := range links {
		cr := crs[l.Name]
		switch {
		case cr == nil && r.knownLinks[l.Name]:
			r.log.Info("deleting link: its Link resource was deleted", "link", l.Name)
			errs = append(errs, r.site.DeleteLink(l.Name))
			delete(r.knownLinks, l.Name)
			continue
		case cr == nil:
			cr = &resource.Link{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: l.Name,
				Labels: map[string]string{managedByLabel: managedBy}}, Spec: resource.LinkSpec{Cost: l.Spec.Cost}}
			if err := r.c.Create(ctx, cr); err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, err)
				continue
			}
		}
		r.knownLinks[l.Name] = true
		errs = append(errs, r.setLinkStatus(ctx, cr, l.Status))
	}
	return again, errors.Join(errs...)
}

// setLinkStatus writes a link's state into its resource's status, with a
// Ready condition. RTT is kept to the millisecond so that jitter does not
// rewrite the status every second.
func (r *reconciler) setLinkStatus(ctx context.Context, cr *resource.Link, st resource.LinkStatus) error {
	if d, err := time.ParseDuration(st.RTT); err == nil {
		st.RTT = d.Round(time.Millisecond).String()
	}
	st.Conditions = slices.Clone(cr.Status.Conditions)
	c := metav1.Condition{Type: resource.ConditionReady, Status: metav1.ConditionFalse, Reason: "Down",
		Message: st.Error, ObservedGeneration: cr.Generation}
	switch {
	case st.State == "up":
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, "Up", "link to "+st.PeerName+" is up"
	case c.Message == "":
		c.Message = "link is " + st.State
	}
	meta.SetStatusCondition(&st.Conditions, c)
	if equalLinkStatus(cr.Status, st) {
		return nil
	}
	cr.Status = st
	return client.IgnoreNotFound(r.c.Status().Update(ctx, cr))
}

// equalLinkStatus compares two link statuses but for when their
// conditions last changed.
func equalLinkStatus(a, b resource.LinkStatus) bool {
	strip := func(cs []metav1.Condition) []metav1.Condition {
		cs = slices.Clone(cs)
		for i := range cs {
			cs[i].LastTransitionTime = metav1.Time{}
		}
		return cs
	}
	a.Conditions, b.Conditions = strip(a.Conditions), strip(b.Conditions)
	return reflect.DeepEqual(a, b)
}

// syncSite writes the site's identity into the status of the Site resource
// of its name, creating it.
func (r *reconciler) syncSite(ctx context.Context) error {
	s := &resource.Site{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: r.site.Name()}}
	if err := r.c.Get(ctx, client.ObjectKeyFromObject(s), s); apierrors.IsNotFound(err) {
		s.Labels = map[string]string{managedByLabel: managedBy}
		if err := r.c.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	} else if err != nil {
		return err
	}
	id, addrs := r.site.ID().String(), r.site.LinkAddresses()
	changed := s.Status.ID != id || !slices.Equal(s.Status.LinkAddresses, addrs)
	s.Status.ID, s.Status.LinkAddresses = id, addrs
	if meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: resource.ConditionReady, Status: metav1.ConditionTrue,
		Reason: "Running", Message: "site " + r.site.Name() + " is running", ObservedGeneration: s.Generation}) {
		changed = true
	}
	if !changed {
		return nil
	}
	return r.c.Status().Update(ctx, s)
}
