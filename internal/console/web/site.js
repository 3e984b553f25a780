// The site console: renders each snapshot of /console/events.
"use strict";

(() => {
  const {el, svg, section, table, rate, bytes, last, spark, when, connect} = weft;
  const W = 720, H = 280, R = 26;

  // layout puts sites in columns by their hop count from this site and
  // spreads each column evenly: a line of sites reads left to right.
  function layout(nodes) {
    const cols = new Map();
    for (const n of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
      if (!cols.has(n.hops)) cols.set(n.hops, []);
      cols.get(n.hops).push(n);
    }
    const depth = Math.max(...cols.keys(), 1);
    const pos = new Map();
    for (const [hops, col] of cols) {
      col.forEach((n, i) => pos.set(n.id, {
        x: 80 + (W - 160) * hops / depth,
        y: H * (i + 1) / (col.length + 1),
      }));
    }
    return pos;
  }

  function graph(s, snap) {
    const g = snap.graph;
    const pos = layout(g.nodes);
    const names = new Map(g.nodes.map(n => [n.id, n.name]));
    const self = (g.nodes.find(n => n.self) || {}).id;
    // This site's own links: their RTT is measured now (a record's is
    // from when it was sent) and their byte rate is known here.
    const local = new Map((snap.status.links || []).filter(l => l.status.state === "up" && l.status.peer)
      .map(l => [l.status.peer, l]));
    const out = svg("svg", {class: "graph", id: "graph", viewBox: `0 0 ${W} ${H}`});
    for (const e of g.edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      out.append(svg("line", {class: "edge", x1: a.x, y1: a.y, x2: b.x, y2: b.y,
        "data-from": names.get(e.from), "data-to": names.get(e.to), "data-state": e.state}));
      const l = (e.from === self || e.to === self) && local.get(e.from === self ? e.to : e.from);
      const rtt = l ? l.status.rtt : e.rtt;
      const rate = l ? bytes(last(snap.rates["link.bytes/" + l.metadata.name])) : null;
      const label = [`cost ${e.cost}`, rtt, rate, e.state === "up" ? null : e.state].filter(Boolean).join(" · ");
      out.append(svg("text", {class: "edge-label", x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 8, "text-anchor": "middle"}, label));
    }
    for (const n of g.nodes) {
      const p = pos.get(n.id);
      const state = n.self ? "self" : n.reachable ? "ok" : "unreachable";
      out.append(svg("g", {class: "node", "data-site": n.name, "data-state": state},
        svg("title", {}, `${n.name} (${n.id})`),
        svg("circle", {cx: p.x, cy: p.y, r: R}),
        svg("text", {x: p.x, y: p.y + R + 16, "text-anchor": "middle"}, n.name)));
    }
    s.append(out);
  }

  function links(s, snap) {
    const rows = (snap.status.links || []).map(l => {
      const name = l.metadata.name;
      const b = snap.rates["link.bytes/" + name];
      return el("tr", {"data-link": name, "data-state": l.status.state},
        el("td", {}, name),
        el("td", {}, l.status.peerName || l.status.peer || ""),
        el("td", {}, l.status.inbound ? "in" : "out"),
        el("td", {}, el("span", {class: "chip state-" + l.status.state}, l.status.state)),
        el("td", {class: "num"}, l.spec.cost || 1),
        el("td", {class: "num"}, l.status.rtt || "–"),
        el("td", {class: "num"}, bytes(last(b))),
        el("td", {class: "num"}, rate(last(snap.rates["link.streams/" + name]))),
        el("td", {}, spark(b)));
    });
    s.append(table(["link", "peer", "dir", "state", "cost", "RTT", "bytes/s", "streams/s", "last minutes"], rows, "No links yet: weft token issue / weft link create."));
  }

  function addresses(s, snap) {
    const rows = (snap.status.addresses || []).map(a => {
      const req = (snap.rates["address.requests/" + a.address] || []);
      const conn = (snap.rates["address.streams/" + a.address] || []);
      // An http listener counts requests, a tcp one connections: the
      // address's rate is both, summed per sample.
      const sum = new Map();
      for (const p of [...req, ...conn]) sum.set(p.t, (sum.get(p.t) || 0) + p.v);
      const both = [...sum].sort((x, y) => x[0] - y[0]).map(([t, v]) => ({t, v}));
      const r = last(both);
      const hedges = snap.totals["address.hedges/" + a.address] || 0;
      const overflows = snap.totals["address.overflows/" + a.address] || 0;
      return el("tr", {"data-address": a.address},
        el("td", {class: "mono"}, a.address),
        el("td", {}, (a.sites || []).map(x => {
          const st = x.state || "ok";
          return el("span", {class: "chip state-" + st, "data-site": x.name, "data-state": st,
            title: `cost ${x.cost}, ${x.protocol || "tcp"}, in flight ${x.inFlight}` + (x.ewma ? `, ewma ${x.ewma}` : "")},
            `${x.name} · ${st}`);
        })),
        el("td", {class: "num rate-req", "data-value": r.toFixed(3)}, rate(r)),
        // No listener for the address at this site: no bytes here.
        el("td", {class: "num"}, snap.rates["address.bytes/" + a.address] ? bytes(last(snap.rates["address.bytes/" + a.address])) : "–"),
        el("td", {class: "num hedges"}, hedges),
        el("td", {class: "num overflows"}, overflows),
        el("td", {}, spark(both)));
    });
    s.append(table(["address", "served at (state)", "req|conn/s", "bytes/s", "#hedges", "#overflows", "last minutes"], rows,
      "No address is reachable: weft connector create ADDRESS --target HOST:PORT where a service runs."));
  }

  // eventAddresses lists the topics and queues this site knows of: those
  // configured here and those with counts (volatile ones need no
  // configuration), by kind and name.
  function eventAddresses(snap) {
    const ev = snap.events || {};
    const all = new Map();
    const add = (kind, name, delivery) => {
      const k = kind + "/" + name;
      if (!all.has(k)) all.set(k, {kind, name, delivery: "volatile"});
      if (delivery) all.get(k).delivery = delivery;
    };
    for (const t of ev.topics || []) add("topic", t.metadata.name, t.spec.delivery);
    for (const q of ev.queues || []) add("queue", q.metadata.name, q.spec.delivery);
    for (const k of [...Object.keys(snap.rates), ...Object.keys(snap.totals)]) {
      const [series, kind, ...name] = k.split("/");
      if (series === "event.backlog") add("queue", [kind, ...name].join("/"));
      else if (series.startsWith("event.")) add(kind, name.join("/"));
    }
    return [...all.values()].sort((a, b) => a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
  }

  function eventsSection(s, snap) {
    const rates = ["published", "delivered", "forwarded", "dropped"].map(k =>
      el("span", {class: "chip", "data-events": k}, `${k} ${rate(last(snap.rates["events." + k]))}`));
    const folded = snap.totals["events.folded"] || 0;
    s.append(el("p", {}, rates, el("span", {class: "chip", "data-events": "backlog"},
      `persisted backlog ${snap.totals["events.backlog"] || 0}`),
      folded ? el("span", {class: "chip state-saturated", "data-events": "folded",
        title: "More topic and queue names than the site keeps series for: these counts are under (other)."},
        `${folded} under (other)`) : null));
    const rows = eventAddresses(snap).map(a => {
      const k = a.kind + "/" + a.name;
      const pub = snap.rates["event.published/" + k];
      const cell = (series, cls) => {
        const v = last(snap.rates[series + "/" + k]);
        return el("td", {class: "num " + cls, "data-value": v.toFixed(3)}, rate(v));
      };
      const backlog = a.kind === "queue" ? (snap.totals["event.backlog/" + a.name] || 0) : null;
      return el("tr", {["data-" + a.kind]: a.name},
        el("td", {class: "mono"}, a.name),
        el("td", {}, a.kind),
        el("td", {}, a.delivery),
        cell("event.published", "rate-pub"),
        cell("event.delivered", "rate-del"),
        cell("event.dropped", "rate-drop"),
        el("td", {class: "num backlog" + (backlog ? " warn" : ""), "data-value": backlog ?? ""}, backlog ?? "–"),
        el("td", {}, spark(pub)));
    });
    s.append(table(["name", "kind", "delivery", "published/s", "delivered/s", "dropped/s", "#backlog", "published, last minutes"], rows,
      "No topics or queues at this site yet: publish to the event port, or weft topic create / weft queue create."));
    // A queue's push subscription has no backlog of its own: the queue's.
    const subs = ((snap.events || {}).subscriptions || []).map(x => {
      const backlog = x.spec.topic ? (snap.totals["subscription.backlog/" + x.metadata.name] || 0) : null;
      return el("tr", {"data-subscription": x.metadata.name},
        el("td", {class: "mono"}, x.metadata.name), el("td", {}, x.spec.topic || x.spec.queue), el("td", {class: "mono"}, x.spec.sink),
        el("td", {class: "num backlog" + (backlog ? " warn" : ""), "data-value": backlog ?? ""}, backlog ?? "–"));
    });
    if (subs.length) s.append(el("h3", {}, "Push subscriptions"), table(["name", "from", "sink", "#backlog"], subs, ""));
  }

  function errors(s, snap) {
    const items = (snap.errors || []).map(e => el("li", {class: "level-" + e.level},
      el("span", {class: "when"}, when(e.time)),
      el("span", {class: e.level === "ERROR" ? "error" : ""}, e.level + " "),
      e.message, " ",
      el("span", {class: "mono"}, Object.entries(e.attrs || {}).map(([k, v]) => `${k}=${v}`).join(" "))));
    s.append(items.length ? el("ul", {class: "errors", id: "errors"}, items) : el("p", {class: "empty"}, "No warnings or errors logged since the site started."));
  }

  connect(snap => {
    document.getElementById("title").textContent = `site ${snap.status.site.name} · ${snap.status.site.id.slice(0, 12)}`;
    graph(section("network", "Network", false), snap);
    links(section("links", "Links", false), snap);
    addresses(section("addresses", "Addresses", true), snap);
    eventsSection(section("events", "Events: topics and queues", true), snap);
    errors(section("recent-errors", "Recent warnings and errors", false), snap);
  });
})();
