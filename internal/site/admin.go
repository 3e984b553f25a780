package site

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/service"
)

// maxBody bounds every admin request body.
const maxBody = 1 << 20

// linkCreateTimeout is how long POST /v1/links waits for the link to come up.
const linkCreateTimeout = 30 * time.Second

// apiError is the one shape of every admin API error, with a stable code.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

func errBadRequest(err error) *apiError {
	return &apiError{http.StatusBadRequest, "BadRequest", err.Error()}
}

func errNotFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, "NotFound", fmt.Sprintf(format, args...)}
}

// toAPIError maps an error to its status and stable code: one table for every
// handler, so that the same failure answers the same way everywhere.
func toAPIError(err error) *apiError {
	var (
		ae  *apiError
		lim *LimitError
	)
	switch {
	case errors.As(err, &ae):
		return &apiError{ae.Status, ae.Code, err.Error()}
	case errors.As(err, &lim):
		return &apiError{http.StatusConflict, "LimitReached", err.Error()}
	case errors.Is(err, ErrNotSaved):
		return &apiError{http.StatusInternalServerError, "NotSaved", err.Error()}
	case errors.Is(err, ErrNoLink):
		return &apiError{http.StatusNotFound, "NotFound", err.Error()}
	}
	return &apiError{http.StatusInternalServerError, "Internal", err.Error()}
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	api := map[string]handlerFunc{
		"GET /v1/status":               func(w http.ResponseWriter, r *http.Request) (any, error) { return s.Status(), nil },
		"POST /v1/tokens":              s.apiIssueToken,
		"GET /v1/links":                func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Links()), nil },
		"POST /v1/links":               s.apiCreateLink,
		"DELETE /v1/links/{name}":      s.apiDeleteLink,
		"GET /v1/listeners":            func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Listeners()), nil },
		"PUT /v1/listeners/{name}":     s.apiPutListener,
		"DELETE /v1/listeners/{name}":  s.apiDeleteListener,
		"GET /v1/connectors":           func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.Connectors()), nil },
		"PUT /v1/connectors/{name}":    s.apiPutConnector,
		"DELETE /v1/connectors/{name}": s.apiDeleteConnector,
		"POST /v1/apply":               s.apiApply,
	}
	maps.Copy(api, s.eventRoutes())
	for pattern, h := range api {
		mux.Handle(pattern, s.authed(h))
	}
	return mux
}

func list[T any](items []T) map[string][]T { return map[string][]T{"items": items} }

// authed checks the bearer credential, bounds the body and writes the result or
// the error as JSON.
func (s *Site) authed(h handlerFunc) http.Handler {
	want := []byte("Bearer " + s.adminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": &apiError{Code: "Unauthorized",
				Message: "missing or wrong bearer token: use the one in the site's admin.token file"}})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		v, err := h(w, r)
		if err != nil {
			ae := toAPIError(err)
			writeJSON(w, ae.Status, map[string]any{"error": ae})
			return
		}
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
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err != nil {
		return errBadRequest(fmt.Errorf("request body: %w", err))
	}
	return nil
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
		return errBadRequest(fmt.Errorf("metadata.name %q does not match the path's %q", obj.GetName(), name))
	}
	if err := obj.Default(); err != nil {
		return errBadRequest(err)
	}
	return nil
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Expires string `json:"expires,omitempty"` // a Go duration, default 15m
	Uses    int    `json:"uses,omitempty"`    // default 1
}

func (s *Site) apiIssueToken(w http.ResponseWriter, r *http.Request) (any, error) {
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	ttl, uses, err := req.parse()
	if err != nil {
		return nil, errBadRequest(err)
	}
	return s.IssueToken(ttl, uses)
}

// parse validates a token request and fills in its defaults: 15 minutes, one
// use.
func (req TokenRequest) parse() (ttl time.Duration, uses int, err error) {
	ttl, uses = 15*time.Minute, req.Uses
	if req.Expires != "" {
		ttl, err = time.ParseDuration(req.Expires)
		if err != nil || ttl <= 0 {
			return 0, 0, fmt.Errorf("expires: %q is not a positive duration such as 15m", req.Expires)
		}
	}
	if uses == 0 {
		uses = 1
	}
	if uses < 1 || uses > identity.MaxTokenUses {
		return 0, 0, fmt.Errorf("uses: %d is not within 1..%d", req.Uses, identity.MaxTokenUses)
	}
	return ttl, uses, nil
}

func (s *Site) apiCreateLink(w http.ResponseWriter, r *http.Request) (any, error) {
	var l resource.Link
	if err := decodeBody(r, &l); err != nil {
		return nil, err
	}
	if err := l.Default(); err != nil {
		return nil, errBadRequest(err)
	}
	if l.Spec.Token == nil {
		return nil, errBadRequest(errors.New("spec.token: a link is made by redeeming an access token"))
	}
	ctx, cancel := context.WithTimeout(r.Context(), linkCreateTimeout)
	defer cancel()
	name, err := s.CreateLink(ctx, l.Name, l.Spec.Cost, l.Spec.Token)
	if err != nil {
		var lim *LimitError
		if errors.As(err, &lim) || errors.Is(err, ErrNotSaved) {
			return nil, err
		}
		if name == "" {
			return nil, &apiError{http.StatusBadRequest, "LinkRefused", err.Error()}
		}
		return nil, &apiError{http.StatusGatewayTimeout, "LinkNotUp", err.Error()}
	}
	for _, v := range s.Links() {
		if v.Name == name {
			return v, nil
		}
	}
	return nil, errNotFound("link %s vanished", name)
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
		err = errNotFound("no listener %q", r.PathValue("name"))
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
		err = errNotFound("no connector %q", r.PathValue("name"))
	}
	return nil, err
}

// ApplyResult says what apply did with one object.
type ApplyResult struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Result string `json:"result"`
}

func (s *Site) apiApply(w http.ResponseWriter, r *http.Request) (any, error) {
	objs, err := resource.Decode(r.Body)
	if err != nil {
		return nil, errBadRequest(err)
	}
	var out []ApplyResult
	for _, o := range objs {
		switch v := o.Object.(type) {
		case *resource.Listener:
			if _, err := s.SetListener(*v); err != nil {
				return nil, fmt.Errorf("listener %s: %w", v.Name, err)
			}
			out = append(out, ApplyResult{o.Kind, v.Name, "configured"})
		case *resource.Connector:
			if _, err := s.SetConnector(*v); err != nil {
				return nil, fmt.Errorf("connector %s: %w", v.Name, err)
			}
			out = append(out, ApplyResult{o.Kind, v.Name, "configured"})
		case *resource.Topic, *resource.Queue, *resource.Subscription:
			obj := o.Object.(object)
			if err := s.putEventObject(obj); err != nil {
				return nil, err
			}
			out = append(out, ApplyResult{o.Kind, obj.GetName(), "configured"})
		case *resource.Link:
			if v.Spec.Token == nil {
				return nil, errBadRequest(fmt.Errorf("link %s: spec.token is required", v.Name))
			}
			ctx, cancel := context.WithTimeout(r.Context(), linkCreateTimeout)
			name, err := s.CreateLink(ctx, v.Name, v.Spec.Cost, v.Spec.Token)
			cancel()
			if err != nil {
				return nil, &apiError{http.StatusBadRequest, "LinkRefused", fmt.Sprintf("link %s: %v", v.Name, err)}
			}
			out = append(out, ApplyResult{o.Kind, name, "created"})
		default:
			return nil, errBadRequest(fmt.Errorf("%s %T cannot be applied to a site", o.Kind, v))
		}
	}
	return list(out), nil
}

// SetListener creates or replaces a listener and keeps it across restarts.
// The port is bound first, so that a port in use is refused before anything
// is saved; if the save then fails, the listener is put back as it was.
func (s *Site) SetListener(l resource.Listener) (ListenerView, error) {
	st := s.state()
	i := slices.IndexFunc(st.Listeners, func(x resource.Listener) bool { return x.Name == l.Name })
	if i < 0 && len(st.Listeners) >= maxListeners {
		s.metrics.LimitRefusals.WithLabelValues("listeners").Inc()
		return ListenerView{}, limitError("listeners", maxListeners, "delete a listener first")
	}
	addr, err := s.svc.SetListener(l)
	if err != nil {
		return ListenerView{}, &apiError{http.StatusConflict, "ListenFailed", err.Error()}
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
		return ListenerView{}, err
	}
	return ListenerView{Listener: l, Listen: addr.String()}, nil
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
