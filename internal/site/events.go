package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// eventsAddrFile names the file in the data directory that holds the event
// API's address, for the CLI and for tests.
const eventsAddrFile = "events.addr"

// eventNet is the broker's view of the site.
type eventNet struct{ s *Site }

var _ broker.Net = eventNet{}

func (n eventNet) Table() *routing.Table { return n.s.Table() }

// InterestsChanged wakes the router goroutine, which reads the interests
// itself: announce never blocks, so the broker may call it under its lock.
func (n eventNet) InterestsChanged() { n.s.announce() }

func (n eventNet) Open(ctx context.Context, path []siteid.ID, tag string) (net.Conn, error) {
	return n.s.OpenStream(ctx, forward.NewHeader(forward.KindEvent, tag, n.s.id, path))
}

// initEvents opens the event store and binds the event API's address.
func (s *Site) initEvents() error {
	st, err := store.Open(filepath.Join(s.opts.DataDir, "events.db"), s.opts.EventsStore)
	if err != nil {
		return err
	}
	b, err := broker.New(broker.Config{Self: s.id, Net: eventNet{s}, Store: st, Logger: s.log, Registry: s.metrics.Registry,
		MaxInterests: s.opts.Events.MaxInterests, MaxSubscriptions: s.opts.Events.MaxSubscriptions, MaxSubscriptionsPerClient: s.opts.Events.MaxSubscriptionsPerClient,
		Authorize: s.authorizeEvents, CredentialDone: s.credentialDone, Admit: s.admitEvent, Tracer: s.tracer})
	if err != nil {
		st.Close()
		return err
	}
	addr := s.opts.EventsAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		st.Close()
		return fmt.Errorf("event listener: %w", err)
	}
	if s.evAuth.required, err = eventsAuthRequired(s.opts.EventsAuth, ln.Addr()); err != nil {
		ln.Close()
		st.Close()
		return err
	}
	if !s.evAuth.required && s.opts.EventsAuth == EventsAuthOff && !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		s.log.Warn("the event API listens beyond loopback without credentials (--events-auth off): anyone who reaches it may publish and subscribe", "events", ln.Addr().String())
	}
	if err := writeFileAtomic(filepath.Join(s.opts.DataDir, eventsAddrFile), []byte(ln.Addr().String()), 0o644); err != nil {
		ln.Close()
		st.Close()
		return err
	}
	s.events, s.eventStore, s.eventsLn = b, st, ln
	return nil
}

// runEvents serves the event API and runs the broker until the site stops;
// the returned function shuts both down (release closes the store).
func (s *Site) runEvents() func() {
	s.events.Run(s.ctx)
	srv := &http.Server{Handler: s.eventsMTLS(s.events.Handler()), ReadHeaderTimeout: 10 * time.Second,
		// Refused client certificates end up here: in the site's log.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.goFunc(func() {
		if err := srv.Serve(newSniffTLS(s.eventsLn, s.eventsTLS())); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("event API stopped", "err", err)
		}
	})
	return func() {
		// SSE streams never end by themselves: Close, not Shutdown.
		srv.Close()
		s.stopCredentialWatch()
		s.events.Wait()
	}
}

// EventsAddr is where the event API listens.
func (s *Site) EventsAddr() net.Addr { return s.eventsLn.Addr() }

// eventInterests are the interests to put into the site record.
func (s *Site) eventInterests() []string {
	if s.events == nil {
		return nil
	}
	return s.events.Interests()
}

// serveEventStream hands an event stream that ends here to the broker.
// Event streams go from neighbour to neighbour: the broker takes the
// stream's sender to be peer, the neighbour proven in the link hello.
func (s *Site) serveEventStream(st *link.Stream, h *forward.Header, peer siteid.ID) {
	if err := st.Confirm(); err != nil {
		return
	}
	s.events.ServeStream(st, h.Address, peer)
}

func (s *Site) eventRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"GET /v1/events": func(w http.ResponseWriter, r *http.Request) (any, error) { return s.EventConfig(), nil },
		"GET /v1/topics": func(w http.ResponseWriter, r *http.Request) (any, error) {
			ts, _, _ := s.events.Config()
			return list(ts), nil
		},
		"GET /v1/queues": func(w http.ResponseWriter, r *http.Request) (any, error) {
			_, qs, _ := s.events.Config()
			return list(qs), nil
		},
		"GET /v1/subscriptions": func(w http.ResponseWriter, r *http.Request) (any, error) {
			_, _, ss := s.events.Config()
			return list(ss), nil
		},
		"PUT /v1/topics/{name}":           s.apiPutEventObject(resource.KindTopic),
		"PUT /v1/queues/{name}":           s.apiPutEventObject(resource.KindQueue),
		"PUT /v1/subscriptions/{name}":    s.apiPutEventObject(resource.KindSubscription),
		"DELETE /v1/topics/{name}":        s.apiDeleteEventObject("topic", s.events.DeleteTopic),
		"DELETE /v1/queues/{name}":        s.apiDeleteEventObject("queue", s.events.DeleteQueue),
		"DELETE /v1/subscriptions/{name}": s.apiDeleteEventObject("subscription", s.events.DeleteSubscription),
	}
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func (s *Site) apiDeleteEventObject(kind string, del func(name string) (bool, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		found, err := del(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, errNotFound("no %s %q: see `weft %s list`", kind, r.PathValue("name"), kind)
		}
		return nil, nil
	}
}

func (s *Site) apiPutEventObject(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		var obj object
		switch kind {
		case resource.KindTopic:
			obj = &resource.Topic{}
		case resource.KindQueue:
			obj = &resource.Queue{}
		default:
			obj = &resource.Subscription{}
		}
		if err := decodeObject(r, obj); err != nil {
			return nil, err
		}
		if err := s.putEventObject(obj); err != nil {
			return nil, err
		}
		return obj, nil
	}
}

// eventObject is the stored Topic, Queue or Subscription of obj's kind and
// name, or nil.
func (s *Site) eventObject(obj object) object {
	ts, qs, ss := s.events.Config()
	name := obj.GetName()
	switch obj.(type) {
	case *resource.Topic:
		if i := slices.IndexFunc(ts, func(t resource.Topic) bool { return t.Name == name }); i >= 0 {
			return &ts[i]
		}
	case *resource.Queue:
		if i := slices.IndexFunc(qs, func(q resource.Queue) bool { return q.Name == name }); i >= 0 {
			return &qs[i]
		}
	case *resource.Subscription:
		if i := slices.IndexFunc(ss, func(x resource.Subscription) bool { return x.Name == name }); i >= 0 {
			return &ss[i]
		}
	}
	return nil
}

// putEventObject stores a valid Topic, Queue or Subscription. Topics and
// queues share one namespace: a name is a topic or a queue, never both, so
// that publishing by name alone (POST /v1/events/{name}, `weft publish`)
// always means one of them. eventObjMu makes the check and the put one step.
func (s *Site) putEventObject(obj object) error {
	s.eventObjMu.Lock()
	defer s.eventObjMu.Unlock()
	var err error
	switch v := obj.(type) {
	case *resource.Topic:
		if err := s.nameFree(v.Name, &resource.Queue{}, "queue"); err != nil {
			return err
		}
		err = s.events.PutTopic(*v)
	case *resource.Queue:
		if err := s.nameFree(v.Name, &resource.Topic{}, "topic"); err != nil {
			return err
		}
		err = s.events.PutQueue(*v)
	case *resource.Subscription:
		err = s.events.PutSubscription(*v)
	default:
		return errInvalid(fmt.Errorf("%T is not an event object", obj))
	}
	if errors.Is(err, broker.ErrTooManyInterests) {
		s.metrics.LimitRefusals.WithLabelValues("interests").Inc()
	}
	return err
}

// nameFree refuses name when an object of the other kind has it.
func (s *Site) nameFree(name string, other object, otherKind string) error {
	other.SetName(name)
	if s.eventObject(other) == nil {
		return nil
	}
	return &apiError{Code: apitype.CodeNameInUse, Field: "metadata.name",
		Message: fmt.Sprintf("%q is a %s here: a name is a topic or a queue, never both; pick another name or delete the %s (`weft %s delete %s`)",
			name, otherKind, otherKind, otherKind, name)}
}
