package site

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/buildinfo"
	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/service"
)

// maxBody bounds every admin request body.
const maxBody = 1 << 20

// linkCreateTimeout is how long POST /v1/links waits for the link to come up.
const linkCreateTimeout = 30 * time.Second

// apiError is an error with the stable code (apitype.Code*) the admin API
// answers it with and, where one field is at fault, its JSON path.
type apiError struct {
	Code    string
	Message string
	Field   string
}

func (e *apiError) Error() string { return e.Message }

func errInvalid(err error) *apiError {
	return &apiError{Code: apitype.CodeInvalid, Message: err.Error()}
}

func errNotFound(format string, args ...any) *apiError {
	return &apiError{Code: apitype.CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// errorCodes maps the site's sentinel errors to their codes; with
// toAPIError it is the one place a site error gets its code (the status
// comes from apitype's table).
var errorCodes = []struct {
	err  error
	code string
}{
	{ErrNotSaved, apitype.CodeNotSaved},
	{ErrNoLink, apitype.CodeNotFound},
	{ErrLinkDown, apitype.CodeLinkNotUp},
	{broker.ErrTooManyInterests, apitype.CodeTooManyInterests},
	{events.ErrBadSubject, apitype.CodeBadSubject},
	{resource.ErrInvalid, apitype.CodeInvalid},
}

// toAPIError maps an error to its code and field: one table for every
// handler, so that the same failure answers the same way everywhere. The
// message is the whole error, with the context it was wrapped in.
func toAPIError(err error) apitype.ErrorDetail {
	var (
		ae  *apiError
		lim *LimitError
		fe  *resource.FieldError
	)
	switch {
	case errors.As(err, &ae):
		return apitype.ErrorDetail{Code: ae.Code, Message: err.Error(), Field: ae.Field}
	case errors.As(err, &lim):
		return apitype.ErrorDetail{Code: apitype.CodeLimitReached, Message: err.Error()}
	case errors.As(err, &fe):
		return apitype.ErrorDetail{Code: apitype.CodeInvalid, Message: err.Error(), Field: fe.Field}
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return apitype.ErrorDetail{Code: e.code, Message: err.Error()}
		}
	}
	return apitype.ErrorDetail{Code: apitype.CodeInternal, Message: err.Error()}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

func (s *Site) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.ctx.Err() != nil {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// The version is no secret, and a monitor should not need the admin
	// credential to read it.
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, http.StatusOK, buildinfo.Get())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	s.registerConsole(mux)
	// Anything else is answered in the API's error shape, not as text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apitype.WriteError(w, apitype.ErrorDetail{Code: apitype.CodeNotFound,
			Message: fmt.Sprintf("the admin API has no %s %s: the command line (`weft --help`) shows what it serves", r.Method, r.URL.Path)})
	})
	api := map[string]handlerFunc{
		"GET /v1/status":               func(w http.ResponseWriter, r *http.Request) (any, error) { return s.Status(), nil },
		"POST /v1/tokens":              s.apiIssueToken,
		"GET /v1/tokens":               func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Tokens(time.Now())), nil },
		"DELETE /v1/tokens/{name}":     s.apiRevokeToken,
		"GET /v1/links":                func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Links()), nil },
		"POST /v1/links":               s.apiCreateLink,
		"DELETE /v1/links/{name}":      s.apiDeleteLink,
		"POST /v1/links/{name}/rotate": s.apiRotateLink,
		"GET /v1/listeners":            func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Listeners()), nil },
		"PUT /v1/listeners/{name}":     s.apiPutListener,
		"DELETE /v1/listeners/{name}":  s.apiDeleteListener,
		"GET /v1/connectors":           func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Connectors()), nil },
		"PUT /v1/connectors/{name}":    s.apiPutConnector,
		"DELETE /v1/connectors/{name}": s.apiDeleteConnector,
		"POST /v1/apply":               s.apiApply,
		"GET /v1/revocations":          func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Revocations()), nil },
		"POST /v1/revocations":         s.apiRevoke,
		"POST /v1/site/rotate-key":     s.apiRotateKey,
	}
	maps.Copy(api, s.eventRoutes())
	maps.Copy(api, s.bridgeRoutes())
	maps.Copy(api, s.eventCredentialRoutes())
	maps.Copy(api, s.policyRoutes())
	maps.Copy(api, s.networkRoutes())
	for pattern, h := range api {
		mux.Handle(pattern, s.authed(h))
	}
	return mux
}

func list[T any](items []T) apitype.List[T] {
	if items == nil {
		items = []T{}
	}
	return apitype.List[T]{Items: items}
}

// authed checks the bearer credential, bounds the body and writes the result or
// the error as JSON.
func (s *Site) authed(h handlerFunc) http.Handler {
	want := []byte("Bearer " + s.adminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			apitype.WriteError(w, apitype.ErrorDetail{Code: apitype.CodeUnauthorized,
				Message: "missing or wrong bearer token: use the one in the site's admin.token file"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		v, err := h(w, r)
		if err != nil {
			apitype.WriteError(w, toAPIError(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeBody decodes a request body holding exactly one JSON value that
// has no fields v lacks. The body is bounded by authed; encoding/json
// bounds nesting.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && !atEnd(dec) {
		err = errors.New("trailing data after the JSON value")
	}
	if err != nil {
		return errInvalid(fmt.Errorf("request body: %w", err))
	}
	return nil
}

// atEnd reports whether dec has nothing but white space left after the
// value it decoded. Not dec.More, which takes a stray ']' or '}' for the
// end of a list and so lets it pass.
func atEnd(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

// object is a resource that a PUT to /v1/KIND/{name} creates or replaces.
type object interface {
	GetName() string
	SetName(string)
	Default() error
}

// decodeObject decodes the body of a PUT into obj, takes its name from the
// path when the body has none, and validates it.
func decodeObject(r *http.Request, obj object) error {
	if err := decodeBody(r, obj); err != nil {
		return err
	}
	name := r.PathValue("name")
	if obj.GetName() == "" {
		obj.SetName(name)
	}
	if obj.GetName() != name {
		return &apiError{Code: apitype.CodeInvalid, Field: "metadata.name",
			Message: fmt.Sprintf("metadata.name %q does not match the path's %q", obj.GetName(), name)}
	}
	return obj.Default()
}

func (s *Site) apiIssueToken(w http.ResponseWriter, r *http.Request) (any, error) {
	var req apitype.TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	ttl, uses, err := parseTokenRequest(req)
	if err != nil {
		return nil, err
	}
	return s.IssueToken(ttl, uses)
}

// parseTokenRequest validates a token request and fills in its defaults: 15
// minutes, one use. Uses given as 0 is refused, not defaulted: a token that
// can never be redeemed is a mistake to point out.
func parseTokenRequest(req apitype.TokenRequest) (ttl time.Duration, uses int, err error) {
	ttl, uses = 15*time.Minute, 1
	if req.Expires != "" {
		ttl, err = time.ParseDuration(req.Expires)
		if err != nil || ttl <= 0 {
			return 0, 0, &apiError{Code: apitype.CodeInvalid, Field: "expires",
				Message: fmt.Sprintf("%q is not a positive duration such as 15m", req.Expires)}
		}
	}
	if req.Uses != nil {
		uses = *req.Uses
	}
	if uses < 1 || uses > identity.MaxTokenUses {
		return 0, 0, &apiError{Code: apitype.CodeInvalid, Field: "uses",
			Message: fmt.Sprintf("%d is not within 1..%d: a token must let at least one site redeem it", uses, identity.MaxTokenUses)}
	}
	return ttl, uses, nil
}

// Tokens lists the outstanding tokens this site issued, without secrets.
func (s *Site) Tokens(now time.Time) []apitype.TokenView {
	var out []apitype.TokenView
	for _, t := range s.state().Tokens.Tokens() {
		v := apitype.TokenView{Name: tokenName(s.name, t.ID), ID: t.ID, Expires: t.Expires, Uses: t.Uses, Redeemed: len(t.Redeemed), State: apitype.TokenActive}
		switch {
		case !now.Before(t.Expires):
			v.State = apitype.TokenExpired
		case len(t.Redeemed) >= t.Uses:
			v.State = apitype.TokenUsedUp
		}
		out = append(out, v)
	}
	return out
}

// tokenName is a token's resource name: the issuer's name and the start of
// the token's ID, as IssueToken names it.
func tokenName(site, id string) string { return site + "-" + id[:min(8, len(id))] }

// apiRevokeToken forgets an unredeemed token, named by its name or ID, so
// that it can no longer be redeemed. Links made from it stay: `weft link
// delete` revokes those.
func (s *Site) apiRevokeToken(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	found := false
	err := s.commit(func(st *state) error {
		for _, t := range st.Tokens.Tokens() {
			if t.ID == name || tokenName(s.name, t.ID) == name {
				found = st.Tokens.Revoke(t.ID)
				return nil
			}
		}
		return errNotFound("no token %q: see `weft token list`", name)
	})
	if err == nil && !found {
		err = errNotFound("no token %q: see `weft token list`", name)
	}
	return nil, err
}

func (s *Site) apiCreateLink(w http.ResponseWriter, r *http.Request) (any, error) {
	var l resource.Link
	if err := decodeBody(r, &l); err != nil {
		return nil, err
	}
	if err := l.Default(); err != nil {
		return nil, err
	}
	return s.createLink(r.Context(), l)
}

// createLink redeems the link's token and waits until the link is up and
// its first heartbeat measured the round trip, so that the answer shows a
// real RTT. A token this site issued itself is refused before anything is
// dialed: redeeming it could only fail, with a confusing reason.
func (s *Site) createLink(ctx context.Context, l resource.Link) (resource.Link, error) {
	tok := l.Spec.Token
	if tok == nil {
		return resource.Link{}, &apiError{Code: apitype.CodeInvalid, Field: "spec.token",
			Message: "a link is made by redeeming an access token: make one with `weft token issue` at the other site"}
	}
	if tok.Spec.IssuerID == s.id.String() {
		return resource.Link{}, &apiError{Code: apitype.CodeLinkRefused, Field: "spec.token",
			Message: fmt.Sprintf("this token was issued by this site (%s) itself: run `weft link create` with it at the site that should link to %s", s.name, s.name)}
	}
	ctx, cancel := context.WithTimeout(ctx, linkCreateTimeout)
	defer cancel()
	name, err := s.CreateLink(ctx, l.Name, l.Spec.Cost, tok)
	if err != nil {
		var lim *LimitError
		if errors.As(err, &lim) || errors.Is(err, ErrNotSaved) || errors.Is(err, resource.ErrInvalid) {
			return resource.Link{}, err
		}
		if name == "" {
			return resource.Link{}, &apiError{Code: apitype.CodeLinkRefused, Message: err.Error()}
		}
		return resource.Link{}, &apiError{Code: apitype.CodeLinkNotUp, Message: err.Error()}
	}
	return s.waitRTT(ctx, name)
}

// waitRTT waits, bounded, for the first round-trip sample of a link that is
// up: heartbeats measure it, so it comes within a few heartbeat intervals.
// The link package has no event for it, so this polls the session's RTT;
// past the bound the link is returned as it is, with no RTT yet.
func (s *Site) waitRTT(ctx context.Context, name string) (resource.Link, error) {
	bound := 3 * s.opts.Link.HeartbeatInterval
	if bound <= 0 {
		bound = 5 * time.Second
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(bound)
	for {
		links := s.Links()
		i := slices.IndexFunc(links, func(v resource.Link) bool { return v.Name == name })
		if i < 0 {
			return resource.Link{}, errNotFound("link %s was deleted while it came up", name)
		}
		v := links[i]
		if d, err := time.ParseDuration(v.Status.RTT); err == nil && d > 0 || v.Status.State != "up" {
			return v, nil
		}
		select {
		case <-t.C:
		case <-deadline:
			v.Status.RTT = ""
			return v, nil
		case <-ctx.Done():
			v.Status.RTT = ""
			return v, nil
		}
	}
}

func (s *Site) apiRotateLink(w http.ResponseWriter, r *http.Request) (any, error) {
	return nil, s.RotateLink(r.Context(), r.PathValue("name"))
}

func (s *Site) apiDeleteLink(w http.ResponseWriter, r *http.Request) (any, error) {
	return nil, s.DeleteLink(r.PathValue("name"))
}

func (s *Site) apiPutListener(w http.ResponseWriter, r *http.Request) (any, error) {
	var l resource.Listener
	if err := decodeObject(r, &l); err != nil {
		return nil, err
	}
	return s.SetListener(l)
}

func (s *Site) apiDeleteListener(w http.ResponseWriter, r *http.Request) (any, error) {
	found, err := s.DeleteListener(r.PathValue("name"))
	if err == nil && !found {
		err = errNotFound("no listener %q: see `weft listener list`", r.PathValue("name"))
	}
	return nil, err
}

func (s *Site) apiPutConnector(w http.ResponseWriter, r *http.Request) (any, error) {
	var c resource.Connector
	if err := decodeObject(r, &c); err != nil {
		return nil, err
	}
	return s.SetConnector(c)
}

func (s *Site) apiDeleteConnector(w http.ResponseWriter, r *http.Request) (any, error) {
	found, err := s.DeleteConnector(r.PathValue("name"))
	if err == nil && !found {
		err = errNotFound("no connector %q: see `weft connector list`", r.PathValue("name"))
	}
	return nil, err
}

// apiApply applies every document of a YAML or JSON stream, in order. A
// document that fails does not stop the ones after it: each gets its own
// result, and the answer counts the failures. Only a stream that does not
// decode is refused whole, before anything changes.
func (s *Site) apiApply(w http.ResponseWriter, r *http.Request) (any, error) {
	objs, err := resource.Decode(r.Body)
	if err != nil {
		return nil, errInvalid(err)
	}
	out := apitype.ApplyResponse{Items: []apitype.ApplyResult{}}
	for _, o := range objs {
		res := apitype.ApplyResult{Kind: o.Kind, Name: o.Object.(interface{ GetName() string }).GetName()}
		if o.Kind == resource.KindAccessToken {
			res.Kind = resource.KindLink // what applying a token makes
		}
		name, result, err := s.applyOne(r.Context(), o.Object)
		if name != "" {
			res.Name = name
		}
		res.Result = result
		if err != nil {
			d := toAPIError(err)
			res.Result, res.Error = apitype.ApplyFailed, &d
			out.Failed++
		}
		out.Items = append(out.Items, res)
	}
	return out, nil
}

// applyOne applies one decoded object: it reports the name it got and
// whether it was created, configured or found unchanged (then nothing is
// written). An AccessToken is redeemed into a link to its issuer, as
// Skupper's AccessToken resource is.
func (s *Site) applyOne(ctx context.Context, obj any) (name, result string, err error) {
	switch v := obj.(type) {
	case *resource.Listener:
		old := s.findListener(v.Name)
		if old != nil && reflect.DeepEqual(*old, *v) {
			return v.Name, apitype.ApplyUnchanged, nil
		}
		_, err = s.SetListener(*v)
		return v.Name, createdOr(old != nil), err
	case *resource.Connector:
		i := slices.IndexFunc(s.state().Connectors, func(c resource.Connector) bool { return c.Name == v.Name })
		if i >= 0 && reflect.DeepEqual(s.state().Connectors[i], *v) {
			return v.Name, apitype.ApplyUnchanged, nil
		}
		_, err = s.SetConnector(*v)
		return v.Name, createdOr(i >= 0), err
	case *resource.Topic, *resource.Queue, *resource.Subscription:
		o := obj.(object)
		old := s.eventObject(o)
		if old != nil && reflect.DeepEqual(old, o) {
			return o.GetName(), apitype.ApplyUnchanged, nil
		}
		return o.GetName(), createdOr(old != nil), s.putEventObject(o)
	case *resource.Bridge:
		return s.applyBridge(v)
	case *resource.Network:
		return s.applyNetwork(v)
	case *resource.NetworkAttachment:
		return s.applyNetworkAttachment(v)
	case *resource.AddressExport, *resource.AddressImport:
		o := obj.(object)
		result, err := s.putRule(o)
		return o.GetName(), result, err
	case *resource.AccessToken:
		l := resource.Link{Spec: resource.LinkSpec{Token: v}}
		if err := l.Default(); err != nil {
			return "", "", err
		}
		return s.applyLink(ctx, l)
	case *resource.Link:
		return s.applyLink(ctx, *v)
	}
	return "", "", errInvalid(fmt.Errorf("a %T cannot be applied to a site", obj))
}

// applyLink creates a link unless this site already has an outbound link
// of that name to the token's issuer: a token is spent once redeemed, so
// applying the same file again must not redeem it again. To link anew,
// delete the link first.
func (s *Site) applyLink(ctx context.Context, l resource.Link) (string, string, error) {
	if l.Spec.Token != nil {
		name := l.Name
		if name == "" {
			name = l.Spec.Token.Spec.IssuerName
		}
		for _, ol := range s.state().Outbound {
			if ol.IssuerID == l.Spec.Token.Spec.IssuerID && ol.Name == name {
				return name, apitype.ApplyUnchanged, nil
			}
		}
	}
	got, err := s.createLink(ctx, l)
	return got.Name, apitype.ApplyCreated, err
}

func createdOr(existed bool) string {
	if existed {
		return apitype.ApplyConfigured
	}
	return apitype.ApplyCreated
}

func (s *Site) findListener(name string) *resource.Listener {
	for _, l := range s.state().Listeners {
		if l.Name == name {
			return &l
		}
	}
	return nil
}

// SetListener creates or replaces a listener and keeps it across restarts.
// The port is bound first, so that a port in use is refused before anything
// is saved; if the save then fails, the listener is put back as it was.
func (s *Site) SetListener(l resource.Listener) (apitype.ListenerView, error) {
	st := s.state()
	i := slices.IndexFunc(st.Listeners, func(x resource.Listener) bool { return x.Name == l.Name })
	if i < 0 && len(st.Listeners) >= maxListeners {
		s.metrics.LimitRefusals.WithLabelValues("listeners").Inc()
		return apitype.ListenerView{}, limitError("listeners", maxListeners, "delete a listener first")
	}
	addr, err := s.svc.SetListener(l)
	if err != nil {
		return apitype.ListenerView{}, &apiError{Code: apitype.CodeListenFailed, Field: "spec.port",
			Message: fmt.Sprintf("%v: pick another --port (0 picks a free one)", err)}
	}
	err = s.commit(func(st *state) error {
		st.Listeners = slices.DeleteFunc(st.Listeners, func(x resource.Listener) bool { return x.Name == l.Name })
		st.Listeners = append(st.Listeners, l)
		return nil
	})
	if err != nil {
		if i >= 0 {
			s.svc.SetListener(st.Listeners[i])
		} else {
			s.svc.DeleteListener(l.Name)
		}
		return apitype.ListenerView{}, err
	}
	v := s.listenerView(l)
	v.Listen = addr.String()
	if v.Warning != "" {
		s.log.Warn("listener has nowhere to send its clients yet", "listener", l.Name, "address", l.Spec.Address, "why", v.Warning)
	}
	return v, nil
}

// DeleteListener removes a listener; it reports whether there was one.
func (s *Site) DeleteListener(name string) (bool, error) {
	found, err := s.deleteNamed(func(st *state) bool {
		n := len(st.Listeners)
		st.Listeners = slices.DeleteFunc(st.Listeners, func(x resource.Listener) bool { return x.Name == name })
		return n != len(st.Listeners)
	})
	if found {
		s.svc.DeleteListener(name)
	}
	return found, err
}

// SetConnector creates or replaces a connector and announces it to the
// network, once it is saved. A connector that would make the site record too
// large for the network is refused.
func (s *Site) SetConnector(c resource.Connector) (resource.Connector, error) {
	if c.Spec.Selector != "" {
		return resource.Connector{}, &apiError{Code: apitype.CodeInvalid, Field: "spec.selector",
			Message: "a pod selector needs a site in Kubernetes mode (`weft site run --kubernetes`); give a target host:port here"}
	}
	err := s.commit(func(st *state) error {
		st.Connectors = slices.DeleteFunc(st.Connectors, func(x resource.Connector) bool { return x.Name == c.Name })
		st.Connectors = append(st.Connectors, c)
		if len(st.Connectors) > maxConnectors {
			s.metrics.LimitRefusals.WithLabelValues("connectors").Inc()
			return limitError("connectors", maxConnectors, "delete a connector first")
		}
		return s.checkRecord(st.Connectors)
	})
	if err != nil {
		return resource.Connector{}, err
	}
	s.svc.SetConnector(c)
	s.announce()
	return c, nil
}

// checkRecord refuses connectors that, with this site's links and interests,
// would not fit in a site record.
func (s *Site) checkRecord(connectors []resource.Connector) error {
	var interests []string
	if s.events != nil {
		interests = s.events.Interests()
	}
	rec := routing.Record{Site: s.id, Name: s.name, Links: s.localLinks(), Connectors: service.Advertise(connectors), Interests: interests}
	if err := rec.Validate(); err != nil {
		s.metrics.LimitRefusals.WithLabelValues("record").Inc()
		return limitError("bytes of connectors, links and interests in its site record", routing.MaxRecordSize,
			fmt.Sprintf("this connector would break it (%v); use fewer or shorter addresses", err))
	}
	return nil
}

// DeleteConnector removes a connector and withdraws it from the network; it
// reports whether there was one.
func (s *Site) DeleteConnector(name string) (bool, error) {
	found, err := s.deleteNamed(func(st *state) bool {
		n := len(st.Connectors)
		st.Connectors = slices.DeleteFunc(st.Connectors, func(x resource.Connector) bool { return x.Name == name })
		return n != len(st.Connectors)
	})
	if found {
		s.svc.DeleteConnector(name)
		s.announce()
	}
	return found, err
}

// deleteNamed commits remove, which reports whether it found what it
// removes; nothing is saved when it did not.
func (s *Site) deleteNamed(remove func(st *state) bool) (bool, error) {
	errNotFound := errors.New("not found")
	err := s.commit(func(st *state) error {
		if !remove(st) {
			return errNotFound
		}
		return nil
	})
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return err == nil, err
}
