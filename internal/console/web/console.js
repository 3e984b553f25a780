// Shared by the site and controller pages: the event stream, DOM helpers
// and number formatting. Plain JavaScript, no dependencies.
"use strict";

const weft = (() => {
  const SVGNS = "http://www.w3.org/2000/svg";

  // el makes an element: el("td", {class: "num"}, "12").
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    return fill(e, attrs, kids);
  }
  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    return fill(e, attrs, kids);
  }
  function fill(e, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
    }
    for (const k of kids.flat()) {
      if (k === undefined || k === null) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  function section(id, title, wide) {
    let s = document.getElementById(id);
    if (!s) {
      s = el("section", {id, class: wide ? "card wide" : "card"});
      document.getElementById("main").append(s);
    }
    s.replaceChildren(el("h2", {}, title));
    return s;
  }

  function table(headers, rows, empty) {
    if (!rows.length) return el("p", {class: "empty"}, empty);
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h =>
      el("th", {class: h.endsWith("/s") || h.startsWith("#") ? "num" : null}, h)))),
      el("tbody", {}, rows));
  }

  function rate(v) {
    if (!v) return "0/s";
    return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + "/s";
  }
  function bytes(v) {
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : v.toFixed(0)) + " " + units[i] + "/s";
  }
  function last(points) {
    return points && points.length ? points[points.length - 1].v : 0;
  }
  // spark draws the points as a line 120x24, scaled to their maximum.
  function spark(points) {
    const s = svg("svg", {class: "spark", viewBox: "0 0 120 24", preserveAspectRatio: "none"});
    if (!points || !points.length) return s;
    // A series seen once rose from nothing since the sample before.
    if (points.length === 1) points = [{t: 0, v: 0}, points[0]];
    const top = Math.max(...points.map(p => p.v), 1e-9);
    const step = 120 / (points.length - 1);
    s.append(svg("polyline", {points: points.map((p, i) =>
      `${(i * step).toFixed(1)},${(23 - 22 * p.v / top).toFixed(1)}`).join(" ")}));
    return s;
  }
  function when(t) {
    return new Date(t).toLocaleTimeString();
  }

  // connect follows the console's event stream and calls render with each
  // snapshot; a stream the server refuses (the session ended) goes back
  // to the login page.
  function connect(render) {
    const live = document.getElementById("live");
    const failure = document.getElementById("failure");
    const setLive = (on, text) => { live.dataset.live = on; live.textContent = text; };
    const es = new EventSource("/console/events");
    es.addEventListener("snapshot", e => {
      setLive(true, "live");
      failure.hidden = true;
      render(JSON.parse(e.data));
    });
    es.addEventListener("failed", e => {
      failure.textContent = JSON.parse(e.data).message;
      failure.hidden = false;
    });
    es.addEventListener("logout", () => { location.href = "/login"; });
    es.onerror = () => {
      setLive(false, "reconnecting…");
      fetch("/console/api/snapshot").then(r => { if (r.status === 401) location.href = "/login"; }, () => {});
    };
  }

  return {el, svg, section, table, rate, bytes, last, spark, when, connect};
})();
