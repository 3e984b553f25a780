package console

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"weft.dev/weft/internal/apitype"
)

//go:embed web
var webFS embed.FS

var (
	static = func() fs.FS { f, _ := fs.Sub(webFS, "web"); return f }()
	pages  = template.Must(template.ParseFS(webFS, "web/*.html"))
)

// Page kinds: which script renders the snapshots.
const (
	KindSite       = "site"
	KindController = "controller"
)

// cookieName is the session cookie.
const cookieName = "weft_session"

// maxLoginBody bounds the login form: a credential is a few dozen bytes.
const maxLoginBody = 4 << 10

// Config is what a host (a site, the controller) gives its console.
type Config struct {
	// Kind is KindSite or KindController.
	Kind string
	// Title names the host on every page, such as "site east".
	Title string
	// Check reports whether credential is the host API's credential. It
	// must compare in constant time.
	Check func(ctx context.Context, credential string) bool
	// Snapshot returns what the page shows now, encodable as JSON; it is
	// called with the credential the session logged in with.
	Snapshot func(ctx context.Context, credential string) (any, error)
	// Interval is how often open pages get a new snapshot; default 2s.
	Interval time.Duration
	// Done ends open event streams: close it before shutting the HTTP
	// server down, which otherwise waits for them.
	Done <-chan struct{}
	// SessionTTL is how long a login lasts; default 12h.
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// Console serves one host's console.
type Console struct {
	cfg      Config
	sessions *sessions
}

// New returns the console of cfg; Register serves it.
func New(cfg Config) *Console {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Console{cfg: cfg, sessions: newSessions(cfg.SessionTTL, time.Now)}
}

// Register serves the console on mux: the page at /, /login, /logout and
// everything under /console/. Other paths stay the host's.
func (c *Console) Register(mux *http.ServeMux) {
	// POSTs from another origin are refused: a page elsewhere cannot log a
	// browser in or out (login CSRF).
	cop := http.NewCrossOriginProtection()
	mux.Handle("GET /{$}", headers(http.HandlerFunc(c.page)))
	mux.Handle("GET /login", headers(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST /login", headers(cop.Handler(http.HandlerFunc(c.login))))
	mux.Handle("POST /logout", headers(cop.Handler(http.HandlerFunc(c.logout))))
	mux.Handle("GET /console/static/{file}", headers(http.HandlerFunc(assets)))
	mux.Handle("GET /console/api/snapshot", headers(c.authed(c.snapshot)))
	mux.Handle("GET /console/events", headers(c.authed(c.events)))
}

// headers sets what every console answer carries: the page loads nothing
// but its own assets and cannot be framed.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// assets serves the page's scripts and styles; the page templates are not
// assets.
func assets(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".css") {
		http.NotFound(w, r)
		return
	}
	http.ServeFileFS(w, r, static, name)
}

// session returns the request's live session.
func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	return c.sessions.get(ck.Value)
}

// authed answers 401 in the API's error shape to a request without a live
// session.
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			apitype.WriteError(w, apitype.ErrorDetail{Code: apitype.CodeUnauthorized,
				Message: "no console session: log in at /login with the API's credential"})
			return
		}
		h(w, r, s)
	})
}

type pageData struct {
	Kind, Title, Error string
}

func (c *Console) render(w http.ResponseWriter, status int, name string, d pageData) {
	d.Kind, d.Title = c.cfg.Kind, c.cfg.Title
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		c.cfg.Logger.Debug("console page not written", "page", name, "err", err)
	}
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.session(r); !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "page.html", pageData{})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.session(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "login.html", pageData{})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		c.render(w, http.StatusBadRequest, "login.html", pageData{Error: "The login form did not arrive whole; reload the page and try again."})
		return
	}
	cred := strings.TrimSpace(r.PostForm.Get("credential"))
	if cred == "" || !c.cfg.Check(r.Context(), cred) {
		c.cfg.Logger.Warn("console login refused", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "login.html", pageData{Error: "Wrong credential: paste the API's token (the admin.token file in the data directory)."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: c.sessions.create(cred), Path: "/",
		MaxAge: int(c.cfg.SessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.end(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (c *Console) snapshot(w http.ResponseWriter, r *http.Request, s session) {
	v, err := c.cfg.Snapshot(r.Context(), s.credential)
	if err != nil {
		apitype.WriteError(w, apitype.ErrorDetail{Code: apitype.CodeInternal, Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
