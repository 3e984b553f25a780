package broker

import (
	"sync"
	"testing"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
)

// TestPublishHereBeforeAnnounced: a volatile event published at a site
// reaches that site's subscribers, and a queue event its consumer, as soon
// as they subscribed, before the site's router has put their interests in
// its table; and once it has, no twice.
func TestPublishHereBeforeAnnounced(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	a.held.Lock()
	release := sync.OnceFunc(a.held.Unlock)
	defer release() // a failure must not leave the router stuck
	topic, err := a.b.subscribe(events.Topic, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.b.unsubscribe(topic)
	queue, err := a.b.subscribe(events.Queue, "q", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.b.unsubscribe(queue)
	if in := a.announced(); len(in) != 0 {
		t.Fatalf("announced %v while held", in)
	}
	publish(t, a, events.Topic, "t", 0, 1)
	publish(t, a, events.Queue, "q", 0, 1)
	release()
	a.announcedWait(t, events.Interest(events.Queue, "q"))
	a.announcedWait(t, events.Interest(events.Topic, "t"))
	publish(t, a, events.Topic, "t", 1, 1)
	publish(t, a, events.Queue, "q", 1, 1)
	for _, sub := range []*subscriber{topic, queue} {
		for _, want := range []string{"0", "1"} {
			select {
			case d := <-sub.ch:
				if e, err := cloudevent.Unmarshal(d.JSON); err != nil || e.ID() != want {
					t.Fatalf("%s %s: got %v (%v), want event %s", sub.kind, sub.pattern, e.ID(), err, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s %s: event %s not delivered", sub.kind, sub.pattern, want)
			}
		}
		select {
		case d := <-sub.ch:
			t.Fatalf("%s %s: a third delivery %s", sub.kind, sub.pattern, d.JSON)
		default:
		}
	}
}
