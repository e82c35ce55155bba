// skein dashboard: a hash-routed page over the JSON API; no build step, no dependencies.
// Routes: #/ (catalog), #/datasets/NAME, #/runs, #/runs/RUN, #/executions/ID.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
const badge = (s) => `<span class="badge ${esc(s)}">${esc(String(s ?? "–").replace(/_/g, " "))}</span>`;
const filters = { text: "", status: "", group: "", criticality: "" };

async function api(path, options = {}) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

function toast(text, error = false) {
  const t = $("#toast");
  t.textContent = text;
  t.className = error ? "error" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), error ? 9000 : 4000);
}

// A confirmation dialog; resolves to {ok, reason}.
function ask(title, text, withReason) {
  const d = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-reason-label").hidden = !withReason;
  $("#confirm-reason").value = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve({ ok: d.returnValue === "ok", reason: $("#confirm-reason").value }), { once: true });
    d.showModal();
  });
}

const ACTIONS = {
  approve: { title: "Approve", text: (n) => `Approve ${n}? Its run publishes it.`, reason: false, done: "approved" },
  reject: { title: "Reject", text: (n) => `Reject ${n}? Its run rolls it back; the published version stays.`, reason: true, done: "rejected" },
  rollback: { title: "Roll back", text: (n) => `Roll ${n} back to its previous published version?`, reason: true, done: "rolled back" },
};

async function act(action, name) {
  const a = ACTIONS[action];
  const answer = await ask(`${a.title} ${name}`, a.text(name), a.reason);
  if (!answer.ok) return;
  try {
    await api(`/api/datasets/${encodeURIComponent(name)}/${action}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-skein-ui": "1" },
      body: JSON.stringify(answer.reason ? { reason: answer.reason } : {}),
    });
    toast(`${name} ${a.done}`);
  } catch (e) {
    toast(`${a.title} ${name}: ${e.message}`, true);
  }
  refresh();
}

// The actions a dataset offers now: approve / reject while it waits; roll back only when
// a previous version exists (the current one is not the first).
function buttons(name, status, version) {
  if (status === "awaiting_approval")
    return `<button class="primary" data-action="approve" data-name="${esc(name)}">Approve</button> <button class="danger" data-action="reject" data-name="${esc(name)}">Reject</button>`;
  if (status === "completed" && (version || 0) > 1) return `<button data-action="rollback" data-name="${esc(name)}">Roll back</button>`;
  return "";
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (b) act(b.dataset.action, b.dataset.name);
});

// ---- catalog ----
async function catalog(main, fresh) {
  const { datasets } = await api("/api/datasets");
  if (fresh || !$("#datasets", main)) {
    const opts = (key, values) => `<option value="">all</option>` + [...new Set(values)].sort().map((v) => `<option ${filters[key] === v ? "selected" : ""}>${esc(v)}</option>`).join("");
    main.innerHTML = `<h1>Catalog</h1>
      <div class="filters">
        <input id="f-text" type="search" placeholder="dataset or owner" value="${esc(filters.text)}">
        <label>status <select id="f-status">${opts("status", ["pending", "in_progress", "migrated", "verified", "awaiting_approval", "completed", "failed", "rolled_back"])}</select></label>
        <label>group <select id="f-group">${opts("group", datasets.map((d) => d.group))}</select></label>
        <label>criticality <select id="f-criticality">${opts("criticality", ["low", "medium", "high", "critical"])}</select></label>
        <span id="count" class="muted"></span>
      </div>
      <table id="datasets"><thead><tr><th>Dataset</th><th>Owner</th><th>Group</th><th>Criticality</th><th>Status</th><th>Version</th><th>Rows</th><th>Last verification</th><th>Reason</th><th></th></tr></thead><tbody></tbody></table>`;
    for (const key of Object.keys(filters)) {
      const input = $(`#f-${key}`, main);
      input.addEventListener("input", () => { filters[key] = input.value; rows(main); });
    }
  }
  catalog.datasets = datasets;
  rows(main);
}

// The table body for the filters, from the last fetched datasets (no request).
function rows(main) {
  const datasets = catalog.datasets || [];
  const t = filters.text.toLowerCase();
  const shown = datasets.filter((d) =>
    (!t || d.name.toLowerCase().includes(t) || (d.owner || "").toLowerCase().includes(t)) &&
    (!filters.status || d.status === filters.status) &&
    (!filters.group || d.group === filters.group) &&
    (!filters.criticality || d.criticality === filters.criticality));
  $("#count", main).textContent = `${shown.length} of ${datasets.length} dataset(s)`;
  $("#datasets tbody", main).innerHTML = shown.map((d) => `<tr data-dataset="${esc(d.name)}">
      <td><a href="#/datasets/${encodeURIComponent(d.name)}">${esc(d.name)}</a></td>
      <td>${esc(d.owner || "–")}</td><td>${esc(d.group)}</td><td>${esc(d.criticality)}</td>
      <td class="status" data-status="${esc(d.status)}">${badge(d.status)}</td>
      <td class="n">${d.version ? "v" + d.version : "–"}${d.format === "delta" ? ` <span class="muted" title="a Delta Lake table">delta</span>` : ""}${d.glue ? ` <span class="muted" title="Glue table">${esc(d.glue)}</span>` : ""}</td><td class="n">${num(d.rows)}</td>
      <td>${esc(d.lastVerification || "–")}</td><td class="reason">${esc(d.reason || "")}</td>
      <td>${buttons(d.name, d.status, d.version)}</td></tr>`).join("") ||
    `<tr><td colspan="10" class="muted">No dataset matches. ${datasets.length ? "" : "The catalog is empty: run <code>skein run DIR</code>."}</td></tr>`;
}

// ---- runs ----
async function runs(main) {
  const { runs } = await api("/api/runs");
  main.innerHTML = `<h1>Runs</h1><table id="runs"><thead><tr><th>Run</th><th>Status</th><th>Engine</th><th>Started</th><th>Finished</th><th>Datasets</th><th>Succeeded</th><th>Failed</th><th>Rows</th></tr></thead><tbody>` +
    runs.map((r) => `<tr data-run="${esc(r.runId)}"><td><a href="#/runs/${encodeURIComponent(r.runId)}">${esc(r.runId)}</a></td><td>${badge(r.status)}</td><td>${esc(r.executionStatus || "–")}</td>
      <td>${esc(r.startedAt)}</td><td>${esc(r.finishedAt || "–")}</td><td class="n">${r.total}</td><td class="n">${r.succeeded}</td><td class="n">${r.failed}</td><td class="n">${num(r.rows)}</td></tr>`).join("") +
    `</tbody></table>` + (runs.length ? "" : `<p class="muted">No runs yet.</p>`);
}

function bar(p) {
  const w = (n) => (p.total ? (100 * n) / p.total : 0);
  let x = 0;
  const seg = (cls, n) => { const s = `<span class="${cls}" style="left:${x}%;width:${w(n)}%"></span>`; x += w(n); return s; };
  return `<div class="bar" title="${p.succeeded} succeeded, ${p.failed} failed, ${p.running} running, ${p.waiting} waiting of ${p.total}">${seg("ok", p.succeeded)}${seg("bad", p.failed)}${seg("run", p.running)}${seg("wait", p.waiting)}</div>`;
}

function progressTable(id, title, parts) {
  return `<h2>${title}</h2><table id="${id}"><thead><tr><th>${title.replace(/^By /, "")}</th><th style="width:40%">Progress</th><th>Done</th><th>Succeeded</th><th>Failed</th><th>Running</th><th>Waiting</th><th>Total</th></tr></thead><tbody>` +
    parts.map((p) => `<tr><td>${esc(p.name)}</td><td>${bar(p)}</td><td class="n">${p.percent}%</td><td class="n">${p.succeeded}</td><td class="n">${p.failed}</td><td class="n">${p.running}</td><td class="n">${p.waiting}</td><td class="n">${p.total}</td></tr>`).join("") + `</tbody></table>`;
}

async function run(main, id) {
  const v = await api(`/api/runs/${encodeURIComponent(id)}`);
  const t = v.throughput;
  const card = (k, val) => `<div class="card"><div class="k">${k}</div><div class="v">${val}</div></div>`;
  main.innerHTML = `<h1>Run ${esc(v.run.runId)} ${badge(v.run.status)}</h1>
    <p class="muted">Started ${esc(v.run.startedAt)}${v.run.finishedAt ? `, finished ${esc(v.run.finishedAt)}` : ""}.
    <a href="/runs/${encodeURIComponent(v.run.runId)}/report.html" target="_blank">HTML report</a>.
    ${v.executionStatus ? `Engine: <a href="#/executions/${encodeURIComponent(v.run.runId)}">${esc(v.executionStatus)}</a>${v.executionError ? ` (${esc(v.executionError)})` : ""}` : "Not run by the engine."}</p>
    <div class="cards" id="run-cards">
      ${card("Overall", `<span id="overall">${v.percent}%</span>`)}
      ${card("Finished", `${v.finished} / ${v.total}`)}
      ${card("Rows published", num(t.rows))}
      ${card("Rows / s", num(Math.round(t.rowsPerSecond)))}
      ${card("Datasets / min", t.datasetsPerMinute.toFixed(1))}
      ${card("Elapsed", `${t.elapsedSeconds.toFixed(1)} s`)}
      ${t.waitingSeconds > 0 ? card("Waiting for approval", `<span id="waiting">${t.waitingSeconds.toFixed(1)} s</span>`) : ""}
    </div>
    ${bar({ total: v.total, succeeded: v.datasets.filter((d) => d.state === "succeeded").length, failed: v.datasets.filter((d) => d.state === "failed").length, running: v.datasets.filter((d) => d.state === "running").length, waiting: v.datasets.filter((d) => d.state === "waiting").length })}
    <h2>Throughput</h2>${chart(t)}
    ${progressTable("waves", "By wave", v.waves)}
    ${progressTable("groups", "By group", v.groups)}
    <h2>Datasets</h2>
    <table id="run-datasets"><thead><tr><th>Dataset</th><th>Wave</th><th>Group</th><th>State</th><th>Catalog</th><th>Version</th><th>Rows</th><th>Seconds</th><th>Error</th><th></th></tr></thead><tbody>` +
    v.datasets.map((d) => `<tr data-dataset="${esc(d.dataset)}">
      <td>${d.execution ? `<a href="#/executions/${encodeURIComponent(d.execution)}">${esc(d.dataset)}</a>` : esc(d.dataset)}</td>
      <td>${esc(d.wave)}</td><td>${esc(d.group)}</td><td class="state">${badge(d.state)}</td><td class="status">${badge(d.status)}</td>
      <td class="n">${d.version ? "v" + d.version : "–"}</td><td class="n">${num(d.rows)}</td><td class="n">${d.seconds == null ? "–" : d.seconds.toFixed(2)}</td>
      <td class="reason">${esc(d.state === "failed" ? d.error || d.reason : "")}</td><td>${buttons(d.dataset, d.status, d.version)}</td></tr>`).join("") + `</tbody></table>`;
}

// ---- one dataset ----
async function dataset(main, name) {
  const v = await api(`/api/datasets/${encodeURIComponent(name)}`);
  const r = v.record, spec = r.spec.spec;
  const fact = (k, val) => `<div class="card"><div class="k">${k}</div><div class="v">${val}</div></div>`;
  main.innerHTML = `<h1>${esc(r.name)} ${badge(r.status)} <span id="dataset-actions">${buttons(r.name, r.status, r.currentVersion)}</span></h1>
    ${r.reason ? `<p class="reason">${esc(r.reason)}</p>` : ""}
    <div class="cards" id="dataset-facts">
      ${fact("Owner", esc(r.spec.metadata.owner || "–"))}${fact("Group", esc(spec.group))}${fact("Criticality", esc(spec.criticality))}
      ${fact("Version", r.currentVersion ? "v" + r.currentVersion : "–")}${fact("Rows", num(r.rows))}${fact("Last verification", esc(r.lastVerification || "–"))}
      ${fact("Format", esc(v.target.format) + (v.target.partitionBy.length ? ` <span class="muted">by ${esc(v.target.partitionBy.join(", "))}</span>` : ""))}${v.target.format === "delta" ? fact("Table version", v.target.tableVersion ?? "–") : ""}${v.target.glue ? fact("Glue table", esc(v.target.glue)) : ""}
    </div>
    <h2>Dependencies</h2>${depGraph(v)}
    <h2>Versions</h2>
    <table id="versions"><thead><tr><th>Version</th><th>Action</th><th>When</th><th>Run</th><th>Rows</th><th>Files</th><th>Bytes</th><th>Checksum</th></tr></thead><tbody>` +
    (v.versions.slice().reverse().map((x) => `<tr data-version="${x.manifest.version}"><td class="n">v${x.manifest.version}</td><td>${esc(x.action)}</td><td>${esc(x.at)}</td><td><a href="#/runs/${encodeURIComponent(x.manifest.runId)}">${esc(x.manifest.runId)}</a></td>
      <td class="n">${num(x.manifest.rows)}</td><td class="n">${num(x.manifest.fileCount)}</td><td class="n">${num(x.manifest.bytes)}</td><td><code>${esc(x.manifest.checksum.sum.slice(0, 12))}</code></td></tr>`).join("") ||
      `<tr><td colspan="8" class="muted">Nothing published yet.</td></tr>`) + `</tbody></table>
    <h2>Attempts</h2>
    <table id="attempts"><thead><tr><th>#</th><th>Run</th><th>Started</th><th>Finished</th><th>Outcome</th><th>Error</th></tr></thead><tbody>` +
    (v.attempts.slice().reverse().map((a) => `<tr><td class="n">${a.attempt}</td><td><a href="#/runs/${encodeURIComponent(a.runId)}">${esc(a.runId)}</a></td><td>${esc(a.startedAt)}</td><td>${esc(a.finishedAt || "–")}</td><td>${badge(a.outcome || "running")}</td><td class="reason">${esc(a.error || "")}</td></tr>`).join("") ||
      `<tr><td colspan="6" class="muted">No attempt yet.</td></tr>`) + `</tbody></table>
    <h2>Executions</h2>
    <ul id="dataset-executions">${v.executions.map((id) => `<li><a href="#/executions/${encodeURIComponent(id)}">${esc(id)}</a></li>`).join("") || `<li class="muted">None in the engine (migrated with <code>skein migrate</code>).</li>`}</ul>
    <details><summary>Spec</summary><pre>${esc(JSON.stringify(r.spec, null, 2))}</pre></details>
    <details><summary>Status history</summary><table><tbody>${v.history.slice().reverse().map((h) => `<tr><td>${esc(h.at)}</td><td>${badge(h.from || "–")} → ${badge(h.to)}</td><td>${esc(h.runId || "")}</td><td class="reason">${esc(h.reason || "")}</td></tr>`).join("")}</tbody></table></details>`;
}

// What this dataset depends on (left) and what depends on it (right), as a small graph.
function depGraph(v) {
  const left = v.dependsOn, right = v.dependents, H = 26, G = 8, W = 170;
  const rows = Math.max(left.length, right.length, 1);
  const height = rows * (H + G) + G, cy = height / 2, mid = 260;
  const box = (n, x, y, cls) => `<g class="dep ${cls}" data-dataset="${esc(n)}"><a href="#/datasets/${encodeURIComponent(n)}"><rect x="${x}" y="${y}" width="${W}" height="${H}" rx="4"/><text x="${x + W / 2}" y="${y + 17}" text-anchor="middle">${esc(n)}</text></a></g>`;
  const ys = (n) => Array.from({ length: n }, (_, i) => G + i * (H + G) + (rows - n) * (H + G) / 2);
  const parts = [];
  ys(left.length).forEach((y, i) => { parts.push(`<line x1="${10 + W}" y1="${y + H / 2}" x2="${mid}" y2="${cy}" stroke="#7d8998"/>`); parts.push(box(left[i], 10, y, "upstream")); });
  ys(right.length).forEach((y, i) => { parts.push(`<line x1="${mid + W}" y1="${cy}" x2="${mid + W + 80}" y2="${y + H / 2}" stroke="#7d8998"/>`); parts.push(box(right[i], mid + W + 80, y, "downstream")); });
  parts.push(`<g class="dep self"><rect x="${mid}" y="${cy - H / 2}" width="${W}" height="${H}" rx="4" fill="#e8f2fd" stroke="#0972d3"/><text x="${mid + W / 2}" y="${cy + 4}" text-anchor="middle" font-weight="600">${esc(v.record.name)}</text></g>`);
  return `<svg id="deps" width="${mid + 2 * W + 100}" height="${height}">${parts.join("")}</svg>
    <p class="muted">${left.length ? `Depends on ${left.length}` : "Depends on nothing"}; ${right.length ? `${right.length} depend on it` : "nothing depends on it"}.</p>`;
}

// Datasets finished (line) and rows published (area) over the run's time, as steps.
function chart(t) {
  const W = 640, H = 150, P = 28, pts = t.timeline;
  const maxT = Math.max(t.elapsedSeconds, ...pts.map((p) => p.seconds), 0.001);
  const maxN = Math.max(1, ...pts.map((p) => p.datasets)), maxR = Math.max(1, ...pts.map((p) => p.rows));
  const x = (s) => (P + (s / maxT) * (W - 2 * P)).toFixed(1), y = (f) => (H - P - f * (H - 2 * P)).toFixed(1);
  let line = "", area = `${x(0)},${y(0)} `, prev = [0, 0];
  for (const p of pts) {
    const n = p.datasets / maxN, r = p.rows / maxR;
    line += `${x(p.seconds)},${y(prev[0])} ${x(p.seconds)},${y(n)} `;
    area += `${x(p.seconds)},${y(prev[1])} ${x(p.seconds)},${y(r)} `;
    prev = [n, r];
  }
  line += `${x(maxT)},${y(prev[0])}`;
  area += `${x(maxT)},${y(prev[1])} ${x(maxT)},${y(0)}`;
  return `<svg id="throughput" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"><rect x="${P}" y="${P}" width="${W - 2 * P}" height="${H - 2 * P}" fill="#fafafa" stroke="#d5dbdb"/>
    <polygon points="${area}" fill="#b9d7f7" opacity=".7"/><polyline points="${line}" fill="none" stroke="#1d8102" stroke-width="2"/>
    <text x="${P}" y="${H - 8}" font-size="11">0 s</text><text x="${W - P}" y="${H - 8}" font-size="11" text-anchor="end">${maxT.toFixed(1)} s</text>
    <text x="${P}" y="${P - 8}" font-size="11" fill="#1d8102">${pts[pts.length - 1].datasets} migrations finished</text>
    <text x="${W - P}" y="${P - 8}" font-size="11" fill="#0972d3" text-anchor="end">${num(pts[pts.length - 1].rows)} rows published</text></svg>`;
}

// ---- execution: the graph and the history ----
const EDGE_COLOURS = { catch: "#c45a00" };
function svgGraph(g) {
  const pad = 10;
  const parts = [];
  parts.push(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7d8998"/></marker>
    <marker id="arrow-catch" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${EDGE_COLOURS.catch}"/></marker></defs>`);
  // containers first (behind), then edges, then plain states
  const nodes = [...g.nodes].sort((a, b) => (b.container - a.container));
  for (const n of nodes.filter((n) => n.container)) parts.push(node(n));
  for (const e of g.edges) {
    const pts = e.points.map((p) => p.join(",")).join(" ");
    parts.push(`<polyline class="edge ${e.kind}" data-from="${esc(e.from)}" data-to="${esc(e.to)}" points="${pts}" marker-end="url(#${e.kind === "catch" ? "arrow-catch" : "arrow"})"><title>${esc(e.from)} → ${esc(e.to)} (${e.kind})</title></polyline>`);
  }
  for (const n of nodes.filter((n) => !n.container)) parts.push(node(n));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${g.width + 2 * pad}" height="${g.height + 2 * pad}" viewBox="${-pad} ${-pad} ${g.width + 2 * pad} ${g.height + 2 * pad}">${parts.join("")}</svg>`;
}
function node(n) {
  if (n.kind === "Start" || n.kind === "End")
    return `<g class="node marker ${n.status}" data-state="${esc(n.name)}" data-status="${n.status}"><rect x="${n.x}" y="${n.y}" width="${n.w}" height="${n.h}" rx="${n.h / 2}"/><text x="${n.x + n.w / 2}" y="${n.y + n.h / 2 + 4}" text-anchor="middle">${esc(n.name)}</text></g>`;
  const label = n.container ? `<text x="${n.x + 10}" y="${n.y + 18}" font-weight="600">${esc(n.name)} <tspan fill="#687078">(${esc(n.kind)})</tspan></text>`
    : `<text x="${n.x + n.w / 2}" y="${n.y + n.h / 2 + 4}" text-anchor="middle">${esc(n.name)}</text>`;
  const count = n.entered > 1 ? `<text x="${n.x + n.w - 6}" y="${n.y + 12}" text-anchor="end" font-size="10" fill="#687078">×${n.entered}</text>` : "";
  return `<g class="node ${n.status}${n.container ? " container" : ""}" data-state="${esc(n.name)}" data-status="${n.status}"><rect x="${n.x}" y="${n.y}" width="${n.w}" height="${n.h}"/>${label}${count}<title>${esc(n.name)} (${esc(n.kind)}): ${n.status.replace("_", " ")}</title></g>`;
}

async function execution(main, id) {
  const v = await api(`/api/executions/${encodeURIComponent(id)}?limit=500`);
  const legend = ["not_run", "running", "succeeded", "caught", "failed"].map((s) => `<span class="node ${s}"><i style="background:var(--${{ not_run: "none", running: "run", succeeded: "ok", caught: "caught", failed: "bad" }[s]}bg);border-color:var(--${{ not_run: "none", running: "run", succeeded: "ok", caught: "caught", failed: "bad" }[s]})"></i>${s.replace("_", " ")}</span>`).join("");
  main.innerHTML = `<h1>Execution ${esc(v.id)} ${badge(v.status === "SUCCEEDED" ? "succeeded" : v.status === "RUNNING" ? "running" : "failed")}</h1>
    <p class="muted">${esc(v.name)} · started ${esc(v.startedAt)}${v.stoppedAt ? ` · stopped ${esc(v.stoppedAt)}` : ""}
    ${v.parent ? ` · run <a href="#/runs/${encodeURIComponent(v.parent)}">${esc(v.parent)}</a>` : ` · <a href="#/runs/${encodeURIComponent(v.id)}">run page</a>`}
    ${v.dataset ? ` · dataset <b>${esc(v.dataset)}</b>` : ""}</p>
    ${v.error ? `<p class="reason"><b>${esc(v.error)}</b>: ${esc(v.cause || "")}</p>` : ""}
    <div class="split">
      <section><h2>Graph</h2><div class="legend">${legend}</div><div class="graph" id="graph">${svgGraph(v.graph)}</div>
        <div id="state-detail" class="muted">Click a state to see its input and output.</div></section>
      <section><h2>Event history <span class="muted">(${v.events.length} of ${v.totalEvents})</span></h2>
        <table id="events"><thead><tr><th>#</th><th>Type</th><th>State</th><th>Frame</th><th>Time (UTC)</th></tr></thead><tbody>` +
    v.events.slice().reverse().map((e) => `<tr><td class="n">${e.id}</td><td><details><summary>${esc(e.kind)}</summary><pre>${esc(JSON.stringify(e.details, null, 2))}</pre></details></td><td>${esc(e.state || "")}</td><td>${esc(e.frame)}</td><td title="${esc(e.at)}">${esc(e.at.slice(11, 23))}</td></tr>`).join("") +
    `</tbody></table></section></div>`;
  execution.current = v;
  if (execution.selected && execution.selected.id === id) showState(execution.selected.name);
}

// A state's input, output and error, from the latest of its events in the history (as the
// console's step details): the last `…StateEntered` gives the input, the last
// `…StateExited` the output, a failure event the error and cause.
function showState(name) {
  const v = execution.current;
  if (!v) return;
  execution.selected = { id: v.id, name };
  const of = (e) => e.state === name || (e.details && e.details.name === name);
  const evs = v.events.filter(of);
  const last = (re) => evs.filter((e) => re.test(e.kind)).pop();
  const entered = last(/StateEntered$/), exited = last(/StateExited$/);
  const failed = evs.filter((e) => e.details && (e.details.error || e.details.cause)).pop();
  const pre = (cls, title, value) => `<h3>${title}</h3><pre class="${cls}">${esc(JSON.stringify(value, null, 2))}</pre>`;
  $("#state-detail").className = "";
  $("#state-detail").innerHTML = `<h2>${esc(name)}</h2>` +
    (entered ? pre("input", "Input", entered.details.input) : `<p class="muted">Not entered in the events shown.</p>`) +
    (exited ? pre("output", "Output", exited.details.output) : "") +
    (failed ? `<h3>Error</h3><p class="reason error"><b>${esc(failed.details.error || "")}</b>: ${esc(failed.details.cause || "")}</p>` : "") +
    children(v, name, evs);
  document.querySelectorAll("#graph g.node").forEach((g) => g.classList.toggle("selected", g.dataset.state === name));
}

// The executions a state started (a Task's `states:startExecution`, or the tasks inside a
// Map's or a Parallel's iterations and branches), from the events shown: links to their
// pages, as the console links a Map Run's child executions.
function children(v, name, evs) {
  const arn = /arn:aws:states:[^:"]*:[^:"]*:execution:[^:"]+:([^:"\s\\]+)/g;
  const frames = evs.filter((e) => /^(Map|Parallel)StateEntered$/.test(e.kind)).map((e) => e.frame);
  const inside = (e) => frames.some((f) => e.frame.startsWith(`${f}/`));
  const ids = new Set();
  for (const e of v.events) {
    if (!(evs.includes(e) || inside(e))) continue;
    for (const m of JSON.stringify(e.details || {}).matchAll(arn)) if (m[1] !== v.id) ids.add(m[1]);
  }
  if (!ids.size) return "";
  return `<h3>Child executions (${ids.size})</h3><ul id="child-executions">${[...ids].map((id) => `<li><a class="child" href="#/executions/${encodeURIComponent(id)}">${esc(id)}</a></li>`).join("")}</ul>`;
}

document.addEventListener("click", (e) => {
  const g = e.target.closest("#graph g.node");
  if (g && !g.classList.contains("marker")) showState(g.dataset.state);
});

// ---- routing and live updates ----
let rendering = false, again = false, lastRoute = "";
async function refresh() {
  if (rendering) { again = true; return; }
  if ($("#confirm").open) return; // never redraw under an open dialog
  rendering = true;
  const main = $("#main");
  const route = location.hash.replace(/^#/, "") || "/";
  const fresh = route !== lastRoute;
  lastRoute = route;
  const [, page, id] = route.split("/").map(decodeURIComponent);
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("on", a.dataset.nav === (page === "" || page === "datasets" ? "catalog" : "runs")));
  const open = new Set([...main.querySelectorAll("details[open] summary")].map((s) => s.textContent));
  try {
    if (page === "datasets" && id) await dataset(main, id);
    else if (page === "runs" && id) await run(main, id);
    else if (page === "runs") await runs(main);
    else if (page === "executions" && id) await execution(main, id);
    else await catalog(main, fresh);
    if (open.size) main.querySelectorAll("details summary").forEach((s) => { if (open.has(s.textContent)) s.parentElement.open = true; });
    document.body.dataset.loaded = route;
  } catch (e) {
    main.innerHTML = `<h1>Not available</h1><p class="reason">${esc(e.message)}</p>`;
  } finally {
    rendering = false;
    if (again) { again = false; refresh(); }
  }
}

function live() {
  const dot = $("#live");
  const source = new EventSource("/api/live");
  source.addEventListener("open", () => dot.classList.add("on"));
  // At most one redraw per 700 ms while a run writes continuously.
  let timer = null;
  source.addEventListener("change", () => { if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 700); });
  source.addEventListener("error", () => dot.classList.remove("on"));
  // Polling as well, slowly, in case a proxy holds the event stream back.
  setInterval(refresh, 10000);
}

window.addEventListener("hashchange", refresh);
$("#confirm").addEventListener("close", () => setTimeout(refresh, 0));
refresh();
live();
