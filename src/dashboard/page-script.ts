// The dashboard page's script, inlined into the page (page.ts) and allowed by its hash in the content
// security policy. It polls GET /dashboard/view (same origin, with the session cookie) once a second and
// draws the view model (view.ts) with DOM nodes and hand-drawn SVG: no library, so the page stays a few
// tens of KB, works offline and has nothing to vet or update. Data only ever reaches the page as text
// (textContent, SVG attributes), never as markup.
//
// Polling rather than an event stream: every poll is one short request on the control server, which
// answers with Connection: close and bounds each connection's life; across a hot restart's exec the next
// poll simply reaches the new image (retried every 500 ms while the server is away, so the page is live
// again within 2 s of each restart), and the session cookie, derived from the control token, still holds.
export const PAGE_SCRIPT = String.raw`
'use strict';
var SVG = 'http://www.w3.org/2000/svg';
var WINDOW_MS = 5 * 60 * 1000;
var failing = 0;
// The points the page has seen: the server's samples start again at each hot restart (a new image), the
// page's do not, so the charts run on through a restart.
var seen = [];
function remember(series) {
  var last = seen.length ? seen[seen.length - 1].at : 0;
  series.forEach(function (p) { if (p.at > last) seen.push(p); });
  var from = Date.now() - WINDOW_MS;
  while (seen.length && seen[0].at < from) seen.shift();
}
function $(id) { return document.getElementById(id); }
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function svg(tag, attrs, text) {
  var e = document.createElementNS(SVG, tag);
  for (var k in attrs) e.setAttribute(k, String(attrs[k]));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function mb(b) { return b === null || b === undefined ? '-' : (b / 1048576).toFixed(b < 10485760 ? 1 : 0) + ' MB'; }
function num(n, d) { return n === null || n === undefined ? '-' : n.toFixed(d || 0); }
function ms(n) { return n === null || n === undefined ? '-' : n.toFixed(n < 10 ? 1 : 0) + ' ms'; }
function dur(ms) {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  if (ms < 3600000) return Math.floor(ms / 60000) + ' min ' + Math.floor((ms % 60000) / 1000) + ' s';
  return Math.floor(ms / 3600000) + ' h ' + Math.floor((ms % 3600000) / 60000) + ' min';
}
function status(text, cls) { var s = $('status'); s.textContent = text; s.className = 'badge ' + cls; }
function replace(id, node) { var c = $(id); while (c.firstChild) c.removeChild(c.firstChild); c.appendChild(node); }

function header(v) {
  var s = v.server;
  var parts = ['pid ' + s.pid, s.mode, s.state, 'generation ' + s.generation,
    'release ' + (s.release === null ? '-' : s.release), 'up ' + dur(s.uptimeMs), 'nserve ' + s.version,
    s.fds + ' fds', s.lifetimeRequests + ' requests', s.restarts.hot + ' hot / ' + s.restarts.phased + ' phased restarts',
    s.crashes + ' crashes'];
  $('server').textContent = parts.join(' \u00b7 ');
  $('rps').textContent = num(v.totals.rps, 1);
  $('inflight').textContent = v.totals.inFlight;
  $('latency').textContent = ms(v.totals.latencyMs) + (v.totals.p99Ms === null ? '' : ' (p99 \u2264 ' + ms(v.totals.p99Ms) + ')');
  $('longlived').textContent = v.totals.longLived;
}

function workers(v) {
  var t = el('table');
  var head = el('tr');
  ['#', 'PID', 'gen', 'release', 'state', 'RSS', 'req/s', 'in-flight', 'long-lived', 'loop p99'].forEach(function (h) { head.appendChild(el('th', null, h)); });
  t.appendChild(head);
  var rows = v.workers;
  if (rows.length === 0) {
    var tr = el('tr');
    var td = el('td', 'muted', v.server.mode === 'single' ? 'single mode: pid ' + v.server.pid + ' serves itself' : 'no workers');
    td.colSpan = 10; tr.appendChild(td); t.appendChild(tr);
  }
  rows.forEach(function (w) {
    var tr = el('tr', 'worker state-' + w.state);
    tr.setAttribute('data-pid', w.pid);
    [w.index, w.pid, w.generation, w.release, w.state, mb(w.rss), num(w.rps, 1), w.inFlight, w.longLived,
      w.loopDelayMs === null ? '-' : w.loopDelayMs.toFixed(1) + ' ms'].forEach(function (c) { tr.appendChild(el('td', null, c)); });
    t.appendChild(tr);
  });
  replace('workers', t);
}

function lineChart(points, key, color, label, maxHint) {
  var W = 560, H = 120, P = 28;
  var g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, 'class': 'chart', role: 'img', 'aria-label': label });
  var now = points.length ? points[points.length - 1].at : Date.now();
  // Younger than the window: the chart spans what there is, not 5 minutes of nothing.
  var span = points.length > 1 ? Math.min(WINDOW_MS, Math.max(10000, now - points[0].at)) : WINDOW_MS;
  var max = maxHint || 0;
  points.forEach(function (p) { if (p[key] !== null && p[key] > max) max = p[key]; });
  if (max <= 0) max = 1;
  g.appendChild(svg('line', { x1: P, y1: H - 16, x2: W, y2: H - 16, 'class': 'axis' }));
  g.appendChild(svg('text', { x: 0, y: 12, 'class': 'tick' }, label + ' (max ' + (key === 'rps' || key === 'inFlight' ? num(max, 0) : key === 'latencyMs' ? ms(max) : mb(max)) + ')'));
  g.appendChild(svg('text', { x: P, y: H - 2, 'class': 'tick' }, '-' + dur(span)));
  g.appendChild(svg('text', { x: W - 24, y: H - 2, 'class': 'tick' }, 'now'));
  var d = '';
  points.forEach(function (p) {
    if (p[key] === null) return;
    var x = P + (W - P) * (1 - (now - p.at) / span);
    var y = (H - 16) - (H - 36) * (p[key] / max);
    d += (d === '' ? 'M' : 'L') + x.toFixed(1) + ' ' + y.toFixed(1) + ' ';
  });
  if (d !== '') g.appendChild(svg('path', { d: d, fill: 'none', stroke: color, 'stroke-width': 2 }));
  return g;
}

function timeline(v) {
  var W = 1200, P = 4, ROW = 22;
  var bars = v.restarts;
  var H = Math.max(1, bars.length) * ROW + 20;
  var g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, 'class': 'chart timeline', role: 'img', 'aria-label': 'restart timeline' });
  var now = v.at;
  var from = now - 60000;
  bars.forEach(function (r) { if (r.start < from) from = r.start; });
  var span = Math.max(1, now - from);
  function x(t) { return P + (W - 2 * P) * ((t - from) / span); }
  if (bars.length === 0) g.appendChild(svg('text', { x: P, y: 16, 'class': 'tick' }, 'no restart yet'));
  bars.forEach(function (r, i) {
    var y = i * ROW + 4;
    var end = r.end === null ? now : r.end;
    var grp = svg('g', { 'class': 'restart ' + r.outcome, 'data-restart-id': r.id });
    var x0 = x(r.start), x1 = Math.max(x(end), x0 + 3);
    grp.appendChild(svg('rect', { x: x0, y: y, width: x1 - x0, height: ROW - 8, rx: 2, 'class': 'bar ' + r.outcome }));
    if (r.pauseMs !== null && r.end !== null) {
      var pw = Math.max(2, (W - 2 * P) * (r.pauseMs / span));
      grp.appendChild(svg('rect', { x: Math.max(x0, x1 - pw), y: y, width: pw, height: ROW - 8, 'class': 'pause' }));
    }
    var text = '#' + r.id + ' ' + r.kind + (r.rollback ? ' rollback' : '') + ' ' + r.outcome + ' ' +
      dur(r.end === null ? null : r.end - r.start) + (r.pauseMs !== null ? ' (pause ' + dur(r.pauseMs) + ')' : '') +
      (r.release !== null ? ' \u2192 ' + r.release : '') + (r.canary !== null ? ' \u00b7 canary: ' + r.canary : '');
    var tx = x1 + 6 > W - 420 ? Math.max(P, x0 - 6) : x1 + 6;
    grp.appendChild(svg('text', { x: tx, y: y + ROW - 11, 'class': 'label', 'text-anchor': tx < x0 ? 'end' : 'start' }, text));
    if (r.error !== null) grp.appendChild(svg('title', {}, r.error));
    g.appendChild(grp);
  });
  g.appendChild(svg('text', { x: P, y: H - 2, 'class': 'tick' }, new Date(from).toLocaleTimeString()));
  g.appendChild(svg('text', { x: W - 30, y: H - 2, 'class': 'tick' }, 'now'));
  return g;
}

function memory(v) {
  var box = el('div');
  var m = v.memory;
  if (m === null) { box.appendChild(el('p', 'muted', 'memory: not reported')); return box; }
  var W = 560, H = 34;
  var g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, 'class': 'chart', role: 'img', 'aria-label': 'memory' });
  var used = Math.min(1, m.workingSet / m.limit);
  g.appendChild(svg('rect', { x: 0, y: 4, width: W, height: 14, 'class': 'track' }));
  g.appendChild(svg('rect', { x: 0, y: 4, width: (W * used).toFixed(1), height: 14, 'class': used > 0.9 ? 'fill hot' : 'fill' }));
  g.appendChild(svg('text', { x: 0, y: 32, 'class': 'tick' }, 'working set ' + mb(m.workingSet) + ' of ' +
    (m.limited ? 'limit ' : 'host memory ') + mb(m.limit) + ' \u00b7 headroom ' + mb(m.headroom) +
    (m.oomKills !== null ? ' \u00b7 OOM kills ' + m.oomKills : '') +
    (m.hotRestartFits === false ? ' \u00b7 a hot restart would not fit' : '')));
  box.appendChild(g);
  box.appendChild(lineChart(seen, 'workingSet', '#b5651d', 'working set', m.limited ? m.limit : 0));
  return box;
}

function queues(v) {
  var box = el('div');
  if (v.queues === null || v.queues.length === 0) { box.appendChild(el('p', 'muted', 'accept queue: no TCP listener')); return box; }
  v.queues.forEach(function (q) {
    var row = el('div', 'queue');
    row.appendChild(el('span', null, q.bind + ' slot ' + q.slot + ': ' + q.depth + ' / ' + q.limit));
    box.appendChild(row);
  });
  return box;
}

function render(v) {
  remember(v.series);
  header(v);
  workers(v);
  replace('timeline', timeline(v));
  replace('rate', lineChart(seen, 'rps', '#2a6fdb', 'requests/s', 0));
  replace('inflightChart', lineChart(seen, 'inFlight', '#7a3fb0', 'in flight', 0));
  replace('latencyChart', lineChart(seen, 'latencyMs', '#c0392b', 'mean latency', 0));
  replace('memory', memory(v));
  replace('queues', queues(v));
  $('updated').textContent = 'updated ' + new Date(v.at).toLocaleTimeString();
}

function poll() {
  fetch('view', { cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
    if (r.status === 403) { status('logged out: run nserve ctl dashboard', 'bad'); failing = 0; return null; }
    if (!r.ok) throw new Error('status ' + r.status);
    return r.json();
  }).then(function (v) {
    if (v === null) { setTimeout(poll, 5000); return; }
    failing = 0;
    status(v.server.state === 'serving' || v.server.state === 'running' ? 'live' : v.server.state, 'ok');
    render(v);
    setTimeout(poll, 1000);
  }).catch(function () {
    failing++;
    status(failing > 20 ? 'server unreachable' : 'restarting\u2026', 'warn');
    setTimeout(poll, 500);
  });
}
poll();
`;
