// The controller console: projects, intents, per-cluster sync status and
// the plan diff, from each snapshot of /console/events.
"use strict";

(() => {
  const {el, section, table, connect} = weft;

  function chip(state) {
    return el("span", {class: "chip state-" + stateClass(state), "data-state": state}, state);
  }
  // stateClass maps sync states onto the console's ok / warn / bad colours.
  function stateClass(s) {
    if (["applied", "synced", "ok", "unchanged"].includes(s)) return "ok";
    if (["failed", "error", "deleted-failed"].includes(s)) return "down";
    return "connecting";
  }
  function show(v) {
    return v === undefined ? "∅" : typeof v === "string" ? v : JSON.stringify(v);
  }

  function clusters(p) {
    const rows = p.clusters.map(c => el("tr", {"data-cluster": c.metadata.name},
      el("td", {}, c.metadata.name),
      el("td", {}, c.spec.mesh || "none"),
      el("td", {}, c.spec.locality || ""),
      el("td", {}, Object.entries(c.metadata.labels || {}).map(([k, v]) => el("span", {class: "chip"}, `${k}=${v}`)))));
    return table(["cluster", "mesh", "locality", "labels"], rows, "No clusters in this project.");
  }

  function intents(g) {
    const rows = g.intents.map(i => el("tr", {"data-intent": i.metadata.name},
      el("td", {}, i.metadata.name),
      el("td", {}, i.spec.type),
      el("td", {}, i.spec.server || ""),
      el("td", {}, (i.spec.clients || []).map(c => c.service || c.name || JSON.stringify(c)).join(", "))));
    return table(["intent", "type", "server", "clients"], rows, "No intents in this group.");
  }

  function syncStatus(g) {
    const st = g.status;
    if (!st) return el("p", {class: "empty"}, "No status.");
    const targets = {...(st.clusters || {}), ...(st.dns || {})};
    const rows = Object.entries(targets).map(([name, t]) => {
      const failed = (t.resources || []).filter(r => r.error);
      return el("tr", {"data-target": name, "data-state": t.state},
        el("td", {}, name), el("td", {}, chip(t.state)),
        el("td", {class: "num"}, (t.resources || []).length),
        el("td", {class: "error"}, failed.map(r => `${r.kind} ${r.name}: ${r.error}`).join("; ")));
    });
    return el("div", {},
      el("p", {}, "Release ", el("strong", {}, st.generation ? "#" + st.generation : "none"), " · ", chip(st.state),
        st.appliedAt ? ` · applied ${new Date(st.appliedAt).toLocaleString()}` : ""),
      table(["cluster / target", "sync", "#objects", "errors"], rows, "Not applied yet: POST …/apply releases the plan below."));
  }

  function plan(g) {
    if (!g.plan) return el("p", {class: "error"}, g.error || "No plan.");
    const targets = {...(g.plan.clusters || {}), ...(g.plan.dns || {})};
    const blocks = Object.entries(targets).map(([name, tp]) => {
      const changed = tp.objects.filter(o => o.action !== "unchanged");
      const items = changed.map(o => el("li", {class: "diff-" + o.action, "data-action": o.action},
        el("strong", {}, o.action), ` ${o.ref.kind} ${o.ref.namespace ? o.ref.namespace + "/" : ""}${o.ref.name}`,
        o.diff && o.diff.length ? el("ul", {class: "mono"}, o.diff.map(d =>
          el("li", {}, `${d.path}: ${show(d.old)} → ${show(d.new)}`))) : null));
      return el("div", {"data-plan-target": name},
        el("h3", {}, `${name} (${tp.kind}) · ${changed.length} change(s), ${tp.objects.length - changed.length} unchanged`),
        items.length ? el("ul", {class: "plan"}, items) : el("p", {class: "empty"}, "In sync: nothing to change."));
    });
    return blocks.length ? el("div", {}, blocks) : el("p", {class: "empty"}, "The plan places nothing.");
  }

  connect(snap => {
    const main = document.getElementById("main");
    const ids = new Set();
    for (const p of snap.projects) {
      const id = "project-" + p.name;
      ids.add(id);
      const s = section(id, `Project ${p.name}`, true);
      s.dataset.project = p.name;
      s.append(el("h3", {}, "Clusters"), clusters(p));
      for (const g of p.groups) {
        s.append(el("div", {class: "card", "data-group": `${g.app}/${g.version}/${g.name}`},
          el("h2", {}, `Traffic group ${g.name} `, el("span", {class: "mono"}, `(app ${g.app} ${g.version})`)),
          el("h3", {}, "Intents"), intents(g),
          el("h3", {}, "Sync status per cluster"), syncStatus(g),
          el("h3", {}, "Plan: what applying now would change"), plan(g)));
      }
      if (!p.groups.length) s.append(el("p", {class: "empty"}, "No traffic groups in this project."));
    }
    for (const s of [...main.children]) if (!ids.has(s.id)) s.remove();
    if (!snap.projects.length) section("none", "Projects", true).append(el("p", {class: "empty"}, "No projects yet: weft controller apply -f intents.yaml."));
    if (snap.truncated) section("truncated", "More", true).append(el("p", {}, "Only the first traffic groups are shown."));
  });
})();
