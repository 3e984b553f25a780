package console

import (
	"context"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/routing"
)

// SiteSource is what the site console reads of its site.
type SiteSource interface {
	Status() apitype.Status
	Table() *routing.Table
	// EventConfig is the site's topics, queues and subscriptions.
	EventConfig() apitype.EventConfig
}

// SiteSnapshot is what the site console shows at one moment.
type SiteSnapshot struct {
	Time   time.Time           `json:"time"`
	Status apitype.Status      `json:"status"`
	Graph  Graph               `json:"graph"`
	Events apitype.EventConfig `json:"events"`
	// Rates are per-second rates over the last minutes and Totals the
	// latest values, by the keys of SiteSeries (such as
	// "address.requests/orders").
	Rates  map[string][]Point `json:"rates"`
	Totals map[string]float64 `json:"totals"`
	Errors []Entry            `json:"errors"`
}

// SiteSeries are the site metrics the site console samples.
var SiteSeries = []Series{
	{Key: "address.streams", Metric: "weft_streams_opened_total", By: []string{"address"}},
	{Key: "address.requests", Metric: "weft_http_requests_total", By: []string{"address"}},
	{Key: "address.bytes", Metric: "weft_address_bytes_total", By: []string{"address"}},
	{Key: "address.hedges", Metric: "weft_http_hedges_total", By: []string{"address"}},
	{Key: "address.overflows", Metric: "weft_balance_overflows_total", By: []string{"address"}},
	{Key: "link.bytes", Metric: "weft_link_bytes_total", By: []string{"link"}},
	{Key: "link.streams", Metric: "weft_link_streams_total", By: []string{"link"}},
	{Key: "events.published", Metric: "weft_events_published_total"},
	{Key: "events.delivered", Metric: "weft_events_delivered_total"},
	{Key: "events.forwarded", Metric: "weft_events_forwarded_total"},
	{Key: "events.dropped", Metric: "weft_events_dropped_total"},
	{Key: "events.backlog", Metric: "weft_events_backlog"},
	// Per topic and queue: keys such as "event.published/topic/orders".
	// The broker caps the names (labelcap), so these stay a few hundred.
	{Key: "event.published", Metric: "weft_events_address_published_total", By: []string{"kind", "address"}},
	{Key: "event.delivered", Metric: "weft_events_address_delivered_total", By: []string{"kind", "address"}},
	{Key: "event.dropped", Metric: "weft_events_address_dropped_total", By: []string{"kind", "address"}},
	{Key: "event.backlog", Metric: "weft_events_queue_backlog", By: []string{"queue"}},
	{Key: "events.folded", Metric: "weft_events_addresses_folded_total"},
	{Key: "subscription.backlog", Metric: "weft_events_subscription_backlog", By: []string{"subscription"}},
}

// SiteSnapshots returns the Snapshot function of a site console.
func SiteSnapshots(src SiteSource, s *Sampler, recent *Recent) func(context.Context, string) (any, error) {
	return func(context.Context, string) (any, error) {
		st := src.Status()
		return SiteSnapshot{
			Time:   time.Now(),
			Status: st,
			Graph:  GraphOf(src.Table(), st.Links),
			Events: src.EventConfig(),
			Rates:  s.Rates(),
			Totals: s.Latest(),
			Errors: recent.Entries(),
		}, nil
	}
}
