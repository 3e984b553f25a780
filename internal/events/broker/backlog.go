package broker

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/queuemark"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/siteid"
)

// queueOut counts, per queue, the entries of the outbound log that the next
// hop toward a consumer has not acknowledged yet: those waiting for a
// consumer to appear anywhere, and those in flight. The ledger knows only
// offsets per destination, and a queue's offsets are interleaved with other
// subjects', so queueOut keeps the queue's own offsets. It holds at most
// the log's backlog (MaxBacklog) offsets. Pure; the broker guards it with lmu.
type queueOut struct {
	offs  map[string][]uint64 // by queue: unacknowledged offsets, ascending
	names map[siteid.ID]string
}

func newQueueOut() *queueOut {
	return &queueOut{offs: map[string][]uint64{}, names: map[siteid.ID]string{}}
}

// appended records an entry of queue at off.
func (q *queueOut) appended(queue string, off uint64) {
	q.names[events.QueueSite(queue)] = queue
	o := q.offs[queue]
	i, found := slices.BinarySearch(o, off)
	if !found {
		q.offs[queue] = slices.Insert(o, i, off)
	}
}

// acked records the cursor of a destination (ledger.Ready's Save): a
// queue's entries up to acked are with the next hop now.
func (q *queueOut) acked(dest siteid.ID, acked uint64) {
	name, ok := q.names[dest]
	if !ok {
		return
	}
	o := q.offs[name]
	i, found := slices.BinarySearch(o, acked)
	if found {
		i++
	}
	q.forgetIfEmpty(name, o[i:])
}

// deleted records that the ledger dropped a destination: nothing is left
// for it.
func (q *queueOut) deleted(dest siteid.ID) {
	if name, ok := q.names[dest]; ok {
		q.forgetIfEmpty(name, nil)
	}
}

func (q *queueOut) forgetIfEmpty(name string, rest []uint64) {
	if len(rest) > 0 {
		q.offs[name] = rest
		return
	}
	delete(q.offs, name)
	delete(q.names, events.QueueSite(name))
}

// counts returns the unacknowledged entries by queue.
func (q *queueOut) counts() map[string]int {
	out := make(map[string]int, len(q.offs))
	for name, o := range q.offs {
		out[name] = len(o)
	}
	return out
}

var descQueueBacklog = prometheus.NewDesc("weft_events_queue_backlog",
	"Persisted entries of a queue at this site that no consumer took yet: waiting for a local consumer, or in the outbound log until the next hop toward a consumer stores them (all of them while no consumer is reachable). Past MaxAddressLabels names, summed under queue=\"(other)\".",
	[]string{"queue"}, nil)

var descSubscriptionBacklog = prometheus.NewDesc("weft_events_subscription_backlog",
	"Inbox entries past a push subscription's position at this site: at most what it has yet to deliver (the inbox holds every persisted topic's entries, and the subscription takes those matching its pattern). A queue's push subscription counts in weft_events_queue_backlog instead.",
	[]string{"subscription"}, nil)

// backlogCollector exports the queues' and push subscriptions' backlogs at
// scrape time. Subscriptions are configuration, bounded by the admin API's
// limits: their names need no cap.
type backlogCollector struct{ b *Broker }

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueueBacklog
	ch <- descSubscriptionBacklog
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	for name, n := range c.b.queueBacklogs() {
		ch <- prometheus.MustNewConstMetric(descQueueBacklog, prometheus.GaugeValue, float64(n), name)
	}
	for name, n := range c.b.subscriptionBacklogs() {
		ch <- prometheus.MustNewConstMetric(descSubscriptionBacklog, prometheus.GaugeValue, float64(n), name)
	}
}

// subscriptionBacklogs returns the backlog of each topic's push
// subscription, as consumerLag reckons it.
func (b *Broker) subscriptionBacklogs() map[string]uint64 {
	head := b.inHead.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]uint64{}
	for name, p := range b.pushes {
		if p.kind != events.Topic {
			continue
		}
		out[name] = p.lag(head)
	}
	return out
}

var _ prometheus.Collector = backlogCollector{}

// queueBacklogs returns the backlog of each queue with one, names past the
// cap folded into labelcap.Other.
func (b *Broker) queueBacklogs() map[string]int {
	b.lmu.Lock()
	out := b.qout.counts()
	b.lmu.Unlock()
	b.marksMu.Lock()
	waiting := waitingOf(b.marks)
	b.marksMu.Unlock()
	for name, n := range waiting {
		out[name] += n
	}
	folded := map[string]int{}
	for name, n := range out {
		if n > 0 {
			folded[b.m.names.Value(name)] += n
		}
	}
	return folded
}

func waitingOf(m *queuemark.Marks) map[string]int {
	out := map[string]int{}
	for _, name := range m.Queues() {
		// Waiting can dip below zero for a moment (queuemark).
		if w, _ := m.Counts(name); w > 0 {
			out[name] = w
		}
	}
	return out
}

// restoreQueueOut counts, after a restart, the queues' entries in the
// outbound log past their destinations' stored cursors: one read of the
// unacknowledged part of the log.
func (b *Broker) restoreQueueOut(head uint64, dests map[siteid.ID]ledger.Dest) error {
	from, found := head, false
	for _, d := range dests {
		from, found = min(from, d.Acked), true
	}
	if !found || from >= head {
		return nil
	}
	return b.st.ReadOut(from, head, func(off uint64, e store.Entry) bool {
		if events.Kind(e.Kind) != events.Queue {
			return true
		}
		if d, ok := dests[events.QueueSite(e.Subject)]; ok && off > d.Acked {
			b.qout.appended(e.Subject, off)
		}
		return true
	})
}
