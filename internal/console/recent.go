package console

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Entry is one recent warning or error of the host's log.
type Entry struct {
	Time    time.Time         `json:"time"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

// Recent keeps the last warnings and errors a host logged, for the
// console's "recent errors". Safe for concurrent use.
type Recent struct {
	keep int

	mu   sync.Mutex // guards ring
	ring []Entry    // oldest first, at most keep
}

// NewRecent keeps the last keep entries.
func NewRecent(keep int) *Recent { return &Recent{keep: max(keep, 1)} }

// Entries returns the entries held, newest first.
func (r *Recent) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.ring)
	slices.Reverse(out)
	if out == nil {
		out = []Entry{}
	}
	return out
}

func (r *Recent) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) == r.keep {
		r.ring = append(r.ring[:0], r.ring[1:]...)
	}
	r.ring = append(r.ring, e)
}

// Tee returns a handler that passes every record to next and keeps those
// at warning level and above in r.
func (r *Recent) Tee(next slog.Handler) slog.Handler {
	return &teeHandler{next: next, r: r}
}

type teeHandler struct {
	next  slog.Handler
	r     *Recent
	attrs []slog.Attr // from WithAttrs, group-qualified
	group string
}

var _ slog.Handler = (*teeHandler)(nil)

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *teeHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		e := Entry{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message, Attrs: map[string]string{}}
		for _, a := range h.attrs {
			e.Attrs[a.Key] = a.Value.String()
		}
		rec.Attrs(func(a slog.Attr) bool {
			e.Attrs[h.qualify(a.Key)] = a.Value.String()
			return true
		})
		h.r.add(e)
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *teeHandler) qualify(key string) string {
	if h.group == "" {
		return key
	}
	return h.group + "." + key
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		c.attrs = append(c.attrs, slog.Attr{Key: h.qualify(a.Key), Value: a.Value})
	}
	return &c
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = c.qualify(name)
	return &c
}
