// The KCK admin console: polls /admin/api/ and draws it. Every value shown
// comes from the API; nothing is computed here but rates between two
// samples (for the charts) and the layout of the dependency graph.
'use strict';

const POLL_MS = 2000;
const SLOW_POLL_MS = 5000;
const MAX_POINTS = 900; // the gateway's half hour of history, then 2 s samples

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else if (k === 'title') e.title = v;
    else e[k] = v;
  }
  for (const c of children) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function secs(s) {
  if (s == null) return '–';
  if (s === 0) return '0';
  if (s < 0.001) return (s * 1e6).toFixed(0) + ' µs';
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
  if (s < 120) return s.toFixed(1) + ' s';
  if (s < 7200) return (s / 60).toFixed(1) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}
const pct = (r) => (r == null ? '–' : (r * 100).toFixed(1) + ' %');
const num = (n) => (n == null ? '–' : Number(n).toLocaleString('en'));
function bytes(b) {
  if (b < 1024) return b + ' B';
  if (b < 1 << 20) return (b / 1024).toFixed(1) + ' KiB';
  return (b / (1 << 20)).toFixed(1) + ' MiB';
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const r = await fetch('/admin/api/' + path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { /* an empty or non-JSON body */ }
  return { status: r.status, data };
}

// ---- charts ----
const series = { t: [], hits: [], misses: [], stale: [], primerMs: [], depth: [] };
let charts = null;
let prev = null;

function makeChart(target, labels, colors, data) {
  const width = Math.max(240, target.clientWidth || 320);
  const opts = {
    width, height: 170,
    series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i], width: 1.5, points: { show: false } }))],
    axes: [{ size: 30 }, { size: 46 }],
    legend: { live: false },
    scales: { x: { time: true } },
  };
  return new uPlot(opts, data, target);
}

function initCharts() {
  charts = {
    reads: makeChart($('#chart-reads'), ['hits', 'misses', 'stale'], ['#2563eb', '#dc2626', '#d97706'], [series.t, series.hits, series.misses, series.stale]),
    primer: makeChart($('#chart-primer'), ['mean ms'], ['#7c3aed'], [series.t, series.primerMs]),
    queue: makeChart($('#chart-queue'), ['depth'], ['#059669'], [series.t, series.depth]),
  };
  window.addEventListener('resize', () => {
    for (const [id, c] of Object.entries(charts)) c.setSize({ width: Math.max(240, $('#chart-' + id).clientWidth), height: 170 });
  });
}

// addPoint adds the rates between the previous counters and cur to the
// charts' series.
function addPoint(cur, depth) {
  if (prev && cur.t > prev.t) {
    const dt = cur.t - prev.t;
    series.t.push(cur.t);
    series.hits.push(Math.max(0, (cur.hits - prev.hits) / dt));
    series.misses.push(Math.max(0, (cur.misses - prev.misses) / dt));
    series.stale.push(Math.max(0, (cur.stale - prev.stale) / dt));
    const runs = cur.runs - prev.runs;
    series.primerMs.push(runs > 0 ? ((cur.secs - prev.secs) / runs) * 1000 : null);
    series.depth.push(depth);
    for (const k of Object.keys(series)) if (series[k].length > MAX_POINTS) series[k].shift();
  }
  prev = cur;
}

function redraw() {
  charts.reads.setData([series.t, series.hits, series.misses, series.stale]);
  charts.primer.setData([series.t, series.primerMs]);
  charts.queue.setData([series.t, series.depth]);
}

function sample(o) {
  const reads = o.totals.reads || {};
  addPoint({
    t: Date.parse(o.at) / 1000, hits: (reads.hit_memory || 0) + (reads.hit_store || 0), misses: reads.miss || 0,
    stale: reads.stale || 0, runs: o.totals.primerRuns, secs: o.totals.primerSeconds,
  }, o.queue ? o.queue.depth : null);
  redraw();
}

// loadHistory draws the samples the gateway kept (every heartbeat, the
// last half hour) before the page's own.
async function loadHistory() {
  const r = await api('history');
  if (r.status !== 200) return;
  for (const s of r.data.samples) {
    addPoint({ t: Date.parse(s.at) / 1000, hits: s.hits, misses: s.misses, stale: s.stale, runs: s.primerRuns, secs: s.primerSeconds }, s.queueDepth);
  }
  redraw();
}

// ---- products ----
function policyText(p) {
  const x = p.policy, parts = [];
  if (p.params.length) parts.push('params ' + p.params.map((q) => q.name + ' ' + q.kind).join(', '));
  parts.push('ttl ' + (x.ttlSeconds ? secs(x.ttlSeconds) : 'none'));
  parts.push('soft ttl ' + (x.softTtlSeconds ? secs(x.softTtlSeconds) : 'none'));
  if (x.refresh) parts.push('refresh ' + x.refresh);
  if (x.domain) parts.push('domain ' + x.domain);
  if (x.warm.length || x.warmGenerated) parts.push('warm ' + [...x.warm, ...(x.warmGenerated ? ['(generated)'] : [])].join(' '));
  if (x.sources.length) parts.push('sources ' + x.sources.join('; '));
  if (p.readsFrom.length) parts.push('reads ' + p.readsFrom.join(', '));
  if (p.readBy.length) parts.push('read by ' + p.readBy.join(', '));
  if (x.afterPrimes.length) parts.push('after ' + x.afterPrimes.join(', '));
  if (x.augments) parts.push('augmented');
  parts.push('auth ' + x.auth);
  return parts.join(' · ');
}

function ratioCell(r) {
  const m = r.memoryRatio, s = r.storeRatio;
  const td = el('td', { class: 'num' });
  if (m == null) { td.append('–'); return td; }
  td.append(el('span', { class: 'bar', title: 'memory' }), el('span', { class: 'bar store', title: 'store' }), ' ' + pct(m) + ' / ' + pct(s));
  td.children[0].style.width = Math.round(m * 60) + 'px';
  td.children[1].style.width = Math.round(s * 60) + 'px';
  return td;
}

function renderProducts(ps) {
  const tb = $('#products tbody');
  const rows = ps.map((p) => {
    const f = p.freshness, target = p.policy.freshnessTargetSeconds;
    const age = el('td', { class: 'num' + (target ? (f.overTarget ? ' over' : ' within') : '') },
      f.instances ? secs(f.oldestAgeSeconds) : '–', ' / ', target ? secs(target) : 'no target');
    if (f.overTarget) age.title = num(f.beyondTarget) + ' values older than the target';
    const actions = el('td', {},
      el('button', { type: 'button', 'data-act': 'refresh-product', 'data-product': p.name }, 'refresh'),
      el('button', { type: 'button', 'data-act': 'invalidate-product', 'data-product': p.name }, 'invalidate'),
      p.policy.warm.length || p.policy.warmGenerated || p.policy.domain ? el('button', { type: 'button', 'data-act': 'warm', 'data-product': p.name }, 'warm') : null);
    return el('tr', { 'data-product': p.name },
      el('td', {}, el('strong', {}, p.name)),
      el('td', { class: 'policy' }, policyText(p)),
      el('td', { class: 'num', 'data-field': 'instances' }, num(f.instances)),
      ratioCell(p.reads),
      el('td', { class: 'num' }, secs(p.missLatency.p50) + ' / ' + secs(p.missLatency.p99)),
      el('td', { class: 'num', 'data-field': 'primer' }, num(p.primer.runs) + ' / ', el('span', { class: p.primer.errors ? 'over' : '' }, num(p.primer.errors))),
      el('td', { class: 'num' }, num(p.reads.stale)),
      age, actions);
  });
  tb.replaceChildren(...rows);
}

// ---- queue, freshness, cluster ----
function keyList(keys, buttons) {
  if (!keys.length) return el('p', { class: 'muted' }, 'none');
  return el('ul', { class: 'keys' }, ...keys.map((k) => el('li', { 'data-key': k }, k, ' ',
    ...(buttons || []).map(([act, label]) => el('button', { type: 'button', 'data-act': act, 'data-key': k }, label)))));
}

function renderQueue(q) {
  const box = $('#queue');
  if (!q) { box.replaceChildren(el('p', { class: 'muted' }, 'This gateway runs no scheduler: no refresh queue.')); return; }
  box.replaceChildren(
    q.error ? el('p', { class: 'over' }, q.error) : '',
    el('table', {}, el('tbody', {},
      el('tr', {}, el('th', {}, 'Depth'), el('td', { class: 'num', id: 'queue-depth' }, num(q.depth))),
      el('tr', {}, el('th', {}, 'Oldest request'), el('td', { class: 'num' }, secs(q.oldestRequestAgeSeconds) + ' ago')),
      el('tr', {}, el('th', {}, 'Claims in flight'), el('td', { class: 'num' }, num(q.claimed))),
      el('tr', {}, el('th', {}, 'Waiting to retry'), el('td', { class: 'num' }, num(q.delayed) + ' (' + num(q.retries) + ' failed refreshes here)')),
      el('tr', {}, el('th', {}, 'Claims taken here'), el('td', { class: 'num' }, num(q.claims))),
      el('tr', {}, el('th', {}, 'Poisoned'), el('td', { class: 'num' + (q.poisoned ? ' over' : '') }, num(q.poisoned))))),
    el('h3', {}, 'Next keys a claim takes'), keyList(q.next),
    el('h3', {}, 'Poisoned keys'), keyList(q.poisonedKeys, [['queue-retry', 'retry'], ['queue-remove', 'remove']]));
}

function histogram(h, title) {
  const wrap = el('div', {}, el('h3', {}, title));
  if (!h.count) { wrap.append(el('p', { class: 'muted' }, 'no sample yet')); return wrap; }
  const bars = el('div', { class: 'hist' }), labels = el('div', { class: 'hist-labels' });
  let prevC = 0;
  const counts = h.buckets.map((c) => { const d = c - prevC; prevC = c; return d; });
  counts.push(h.count - prevC);
  const top = Math.max(...counts, 1);
  counts.forEach((c, i) => {
    const b = el('div', { title: num(c) + ' ≤ ' + (i < h.bounds.length ? secs(h.bounds[i]) : '∞') });
    b.style.height = Math.round((c / top) * 100) + '%';
    bars.append(b);
    labels.append(el('span', {}, i < h.bounds.length ? secs(h.bounds[i]) : '+'));
  });
  wrap.append(bars, labels, el('p', { class: 'muted' }, num(h.count) + ' samples, p50 ' + secs(h.p50) + ', p99 ' + secs(h.p99)));
  return wrap;
}

let lastRefreshes = null;
function renderFreshness(o) {
  const t = Date.parse(o.at) / 1000;
  let perMin = '–';
  if (lastRefreshes && t > lastRefreshes.t) perMin = (((o.totals.refreshes - lastRefreshes.n) / (t - lastRefreshes.t)) * 60).toFixed(1);
  if (!lastRefreshes || t - lastRefreshes.t >= 10) lastRefreshes = { t, n: o.totals.refreshes };
  $('#freshness').replaceChildren(
    el('p', {}, 'Refreshes per minute: ', el('strong', { id: 'refresh-rate' }, perMin), ' (', num(o.totals.refreshes), ' since start)'),
    histogram(o.freshness.sourceToFresh, 'Source change to fresh value (Postgres products)'),
    histogram(o.freshness.bus, 'Change on another gateway to applied here (change bus)'));
  renderCost(o);
}

// The cost of changes: this gateway's store round trips by kind and its
// messages on the change bus, since it started.
function renderCost(o) {
  const c = o.cost;
  const rows = [['primer runs', c.primerRuns]];
  for (const k of ['read', 'write', 'lwt']) rows.push(['store ' + (k === 'lwt' ? 'lightweight transactions' : k + 's'), (c.storeOps || {})[k] || 0]);
  for (const [k, v] of Object.entries(c.busMessages || {}).sort()) rows.push(['bus: ' + k, v]);
  $('#cost tbody').replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, num(v)))));
  $('#cost-note').textContent = c.following
    ? 'This gateway follows the source tables for the cluster (backlog ' + num(c.backlog) + ' rows).'
    : 'Another gateway follows the source tables, or none has SQL products.';
}

function renderCluster(c) {
  $('#cluster tbody').replaceChildren(...c.gateways.map((g) => el('tr', { 'data-owner': g.owner },
    el('td', {}, g.owner, g.self ? ' (this one)' : ''), el('td', {}, g.addr || '–'), el('td', {}, g.version),
    el('td', {}, new Date(g.upSince).toISOString().replace('T', ' ').slice(0, 19) + 'Z'),
    el('td', { class: 'num' }, num(g.entries) + ' entries, ' + bytes(g.bytes) + ' of ' + bytes(g.maxBytes)),
    el('td', { class: 'num' }, g.hitsPerSecond.toFixed(1)))));
  $('#cluster-note').textContent = c.sharedStore ? 'Gateways sharing this store, as they answered over the change bus just now.' : 'No change bus: this gateway only.';
}

// ---- the dependency graph: sources, then products by depth ----
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function renderGraph(g) {
  const depth = {};
  for (const n of g.nodes) depth[n.kind + ':' + n.id] = 0;
  const id = (name, edgeFrom) => (edgeFrom && g.nodes.some((n) => n.kind === 'source' && n.id === name) ? 'source:' : 'product:') + name;
  const edges = g.edges.map((e) => ({ from: e.why === 'source' ? 'source:' + e.from : id(e.from), to: 'product:' + e.to, why: e.why }));
  for (let i = 0; i < g.nodes.length; i++) { // longest path, bounded: a cycle cannot loop
    for (const e of edges) if (depth[e.from] !== undefined && depth[e.to] !== undefined && depth[e.to] < depth[e.from] + 1) depth[e.to] = depth[e.from] + 1;
  }
  const cols = {};
  for (const n of g.nodes) { const k = n.kind + ':' + n.id; (cols[depth[k]] ||= []).push(k); }
  const W = 170, H = 34, GX = 70, GY = 16, pos = {};
  let maxRows = 0;
  for (const [d, ks] of Object.entries(cols)) {
    ks.sort();
    ks.forEach((k, r) => { pos[k] = { x: 10 + Number(d) * (W + GX), y: 10 + r * (H + GY) }; });
    maxRows = Math.max(maxRows, ks.length);
  }
  const width = 20 + (Object.keys(cols).length) * (W + GX), height = 20 + maxRows * (H + GY);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'dependency graph' });
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#94a3b8' }));
  defs.append(marker);
  root.append(defs);
  for (const e of edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const p = svg('path', { d: `M ${x1} ${y1} C ${x1 + GX / 2} ${y1}, ${x2 - GX / 2} ${y2}, ${x2} ${y2}`, class: e.why, 'marker-end': 'url(#arrow)' });
    p.append(svg('title'));
    p.firstChild.textContent = e.from.split(':')[1] + ' → ' + e.to.split(':')[1] + ' (' + e.why + ')';
    root.append(p);
  }
  for (const n of g.nodes) {
    const k = n.kind + ':' + n.id, p = pos[k];
    const grp = svg('g', { class: 'node ' + n.kind, 'data-node': n.id, transform: `translate(${p.x},${p.y})` });
    grp.append(svg('rect', { width: W, height: H, rx: 5 }));
    const t = svg('text', { x: 10, y: H / 2 + 4 });
    t.textContent = (n.kind === 'source' ? 'table ' : '') + n.id;
    grp.append(t);
    root.append(grp);
  }
  $('#graph').replaceChildren(root);
}

// ---- actions ----
function show(v, isError) {
  const out = $('#action-result');
  out.textContent = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
  out.classList.toggle('error', !!isError);
}

// act runs an action. One that may touch several keys (a product, a
// prefix, warming) is first asked as a dry run for the keys it would touch;
// the operator confirms that number, which the server checks again.
async function act(path, target, what, many) {
  let body = target;
  if (many) {
    const dry = await api(path, { ...target, dryRun: true });
    if (dry.status !== 200) { show(dry.data, true); return dry; }
    const n = dry.data.keys;
    if (n === 0) { show(what + ': no key matches'); return dry; }
    if (n > 1 || path === 'warm') {
      const sample = (dry.data.sample || []).slice(0, 10).join('\n  ');
      const msg = path === 'warm' ? `${what}: every key it declares to warm.\n\nGo ahead?` : `${what}: this touches ${n} keys.\n  ${sample}${n > 10 ? '\n  …' : ''}\n\nGo ahead?`;
      if (!window.confirm(msg)) { show('cancelled: ' + what); return null; }
    }
    body = { ...target, confirm: n };
  }
  const r = await api(path, body);
  show(r.data, r.status !== 200);
  poll();
  return r;
}

function keyValue() {
  const k = $('#key').value.trim();
  if (!k) show('give a key first', true);
  return k;
}

function wire() {
  $('#key-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const k = keyValue();
    if (!k) return;
    const r = await api('key?key=' + encodeURIComponent(k));
    show(r.data, r.status !== 200);
  });
  $('#prefix-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = $('#prefix').value.trim();
    if (!p) { show('give a prefix first', true); return; }
    act('invalidate', { prefix: p }, 'invalidate prefix ' + p, true);
  });
  document.body.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-act]');
    if (!b || b.type === 'submit') return;
    const a = b.dataset.act, product = b.dataset.product, key = b.dataset.key;
    switch (a) {
      case 'refresh': { const k = keyValue(); if (k) act('refresh', { key: k }, 'refresh ' + k); break; }
      case 'invalidate': { const k = keyValue(); if (k) act('invalidate', { key: k }, 'invalidate ' + k); break; }
      case 'refresh-product': act('refresh', { product }, 'refresh every cached ' + product, true); break;
      case 'invalidate-product': act('invalidate', { product }, 'invalidate every cached ' + product, true); break;
      case 'warm': act('warm', { product }, 'warm ' + product, true); break;
      case 'queue-retry': act('queue/retry', { key }, 'retry ' + key); break;
      case 'queue-remove': act('queue/remove', { key }, 'remove ' + key); break;
    }
  });
}

// ---- polling ----
let busy = false;
async function poll() {
  if (busy) return;
  busy = true;
  try {
    const r = await api('overview');
    if (r.status !== 200) { $('#status').textContent = 'API answered ' + r.status + (r.data && r.data.error ? ': ' + r.data.error.message : ''); return; }
    const o = r.data;
    $('#gw').textContent = o.gateway.owner + ' · ' + o.gateway.version + ' · up since ' + new Date(o.gateway.upSince).toLocaleString();
    $('#status').textContent = 'updated ' + new Date(o.at).toLocaleTimeString();
    $('#open-banner').hidden = !o.open;
    sample(o);
    renderProducts(o.products);
    renderQueue(o.queue);
    renderFreshness(o);
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    $('#status').textContent = 'cannot reach the gateway: ' + e.message;
  } finally {
    busy = false;
  }
}

async function pollSlow() {
  try {
    const [c, g] = await Promise.all([api('cluster'), api('graph')]);
    if (c.status === 200) renderCluster(c.data);
    if (g.status === 200) renderGraph(g.data);
  } catch (e) {
    $('#status').textContent = 'cannot reach the gateway: ' + e.message;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#open-banner').hidden = document.body.dataset.access !== 'open';
  initCharts();
  wire();
  loadHistory().catch(() => {}).finally(poll);
  pollSlow();
  setInterval(poll, POLL_MS);
  setInterval(pollSlow, SLOW_POLL_MS);
});
