package console

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// maxSessions bounds the sessions held at once; logging in past it ends
// the session closest to expiry, so a login loop cannot grow memory.
const maxSessions = 256

// session is one logged-in browser: the credential it proved, which the
// console presents to its host's API on the browser's behalf.
type session struct {
	credential string
	expires    time.Time
}

// sessions maps random session tokens to sessions.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex // guards m
	m  map[string]session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[string]session{}}
}

// create starts a session for credential and returns its token.
func (s *sessions) create(credential string) string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	if len(s.m) >= maxSessions {
		oldest := ""
		for k, v := range s.m {
			if oldest == "" || v.expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	s.m[tok] = session{credential: credential, expires: now.Add(s.ttl)}
	return tok
}

// get returns the live session of tok.
func (s *sessions) get(tok string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[tok]
	if ok && !s.now().Before(v.expires) {
		delete(s.m, tok)
		return session{}, false
	}
	return v, ok
}

// end forgets tok's session.
func (s *sessions) end(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, tok)
}
