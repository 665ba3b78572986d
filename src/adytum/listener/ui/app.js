// The dashboard: reads /ui/status.json once a second and draws it. No framework, no build step.
"use strict";

const POINTS = 120; // seconds of history the charts keep
const history = { throughput: [], latency: [], queue: [] };
let last = null; // the previous snapshot, for the throughput between two
const seen = new Set(); // answered orders whose latency is already counted

const $ = (id) => document.getElementById(id);
const text = (value) => document.createTextNode(value === null || value === undefined ? "–" : String(value));

function cell(row, value, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.appendChild(text(value));
  row.appendChild(td);
}

function fill(id, rows) {
  const body = $(id);
  body.replaceChildren(...rows);
}

function definitions(id, pairs) {
  const out = [];
  for (const [name, value] of pairs) {
    const dt = document.createElement("dt");
    dt.appendChild(text(name));
    const dd = document.createElement("dd");
    dd.appendChild(text(value));
    dd.dataset.name = name;
    out.push(dt, dd);
  }
  $(id).replaceChildren(...out);
}

function short(hex) {
  return hex ? hex.slice(0, 16) + "…" : "–";
}

function ms(seconds) {
  return seconds === null || seconds === undefined ? "–" : (seconds * 1000).toFixed(1) + " ms";
}

function push(series, value) {
  series.push(value);
  if (series.length > POINTS) series.shift();
}

// A line chart in an SVG of viewBox 300x100: the series scaled to its own maximum.
function chart(id, series, unit) {
  const svg = $(id);
  const top = Math.max(1e-9, ...series);
  const step = 300 / (POINTS - 1);
  const offset = (POINTS - series.length) * step;
  const points = series.map((v, i) => `${(offset + i * step).toFixed(1)},${(98 - (v / top) * 90).toFixed(1)}`);
  const ns = "http://www.w3.org/2000/svg";
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", "line");
  const scale = document.createElementNS(ns, "text");
  scale.setAttribute("x", "2");
  scale.setAttribute("y", "10");
  scale.setAttribute("class", "scale");
  scale.appendChild(text(`max ${unit(top)}`));
  svg.replaceChildren(line, scale);
  svg.dataset.points = String(series.length);
  svg.dataset.last = String(series.length ? series[series.length - 1] : 0);
  svg.dataset.max = String(Math.max(0, ...series));
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function render(s) {
  $("worker").textContent = short(s.pool.workerId);
  const id = s.identity || {};
  definitions("identity", [
    ["worker id", s.pool.workerId],
    ["TEE", id.tee],
    ["attestation", id.verdict],
    ["evidence", id.kind || id.proofDataType],
    ["TCB status", id.tcbStatus],
    ["measurement (MRENCLAVE)", id.measurement],
    ["signer (MRSIGNER)", id.signer],
    ["report age", id.ageSeconds === undefined ? null : `${Math.round(id.ageSeconds)} s (issued ${id.issuedAt})`],
    ["verifying key (SHA-256)", id.verifyingKey],
  ]);
  $("identity-card").dataset.tee = id.tee || "";

  const kme = s.pool.keyManager;
  const rows = [];
  for (const e of [{ ...kme, served: kme.provisioned, inflight: null }, ...s.pool.enclaves]) {
    const tr = document.createElement("tr");
    tr.dataset.state = e.state;
    cell(tr, e.name);
    cell(tr, e.role === "kme" ? "key manager" : "work orders");
    cell(tr, e.state, "state");
    cell(tr, e.pid);
    cell(tr, e.restarts);
    cell(tr, e.role === "kme" ? `${e.served} provisioned` : e.served);
    cell(tr, e.inflight);
    cell(tr, short(e.mr_enclave), "mono");
    rows.push(tr);
  }
  fill("pool", rows);

  const latencies = [];
  const orders = [];
  for (const o of s.orders) {
    const took = o.completedAt === null ? null : o.completedAt - o.submittedAt;
    if (took !== null && !seen.has(o.workOrderId)) {
      seen.add(o.workOrderId);
      latencies.push(took);
    }
    const tr = document.createElement("tr");
    tr.dataset.id = o.workOrderId;
    tr.dataset.state = o.state;
    cell(tr, short(o.workOrderId), "mono");
    cell(tr, o.state, "state");
    cell(tr, o.code);
    cell(tr, new Date(o.submittedAt * 1000).toLocaleTimeString());
    cell(tr, ms(took));
    orders.push(tr);
  }
  fill("orders", orders);
  if (seen.size > 10000) seen.clear();

  const rate = last ? Math.max(0, (s.queue.completed - last.queue.completed) / Math.max(1e-3, s.now - last.now)) : 0;
  const p50 = median(latencies);
  push(history.throughput, rate);
  push(history.latency, p50 === null ? (history.latency.length ? history.latency[history.latency.length - 1] : 0) : p50);
  push(history.queue, s.queue.pending);
  chart("throughput", history.throughput, (v) => `${v.toFixed(1)}/s`);
  chart("latency", history.latency, ms);
  chart("queue", history.queue, (v) => `${Math.round(v)}`);
  $("throughput-now").textContent = `${rate.toFixed(1)} orders/s, ${s.queue.completed} answered`;
  $("latency-now").textContent = p50 === null ? "" : `p50 ${ms(p50)}`;
  $("queue-now").textContent = `${s.queue.pending} pending`;

  const head = s.ledger.head;
  definitions("ledger", [
    ["receipts", s.ledger.receipts ? "on" : "off"],
    ["ledger leaves", s.ledger.size],
    ["signed head", head ? `size ${head.treeSize}` : null],
    ["head root", head ? short(head.root) : null],
    ["head signed at", head ? new Date(head.timestampMs).toLocaleTimeString() : null],
  ]);
  const box = s.outbox;
  definitions("store", [
    ["store", s.store.where],
    ["schema version", s.store.schemaVersion],
    ["writable", s.store.writable ? "yes" : "NO"],
    ["commits", s.store.commits],
    ["notifications", `${box.delivered} delivered, ${box.waiting} waiting, ${box.refused} refused, ${box.abandoned} abandoned`],
    ["chain", s.chain ? `${s.chain.endpoint} (${s.chain.contracts})` : "not configured"],
  ]);
  last = s;
}

async function tick() {
  try {
    const response = await fetch("/ui/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    $("live").textContent = "live";
    $("live").className = "badge live";
  } catch (err) {
    $("live").textContent = `unreachable (${err.message})`;
    $("live").className = "badge down";
  }
}

tick();
setInterval(tick, 1000);
