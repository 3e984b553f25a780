// Package api serves the controller's REST API: projects, clusters, apps,
// traffic groups and intents under /v2, a group's plan, apply and status, API
// tokens, and the OpenAPI document at /openapi.json. Every request but
// /openapi.json and /healthz needs a bearer token; read-only tokens may only GET.
package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/buildinfo"
	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/store"
)

// Server is the API's handler.
type Server struct {
	store   *store.Store
	trigger func()
	log     *slog.Logger
	mux     *http.ServeMux
	// compiled keeps the groups last planned, so that a plan after one
	// intent changed renders only that intent.
	compiled *compile.Cache
}

var _ http.Handler = (*Server)(nil)

// New returns the API over st. trigger is called after every write and apply,
// so that the sync engine looks at the desired state again; it must not block.
func New(st *store.Store, trigger func(), log *slog.Logger) *Server {
	s := &Server{store: st, trigger: trigger, log: log, mux: http.NewServeMux(), compiled: compile.NewCache()}
	s.routes()
	return s
}

// Route patterns, shared by the mux and the OpenAPI document.
const (
	pProjects = "/v2/projects"
	pProject  = "/v2/projects/{project}"
	pClusters = "/v2/projects/{project}/clusters"
	pCluster  = "/v2/projects/{project}/clusters/{cluster}"
	pApps     = "/v2/projects/{project}/apps"
	pApp      = "/v2/projects/{project}/apps/{app}/{version}"
	pGroups   = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups"
	pGroup    = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}"
	pIntents  = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}/intents"
	pIntent   = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}/intents/{intent}"
	pPlan     = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}/plan"
	pApply    = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}/apply"
	pStatus   = "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}/status"
	pTokens   = "/v2/tokens"
)

// collection describes one kind of stored object and where it lives.
type collection struct {
	kind, list, item string
	new              func() model.Object
	listFn           func(ctx context.Context, st *store.Store, parent store.Ref) (any, error)
	// parent is the parent's ref from the request's path.
	parent func(r *http.Request) store.Ref
	// key is the object's key under parent: from the body on POST.
	key func(parent store.Ref, obj model.Object) string
	// itemKey is the object's key from the item path.
	itemKey func(r *http.Request) string
}

func listOf[T any, PT interface {
	*T
	model.Object
}](kind string) func(ctx context.Context, st *store.Store, parent store.Ref) (any, error) {
	return func(ctx context.Context, st *store.Store, parent store.Ref) (any, error) {
		items, err := store.List[T, PT](ctx, st, kind, parent)
		return map[string]any{"items": items}, err
	}
}

func pv(r *http.Request, names ...string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = r.PathValue(n)
	}
	return strings.Join(parts, "/")
}

func byName(parent store.Ref, obj model.Object) string {
	if parent == store.Root {
		return obj.Meta().Name
	}
	return parent.Key + "/" + obj.Meta().Name
}

var collections = []collection{
	{kind: store.KindProject, list: pProjects, item: pProject,
		new: func() model.Object { return &model.Project{} }, listFn: listOf[model.Project](store.KindProject),
		parent:  func(*http.Request) store.Ref { return store.Root },
		key:     byName,
		itemKey: func(r *http.Request) string { return pv(r, "project") }},
	{kind: store.KindCluster, list: pClusters, item: pCluster,
		new: func() model.Object { return &model.Cluster{} }, listFn: listOf[model.Cluster](store.KindCluster),
		parent:  func(r *http.Request) store.Ref { return store.Ref{Kind: store.KindProject, Key: pv(r, "project")} },
		key:     byName,
		itemKey: func(r *http.Request) string { return pv(r, "project", "cluster") }},
	{kind: store.KindApp, list: pApps, item: pApp,
		new: func() model.Object { return &model.App{} }, listFn: listOf[model.App](store.KindApp),
		parent: func(r *http.Request) store.Ref { return store.Ref{Kind: store.KindProject, Key: pv(r, "project")} },
		// An app is stored per version: its key is name/version.
		key: func(p store.Ref, o model.Object) string {
			return p.Key + "/" + o.Meta().Name + "/" + o.(*model.App).Spec.Version
		},
		itemKey: func(r *http.Request) string { return pv(r, "project", "app", "version") }},
	{kind: store.KindGroup, list: pGroups, item: pGroup,
		new: func() model.Object { return &model.TrafficGroup{} }, listFn: listOf[model.TrafficGroup](store.KindGroup),
		parent: func(r *http.Request) store.Ref {
			return store.Ref{Kind: store.KindApp, Key: pv(r, "project", "app", "version")}
		},
		key:     byName,
		itemKey: func(r *http.Request) string { return pv(r, "project", "app", "version", "group") }},
	{kind: store.KindIntent, list: pIntents, item: pIntent,
		new: func() model.Object { return &model.Intent{} }, listFn: listOf[model.Intent](store.KindIntent),
		parent: func(r *http.Request) store.Ref {
			return store.Ref{Kind: store.KindGroup, Key: pv(r, "project", "app", "version", "group")}
		},
		key:     byName,
		itemKey: func(r *http.Request) string { return pv(r, "project", "app", "version", "group", "intent") }},
}

func (s *Server) routes() {
	for _, c := range collections {
		s.mux.HandleFunc("GET "+c.list, s.auth(false, c.handleList))
		s.mux.HandleFunc("POST "+c.list, s.auth(true, s.handleCreate(c)))
		s.mux.HandleFunc("GET "+c.item, s.auth(false, c.handleGet))
		s.mux.HandleFunc("PUT "+c.item, s.auth(true, s.handleUpdate(c)))
		s.mux.HandleFunc("DELETE "+c.item, s.auth(true, s.handleDelete(c)))
	}
	s.mux.HandleFunc("GET "+pPlan, s.auth(false, s.handlePlan))
	s.mux.HandleFunc("POST "+pApply, s.auth(true, s.handleApply))
	s.mux.HandleFunc("GET "+pStatus, s.auth(false, s.handleStatus))
	s.mux.HandleFunc("POST "+pTokens, s.auth(true, s.handleToken))
	s.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, openAPI()) })
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	// The version is no secret; a monitor reads it without a token.
	s.mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, buildinfo.Get()) })
	// Anything else is answered in the API's error shape, not as text.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: the controller API has no %s %s: see /openapi.json", store.ErrNotFound, r.Method, r.URL.Path))
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type ctxKey struct{}

// auth checks the bearer token; write handlers need the admin role.
func (s *Server) auth(write bool, h func(*store.Store, http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeError(w, errUnauthorized)
			return
		}
		role, err := s.store.TokenRole(r.Context(), tok)
		if err != nil {
			if err == store.ErrUnknownToken {
				err = errUnauthorized
			}
			writeError(w, err)
			return
		}
		if write && role != store.RoleAdmin {
			writeError(w, errForbidden)
			return
		}
		if err := h(s.store, w, r); err != nil {
			if s.log != nil {
				s.log.Debug("api error", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
		}
	}
}

// readBody reads a request body of at most limit bytes. A larger one is
// refused without reading it all, and the connection is closed after the
// answer (http.MaxBytesReader), so that a client cannot make the server hold
// or parse more than limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("%w: %s %s takes at most %d bytes", errTooLarge, r.Method, r.URL.Path, limit)
	case err != nil:
		return nil, fmt.Errorf("%w: reading the body: %v", model.ErrInvalid, err)
	}
	return data, nil
}

// decode reads and validates a body into obj.
func decode(w http.ResponseWriter, r *http.Request, obj model.Object) error {
	data, err := readBody(w, r, model.MaxBody)
	if err != nil {
		return err
	}
	return model.DecodeObject(data, obj)
}

func (c collection) handleList(st *store.Store, w http.ResponseWriter, r *http.Request) error {
	out, err := c.listFn(r.Context(), st, c.parent(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c collection) handleGet(st *store.Store, w http.ResponseWriter, r *http.Request) error {
	obj := c.new()
	if err := st.Get(r.Context(), store.Ref{Kind: c.kind, Key: c.itemKey(r)}, obj); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, obj)
	return nil
}

func (s *Server) handleCreate(c collection) func(*store.Store, http.ResponseWriter, *http.Request) error {
	return func(st *store.Store, w http.ResponseWriter, r *http.Request) error {
		obj := c.new()
		if err := decode(w, r, obj); err != nil {
			return err
		}
		obj.Meta().ResourceVersion = ""
		parent := c.parent(r)
		if err := st.Create(r.Context(), store.Ref{Kind: c.kind, Key: c.key(parent, obj)}, parent, obj); err != nil {
			return err
		}
		s.trigger()
		writeJSON(w, http.StatusCreated, obj)
		return nil
	}
}

func (s *Server) handleUpdate(c collection) func(*store.Store, http.ResponseWriter, *http.Request) error {
	return func(st *store.Store, w http.ResponseWriter, r *http.Request) error {
		obj := c.new()
		if err := decode(w, r, obj); err != nil {
			return err
		}
		key := c.itemKey(r)
		if got := c.key(c.parent(r), obj); got != key {
			return fmt.Errorf("%w: %s, not %s", errNameMismatch, got, key)
		}
		if err := st.Update(r.Context(), store.Ref{Kind: c.kind, Key: key}, obj); err != nil {
			return err
		}
		s.trigger()
		writeJSON(w, http.StatusOK, obj)
		return nil
	}
}

func (s *Server) handleDelete(c collection) func(*store.Store, http.ResponseWriter, *http.Request) error {
	return func(st *store.Store, w http.ResponseWriter, r *http.Request) error {
		if err := st.Delete(r.Context(), store.Ref{Kind: c.kind, Key: c.itemKey(r)}, r.URL.Query().Get("resourceVersion")); err != nil {
			return err
		}
		s.trigger()
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// maxSmallBody bounds the bodies that hold at most a few short fields: a
// TokenRequest, apply's (empty) body.
const maxSmallBody = 4096

// TokenRequest and TokenResponse are apitype's.
type (
	TokenRequest  = apitype.APITokenRequest
	TokenResponse = apitype.APITokenResponse
)

func (s *Server) handleToken(st *store.Store, w http.ResponseWriter, r *http.Request) error {
	var req TokenRequest
	data, err := readBody(w, r, maxSmallBody)
	if err != nil {
		return err
	}
	if err := model.Decode(data, &req); err != nil {
		return err
	}
	if req.Role != store.RoleAdmin && req.Role != store.RoleReadOnly {
		return &model.FieldError{Field: "role", Message: fmt.Sprintf("%q is not admin or read-only", req.Role)}
	}
	tok := NewToken()
	if err := st.AddToken(r.Context(), tok, req.Role); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Role: req.Role, Token: tok})
	return nil
}

// NewToken returns a random 256-bit token.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
