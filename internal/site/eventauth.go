package site

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
)

// Modes of Options.EventsAuth (`weft site run --events-auth`).
const (
	// EventsAuthAuto requires a credential when the event API listens
	// beyond loopback and leaves it open on loopback, where only this
	// host's users reach it (the demo, a sidecar).
	EventsAuthAuto = "auto"
	EventsAuthOn   = "on"  // always require a credential
	EventsAuthOff  = "off" // never: anyone who reaches the port may publish and subscribe
)

// Limits on event credentials; variables so that a test can reach them.
var (
	maxEventCredentials   = 1024
	maxCredentialPatterns = 64 // publish and subscribe patterns of one credential, each
)

// credentialPrefix starts every event credential's secret, so that secret
// scanners and people recognise one.
const credentialPrefix = "weftev_"

// eventCredential is an event API credential as the site state keeps it:
// the SHA-256 of its secret, never the secret.
type eventCredential struct {
	Name      string     `json:"name"`
	Hash      string     `json:"hash"` // hex SHA-256 of the secret
	Publish   []string   `json:"publish,omitempty"`
	Subscribe []string   `json:"subscribe,omitempty"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires,omitempty"`
}

func (c *eventCredential) view(now time.Time) apitype.EventCredentialView {
	v := apitype.EventCredentialView{Name: c.Name, Publish: orEmpty(c.Publish), Subscribe: orEmpty(c.Subscribe),
		Created: c.Created, Expires: c.Expires, State: apitype.CredentialActive}
	if c.expired(now) {
		v.State = apitype.CredentialExpired
	}
	return v
}

func (c *eventCredential) expired(now time.Time) bool {
	return c.Expires != nil && !now.Before(*c.Expires)
}

// eventAuth is the site's side of event API access: whether a credential
// is required, and an index of the credentials by hash.
type eventAuth struct {
	// required is decided in initEvents, before the API serves.
	required bool
	// index is built from the state it names on the first request after
	// a commit changed the state.
	index atomic.Pointer[credentialIndex]

	// mu guards the fields below: watches holds, by credential hash, the
	// channel that live subscriptions with that credential end on, closed
	// when the credential is deleted or expires; timer fires at the
	// earliest expiry among them.
	mu      sync.Mutex
	watches map[string]chan struct{}
	timer   *time.Timer
	stopped bool
}

type credentialIndex struct {
	st     *state
	byHash map[string]*eventCredential
}

// eventsAuthRequired decides whether the event API listening at addr
// requires a credential in mode.
func eventsAuthRequired(mode string, addr net.Addr) (bool, error) {
	switch mode {
	case EventsAuthOn:
		return true, nil
	case EventsAuthOff:
		return false, nil
	case EventsAuthAuto, "":
		ta, ok := addr.(*net.TCPAddr)
		return !ok || !ta.IP.IsLoopback(), nil
	}
	return false, fmt.Errorf("--events-auth %q: use auto (credentials beyond loopback), on or off", mode)
}

// credentials is the index of the state's credentials by hash.
func (s *Site) credentials() map[string]*eventCredential {
	st := s.state()
	if ix := s.evAuth.index.Load(); ix != nil && ix.st == st {
		return ix.byHash
	}
	ix := &credentialIndex{st: st, byHash: make(map[string]*eventCredential, len(st.EventCredentials))}
	for i := range st.EventCredentials {
		c := &st.EventCredentials[i]
		ix.byHash[c.Hash] = c
	}
	s.evAuth.index.Store(ix)
	return ix.byHash
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// authorizeEvents is the broker's Config.Authorize.
func (s *Site) authorizeEvents(cred string, access broker.Access, subject string) error {
	if !s.evAuth.required {
		return nil
	}
	if cred == "" {
		return fmt.Errorf("%w: this site's event API listens beyond loopback; pass a credential (`weft publish|subscribe --credential SECRET`, or the header Authorization: Bearer SECRET); an admin makes one with `weft credential create`", broker.ErrUnauthenticated)
	}
	c := s.credentials()[hashSecret(cred)]
	switch {
	case c == nil:
		return fmt.Errorf("%w: the credential is not known here (deleted, or made at another site): see `weft credential list`", broker.ErrUnauthenticated)
	case c.expired(time.Now()):
		return fmt.Errorf("%w: credential %q expired at %s: make a new one with `weft credential create`", broker.ErrUnauthenticated, c.Name, c.Expires.Format(time.RFC3339))
	}
	patterns := c.Publish
	if access == broker.Subscribe {
		patterns = c.Subscribe
	}
	if slices.ContainsFunc(patterns, func(p string) bool { return events.Covers(p, subject) }) {
		return nil
	}
	may := "nothing"
	if len(patterns) > 0 {
		may = strings.Join(patterns, ", ")
	}
	return fmt.Errorf("%w: credential %q may not %s %q: it may %s %s", broker.ErrForbidden, c.Name, access, subject, access, may)
}

// credentialDone is the broker's Config.CredentialDone: the channel closed
// when cred is deleted or expires.
func (s *Site) credentialDone(cred string) <-chan struct{} {
	if !s.evAuth.required {
		return nil
	}
	h := hashSecret(cred)
	c := s.credentials()[h]
	a := &s.evAuth
	a.mu.Lock()
	done, ok := a.watches[h]
	if !ok {
		done = make(chan struct{})
		if c == nil || c.expired(time.Now()) {
			close(done)
			a.mu.Unlock()
			return done
		}
		if a.watches == nil {
			a.watches = map[string]chan struct{}{}
		}
		a.watches[h] = done
	}
	a.mu.Unlock()
	if !ok && c.Expires != nil {
		s.recheckCredentials()
	}
	return done
}

// recheckCredentials ends the subscriptions of credentials that are gone
// or expired, and sets the timer for the next expiry. A change of the
// credentials and the timer call it.
func (s *Site) recheckCredentials() {
	now := time.Now()
	creds := s.credentials()
	a := &s.evAuth
	a.mu.Lock()
	defer a.mu.Unlock()
	var next *time.Time
	for h, done := range a.watches {
		c := creds[h]
		if c == nil || c.expired(now) {
			close(done)
			delete(a.watches, h)
			continue
		}
		if c.Expires != nil && (next == nil || c.Expires.Before(*next)) {
			next = c.Expires
		}
	}
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if next != nil && !a.stopped {
		a.timer = time.AfterFunc(next.Sub(now), s.recheckCredentials)
	}
}

// stopCredentialWatch stops the expiry timer when the site stops.
func (s *Site) stopCredentialWatch() {
	a := &s.evAuth
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.timer != nil {
		a.timer.Stop()
	}
}

// parseCredentialRequest validates a POST /v1/event-credentials body and
// makes the credential it asks for, without its hash.
func parseCredentialRequest(req apitype.EventCredentialRequest, now time.Time) (eventCredential, error) {
	c := eventCredential{Name: req.Name, Publish: req.Publish, Subscribe: req.Subscribe, Created: now.UTC()}
	if err := resource.ValidateName(req.Name); err != nil {
		return c, &apiError{Code: apitype.CodeInvalid, Field: "name", Message: err.Error()}
	}
	if len(req.Publish)+len(req.Subscribe) == 0 {
		return c, &apiError{Code: apitype.CodeInvalid, Field: "publish",
			Message: "a credential that allows nothing is a mistake: give it publish or subscribe patterns (--publish 'orders.>', --subscribe 'orders.*')"}
	}
	for field, ps := range map[string][]string{"publish": req.Publish, "subscribe": req.Subscribe} {
		if len(ps) > maxCredentialPatterns {
			return c, limitError(field+" patterns per event credential", maxCredentialPatterns, "use wildcards ('*' one token, '>' the rest) to cover more subjects with fewer patterns")
		}
		for i, p := range ps {
			if err := events.ValidatePattern(p); err != nil {
				return c, &apiError{Code: apitype.CodeBadSubject, Field: fmt.Sprintf("%s[%d]", field, i), Message: err.Error()}
			}
		}
	}
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return c, &apiError{Code: apitype.CodeInvalid, Field: "expires", Message: fmt.Sprintf("%q is not a positive duration such as 720h", req.Expires)}
		}
		exp := c.Created.Add(d)
		c.Expires = &exp
	}
	return c, nil
}

func (s *Site) eventCredentialRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"POST /v1/event-credentials": s.apiCreateEventCredential,
		"GET /v1/event-credentials": func(w http.ResponseWriter, r *http.Request) (any, error) {
			now := time.Now()
			var out []apitype.EventCredentialView
			for _, c := range s.state().EventCredentials {
				out = append(out, c.view(now))
			}
			return list(out), nil
		},
		"DELETE /v1/event-credentials/{name}": func(w http.ResponseWriter, r *http.Request) (any, error) {
			name := r.PathValue("name")
			found, err := s.deleteNamed(func(st *state) bool {
				n := len(st.EventCredentials)
				st.EventCredentials = slices.DeleteFunc(st.EventCredentials, func(c eventCredential) bool { return c.Name == name })
				return n != len(st.EventCredentials)
			})
			if err == nil && !found {
				err = errNotFound("no event credential %q: see `weft credential list`", name)
			}
			if found {
				s.recheckCredentials()
			}
			return nil, err
		},
	}
}

// apiCreateEventCredential makes a credential with a random 256-bit secret,
// keeps its hash, and answers the secret, which is never shown again.
func (s *Site) apiCreateEventCredential(w http.ResponseWriter, r *http.Request) (any, error) {
	var req apitype.EventCredentialRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	now := time.Now()
	c, err := parseCredentialRequest(req, now)
	if err != nil {
		return nil, err
	}
	created, err := s.credentialSecret(&c, req, now)
	if err != nil {
		return nil, err
	}
	err = s.commit(func(st *state) error {
		if slices.ContainsFunc(st.EventCredentials, func(x eventCredential) bool { return x.Name == c.Name }) {
			return &apiError{Code: apitype.CodeAlreadyExists, Field: "name",
				Message: fmt.Sprintf("event credential %q exists: delete it first (`weft credential delete %s`) or pick another name", c.Name, c.Name)}
		}
		if len(st.EventCredentials) >= maxEventCredentials {
			s.metrics.LimitRefusals.WithLabelValues("event_credentials").Inc()
			return limitError("event credentials", maxEventCredentials, "delete credentials no longer used (`weft credential delete NAME`)")
		}
		st.EventCredentials = append(st.EventCredentials, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("event credential created", "credential", c.Name, "publish", c.Publish, "subscribe", c.Subscribe)
	created.EventCredentialView = c.view(now)
	return created, nil
}

// credentialSecret makes what proves credential c and sets its hash: a
// random 256-bit bearer secret, with req.Cert a client certificate and key
// from the site CA, whose serial stands for the secret, or with
// req.Organisation the certificates of the site's organisation that name
// c (eventtls.go).
func (s *Site) credentialSecret(c *eventCredential, req apitype.EventCredentialRequest, now time.Time) (apitype.EventCredentialCreated, error) {
	switch {
	case req.Cert && req.Organisation:
		return apitype.EventCredentialCreated{}, &apiError{Code: apitype.CodeInvalid, Field: "organisation",
			Message: "a credential is proved by a certificate of the site CA (cert) or of the organisation (organisation), not both: pick one"}
	case req.Organisation:
		org, ok := s.orgCert()
		if !ok {
			return apitype.EventCredentialCreated{}, &apiError{Code: apitype.CodeInvalid, Field: "organisation",
				Message: "this site is in no organisation: install its certificate first (`weft org install SITE.cert`)"}
		}
		c.Hash = hashSecret(orgCredential(org.Org(), c.Name))
		return apitype.EventCredentialCreated{Organisation: org.Org().String()}, nil
	}
	if !req.Cert {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return apitype.EventCredentialCreated{}, err
		}
		secret := credentialPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		c.Hash = hashSecret(secret)
		return apitype.EventCredentialCreated{Secret: secret}, nil
	}
	keyPEM, csr, err := identity.NewKey()
	if err != nil {
		return apitype.EventCredentialCreated{}, err
	}
	ttl := clientCertTTL
	if c.Expires != nil {
		ttl = c.Expires.Sub(now)
	}
	certPEM, serial, err := s.ca.SignEventClient(now, csr, c.Name, ttl)
	if err != nil {
		return apitype.EventCredentialCreated{}, err
	}
	c.Hash = hashSecret(certCredential(serial))
	return apitype.EventCredentialCreated{CertPEM: string(certPEM), KeyPEM: string(keyPEM), CAPEM: string(s.ca.CertPEM())}, nil
}
