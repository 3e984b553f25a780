package site

import (
	"errors"
	"net/http"
	"reflect"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/bridge"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/resource"

	// The broker kinds a site can bridge to: each registers its module.
	_ "weft.dev/weft/internal/bridge/amqp"
	_ "weft.dev/weft/internal/bridge/kafka"
	_ "weft.dev/weft/internal/bridge/mqtt"
	_ "weft.dev/weft/internal/bridge/nats"
)

// initBridges restores the site's bridges after its broker; their taps'
// interests are then in the broker's first interests.
func (s *Site) initBridges() error {
	m, err := bridge.NewManager(bridge.ManagerConfig{Site: s.name, Mesh: s.events, Store: s.eventStore, Logger: s.log, Registry: s.metrics.Registry})
	s.bridges = m
	return err
}

func (s *Site) bridgeRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"GET /v1/bridges": func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.bridges.List()), nil },
		"PUT /v1/bridges/{name}": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var b resource.Bridge
			if err := decodeObject(r, &b); err != nil {
				return nil, err
			}
			return &b, s.putBridge(b)
		},
		"DELETE /v1/bridges/{name}": s.apiDeleteEventObject("bridge", s.bridges.Delete),
	}
}

// putBridge stores and starts a valid Bridge.
func (s *Site) putBridge(b resource.Bridge) error {
	err := s.bridges.Put(b)
	switch {
	case errors.Is(err, bridge.ErrInvalid):
		return errInvalid(err)
	case errors.Is(err, broker.ErrTooManyInterests):
		s.metrics.LimitRefusals.WithLabelValues("interests").Inc()
	}
	return err
}

// applyBridge is apply's step for a Bridge.
func (s *Site) applyBridge(b *resource.Bridge) (name, result string, err error) {
	old, ok := s.bridges.Get(b.Name)
	if ok && reflect.DeepEqual(old, *b) {
		return b.Name, apitype.ApplyUnchanged, nil
	}
	return b.Name, createdOr(ok), s.putBridge(*b)
}
