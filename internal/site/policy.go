package site

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/policy"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// RejectPolicy is the reject code of a stream that the egress's address
// policy does not admit. It is far above forward's codes, which other
// changes extend from the bottom.
const RejectPolicy uint16 = 64

// sitePolicy is the site's side of the address policy across
// organisations (package policy): what it knows of every reachable site's
// organisation and rules, for the streams that arrive.
type sitePolicy struct {
	// members are the reachable sites' organisations and rules, this
	// site's own included, as of the last table (routerReady).
	members atomic.Pointer[map[siteid.ID]policy.Member]
	// cache remembers decoded and verified policies by site and bytes, so
	// that a table change verifies only the certificates that changed. It
	// is routerLoop's alone.
	cache map[string]policy.Member
	// refused counts streams refused at this site, the egress;
	// refusedEvents events from other sites refused for its subscribers.
	refused, refusedEvents *prometheus.CounterVec
	// hidden is how many connectors of other sites the last table
	// dropped: what this site's clients may not use.
	hidden prometheus.Gauge
	// hiddenBy names, by address, the sites whose connectors the last
	// table dropped, for the spans of requests to the address.
	hiddenBy atomic.Pointer[map[string][]string]
	// logged keeps a refusal of one origin and address from being logged
	// more than once a table; mu guards it.
	mu     sync.Mutex
	logged map[string]bool
}

func newSitePolicy(reg prometheus.Registerer) *sitePolicy {
	p := &sitePolicy{cache: map[string]policy.Member{}, logged: map[string]bool{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_policy_refused_streams_total",
			Help: "Service streams refused at this site (the egress) by the address policy across organisations, by reason (not-exported, not-imported)."},
			[]string{"reason"}),
		refusedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_policy_refused_events_total",
			Help: "Events from sites of other organisations refused for this site's subscribers by the address policy, by reason (not-exported, not-imported)."},
			[]string{"reason"}),
		hidden: prometheus.NewGauge(prometheus.GaugeOpts{Name: "weft_policy_hidden_connectors",
			Help: "Connectors at sites of other organisations that this site's clients may not use (not exported to its organisation, or not imported): left out of its route table."}),
	}
	p.members.Store(&map[siteid.ID]policy.Member{})
	reg.MustRegister(p.refused, p.refusedEvents, p.hidden)
	return p
}

// ownPolicy is the policy in st: the certificate installed and the exports
// and imports, as this site announces them.
func ownPolicy(st *state) (policy.Policy, error) {
	var p policy.Policy
	if st.OrgCert != "" {
		c, err := policy.ParseCertPEM([]byte(st.OrgCert))
		if err != nil {
			return p, err
		}
		p.Cert = c
	}
	for _, e := range st.Exports {
		r, err := policyRule(e.Spec)
		if err != nil {
			return p, err
		}
		p.Exports = append(p.Exports, r)
	}
	for _, i := range st.Imports {
		r, err := policyRule(i.Spec)
		if err != nil {
			return p, err
		}
		p.Imports = append(p.Imports, r)
	}
	return p, p.Validate()
}

func policyRule(s resource.AddressRuleSpec) (policy.Rule, error) {
	r := policy.Rule{Address: s.Address}
	for _, o := range s.Organisations {
		id, err := policy.ParseOrgID(o)
		if err != nil {
			return r, &apiError{Code: apitype.CodeInvalid, Field: "spec.organisations", Message: err.Error()}
		}
		r.Orgs = append(r.Orgs, id)
	}
	return r, nil
}

// policyRecord is the policy section of this site's record: nil for a site
// with no certificate and no rules, whose record is then as before.
func (s *Site) policyRecord() []byte {
	p, err := ownPolicy(s.state())
	if err == nil && p.IsZero() {
		return nil
	}
	var b []byte
	if err == nil {
		b, err = p.MarshalBinary()
	}
	if err != nil {
		// The admin API checks every change; this is a damaged state file.
		s.log.Error("the site's organisation certificate or address policy is not valid: it announces none; fix it with `weft org` and `weft policy`", "err", err)
		return nil
	}
	return b
}

// restrict computes the members of t's sites and returns t without the
// connectors and interests that the policy keeps from this site: the
// connectors whose sites may not serve this site's clients, and the
// interests of sites that may not have this site's events. With every
// site in this site's organisation (or, as before organisations, none in
// any) it is t itself. routerLoop calls it.
func (s *Site) restrict(t *routing.Table) *routing.Table {
	p, _ := ownPolicy(s.state())
	me, err := p.Member(s.id)
	if err != nil {
		s.log.Error("this site's organisation certificate does not certify it: it is unorganised until a good one is installed", "err", err)
	}
	members := map[siteid.ID]policy.Member{s.id: me}
	cache := map[string]policy.Member{}
	foreign := false
	recs := t.Records()
	for i := range recs {
		r := &recs[i]
		if r.Site == s.id {
			continue
		}
		key := string(r.Site[:]) + string(r.Policy)
		m, ok := s.pol.cache[key]
		if !ok {
			m = s.memberOf(r)
		}
		cache[key], members[r.Site] = m, m
		foreign = foreign || m.Org != me.Org
	}
	s.pol.cache = cache
	s.pol.members.Store(&members)
	s.pol.mu.Lock()
	clear(s.pol.logged)
	s.pol.mu.Unlock()
	hidden := 0
	hiddenBy := map[string][]string{}
	defer func() {
		s.pol.hidden.Set(float64(hidden))
		s.pol.hiddenBy.Store(&hiddenBy)
	}()
	if !foreign {
		return t
	}
	return t.Restrict(func(r *routing.Record) *routing.Record {
		m := members[r.Site]
		if r.Site == s.id || m.Org == me.Org {
			return r
		}
		v := *r
		v.Connectors = slices.DeleteFunc(slices.Clone(r.Connectors), func(c routing.Connector) bool {
			ok, _ := policy.AllowsService(m, me, c.Address)
			if !ok && !slices.Contains(hiddenBy[c.Address], r.Name) {
				hiddenBy[c.Address] = append(hiddenBy[c.Address], r.Name)
			}
			return !ok
		})
		hidden += len(r.Connectors) - len(v.Connectors)
		v.Interests = slices.DeleteFunc(slices.Clone(r.Interests), func(in string) bool {
			_, pattern, valid := events.ParseInterest(in)
			ok, _ := policy.AllowsEvents(me, m, pattern)
			return !valid || !ok
		})
		return &v
	})
}

// memberOf decodes a record's policy; a site whose policy does not decode
// or whose certificate does not certify it is unorganised (its record is
// signed, so it is its own doing), and is logged.
func (s *Site) memberOf(r *routing.Record) policy.Member {
	if len(r.Policy) == 0 {
		return policy.Member{}
	}
	var p policy.Policy
	if err := p.UnmarshalBinary(r.Policy); err != nil {
		s.log.Warn("a site's address policy does not decode: it is treated as unorganised, without exports or imports", "peer", r.Name, "peerID", r.Site.String(), "err", err)
		return policy.Member{}
	}
	m, err := p.Member(r.Site)
	if err != nil {
		s.log.Warn("a site's organisation certificate does not certify it: it is treated as unorganised", "peer", r.Name, "peerID", r.Site.String(), "err", err)
	}
	return m
}

// admitStream checks, at the egress, that the stream's ingress may use the
// address here, and refuses it with the reason if not. The ingress is the
// header's origin: a stream is served only if its seal proves it, or, with
// no seal, if it is the link's peer (proven in the link hello), so a header
// naming another origin gains nothing (deliverSealed).
func (s *Site) admitStream(st *link.Stream, h *forward.Header, peer siteid.ID) bool {
	members := *s.pol.members.Load()
	me := members[s.id]
	origin := members[h.Origin] // unknown: unorganised
	ok, reason := policy.AllowsService(me, origin, h.Address)
	if ok {
		return true
	}
	s.pol.refused.WithLabelValues(reason).Inc()
	msg := fmt.Sprintf("address policy: site %s may not use %q at site %s (%s): the serving site must export it to the client site's organisation (`weft policy export`) and the client site import it (`weft policy import`)",
		h.Origin, h.Address, s.name, reason)
	if s.pol.firstRefusal("stream/" + h.Origin.String() + "/" + h.Address) {
		by := "end-to-end seal"
		if len(h.Seal) == 0 {
			by = authenticatedBy(h.Origin, peer)
		}
		s.log.Warn("stream refused by the address policy", "origin", h.Origin.String(), "originOrg", orgString(origin.Org), "address", h.Address, "reason", reason, "originAuthenticatedBy", by)
	}
	st.Reject(RejectPolicy, msg)
	return false
}

// admitEvent is the broker's Config.Admit: it checks, at the receiving
// site, that the publishing site origin may send events on subject to this
// site's subscribers, whatever the publisher's table said. The publisher is
// the one the event frame names: authenticated when it is the neighbour
// from (proven in the link hello); through transit sites, only as far as
// they are honest, since events are protected hop by hop.
func (s *Site) admitEvent(from, origin siteid.ID, subject string) bool {
	members := *s.pol.members.Load()
	pub := members[origin] // unknown: unorganised
	ok, reason := policy.AllowsEvents(pub, members[s.id], subject)
	if ok {
		return true
	}
	s.pol.refusedEvents.WithLabelValues(reason).Inc()
	if s.pol.firstRefusal("event/" + origin.String() + "/" + subject) {
		s.log.Warn("event refused by the address policy: the publishing site must export the subject to this site's organisation (`weft policy export`) and this site import it (`weft policy import`)",
			"origin", origin.String(), "originOrg", orgString(pub.Org), "subject", subject, "reason", reason, "originAuthenticatedBy", authenticatedBy(origin, from))
	}
	return false
}

// firstRefusal reports whether the refusal key is the first since the last
// table, so that a refusal is logged once, not for every stream or event.
func (p *sitePolicy) firstRefusal(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logged[key] {
		return false
	}
	p.logged[key] = true
	return true
}

// authenticatedBy says how far the site that opened a stream (or published
// an event) is proven: by the link when it is the neighbour peer.
func authenticatedBy(origin, peer siteid.ID) string {
	if origin == peer {
		return "link"
	}
	return "header (through transit sites)"
}

func orgString(o policy.OrgID) string {
	if o.IsZero() {
		return "none"
	}
	return o.String()
}

func (s *Site) policyRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"GET /v1/organisation": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return s.organisation(), nil
		},
		"PUT /v1/organisation":    s.apiPutOrganisation,
		"DELETE /v1/organisation": s.apiDeleteOrganisation,
		"GET /v1/exports": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return list(s.state().Exports), nil
		},
		"GET /v1/imports": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return list(s.state().Imports), nil
		},
		"PUT /v1/exports/{name}":    putRuleHandler[resource.AddressExport](s),
		"PUT /v1/imports/{name}":    putRuleHandler[resource.AddressImport](s),
		"DELETE /v1/exports/{name}": deleteRule(s, "export", func(st *state) *[]resource.AddressExport { return &st.Exports }, exportName),
		"DELETE /v1/imports/{name}": deleteRule(s, "import", func(st *state) *[]resource.AddressImport { return &st.Imports }, importName),
	}
}

// organisation is what GET /v1/organisation answers.
func (s *Site) organisation() apitype.OrganisationView {
	v := apitype.OrganisationView{Site: s.id.String()}
	if m, ok := (*s.pol.members.Load())[s.id]; ok && !m.Org.IsZero() {
		v.Organisation = m.Org.String()
	}
	return v
}

func (s *Site) apiPutOrganisation(w http.ResponseWriter, r *http.Request) (any, error) {
	var req apitype.OrganisationRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	c, err := policy.ParseCertPEM([]byte(req.Certificate))
	if err == nil {
		err = c.Verify(s.id)
	}
	if err != nil {
		return nil, &apiError{Code: apitype.CodeInvalid, Field: "certificate",
			Message: fmt.Sprintf("%v: make it with `weft org certify --org-key FILE --site %s`", err, s.id)}
	}
	if err := s.commit(func(st *state) error {
		st.OrgCert = string(c.PEM())
		return nil
	}); err != nil {
		return nil, err
	}
	s.log.Info("site joined an organisation", "organisation", c.Org().String())
	s.announce()
	return apitype.OrganisationView{Site: s.id.String(), Organisation: c.Org().String()}, nil
}

func (s *Site) apiDeleteOrganisation(w http.ResponseWriter, r *http.Request) (any, error) {
	found, err := s.deleteNamed(func(st *state) bool {
		had := st.OrgCert != ""
		st.OrgCert = ""
		return had
	})
	if err == nil && !found {
		err = errNotFound("this site has no organisation certificate")
	}
	if found {
		s.announce()
	}
	return nil, err
}

// putRuleHandler is PUT /v1/exports/{name} or /v1/imports/{name}.
func putRuleHandler[T any, P interface {
	*T
	object
}](s *Site) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		obj := P(new(T))
		if err := decodeObject(r, obj); err != nil {
			return nil, err
		}
		_, err := s.putRule(obj)
		return obj, err
	}
}

// putRule creates or replaces an export or an import and announces it; it
// reports whether it was created, configured or found unchanged.
func (s *Site) putRule(obj object) (result string, err error) {
	result = apitype.ApplyCreated
	err = s.commit(func(st *state) error {
		switch v := obj.(type) {
		case *resource.AddressExport:
			result = replaceNamed(&st.Exports, *v, exportName)
		case *resource.AddressImport:
			result = replaceNamed(&st.Imports, *v, importName)
		}
		if len(st.Exports) > policy.MaxRules || len(st.Imports) > policy.MaxRules {
			s.metrics.LimitRefusals.WithLabelValues("policy_rules").Inc()
			return limitError("exports, and as many imports,", policy.MaxRules, "delete one first, or name more organisations in one")
		}
		_, err := ownPolicy(st)
		return err
	})
	if err == nil && result != apitype.ApplyUnchanged {
		s.announce()
	}
	return result, err
}

// replaceNamed puts v into *xs in place of the item of its name, and says
// whether it was created, configured or unchanged.
func replaceNamed[T any](xs *[]T, v T, name func(T) string) string {
	i := slices.IndexFunc(*xs, func(x T) bool { return name(x) == name(v) })
	switch {
	case i < 0:
		*xs = append(*xs, v)
		return apitype.ApplyCreated
	case reflect.DeepEqual((*xs)[i], v):
		return apitype.ApplyUnchanged
	}
	(*xs)[i] = v
	return apitype.ApplyConfigured
}

// deleteRule is DELETE /v1/exports/{name} or /v1/imports/{name}.
func deleteRule[T any](s *Site, what string, field func(st *state) *[]T, name func(T) string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		n := r.PathValue("name")
		found, err := s.deleteNamed(func(st *state) bool {
			xs := field(st)
			before := len(*xs)
			*xs = slices.DeleteFunc(*xs, func(x T) bool { return name(x) == n })
			return before != len(*xs)
		})
		if err == nil && !found {
			err = errNotFound("no %s %q: see `weft policy list`", what, n)
		}
		if found {
			s.announce()
		}
		return nil, err
	}
}

func exportName(e resource.AddressExport) string { return e.Name }
func importName(i resource.AddressImport) string { return i.Name }
