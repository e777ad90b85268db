// Hand-written SVG charts, no dependencies.

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f1 = (x: number): string => (Math.round(x * 10) / 10).toString();

export interface RestartPanel {
  label: string;
  run: {
    failed: number;
    byKind: Record<string, number>;
    silenceMs: number;
    timeline: { binMs: number; from: number; max: number[]; p50: number[]; count: number[] };
    failuresAt: { t: number; kind: string }[];
    restarts: { signalMs: number; doneMs: number; firstNewMs: number }[];
  };
}

const KIND_COLORS: Record<string, string> = {
  refused: '#d62728',
  reset: '#ff7f0e',
  timeout: '#9467bd',
  non2xx: '#8c564b',
};

/** One panel per system: latency (log scale) over time, restarts marked, failures as ticks. */
export function restartChart(panels: RestartPanel[], title: string): string {
  const W = 1000;
  const PH = 150;
  const left = 64;
  const right = 16;
  const top = 58;
  const gap = 34;
  const H = top + panels.length * (PH + gap) + 30;
  const from = Math.min(...panels.map((p) => p.run.timeline.from), -1000);
  const to = Math.max(
    ...panels.map((p) => p.run.timeline.from + p.run.timeline.max.length * p.run.timeline.binMs),
    1000,
  );
  const xOf = (t: number): number => left + ((t - from) / (to - from)) * (W - left - right);
  const yMin = 1;
  const yMax = 20000;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="32" fill="#555">x: seconds from the first restart signal · y: latency of the requests started in each 50 ms (log scale): blue max, grey median · pink: no request started (all clients waiting)</text>`,
    `<text x="${left}" y="46" fill="#555">orange dashed: restart signal · green triangle: first response from the new code · green dotted: restart reported done · ticks on top: failed requests</text>`,
  );
  panels.forEach((p, i) => {
    const y0 = top + i * (PH + gap) + 16;
    const yOf = (ms: number): number => {
      const v = Math.min(yMax, Math.max(yMin, ms));
      return y0 + PH - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * PH;
    };
    const { timeline: tl, restarts, failuresAt } = p.run;
    const kinds = Object.entries(p.run.byKind)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `<text x="${left}" y="${y0 - 5}" font-weight="bold">${esc(p.label)}</text>`,
      `<text x="${W - right}" y="${y0 - 5}" text-anchor="end">${p.run.failed} failed${kinds ? ` (${esc(kinds)})` : ''} · longest silence ${Math.round(p.run.silenceMs)} ms</text>`,
      `<rect x="${left}" y="${y0}" width="${W - left - right}" height="${PH}" fill="#fafafa" stroke="#ccc"/>`,
    );
    // empty bins
    tl.count.forEach((c, b) => {
      if (c > 0) return;
      const t = tl.from + b * tl.binMs;
      if (t < from || t > to) return;
      out.push(
        `<rect x="${f1(xOf(t))}" y="${y0}" width="${f1(Math.max(1, xOf(t + tl.binMs) - xOf(t)))}" height="${PH}" fill="#fde0e0"/>`,
      );
    });
    for (const ms of [1, 10, 100, 1000, 10000]) {
      const y = yOf(ms);
      out.push(
        `<line x1="${left}" x2="${W - right}" y1="${f1(y)}" y2="${f1(y)}" stroke="#e5e5e5"/>`,
        `<text x="${left - 4}" y="${f1(y + 4)}" text-anchor="end" fill="#555">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`,
      );
    }
    for (let s = Math.ceil(from / 1000); s <= to / 1000; s++) {
      const x = xOf(s * 1000);
      out.push(
        `<line x1="${f1(x)}" x2="${f1(x)}" y1="${y0 + PH}" y2="${y0 + PH + 4}" stroke="#999"/>`,
        `<text x="${f1(x)}" y="${y0 + PH + 14}" text-anchor="middle" fill="#555">${s}</text>`,
      );
    }
    for (const r of restarts) {
      const xs = xOf(r.signalMs);
      out.push(
        `<line x1="${f1(xs)}" x2="${f1(xs)}" y1="${y0}" y2="${y0 + PH}" stroke="#ff7f0e" stroke-dasharray="4 3"/>`,
      );
      if (Number.isFinite(r.firstNewMs)) {
        const xn = xOf(r.signalMs + r.firstNewMs);
        out.push(`<path d="M${f1(xn)},${y0 + PH - 9} l-5,9 h10 z" fill="#2ca02c"/>`);
      }
      if (Number.isFinite(r.doneMs)) {
        const xd = xOf(r.signalMs + r.doneMs);
        out.push(
          `<line x1="${f1(xd)}" x2="${f1(xd)}" y1="${y0}" y2="${y0 + PH}" stroke="#2ca02c" stroke-dasharray="2 3"/>`,
        );
      }
    }
    const line = (values: number[], color: string, width: number): void => {
      let d = '';
      let open = false;
      values.forEach((v, b) => {
        if (tl.count[b] === 0) {
          open = false;
          return;
        }
        const x = xOf(tl.from + (b + 0.5) * tl.binMs);
        d += `${open ? 'L' : 'M'}${f1(x)},${f1(yOf(v))}`;
        open = true;
      });
      if (d) out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="${width}"/>`);
    };
    line(tl.p50, '#999', 1);
    line(tl.max, '#1f77b4', 1.2);
    for (const f of failuresAt.slice(0, 2000)) {
      const x = xOf(f.t);
      out.push(
        `<line x1="${f1(x)}" x2="${f1(x)}" y1="${y0}" y2="${y0 + 10}" stroke="${KIND_COLORS[f.kind] ?? '#000'}" stroke-width="1.5"/>`,
      );
    }
  });
  out.push(
    `<text x="${left}" y="${H - 8}" fill="#555">failure ticks: refused red, reset orange, timeout purple, non-2xx brown</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

export interface BarGroup {
  label: string;
  bars: { label: string; value: number; min: number; max: number; note?: string }[];
}

const PALETTE = ['#7f7f7f', '#1f77b4', '#17becf', '#9467bd', '#2ca02c', '#ff7f0e', '#d62728', '#8c564b'];

/** Grouped bars with min–max whiskers; one color per bar label across groups. */
export function barChart(groups: BarGroup[], title: string, unit: string): string {
  const labels = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const color = (l: string): string => PALETTE[labels.indexOf(l) % PALETTE.length]!;
  const W = 1000;
  const left = 60;
  const right = 16;
  const top = 44;
  const GH = 220;
  const gap = 60;
  const legendH = 20 * Math.ceil(labels.length / 3) + 10;
  const H = top + groups.length * (GH + gap) + legendH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="36" fill="#555">bar: median over rounds · whisker: min–max · label: median and ratio to the no-master ceiling</text>`,
  ];
  groups.forEach((g, gi) => {
    const y0 = top + gi * (GH + gap) + 18;
    const step = niceStep(Math.max(...g.bars.map((b) => (Number.isFinite(b.max) ? b.max : 0)), 1) / 4);
    const maxV =
      step *
      Math.ceil((Math.max(...g.bars.map((b) => (Number.isFinite(b.max) ? b.max : 0)), 1) * 1.12) / step);
    const slot = (W - left - right) / Math.max(1, g.bars.length);
    out.push(
      `<text x="${left}" y="${y0 - 4}" font-weight="bold">${esc(g.label)}</text>`,
      `<line x1="${left}" x2="${W - right}" y1="${y0 + GH}" y2="${y0 + GH}" stroke="#999"/>`,
    );
    for (let v = 0; v <= maxV + 1e-9; v += step) {
      const y = y0 + GH - (v / maxV) * GH;
      out.push(
        `<line x1="${left}" x2="${W - right}" y1="${f1(y)}" y2="${f1(y)}" stroke="#eee"/>`,
        `<text x="${left - 4}" y="${f1(y + 4)}" text-anchor="end" fill="#555">${v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : v.toFixed(0)}</text>`,
      );
    }
    g.bars.forEach((b, bi) => {
      const x = left + bi * slot + slot * 0.15;
      const w = slot * 0.7;
      const v = Number.isFinite(b.value) ? b.value : 0;
      const h = (v / maxV) * GH;
      out.push(
        `<rect x="${f1(x)}" y="${f1(y0 + GH - h)}" width="${f1(w)}" height="${f1(h)}" fill="${color(b.label)}"/>`,
      );
      if (Number.isFinite(b.min) && Number.isFinite(b.max) && b.max > b.min) {
        const cx = x + w / 2;
        const ya = y0 + GH - (b.min / maxV) * GH;
        const yb = y0 + GH - (b.max / maxV) * GH;
        out.push(
          `<line x1="${f1(cx)}" x2="${f1(cx)}" y1="${f1(ya)}" y2="${f1(yb)}" stroke="#000"/>`,
          `<line x1="${f1(cx - 5)}" x2="${f1(cx + 5)}" y1="${f1(yb)}" y2="${f1(yb)}" stroke="#000"/>`,
          `<line x1="${f1(cx - 5)}" x2="${f1(cx + 5)}" y1="${f1(ya)}" y2="${f1(ya)}" stroke="#000"/>`,
        );
      }
      const txt = `${v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0)}${unit}${b.note ? ` ${b.note}` : ''}`;
      out.push(
        `<text x="${f1(x + w / 2)}" y="${f1(y0 + GH - h - 6 - (b.max > b.value ? ((b.max - b.value) / maxV) * GH : 0))}" text-anchor="middle">${esc(txt)}</text>`,
        `<text x="${f1(x + w / 2)}" y="${y0 + GH + 14}" text-anchor="middle" fill="#333" font-size="${b.label.length > 24 ? 9 : 11}">${esc(b.label)}</text>`,
      );
    });
  });
  labels.forEach((l, i) => {
    const x = left + (i % 3) * 300;
    const y = top + groups.length * (GH + gap) + Math.floor(i / 3) * 20;
    out.push(
      `<rect x="${x}" y="${y - 9}" width="12" height="12" fill="${color(l)}"/>`,
      `<text x="${x + 18}" y="${y + 1}">${esc(l)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** 1, 2 or 5 times a power of ten, at least x. */
function niceStep(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}
