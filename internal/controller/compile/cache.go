package compile

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"weft.dev/weft/internal/controller/render"
)

// cacheGroups is how many traffic groups a Cache remembers: the ones being
// planned and applied now, not the whole project.
const cacheGroups = 16

// Cache compiles a traffic group again rendering only the intents that changed
// since the last compile of that group: for an IntentRenderer, an intent's
// placements depend on the intent and the group's context (project, app,
// group, clusters) alone, so an unchanged intent in an unchanged context
// keeps its labelled and hashed objects. Other renderers render every time.
//
// The objects of a cached compile are shared with the compiles before it:
// callers must not modify them. A Cache is safe for concurrent use; it
// compiles one group at a time.
type Cache struct {
	mu     sync.Mutex
	groups map[string]*groupCache
	recent []string // group keys, least recently compiled first
}

// groupCache is what a Cache keeps of one traffic group.
type groupCache struct {
	context [sha256.Size]byte
	intents map[intentKey]intentEntry
}

type intentKey struct{ renderer, intent string }

// intentEntry is an intent's placements by one renderer, and the intent's
// JSON they were rendered from.
type intentEntry struct {
	spec   string
	placed []placed
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{groups: map[string]*groupCache{}} }

// Compile is Compile(in), rendering again only what changed since the last
// compile of in's group.
func (c *Cache) Compile(in *render.Input) (map[string]*State, error) {
	ctx, err := contextHash(in)
	if err != nil {
		return nil, err
	}
	specs := make([]string, len(in.Intents))
	for i, it := range in.Intents {
		b, err := json.Marshal(it)
		if err != nil {
			return nil, fmt.Errorf("intent %s: %w", it.Metadata.Name, err)
		}
		specs[i] = string(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := in.Project + "/" + in.App.Metadata.Name + "/" + in.App.Spec.Version + "/" + in.Group
	prev := c.groups[key]
	g := &groupCache{context: ctx, intents: map[intentKey]intentEntry{}}
	if prev == nil || prev.context != ctx {
		prev = &groupCache{}
	}
	states, err := compileWith(in, func(r render.Named) ([]placed, error) {
		ir, ok := r.Renderer.(render.IntentRenderer)
		if !ok {
			return renderAll(in, r)
		}
		var changed []int
		for i, it := range in.Intents {
			if e, ok := prev.intents[intentKey{r.Name, it.Metadata.Name}]; !ok || e.spec != specs[i] {
				changed = append(changed, i)
			}
		}
		rendered, err := renderIntents(in, r.Name, ir, changed)
		if err != nil {
			return nil, err
		}
		var all []placed
		for i, it := range in.Intents {
			k := intentKey{r.Name, it.Metadata.Name}
			e := prev.intents[k]
			if len(changed) > 0 && changed[0] == i {
				e = intentEntry{spec: specs[i], placed: rendered[0]}
				changed, rendered = changed[1:], rendered[1:]
			}
			g.intents[k] = e
			all = append(all, e.placed...)
		}
		return all, nil
	})
	if err != nil {
		return nil, err
	}
	c.groups[key] = g
	c.recent = append(slices.DeleteFunc(c.recent, func(k string) bool { return k == key }), key)
	if len(c.recent) > cacheGroups {
		delete(c.groups, c.recent[0])
		c.recent = c.recent[1:]
	}
	return states, nil
}

// contextHash identifies what every intent of in is rendered against.
func contextHash(in *render.Input) ([sha256.Size]byte, error) {
	b, err := json.Marshal(struct {
		Project, Group string
		App            any
		Clusters       any
	}{in.Project, in.Group, in.App, in.Clusters})
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("compile: group context: %w", err)
	}
	return sha256.Sum256(b), nil
}
