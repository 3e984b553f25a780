// Package forwardtest is a network of weft sites in one process, for tests of
// what runs above the link: sites joined by real link sessions over
// net.Pipe, each serving the streams it receives with forward.Serve, as a
// real site does, and handing those that end there to a deliver function
// the test chooses. No sockets, no TLS, no routing: paths are given.
package forwardtest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/siteid"
)

// Mesh is a set of sites and the links between them. Close (registered
// with t.Cleanup by New) ends every session and waits for every goroutine.
type Mesh struct {
	t      testing.TB
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	sites map[siteid.ID]*Site
}

// Site is one site of a Mesh.
type Site struct {
	ID   siteid.ID
	Name string
	m    *Mesh

	mu      sync.Mutex
	links   map[siteid.ID]*link.Session
	deliver func(*link.Stream, *forward.Header)
}

// New returns an empty mesh, closed when the test ends.
func New(t testing.TB) *Mesh {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mesh{t: t, ctx: ctx, cancel: cancel, sites: map[siteid.ID]*Site{}}
	t.Cleanup(m.Close)
	return m
}

// Site adds a site whose ID is derived from name, so that tests and their
// failures read the same each run. Streams that end at the site are
// rejected with forward.RejectUnknownKind until SetDeliver.
func (m *Mesh) Site(name string) *Site {
	var id siteid.ID
	copy(id[:], name)
	s := &Site{ID: id, Name: name, m: m, links: map[siteid.ID]*link.Session{}}
	m.mu.Lock()
	m.sites[id] = s
	m.mu.Unlock()
	return s
}

// SetDeliver sets what the site does with streams whose path ends there.
func (s *Site) SetDeliver(f func(*link.Stream, *forward.Header)) {
	s.mu.Lock()
	s.deliver = f
	s.mu.Unlock()
}

// Session is the site's link session to peer, nil when there is none: the
// site is a forward.Links.
func (s *Site) Session(peer siteid.ID) *link.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.links[peer]
}

// Open opens a stream from s along path, as an ingress site does.
func (s *Site) Open(ctx context.Context, kind forward.Kind, address string, path ...*Site) (*link.Stream, error) {
	ids := make([]siteid.ID, len(path))
	for i, p := range path {
		ids[i] = p.ID
	}
	return forward.Open(ctx, s, forward.NewHeader(kind, address, s.ID, ids))
}

// Link joins a and b with a link session over net.Pipe (a dials, b
// accepts) and starts serving the streams each receives.
func (m *Mesh) Link(a, b *Site) {
	ca, cb := net.Pipe()
	sa := link.Client(ca, link.Config{})
	sb := link.Server(cb, link.Config{})
	a.mu.Lock()
	a.links[b.ID] = sa
	a.mu.Unlock()
	b.mu.Lock()
	b.links[a.ID] = sb
	b.mu.Unlock()
	m.serve(a, sa)
	m.serve(b, sb)
}

// Unlink closes the link between a and b, as a link failure would.
func (m *Mesh) Unlink(a, b *Site) {
	for _, x := range [][2]*Site{{a, b}, {b, a}} {
		x[0].mu.Lock()
		sess := x[0].links[x[1].ID]
		delete(x[0].links, x[1].ID)
		x[0].mu.Unlock()
		if sess != nil {
			sess.Close()
		}
	}
}

func (m *Mesh) serve(s *Site, sess *link.Session) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			st, err := sess.Accept(m.ctx)
			if err != nil {
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				forward.Serve(m.ctx, s.ID, st, s, nil, s.deliverStream)
			}()
		}
	}()
}

func (s *Site) deliverStream(st *link.Stream, h *forward.Header) {
	s.mu.Lock()
	f := s.deliver
	s.mu.Unlock()
	if f == nil {
		st.Reject(forward.RejectUnknownKind, fmt.Sprintf("site %s serves nothing", s.Name))
		return
	}
	f(st, h)
}

// Close ends every session and waits for the goroutines serving them.
func (m *Mesh) Close() {
	m.cancel()
	m.mu.Lock()
	var sess []*link.Session
	for _, s := range m.sites {
		s.mu.Lock()
		for _, l := range s.links {
			sess = append(sess, l)
		}
		s.mu.Unlock()
	}
	m.mu.Unlock()
	for _, l := range sess {
		l.Close()
	}
	m.wg.Wait()
}
