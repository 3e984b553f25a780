package site

import (
	"context"
	"fmt"

	"weft.dev/weft/internal/resource"
)

// What internal/kube drives a site through in Kubernetes mode: the same
// code paths as the admin API, so a CR and `weft apply` of the same YAML
// have the same effect.

// Apply applies one resource as `weft apply` does; see applyOne.
func (s *Site) Apply(ctx context.Context, obj resource.Object) (name, result string, err error) {
	return s.applyOne(ctx, obj)
}

// Delete removes the Listener, Connector, Topic, Queue or Subscription of
// that name; it reports whether there was one. Links go through DeleteLink.
func (s *Site) Delete(kind, name string) (bool, error) {
	switch kind {
	case resource.KindListener:
		return s.DeleteListener(name)
	case resource.KindConnector:
		return s.DeleteConnector(name)
	case resource.KindTopic:
		return s.events.DeleteTopic(name)
	case resource.KindQueue:
		return s.events.DeleteQueue(name)
	case resource.KindSubscription:
		return s.events.DeleteSubscription(name)
	}
	return false, fmt.Errorf("site: %s is not a kind Delete removes", kind)
}

// Names lists the names of the objects of kind the site has now.
func (s *Site) Names(kind string) []string {
	var out []string
	st := s.state()
	ts, qs, ss := s.events.Config()
	switch kind {
	case resource.KindListener:
		for _, l := range st.Listeners {
			out = append(out, l.Name)
		}
	case resource.KindConnector:
		for _, c := range st.Connectors {
			out = append(out, c.Name)
		}
	case resource.KindTopic:
		for _, t := range ts {
			out = append(out, t.Name)
		}
	case resource.KindQueue:
		for _, q := range qs {
			out = append(out, q.Name)
		}
	case resource.KindSubscription:
		for _, x := range ss {
			out = append(out, x.Name)
		}
	}
	return out
}

// LinkAddresses are the link addresses this site's tokens carry.
func (s *Site) LinkAddresses() []string { return s.opts.Advertise }
