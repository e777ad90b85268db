// The dashboard page: one HTML document with its style and script inline, allowed by their hashes in a
// content security policy that allows nothing else (no other script, style, image, font or frame; fetch
// to this origin only). Nothing is loaded from anywhere: the page works offline.
import { PAGE_SCRIPT } from './page-script.js';

const STYLE = `
:root { color-scheme: light dark; --fg: #1d2430; --muted: #6b7280; --bg: #fbfbfd; --card: #fff; --line: #d9dde5; }
@media (prefers-color-scheme: dark) { :root { --fg: #e5e7eb; --muted: #9ca3af; --bg: #111418; --card: #1a1f26; --line: #2f3742; } }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: var(--bg); color: var(--fg); }
header { display: flex; gap: 12px; align-items: baseline; padding: 12px 20px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; padding: 16px 20px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
section.wide { grid-column: 1 / -1; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th:nth-child(4), td:nth-child(4), th:nth-child(5), td:nth-child(5) { text-align: left; }
.muted { color: var(--muted); }
.badge { padding: 1px 8px; border-radius: 10px; font-size: 12px; }
.badge.ok { background: #d1fadf; color: #05603a; } .badge.warn { background: #fef0c7; color: #93370d; }
.badge.bad { background: #fee4e2; color: #912018; }
.kpis { display: flex; gap: 24px; } .kpis b { font-size: 20px; display: block; }
#server { color: var(--muted); font-size: 13px; }
svg.chart { width: 100%; height: auto; display: block; }
.axis { stroke: var(--line); } .tick { fill: var(--muted); font-size: 11px; }
.label { fill: var(--fg); font-size: 11px; }
.bar.ok { fill: #3c9a5f; } .bar.failed { fill: #d64545; } .bar.in-progress { fill: #e0a526; }
.pause { fill: #1d2430; opacity: .55; }
.track { fill: var(--line); } .fill { fill: #3c9a5f; } .fill.hot { fill: #d64545; }
.queue { font-variant-numeric: tabular-nums; }
`;

const BODY = `
<header>
  <h1>nserve</h1><span id="status" class="badge warn">connecting…</span>
  <span id="server"></span><span id="updated" class="muted"></span>
</header>
<main>
  <section class="wide"><div class="kpis">
    <div><b id="rps">-</b><span class="muted">requests/s</span></div>
    <div><b id="inflight">-</b><span class="muted">in flight</span></div>
    <div><b id="latency">-</b><span class="muted">mean latency</span></div>
    <div><b id="longlived">-</b><span class="muted">long-lived</span></div>
  </div></section>
  <section class="wide"><h2>Workers</h2><div id="workers"></div></section>
  <section class="wide"><h2>Restarts</h2><div id="timeline"></div></section>
  <section><h2>Request rate</h2><div id="rate"></div><div id="inflightChart"></div><h2>Latency</h2><div id="latencyChart"></div></section>
  <section><h2>Memory</h2><div id="memory"></div><h2>Accept queue</h2><div id="queues"></div></section>
</main>`;

function hash(text: string): string {
  // getBuiltinModule, not an ES import of node:crypto (control/answers.ts says why).
  return `'sha256-${process.getBuiltinModule('node:crypto').createHash('sha256').update(text).digest('base64')}'`;
}

export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>nserve dashboard</title>
<style>${STYLE}</style></head>
<body>${BODY}
<script>${PAGE_SCRIPT}</script></body></html>
`;

/**
 * Nothing but this page's own style and script, and requests to its own origin. `default-src 'none'`
 * refuses everything not named; `frame-ancestors 'none'` refuses framing (X-Frame-Options: DENY says the
 * same to older browsers).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(PAGE_SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
