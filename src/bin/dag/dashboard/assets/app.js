// The dashboard's page: the list of runs (`/`) or one run (`/runs/{id}`), drawn from the JSON
// API and kept live by server-sent events. No library: the graph layout below is a layered
// (Sugiyama-style) layout written for this page: columns by longest path from a root, rows
// ordered by the barycentre of their neighbours, a few sweeps each way.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "title", "line"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function showStatus(message, kind) {
  const status = $("#status");
  if (!message) { status.hidden = true; return; }
  status.hidden = false;
  status.className = kind || "";
  status.textContent = message;
}

async function getJson(path) {
  let response;
  try {
    response = await fetch(withToken(path));
  } catch (e) {
    throw new Error("the dashboard server does not answer (" + e.message + "); is `dag dashboard` still running?");
  }
  const body = await response.json().catch(() => ({ error: "unreadable answer (" + response.status + ")" }));
  if (!response.ok) {
    const error = new Error(body.error || ("HTTP " + response.status));
    error.status = response.status;
    throw error;
  }
  return body;
}

function live(path, onMessage) {
  const source = new EventSource(withToken(path));
  // A browser keeps at most six connections to one server: an event stream left open by a
  // page the user navigated away from (kept in the back-forward cache) would take one of them
  // for good, and after a few pages the page's own requests would wait forever.
  window.addEventListener("pagehide", () => source.close());
  // Back to such a page: its stream is closed, so it loads afresh.
  window.addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });
  source.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    onMessage(message);
  };
  return source;
}

const ms = (value) => value === null || value === undefined ? "–" :
  value >= 1000 ? (value / 1000).toFixed(2) + " s" : value >= 10 ? value.toFixed(0) + " ms" : value.toFixed(2) + " ms";
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
const when = (us) => us ? new Date(us / 1000).toISOString().replace("T", " ").slice(0, 19) : "–";
function hue(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

// ---------------------------------------------------------------------------- the runs list

function runsPage() {
  $("#where").textContent = "runs";
  const main = $("#main");
  const params = new URLSearchParams(location.search);
  const name = el("input", { id: "filter-name", placeholder: "name contains…", value: params.get("name") || "" });
  const state = el("select", { id: "filter-state" },
    ["", "running", "succeeded", "failed", "cancelled"].map((s) => el("option", { value: s, text: s || "any state" })));
  state.value = params.get("state") || "";
  const table = el("table", { id: "runs" }, el("tr", {}, el("td", { class: "muted", text: "Loading runs…" })));
  main.replaceChildren(el("div", { class: "filters" }, name, state, el("span", { id: "count", class: "muted" })), table);

  let pending = null;
  async function load() {
    const query = new URLSearchParams({ limit: "200" });
    if (name.value) query.set("name", name.value);
    if (state.value) query.set("state", state.value);
    try {
      const runs = await getJson("/api/runs?" + query);
      showStatus(null);
      renderRuns(table, runs);
      $("#count").textContent = runs.length + " runs";
    } catch (e) {
      showStatus(e.message);
    }
    document.body.dataset.loaded = "1";
  }
  const reload = () => { clearTimeout(pending); pending = setTimeout(load, 200); };
  name.addEventListener("input", reload);
  state.addEventListener("change", reload);
  load();
  live("/api/live", (message) => {
    if (message.kind === "runs") { reload(); bump(); }
    if (message.kind === "unavailable") showStatus(message.message);
  });
}

function renderRuns(table, runs) {
  const head = el("tr", {}, ["id", "name", "state", "started (UTC)", "makespan", "tasks", "failures"].map(
    (h, i) => el("th", { class: i >= 4 ? "num" : null, text: h })));
  const rows = runs.map((run) => el("tr", { "data-run": run.id, "data-state": run.state },
    el("td", {}, el("a", { href: withToken("/runs/" + encodeURIComponent(run.id)), text: run.id })),
    el("td", { text: run.name }),
    el("td", {}, el("span", { class: "state " + run.state, text: run.state })),
    el("td", { text: when(run.started_at_us) }),
    el("td", { class: "num", text: ms(run.makespan_ms) }),
    el("td", { class: "num", text: run.tasks }),
    el("td", { class: "num", text: run.failures })));
  if (!runs.length) {
    rows.push(el("tr", {}, el("td", { colspan: 7, class: "muted",
      text: "No runs recorded: runs appear here when their runtime records metrics into this Redis (.metrics(MetricsStorage::dag_store()), or DAG_METRICS=dag for worker processes)." })));
  }
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
}

function bump() {
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
}

// ------------------------------------------------------------------------------ one run

function runPage(id) {
  $("#where").textContent = "run " + id;
  let view = null;
  let pending = null;
  let colourBy = "state";
  let selected = null;

  async function load() {
    try {
      view = await getJson("/api/runs/" + encodeURIComponent(id));
      showStatus(null);
      render();
      if (document.body.dataset.initialDone === undefined) {
        // What was done when the page loaded: what live updates are measured against.
        document.body.dataset.initialDone = String(document.querySelectorAll('.node[data-state="done"]').length);
      }
    } catch (e) {
      showStatus(e.status === 404 ? e.message : "Could not load the run: " + e.message);
      if (e.status === 404) $("#main").replaceChildren(el("p", { id: "missing", text: e.message }));
    }
    document.body.dataset.loaded = "1";
  }
  const resync = () => { clearTimeout(pending); pending = setTimeout(load, 300); };

  function render() {
    const main = $("#main");
    const graph = view.graph;
    const toggle = el("select", { id: "colour-by", onchange: (e) => { colourBy = e.target.value; render(); } },
      el("option", { value: "state", text: "colour by state" }),
      el("option", { value: "worker", text: "colour by worker" }));
    toggle.value = colourBy;
    const note = graph.aggregated
      ? el("p", { id: "aggregated", class: "muted", text: `${graph.aggregated.nodes} nodes, drawn as ${graph.nodes.length} groups by ${graph.aggregated.by} (a group's colour is its least advanced node's).` })
      : null;
    const source = graph.source === "records"
      ? el("p", { class: "muted", text: "The run has ended: its graph is rebuilt from its metrics (the nodes that ran)." })
      : null;
    main.replaceChildren(...[
      summary(view),
      el("h2", { text: "Graph" }),
      el("div", { class: "filters" }, toggle, legend(), ),
      note, source,
      el("div", { class: "row" },
        el("div", { id: "graph-box", class: "grow" }, drawGraph(graph, colourBy, (node) => { selected = node.id; showDetails(node); })),
        el("div", { id: "details", class: "panel" }, el("p", { class: "muted", text: "Click a node for its details." }))),
      errors(view),
      el("h2", { text: "Timeline per worker" }), gantt(view),
      el("h2", { text: "Where the time went" }), breakdown(view),
      el("h2", { text: "Per task" }), taskTable(view.report),
      el("h2", { text: "Transfers" }), transfers(view.report),
    ].filter(Boolean));
    if (selected !== null) {
      const node = graph.nodes.find((n) => n.id === selected);
      if (node) showDetails(node);
    }
  }

  function showDetails(node) {
    document.querySelectorAll(".node.selected").forEach((n) => n.classList.remove("selected"));
    const g = document.querySelector(`.node[data-node="${node.id}"]`);
    if (g) g.classList.add("selected");
    const a = node.attempt;
    const rows = [
      ["node", view.graph.aggregated ? `group of ${node.count}` : node.id],
      ["task", node.task], ["state", node.state], ["level", node.level],
    ];
    if (node.count > 1) rows.push(["states", Object.entries(node.states).map(([s, n]) => `${s} ${n}`).join(", ")]);
    if (a) {
      rows.push(["worker", a.worker], ["attempt", a.attempt + " (" + a.outcome + ")"],
        ["started", when(a.start_us)], ["took", ms((a.end_us - a.start_us) / 1000)],
        ["fetching", ms(a.fetch_ms)], ["running", ms(a.run_ms)], ["storing", ms(a.store_ms)],
        ["input", bytes(a.input_bytes)], ["output", bytes(a.output_bytes)],
        ["how", a.continuation ? "continued in its parent's worker" : "fresh invocation"]);
      if (a.kept_by) rows.push(["output kept by", a.kept_by]);
    }
    if (node.map) rows.push(["map", `${node.map.done} of ${node.map.tasks} tasks done, ${node.map.failed} failed (${node.map.dag})`]);
    if (node.critical) rows.push(["critical path", "yes"]);
    const list = el("dl", {}, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
    const error = node.error ? el("p", { class: "error-text node-error", text: node.error }) : null;
    $("#details").replaceChildren(el("h3", { text: node.task }), list, error);
  }

  // Live: a finished node turns done at once, and its children ready when they have all
  // their parents; anything else (a failure, the end) reloads the snapshot.
  function apply(message) {
    if (!view) return;
    if (message.kind === "resync") { resync(); return; }
    if (message.kind === "unavailable") { showStatus(message.message); return; }
    if (message.kind !== "event") return;
    bump();
    if (message.event !== "done") { resync(); return; }
    const node = Number(message.node);
    const graph = view.graph;
    if (graph.aggregated) {
      const group = graph.nodes[graph.aggregated.group_of[node]];
      if (!group || (graph._done = graph._done || new Set()).has(node)) return;
      graph._done.add(node);
      const from = ["ready", "waiting", "retried"].find((s) => group.states[s] > 0);
      if (!from) return;
      group.states[from] -= 1;
      if (!group.states[from]) delete group.states[from];
      group.states.done = (group.states.done || 0) + 1;
      group.state = ["failed", "waiting", "ready", "retried", "done"].find((s) => group.states[s] > 0);
      setState(group.id, group.state);
      return;
    }
    const byId = graph._byId;
    const done = byId.get(node);
    if (!done || done.state === "done") return;
    done.state = "done";
    setState(node, "done");
    for (const child of graph._children.get(node) || []) {
      const c = byId.get(child);
      if (c && c.state === "waiting" && graph._parents.get(child).every((p) => byId.get(p)?.state === "done")) {
        c.state = "ready";
        setState(child, "ready");
      }
    }
  }
  function setState(id, state) {
    const g = document.querySelector(`.node[data-node="${id}"]`);
    if (g) g.setAttribute("data-state", state);
  }

  load();
  live("/api/runs/" + encodeURIComponent(id) + "/live", apply);
}

function summary(view) {
  const r = view.report;
  const items = [
    ["state", view.run.state], ["started", when(r.started_at_us)], ["makespan", ms(r.makespan_ms)],
    ["tasks", r.tasks], ["attempts", r.attempts], ["retries", r.retries], ["failures", r.failures],
    ["workers", r.workers.length], ["store round trips", r.store_round_trips],
    ["uploaded", bytes(r.bytes_uploaded)], ["downloaded", bytes(r.bytes_downloaded)],
    ["not moved (clustering)", bytes(r.saved_by_clustering)], ["not moved (delayed I/O)", bytes(r.saved_by_delayed_io)],
  ];
  if (r.dropped_records) items.push(["records dropped", r.dropped_records]);
  return el("div", { class: "panel" },
    el("h2", { text: `${view.run.name} (${view.run.id})` }),
    el("dl", { id: "summary" }, items.map(([k, v]) => [el("dt", { text: k }), el("dd", { "data-field": k, text: String(v) })])),
    r.error ? el("p", { id: "run-error", class: "error-text", text: r.error }) : null);
}

function legend() {
  return el("span", { class: "legend" }, ["waiting", "ready", "retried", "done", "failed"].map((s) =>
    el("span", {}, el("i", { style: `background: var(--${s})` }), s === "ready" ? "ready or running" : s)));
}

function errors(view) {
  const failed = view.graph.nodes.filter((n) => n.state === "failed" && n.error);
  if (!failed.length && !view.report.errors.length) return null;
  const items = failed.length
    ? failed.map((n) => el("li", { "data-node": n.id }, el("b", { text: `${n.task} (node ${n.id}): ` }), el("span", { class: "error-text", text: n.error })))
    : view.report.errors.map((e) => el("li", {}, el("b", { text: `${e.task} (node ${e.node}, attempt ${e.attempt}): ` }), el("span", { class: "error-text", text: e.message || e.outcome })));
  return el("div", { class: "panel", id: "errors" }, el("h2", { text: "Errors" }), el("ul", {}, items));
}

// The layered layout: columns by level, rows ordered by the barycentre of the neighbours.
function layout(graph) {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const parents = new Map(graph.nodes.map((n) => [n.id, []]));
  const children = new Map(graph.nodes.map((n) => [n.id, []]));
  for (const [p, c] of graph.edges) {
    if (byId.has(p) && byId.has(c)) { parents.get(c).push(p); children.get(p).push(c); }
  }
  const columns = [];
  for (const n of graph.nodes) (columns[n.level] = columns[n.level] || []).push(n.id);
  for (let i = 0; i < columns.length; i++) columns[i] = columns[i] || [];
  const row = new Map();
  const number = (column) => column.forEach((id, i) => row.set(id, i));
  columns.forEach(number);
  const centre = (ids) => ids.length ? ids.reduce((s, id) => s + row.get(id), 0) / ids.length : null;
  const sort = (column, neighbours) => {
    const key = new Map(column.map((id) => [id, centre(neighbours.get(id)) ?? row.get(id)]));
    column.sort((a, b) => key.get(a) - key.get(b) || a - b);
    number(column);
  };
  for (let sweep = 0; sweep < 4; sweep++) {
    for (let i = 1; i < columns.length; i++) sort(columns[i], parents);
    for (let i = columns.length - 2; i >= 0; i--) sort(columns[i], children);
  }
  graph._byId = byId; graph._parents = parents; graph._children = children;
  return { columns, row };
}

function drawGraph(graph, colourBy, onSelect) {
  const W = 130, H = 30, GX = 60, GY = 12, PAD = 10;
  const { columns, row } = layout(graph);
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + tallest * (H + GY) - GY;
  const pos = (id) => {
    const n = graph._byId.get(id);
    const column = columns[n.level];
    const offset = (tallest - column.length) * (H + GY) / 2;
    return { x: PAD + n.level * (W + GX), y: PAD + offset + row.get(id) * (H + GY) };
  };
  const svg = el("svg", { id: "graph", width, height, viewBox: `0 0 ${width} ${height}`,
    class: colourBy === "worker" ? "by-worker" : null, "data-nodes": graph.nodes.length });
  const edges = el("g", {});
  for (const [p, c] of graph.edges) {
    if (!graph._byId.has(p) || !graph._byId.has(c)) continue;
    const a = pos(p), b = pos(c);
    const critical = graph._byId.get(p).critical && graph._byId.get(c).critical;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
    edges.append(el("path", { class: "edge" + (critical ? " critical" : ""), d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
  }
  const nodes = el("g", {});
  for (const n of graph.nodes) {
    const { x, y } = pos(n.id);
    const worker = n.attempt ? n.attempt.worker : "";
    const short = n.task.split("::").pop();
    const label = (n.count > 1 ? `${short} ×${n.count}` : short);
    const sub = n.map ? `map ${n.map.done}/${n.map.tasks}` : (n.count > 1 ? `${n.states.done || 0} done` : `#${n.id}`);
    nodes.append(el("g", {
      class: "node" + (n.critical ? " critical" : ""), "data-node": n.id, "data-task": n.task, "data-state": n.state,
      transform: `translate(${x},${y})`, style: worker ? `--worker: hsl(${hue(worker)},55%,60%)` : "--worker: #ddd",
      onclick: () => onSelect(n),
    },
    el("title", { text: `${n.task} (${n.state})${n.error ? ": " + n.error : ""}` }),
    el("rect", { width: W, height: H, rx: 4 }),
    el("text", { x: 6, y: 12, text: label.length > 20 ? label.slice(0, 19) + "…" : label }),
    el("text", { x: 6, y: 25, text: sub }),
    // A map node holds its child DAG: a bar of the share of its tasks done.
    n.map && n.map.tasks ? el("rect", { class: "map-bar", x: 70, y: 19, height: 6, rx: 2,
      width: Math.max(1, 54 * n.map.done / n.map.tasks), "data-map": n.map.dag }) : null,
    n.map && n.map.tasks ? el("rect", { class: "map-track", x: 70, y: 19, width: 54, height: 6, rx: 2 }) : null));
  }
  svg.append(edges, nodes);
  return svg;
}

function gantt(view) {
  const bars = view.timeline;
  if (!bars.length) return el("p", { class: "muted", text: "No attempts recorded yet." });
  const workers = [...new Set(bars.map((b) => b.worker))].sort();
  const start = Math.min(...bars.map((b) => b.start_us));
  const end = Math.max(...bars.map((b) => b.end_us));
  const span = Math.max(1, end - start);
  const LEFT = 170, WIDTH = 900, ROW = 18;
  const svg = el("svg", { id: "gantt", width: LEFT + WIDTH + 10, height: workers.length * ROW + 24 });
  workers.forEach((w, i) => svg.append(el("text", { x: 4, y: i * ROW + 13, text: w.length > 26 ? "…" + w.slice(-25) : w })));
  for (const b of bars) {
    const x = LEFT + (b.start_us - start) / span * WIDTH;
    const width = Math.max(1, (b.end_us - b.start_us) / span * WIDTH);
    svg.append(el("rect", { x, y: workers.indexOf(b.worker) * ROW + 2, width, height: ROW - 4,
      fill: b.ok ? `hsl(${hue(b.task)},55%,55%)` : "var(--failed)" },
      el("title", { text: `${b.task} #${b.node} (${b.dag}): ${ms((b.end_us - b.start_us) / 1000)}` })));
  }
  svg.append(el("text", { x: LEFT, y: workers.length * ROW + 18, text: "0" }),
    el("text", { x: LEFT + WIDTH - 60, y: workers.length * ROW + 18, text: ms(span / 1000) }));
  const note = view.timeline_truncated ? el("p", { class: "muted", text: "The longest attempts only: the run has more than the timeline draws." }) : null;
  return el("div", { class: "panel" }, svg, note);
}

function breakdown(view) {
  let fetch = 0, run = 0, store = 0, total = 0;
  for (const b of view.timeline) {
    fetch += b.fetch_us; run += b.run_us; store += b.store_us; total += b.end_us - b.start_us;
  }
  const other = Math.max(0, total - fetch - run - store);
  const parts = [["fetching inputs", fetch, "#5b8def"], ["running", run, "#4caf50"], ["storing and marking", store, "#f2c14e"], ["handing on and other", other, "#b0b6be"]];
  if (!total) return el("p", { class: "muted", text: "No attempts recorded yet." });
  return el("div", { class: "panel", id: "breakdown" },
    el("div", { class: "bar" }, parts.map(([k, v, c]) => el("div", { title: k, style: `width:${v / total * 100}%;background:${c}` }))),
    el("p", {}, parts.map(([k, v, c]) => el("span", { style: "margin-right:1.5em" },
      el("i", { style: `display:inline-block;width:.8em;height:.8em;background:${c};margin-right:.3em` }),
      `${k}: ${ms(v / 1000)} (${(v / total * 100).toFixed(1)}%)`))));
}

function taskTable(report) {
  const head = ["task", "count", "mean", "p50", "p90", "p99", "max", "input wait p50", "output p50", "retried", "failed"];
  return el("table", { id: "tasks" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i ? "num" : null, text: h })))),
    el("tbody", {}, report.by_task.map((t) => el("tr", { "data-task": t.task },
      el("td", { text: t.task }), el("td", { class: "num", text: t.count }),
      [t.mean_ms, t.p50_ms, t.p90_ms, t.p99_ms, t.max_ms].map((v) => el("td", { class: "num", text: ms(v) })),
      el("td", { class: "num", text: ms(t.input_wait_ms?.p50) }),
      el("td", { class: "num", text: bytes(t.output_bytes?.p50) }),
      el("td", { class: "num", text: t.retried }), el("td", { class: "num", text: t.failed })))));
}

function transfers(report) {
  const fetchMs = report.by_task.reduce((s, t) => s + (t.input_wait_ms?.mean || 0) * t.count, 0);
  const speed = fetchMs > 0 ? bytes(report.bytes_downloaded / (fetchMs / 1000)) + "/s" : "–";
  const rows = [
    ["uploaded (outputs stored)", bytes(report.bytes_uploaded)],
    ["downloaded (inputs fetched)", bytes(report.bytes_downloaded)],
    ["download speed (bytes over time fetching)", speed],
    ["not moved thanks to task clustering", bytes(report.saved_by_clustering)],
    ["not moved thanks to delayed I/O", bytes(report.saved_by_delayed_io)],
  ];
  return el("div", { class: "panel", id: "transfers" },
    el("dl", {}, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
    el("table", {}, el("thead", {}, el("tr", {}, ["task", "output min", "output p50", "output max"].map((h) => el("th", { text: h })))),
      el("tbody", {}, report.by_task.map((t) => el("tr", {}, el("td", { text: t.task }),
        [t.output_bytes?.min, t.output_bytes?.p50, t.output_bytes?.max].map((v) => el("td", { class: "num", text: bytes(v) })))))));
}

// ------------------------------------------------------------------------------ routing

const match = location.pathname.match(/^\/runs\/(.+)$/);
if (match) runPage(decodeURIComponent(match[1]));
else runsPage();
if (token) $("#home").setAttribute("href", withToken("/"));
