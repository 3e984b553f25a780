// Package labelcap bounds the values of a metric label that comes from
// user input, such as an event topic's name: the first Max distinct names
// keep their own value, and every later one is folded into Other. A
// publisher inventing a new topic per event then costs a fixed number of
// series in /metrics and in the console, not one per topic.
//
// Names are admitted first come, first kept, and never evicted: a series
// that came and went with eviction would make rates jump. A name deleted
// from the configuration keeps its place until the process restarts.
package labelcap

import "sync"

// Other is the label value of the names past the cap. No topic, queue or
// link name can be it: they allow no parentheses.
const Other = "(other)"

// Set is the bounded set of names. Safe for concurrent use.
type Set struct {
	max int

	mu    sync.RWMutex // guards names
	names map[string]struct{}
}

// New returns a set that keeps at most limit names (at least 1).
func New(limit int) *Set {
	return &Set{max: max(limit, 1), names: map[string]struct{}{}}
}

// Value returns name when the set holds it or has room for it (it then
// holds it), else Other.
func (s *Set) Value(name string) string {
	s.mu.RLock()
	_, ok := s.names[name]
	full := len(s.names) >= s.max
	s.mu.RUnlock()
	switch {
	case ok:
		return name
	case full:
		return Other
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[name]; !ok && len(s.names) >= s.max {
		return Other
	}
	s.names[name] = struct{}{}
	return name
}

// Len returns how many names the set holds.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.names)
}
