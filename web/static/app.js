// svclab web UI. Plain JavaScript, no dependencies, nothing fetched from
// elsewhere. Every string that comes from the lab (names, labels,
// annotations, rule text) is put into the page with textContent or
// setAttribute, never parsed as HTML, so it shows as text.
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';
// Layout metrics: the same numbers as web/layout.go.
const M = { charW: 7.2, headerH: 38, rowH: 18, summaryH: 18, padX: 8, numW: 34, maxLabelChars: 64, edgeLabelDX: 6, edgeLabelDY: 4, margin: 16,
  minZoom: 0.6 }; // below minZoom, 12px text is too small to read

const state = {
  node: '',
  table: 'nat',
  nodes: [],
  autoDrawLimit: 40,
  selected: new Set(),   // "ns/name" or "ns/name:port"
  namespace: '',
  totalServices: 0,
  graph: null,
  hash: '',
  last: new Map(),       // rule id -> [packets, bytes] at the previous refresh
  rowEls: new Map(),     // rule id -> {row, counters, edge}
  chainEls: new Map(),   // node id -> policy counters text element
  zoom: 1,
  wholeNode: false,
  highlight: null,       // {ids:Set, pod:string, node:string}
  topology: null,
  timer: null,
  refreshing: false,
  graphSeq: 0,           // number of the latest graph request; older answers are dropped
  graphAnswers: 0,       // graph answers received (drawn or dropped), for tests: body[data-graph-answers]
};

// ---------- small DOM helpers (text only) ----------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on')) throw new Error('no event attributes');
    else e.setAttribute(k, String(v));
  }
}

function append(e, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
function $(id) { return document.getElementById(id); }

function truncate(s, n) {
  const cs = Array.from(s || '');
  return cs.length <= n ? cs.join('') : cs.slice(0, n - 1).join('') + '…';
}

function groupThousands(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }

function humanBytes(n) {
  if (n < 1024) return n + ' B';
  let f = n;
  for (const u of ['KiB', 'MiB', 'GiB', 'TiB']) {
    f /= 1024;
    if (f < 1024) return f.toFixed(1) + ' ' + u;
  }
  return f.toFixed(1) + ' PiB';
}

function countersText(p, b) { return groupThousands(p) + ' pkts · ' + humanBytes(b); }
function policyText(policy, c) { return 'policy ' + policy + (c ? ' · ' + countersText(c.packets, c.bytes) : ''); }

function setStatus(text, isError) {
  const s = $('status');
  s.textContent = text || '';
  s.classList.toggle('error', !!isError);
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error((body && body.message) || resp.status + ' ' + resp.statusText);
  return body;
}

function selectionParams() {
  const p = new URLSearchParams();
  p.set('node', state.node);
  p.set('table', state.table);
  if (state.selected.size) p.set('service', Array.from(state.selected).sort().join(','));
  if (state.namespace) p.set('namespace', state.namespace);
  return p;
}

function hasSelection() {
  return state.selected.size > 0 || state.namespace !== '' || state.wholeNode;
}

// ---------- tabs ----------

function showView(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.view === name);
  for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === 'view-' + name);
  if (name === 'topology') loadTopology();
  if (name === 'trace') fillTraceForm();
}

// ---------- nodes and Services ----------

async function loadNodes() {
  const r = await getJSON('/lab/v1/nodes');
  state.nodes = r.nodes;
  state.autoDrawLimit = r.autoDrawLimit || 40;
  const sel = $('node');
  clear(sel);
  for (const n of r.nodes) sel.appendChild(el('option', { value: n, text: n }));
  const tn = $('trace-node');
  clear(tn);
  tn.appendChild(el('option', { value: '', text: 'auto' }));
  for (const n of r.nodes) tn.appendChild(el('option', { value: n, text: n }));
  if (!state.node || !r.nodes.includes(state.node)) state.node = r.nodes[0] || '';
  sel.value = state.node;
}

let searchTimer = null;
function scheduleSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadServices, 150);
}

async function loadServices() {
  const q = $('svc-search').value;
  const p = new URLSearchParams({ node: state.node, q, limit: '200' });
  let r;
  try {
    r = await getJSON('/lab/v1/services?' + p);
  } catch (e) {
    setStatus('services: ' + e.message, true);
    return;
  }
  state.totalServices = r.total;
  const list = $('svc-list');
  clear(list);
  for (const it of r.items) {
    const on = state.selected.has(it.service);
    const b = el('button', { type: 'button', class: 'svc' + (on ? ' on' : ''), title: it.ports.join('\n') },
      el('span', { class: 'svc-name', text: it.service }),
      el('span', { class: 'muted', text: ' ' + it.ports.length + (it.ports.length === 1 ? ' port' : ' ports') }));
    b.dataset.service = it.service;
    b.addEventListener('click', () => toggleService(it.service));
    list.appendChild(el('li', {}, b));
  }
  $('svc-count').textContent = (r.matched > r.items.length ? 'showing ' + r.items.length + ' of ' + groupThousands(r.matched) + ' matches — refine the search; ' : groupThousands(r.matched) + ' shown; ') +
    groupThousands(r.total) + ' Services in ' + state.node + "'s rules";
  const whole = $('whole-node');
  whole.textContent = 'Draw the whole node (' + groupThousands(r.total) + ' Services)';
  whole.disabled = r.total > 1000;
  if (!hasSelection() && r.total <= state.autoDrawLimit && !state.graph) {
    state.wholeNode = true;
    loadGraph();
  } else if (!hasSelection()) {
    showHint();
  }
}

function showHint() {
  const area = $('graph-scroll');
  clear(area);
  area.appendChild(el('div', { id: 'graph-hint', class: 'hint', text:
    'Pick a Service on the left to draw its chains (' + groupThousands(state.totalServices) +
    ' Services on ' + state.node + '). The whole node is drawn only on request: never all at once.' }));
  $('summaries').textContent = '';
  state.graph = null;
  state.graphSeq++; // a graph still on its way is no longer wanted
  state.rowEls.clear();
}

function toggleService(s) {
  if (state.selected.has(s)) state.selected.delete(s); else state.selected.add(s);
  state.wholeNode = false;
  renderChips();
  for (const b of document.querySelectorAll('#svc-list button.svc')) b.classList.toggle('on', state.selected.has(b.dataset.service));
  if (hasSelection()) loadGraph(); else showHint();
}

function renderChips() {
  const box = $('selected');
  clear(box);
  for (const s of Array.from(state.selected).sort()) {
    const x = el('button', { type: 'button', class: 'chip', title: 'remove' }, s + ' ×');
    x.addEventListener('click', () => toggleService(s));
    box.appendChild(x);
  }
}

// ---------- the chain graph ----------

// loadGraph fetches and draws the graph of the current selection. Only
// the latest request's answer is drawn: when the selection (Service, node,
// table) changes while an earlier request is still on its way, the earlier
// answer is dropped when it arrives, so it cannot overwrite the newer graph.
async function loadGraph() {
  const seq = ++state.graphSeq;
  const p = selectionParams();
  for (const [id, f] of [['fmt-mermaid', 'mermaid'], ['fmt-dot', 'dot'], ['fmt-svg', 'svg'], ['fmt-json', 'json']]) {
    const q = new URLSearchParams(p);
    q.set('format', f);
    $(id).setAttribute('href', '/lab/v1/graph?' + q);
  }
  let g;
  try {
    g = await getJSON('/lab/v1/graph?' + p);
  } catch (e) {
    if (seq === state.graphSeq) setStatus('graph: ' + e.message, true);
    graphAnswered();
    return;
  }
  if (seq !== state.graphSeq) { // superseded by a newer request
    graphAnswered();
    return;
  }
  setStatus('');
  if (!state.graph || state.graph.node !== g.node || (state.graph.services || []).join() !== (g.services || []).join()) state.fitNext = true;
  state.graph = g;
  state.hash = g.hash;
  state.last = new Map();
  drawGraph(g);
  startRefresh();
  graphAnswered();
}

function graphAnswered() {
  state.graphAnswers++;
  document.body.dataset.graphAnswers = String(state.graphAnswers);
}

function drawGraph(g) {
  const sums = $('summaries');
  clear(sums);
  for (const s of g.summaries || []) sums.appendChild(el('div', { class: 'summary', text: s }));
  $('seed-note-text').textContent = g.seedNote;
  const area = $('graph-scroll');
  clear(area);
  state.rowEls.clear();
  state.chainEls.clear();
  if (!g.nodes.length) {
    area.appendChild(el('div', { class: 'hint', text: 'No ' + g.table + ' rules on ' + g.node + ' for this selection.' }));
    return;
  }
  const root = svg('svg', { id: 'graph', viewBox: '0 0 ' + g.width + ' ' + g.height, 'font-family': 'monospace', 'font-size': '12' });
  root.appendChild(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
  const edges = svg('g', { class: 'edges' });
  const nodes = svg('g', { class: 'nodes' });
  root.appendChild(edges);
  root.appendChild(nodes);
  const edgeOf = new Map();
  for (const e of g.edges) {
    // The same curve as GEdge.Path in web/graph.go.
    const dx = e.x2 > e.x1 ? (e.x2 - e.x1) / 2 : 80;
    const d = 'M' + e.x1 + ' ' + e.y1 + ' C' + (e.x1 + dx) + ' ' + e.y1 + ' ' + (e.x2 - dx) + ' ' + e.y2 + ' ' + e.x2 + ' ' + e.y2;
    const path = svg('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }, svg('title', { text: e.label || e.short }));
    path.dataset.rule = e.rule;
    path.dataset.to = e.to;
    path.addEventListener('click', () => explainRule(e.rule));
    const label = svg('text', { x: e.x1 + M.edgeLabelDX, y: e.y1 - M.edgeLabelDY, class: 'edge-label', text: e.short });
    label.dataset.rule = e.rule;
    edges.appendChild(path);
    edges.appendChild(label);
    edgeOf.set(e.rule, { path, label });
  }
  for (const n of g.nodes) {
    const grp = svg('g', { class: 'node kind-' + n.kind });
    grp.dataset.id = n.id;
    grp.dataset.name = n.name;
    const head = svg('g', { class: 'head' },
      svg('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: '6', class: 'box' }),
      svg('text', { x: n.x + M.padX, y: n.y + 16, class: 'name', text: n.name }));
    head.addEventListener('click', () => explainNode(n));
    grp.appendChild(head);
    if (n.title) {
      grp.appendChild(svg('text', { x: n.x + M.padX, y: n.y + 31, class: 'title', text: truncate(n.title, Math.floor((n.w - 2 * M.padX) / M.charW)) }));
    } else if (n.policy) {
      const t = svg('text', { x: n.x + M.padX, y: n.y + 31, class: 'policy', text: policyText(n.policy, n.counters) });
      grp.appendChild(t);
      if (n.counters) state.chainEls.set(n.id, { el: t, policy: n.policy });
    }
    let y = n.y + M.headerH;
    if (n.summary) {
      const inNode = n.summary.startsWith(n.name + ': ') ? n.summary.slice(n.name.length + 2) : n.summary;
      grp.appendChild(svg('text', { x: n.x + M.padX, y: y + 13, class: 'chain-summary', text: truncate(inNode, Math.floor((n.w - 2 * M.padX) / M.charW)) }));
      y += M.summaryH;
    }
    for (const r of n.rules || []) {
      const row = svg('g', { class: 'rule' });
      row.dataset.id = r.id;
      row.appendChild(svg('rect', { x: n.x + 1, y: r.y - M.rowH / 2, width: n.w - 2, height: M.rowH, class: 'row-bg' }));
      row.appendChild(svg('text', { x: n.x + M.padX, y: r.y + 4, class: 'num', text: '#' + r.num }));
      row.appendChild(svg('text', { x: n.x + M.padX + M.numW, y: r.y + 4, class: 'label', text: truncate(r.label, M.maxLabelChars) }));
      const cnt = svg('text', { x: n.x + n.w - M.padX, y: r.y + 4, class: 'counters', 'text-anchor': 'end', text: countersText(r.packets, r.bytes) });
      row.appendChild(cnt);
      row.appendChild(svg('title', { text: r.text || r.label }));
      row.addEventListener('click', (ev) => { ev.stopPropagation(); explainRule(r.id); });
      grp.appendChild(row);
      state.rowEls.set(r.id, { row, counters: cnt, edge: edgeOf.get(r.id), rule: r, node: n });
      state.last.set(r.id, [r.packets, r.bytes]);
    }
    nodes.appendChild(grp);
  }
  area.appendChild(root);
  applyZoom();
  applyHighlight();
  if (state.fitNext) {
    state.fitNext = false;
    landingView(g, area);
  }
}

// landingView sets the first view of a newly selected graph: the whole
// graph when it fits at a readable zoom (M.minZoom), else the part that
// matters, focusNodes(), zoomed out as far as needed (not below
// M.minZoom) and scrolled into view: centred when it fits, from its top
// left corner when it does not.
function landingView(g, area) {
  // Leave room for scroll bars that may come or go with the new size.
  const W = area.clientWidth - 16, H = area.clientHeight - 16;
  const whole = Math.min(W / g.width, H / g.height);
  let box = { x0: 0, y0: 0, x1: g.width, y1: g.height };
  if (whole < M.minZoom) {
    const focus = focusNodes(g);
    if (focus.length) {
      box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
      for (const n of focus) {
        box.x0 = Math.min(box.x0, n.x - M.margin);
        box.y0 = Math.min(box.y0, n.y - M.margin);
        box.x1 = Math.max(box.x1, n.x + n.w + M.margin);
        box.y1 = Math.max(box.y1, n.y + n.h + M.margin);
      }
    }
  }
  const bw = box.x1 - box.x0, bh = box.y1 - box.y0;
  state.zoom = Math.min(1, Math.max(M.minZoom, Math.min(W / bw, H / bh)));
  applyZoom();
  const z = state.zoom;
  area.scrollLeft = Math.max(0, bw * z <= W ? box.x0 * z - (W - bw * z) / 2 : box.x0 * z);
  area.scrollTop = Math.max(0, bh * z <= H ? box.y0 * z - (H - bh * z) / 2 : box.y0 * z);
}

// focusNodes are the chains a selection is about: with a trace, the
// per-Service and per-endpoint chains the packet went through and the pod
// that answered; else the Services' KUBE-SVC/KUBE-SVL chains and their
// KUBE-SEP chains (KUBE-EXT, KUBE-FW and the shared chains lead to them
// and are one scroll away), else every per-Service chain.
function focusNodes(g) {
  const perService = (n) => n.kind === 'service' || n.kind === 'endpoint';
  const h = state.highlight;
  if (h) {
    const hit = g.nodes.filter((n) => (perService(n) && (n.rules || []).some((r) => h.ids.has(r.id))) || n.id === h.pod);
    if (hit.length) return hit;
  }
  const svc = g.nodes.filter((n) => (n.kind === 'service' && /^KUBE-SV[CL]-/.test(n.name)) || n.kind === 'endpoint');
  return svc.length ? svc : g.nodes.filter(perService);
}

function applyZoom() {
  const root = $('graph');
  if (!root || !state.graph) return;
  root.setAttribute('width', String(Math.round(state.graph.width * state.zoom)));
  root.setAttribute('height', String(Math.round(state.graph.height * state.zoom)));
}

function zoomBy(f) { state.zoom = Math.min(3, Math.max(0.1, state.zoom * f)); applyZoom(); }
function zoomFit() {
  if (!state.graph) return;
  const area = $('graph-scroll');
  state.zoom = Math.min(1.5, Math.max(0.1, Math.min((area.clientWidth - 16) / state.graph.width, (area.clientHeight - 16) / state.graph.height)));
  applyZoom();
}

// ---------- explain ----------

function findRule(id) {
  const x = state.rowEls.get(id);
  return x ? x.rule : null;
}

function showExplain(title, meta, text, para) {
  $('explain-empty').hidden = true;
  $('explain-body').hidden = false;
  $('explain-title').textContent = title;
  $('explain-meta').textContent = meta;
  $('explain-text').textContent = text;
  $('explain-para').textContent = para;
}

// lazyExplain fetches an explanation the graph left out (large graphs).
async function lazyExplain(id) {
  const p = new URLSearchParams({ node: state.node, table: state.table, id });
  try {
    return await getJSON('/lab/v1/explain?' + p);
  } catch (e) {
    return { explain: 'explain: ' + e.message, text: '' };
  }
}

async function explainRule(id) {
  const r = findRule(id);
  if (!r) return;
  for (const x of document.querySelectorAll('.rule.selected')) x.classList.remove('selected');
  state.rowEls.get(id).row.classList.add('selected');
  const meta = [id.replace(/\//g, ' '), r.service ? 'Service ' + r.service : '', r.pod ? 'pod ' + r.pod : '', countersText(r.packets, r.bytes)].filter(Boolean).join(' · ');
  showExplain(r.label, meta, r.text || '…', r.explain || '…');
  if (!r.explain) {
    const e = await lazyExplain(id);
    r.explain = e.explain;
    if (!r.text) r.text = e.text;
  }
  showExplain(r.label, meta, r.text, r.explain);
}

async function explainNode(n) {
  const meta = [n.kind, n.service ? 'Service ' + n.service : '', n.pod ? 'pod ' + n.pod : '',
    n.totalRules ? groupThousands(n.totalRules) + ' rules' : ''].filter(Boolean).join(' · ');
  const text = n.kind === 'pod' || n.kind === 'verdict' ? n.name : (n.summary || (n.policy ? ':' + n.name + ' ' + n.policy : '-N ' + n.name));
  const title = n.name + (n.title ? ' — ' + n.title : '');
  showExplain(title, meta, text, n.explain || '…');
  if (!n.explain) n.explain = (await lazyExplain(n.id)).explain;
  showExplain(title, meta, text, n.explain);
}

// ---------- live counters ----------

function startRefresh() {
  clearInterval(state.timer);
  state.timer = setInterval(refreshCounters, 1000);
}

async function refreshCounters() {
  if (!state.graph || state.refreshing || document.hidden || !$('view-chains').classList.contains('active')) return;
  state.refreshing = true;
  try {
    const c = await getJSON('/lab/v1/counters?' + selectionParams());
    if (c.hash !== state.hash) {
      await loadGraph();
      return;
    }
    let moved = 0;
    for (const [id, x] of state.rowEls) {
      const v = c.rules[id];
      if (!v) continue;
      const prev = state.last.get(id) || [0, 0];
      const changed = v[0] !== prev[0] || v[1] !== prev[1];
      x.row.classList.toggle('moved', changed);
      if (x.edge) x.edge.path.classList.toggle('moved', changed);
      if (changed) {
        moved++;
        x.counters.textContent = countersText(v[0], v[1]);
        x.rule.packets = v[0];
        x.rule.bytes = v[1];
      }
      state.last.set(id, v);
    }
    for (const [id, x] of state.chainEls) {
      const v = c.chains[id];
      if (v) x.el.textContent = policyText(x.policy, { packets: v[0], bytes: v[1] });
    }
    $('refresh').textContent = 'counters ' + new Date().toLocaleTimeString() + (moved ? ' · ' + moved + ' moved' : '');
  } catch (e) {
    $('refresh').textContent = 'counters: ' + e.message;
  } finally {
    state.refreshing = false;
  }
}

// ---------- trace ----------

async function fillTraceForm() {
  const topo = await loadTopologyData();
  if (!topo) return;
  const src = $('trace-source');
  const keep = src.value;
  clear(src);
  src.appendChild(el('option', { value: 'host', text: 'host (' + (topo.host.ip || 'the machine') + ')' }));
  for (const n of topo.nodes || []) src.appendChild(el('option', { value: 'node:' + n.name, text: 'node ' + n.name + ' itself (' + n.ip + ')' }));
  for (const p of topo.pods || []) src.appendChild(el('option', { value: p.namespace + '/' + p.name, text: 'pod ' + p.namespace + '/' + p.name + ' (' + p.ip + ')' }));
  if (keep) src.value = keep;
  const dl = $('trace-dests');
  clear(dl);
  for (const s of topo.services || []) {
    if (s.type === 'ExternalName' || s.clusterIP === 'None') continue;
    dl.appendChild(el('option', { value: s.namespace + '/' + s.name }));
    for (const ip of s.loadBalancerIPs || []) for (const p of s.ports || []) dl.appendChild(el('option', { value: ip + ':' + p.port }));
    for (const p of s.ports || []) if (p.nodePort) for (const n of topo.nodes || []) dl.appendChild(el('option', { value: n.ip + ':' + p.nodePort }));
  }
}

async function runTrace(ev) {
  ev.preventDefault();
  const body = {
    source: $('trace-source').value,
    destination: $('trace-dest').value.trim(),
    port: Number($('trace-port').value) || 0,
    protocol: $('trace-proto').value,
    simulate: $('trace-simulate').checked,
    node: $('trace-node').value,
  };
  const out = $('trace-result');
  clear(out);
  out.appendChild(el('p', { class: 'muted', text: body.simulate ? 'Simulating…' : 'Sending a probe and tracing it in the kernel…' }));
  let resp, data;
  try {
    resp = await fetch('/lab/v1/trace', { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(body) });
    data = await resp.json();
  } catch (e) {
    clear(out);
    out.appendChild(el('p', { class: 'error', text: 'trace: ' + e.message }));
    return;
  }
  clear(out);
  if (!resp.ok) {
    out.appendChild(statusView(data));
    return;
  }
  renderTrace(data, out);
  highlightTrace(data);
}

function renderTrace(t, out) {
  const badge = el('span', { class: 'badge ' + (t.simulated ? 'sim' : 'kernel'), text: t.simulated ? 'SIMULATED — no packet sent' : "kernel's own trace of a real packet" });
  out.appendChild(el('h2', {}, badge, ' ', t.source + ' → ' + t.destIP + ':' + t.port + '/' + t.protocol));
  const facts = el('dl', { class: 'facts' });
  const fact = (k, v) => { if (v) { facts.appendChild(el('dt', { text: k })); facts.appendChild(el('dd', { text: v })); } };
  fact('destination', t.destinationKind);
  fact('node', t.node + ' (enters ' + t.hook + ')');
  fact('verdict', t.verdict);
  fact('DNAT to', t.dnat);
  fact('pod', t.pod ? t.pod + (t.podNode ? ' on ' + t.podNode : '') : '');
  fact('source address', t.sourceIP);
  out.appendChild(facts);
  if (t.reply) out.appendChild(el('div', {}, el('h3', { text: 'Echo reply' }), el('pre', { class: 'reply', text: t.reply })));
  if (t.probeError) out.appendChild(el('p', { class: 'error', text: 'probe: ' + t.probeError }));
  for (const n of t.notes || []) out.appendChild(el('p', { class: 'note', text: n }));
  (t.paths || []).forEach((p, i) => {
    const head = el('h3', { text: (t.simulated ? 'Path ' + (i + 1) + ': ' + p.share + ' — ' : 'Path: ') + p.verdict + (p.dnat ? ' → ' + p.dnat : '') + (p.pod ? ' (' + p.pod + ')' : '') + (p.masqueraded ? ', masqueraded' : '') });
    const ol = el('ol', { class: 'hits' });
    for (const h of p.hits || []) {
      ol.appendChild(el('li', {}, el('code', { text: h.table + ' ' + h.chain + (h.num ? ' #' + h.num : '') + ' ' + (h.verdict || h.kind) }), ' ', el('span', { class: 'muted', text: h.text || h.note || h.kind })));
    }
    const show = el('button', { type: 'button', text: 'show on the graph' });
    show.addEventListener('click', () => highlightTrace(t, i));
    out.appendChild(el('div', { class: 'path' }, head, ol, show));
  });
  if (t.lines && t.lines.length) out.appendChild(el('details', {}, el('summary', { text: 'xtables-monitor --trace output' }), el('pre', { text: t.lines.join('\n') })));
}

// highlightTrace switches to the chain graph of the trace's node and
// Service and marks the rules the packet hit (path i, or every path).
function highlightTrace(t, i) {
  const paths = i === undefined ? (t.simulated ? t.paths : (t.paths || []).slice(0, 1)) : [t.paths[i]];
  const ids = new Set();
  let pod = '';
  for (const p of paths || []) {
    for (const h of p.hits || []) if (h.id) ids.add(h.id);
    if (!pod && p.dnat) pod = 'pod:' + p.dnat;
  }
  state.highlight = { ids, pod, simulated: t.simulated, text: (t.simulated ? 'Simulated path' : 'Traced packet') + ' ' + t.source + ' → ' + t.destIP + ':' + t.port + (t.pod ? ' answered by ' + t.pod : '') + (t.reply ? ': ' + t.reply.split('\n')[0] : '') };
  state.table = 'nat';
  $('table').value = 'nat';
  if (t.node) { state.node = t.node; $('node').value = t.node; }
  if (t.service) { state.selected = new Set([t.service]); state.wholeNode = false; state.namespace = ''; $('ns-filter').value = ''; renderChips(); }
  showView('chains');
  loadGraph();
  // The Service list and its count are per node, and mark the selection.
  loadServices();
}

function applyHighlight() {
  const banner = $('trace-banner');
  const h = state.highlight;
  for (const x of document.querySelectorAll('.hit')) x.classList.remove('hit');
  if (!h) { banner.hidden = true; return; }
  banner.hidden = false;
  clear(banner);
  banner.appendChild(el('span', { class: 'badge ' + (h.simulated ? 'sim' : 'kernel'), text: h.simulated ? 'simulated' : 'kernel trace' }));
  banner.appendChild(document.createTextNode(' ' + h.text + ' '));
  const x = el('button', { type: 'button', text: 'clear' });
  x.addEventListener('click', () => { state.highlight = null; applyHighlight(); });
  banner.appendChild(x);
  for (const id of h.ids) {
    const r = state.rowEls.get(id);
    if (!r) continue;
    r.row.classList.add('hit');
    if (r.edge) { r.edge.path.classList.add('hit'); r.edge.label.classList.add('hit'); }
  }
  if (h.pod) {
    for (const g of document.querySelectorAll('#graph g.node')) if (g.dataset.id === h.pod) g.classList.add('hit');
  }
}

// ---------- topology ----------

async function loadTopologyData() {
  try {
    state.topology = await getJSON('/lab/v1/topology');
  } catch (e) {
    setStatus('topology: ' + e.message, true);
  }
  return state.topology;
}

// table builds a table of text cells. A cell made by addrs() holds
// addresses: each stays on one line (class addr, white-space: nowrap) and
// the cell wraps only between them.
function table(headers, rows) {
  const t = el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))));
  const tb = el('tbody');
  for (const r of rows) tb.appendChild(el('tr', {}, r.map(cell)));
  t.appendChild(tb);
  return t;
}

function cell(c) {
  if (c && Array.isArray(c.addrs)) {
    const td = el('td', { class: 'addrs' });
    c.addrs.forEach((a, i) => {
      if (i) td.appendChild(document.createTextNode(', '));
      td.appendChild(el('span', { class: 'addr', text: a }));
    });
    return td;
  }
  return el('td', { text: c === undefined || c === null ? '' : String(c) });
}

function addrs(...list) { return { addrs: list.flat().filter(Boolean).map(String) }; }

// hiddenAnnotations are left out of the tables, as kubectl describe does:
// last-applied-configuration is the whole object again as JSON.
const hiddenAnnotations = new Set(['kubectl.kubernetes.io/last-applied-configuration']);

function kv(m) { return Object.entries(m || {}).map(([k, v]) => k + '=' + v).join(', '); }
function annotations(m) { return kv(Object.fromEntries(Object.entries(m || {}).filter(([k]) => !hiddenAnnotations.has(k)))); }

async function loadTopology() {
  const t = await loadTopologyData();
  if (!t) return;
  drawTopology(t);
  const box = $('topo-tables');
  clear(box);
  box.appendChild(el('h2', { text: 'Nodes' }));
  box.appendChild(table(['name', 'IP', 'pod CIDR', 'ready', 'netns', 'bridge'],
    (t.nodes || []).map((n) => [n.name, addrs(n.ip), addrs(n.podCIDR), n.ready ? 'yes' : 'no', n.netns, addrs((n.bridge || '') + (n.bridgeIP ? ' ' + n.bridgeIP : ''))])));
  box.appendChild(el('h2', { text: 'Pods' }));
  box.appendChild(table(['namespace/name', 'IP', 'node', 'ready', 'ports', 'labels', 'annotations'],
    (t.pods || []).map((p) => [p.namespace + '/' + p.name, addrs(p.ip), p.node, p.ready ? 'yes' : 'no', (p.ports || []).map((x) => x.port + '/' + x.protocol).join(', '), kv(p.labels), annotations(p.annotations)])));
  box.appendChild(el('h2', { text: 'Services' }));
  box.appendChild(table(['namespace/name', 'type', 'cluster IP', 'ports', 'node ports', 'LB IPs', 'external', 'endpoints', 'labels', 'annotations'],
    (t.services || []).map((s) => [s.namespace + '/' + s.name, s.type, addrs(s.clusterIP),
      (s.ports || []).map((p) => (p.name ? p.name + ' ' : '') + p.port + '/' + p.protocol + (p.targetPort ? '→' + p.targetPort : '')).join(', '),
      (s.ports || []).filter((p) => p.nodePort).map((p) => p.nodePort).join(', '),
      addrs(s.loadBalancerIPs || []),
      addrs(s.externalName, s.externalIPs || []),
      addrs((s.endpoints || []).map((e) => e.ip + (e.port ? ':' + e.port : '') + (e.pod ? ' ' + e.pod : '') + (e.node ? '@' + e.node : '') + (e.ready ? '' : ' (not ready)'))),
      kv(s.labels), annotations(s.annotations)])));
  box.appendChild(el('h2', { text: 'Links' }));
  box.appendChild(table(['kind', 'a', 'interface', 'b', 'interface'], (t.links || []).map((l) => [l.kind, l.a, l.ifA, l.b, l.ifB])));
}

function drawTopology(t) {
  const box = $('topo-drawing');
  clear(box);
  const nodes = t.nodes || [];
  const podsOf = (n) => (t.pods || []).filter((p) => p.node === n.name);
  const colW = 260, podH = 34;
  const maxPods = Math.max(1, ...nodes.map((n) => podsOf(n).length));
  const W = Math.max(600, nodes.length * colW + 40), H = 190 + maxPods * podH + 20;
  const s = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, 'font-family': 'monospace', 'font-size': '12', class: 'topo' });
  const hx = W / 2;
  s.appendChild(svg('rect', { x: hx - 120, y: 10, width: 240, height: 40, rx: 6, class: 'topo-host' }));
  s.appendChild(svg('text', { x: hx, y: 28, 'text-anchor': 'middle', class: 'name', text: (t.host.name || 'host') + ' ' + (t.host.ip || '') }));
  s.appendChild(svg('text', { x: hx, y: 44, 'text-anchor': 'middle', class: 'title', text: (t.host.link || '') + (t.underlayCIDR ? ' · underlay ' + t.underlayCIDR : '') }));
  nodes.forEach((n, i) => {
    const x = 20 + i * colW, y = 90;
    s.appendChild(svg('line', { x1: hx, y1: 50, x2: x + (colW - 20) / 2, y2: y, class: 'topo-link' }));
    s.appendChild(svg('rect', { x, y, width: colW - 20, height: 56, rx: 6, class: 'topo-node' + (n.ready ? '' : ' not-ready') }));
    s.appendChild(svg('text', { x: x + 8, y: y + 17, class: 'name', text: n.name + ' ' + n.ip }));
    s.appendChild(svg('text', { x: x + 8, y: y + 33, class: 'title', text: 'pods ' + (n.podCIDR || '') }));
    s.appendChild(svg('text', { x: x + 8, y: y + 49, class: 'title', text: (n.bridge || 'bridge') + ' ' + (n.bridgeIP || '') + (n.ready ? '' : ' · NOT READY') }));
    podsOf(n).forEach((p, j) => {
      const py = y + 76 + j * podH;
      s.appendChild(svg('line', { x1: x + 14, y1: y + 56, x2: x + 14, y2: py + 13, class: 'topo-link' }));
      s.appendChild(svg('rect', { x: x + 24, y: py, width: colW - 54, height: 26, rx: 4, class: 'topo-pod' + (p.ready ? '' : ' not-ready') }));
      s.appendChild(svg('text', { x: x + 30, y: py + 17, text: truncate(p.namespace + '/' + p.name + ' ' + p.ip, 27) }, svg('title', { text: p.namespace + '/' + p.name + ' ' + p.ip + (p.ready ? '' : ' (not ready)') })));
    });
  });
  box.appendChild(s);
}

// ---------- apply ----------

function statusView(st) {
  const d = el('div', { class: 'status-box' });
  d.appendChild(el('p', { class: 'error', text: (st && (st.reason || st.status)) + ': ' + (st && st.message) }));
  const causes = (st && st.details && st.details.causes) || [];
  if (causes.length) {
    const ul = el('ul', { class: 'causes' });
    for (const c of causes) ul.appendChild(el('li', {}, el('code', { class: 'field', text: c.field || '(object)' }), ' ', el('span', { text: c.message || c.reason || '' })));
    d.appendChild(ul);
  }
  return d;
}

async function loadExamples() {
  const resp = await fetch('/examples.yaml');
  $('apply-text').value = await resp.text();
}

async function applyManifest() {
  const out = $('apply-result');
  clear(out);
  let resp, data;
  try {
    resp = await fetch('/lab/v1/apply', { method: 'POST', headers: { 'Content-Type': 'application/yaml', Accept: 'application/json' }, body: $('apply-text').value });
    data = await resp.json();
  } catch (e) {
    out.appendChild(el('p', { class: 'error', text: 'apply: ' + e.message }));
    return;
  }
  if (!data || !Array.isArray(data.results)) {
    out.appendChild(statusView(data));
    return;
  }
  const t = el('table', { class: 'apply-results' }, el('thead', {}, el('tr', {}, ['#', 'kind', 'object', 'result', 'details'].map((h) => el('th', { text: h })))));
  const tb = el('tbody');
  for (const r of data.results) {
    const details = r.status ? statusView(r.status) : el('span', { class: 'muted', text: (r.warnings || []).join('; ') });
    const tr = el('tr', { class: 'action-' + r.action },
      el('td', { text: String(r.index) }),
      el('td', { text: (r.apiVersion ? r.apiVersion + ' ' : '') + (r.kind || '') }),
      el('td', { text: (r.namespace ? r.namespace + '/' : '') + (r.name || '') }),
      el('td', { class: 'action', text: r.action }),
      el('td', {}, details));
    tb.appendChild(tr);
  }
  t.appendChild(tb);
  out.appendChild(t);
  if (state.node) loadServices();
}

// ---------- start ----------

async function start() {
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showView(b.dataset.view));
  $('node').addEventListener('change', () => { state.node = $('node').value; state.graph = null; loadServices(); if (hasSelection()) loadGraph(); });
  $('table').addEventListener('change', () => { state.table = $('table').value; if (hasSelection()) loadGraph(); });
  $('svc-search').addEventListener('input', scheduleSearch);
  $('ns-filter').addEventListener('change', () => { state.namespace = $('ns-filter').value.trim(); state.wholeNode = false; if (hasSelection()) loadGraph(); else showHint(); });
  $('whole-node').addEventListener('click', () => { state.wholeNode = true; state.selected.clear(); renderChips(); loadGraph(); });
  $('zoom-in').addEventListener('click', () => zoomBy(1.25));
  $('zoom-out').addEventListener('click', () => zoomBy(0.8));
  $('zoom-fit').addEventListener('click', zoomFit);
  $('trace-form').addEventListener('submit', runTrace);
  $('load-examples').addEventListener('click', loadExamples);
  $('apply-btn').addEventListener('click', applyManifest);
  try {
    await loadNodes();
    await loadServices();
    document.body.dataset.ready = 'true';
  } catch (e) {
    setStatus(e.message, true);
  }
}

document.addEventListener('DOMContentLoaded', start);
