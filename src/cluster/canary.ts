// The canary of a phased restart (--canary DURATION): the first new worker serves its share of traffic
// alone for DURATION while the master compares its 5xx rate with the old workers' over the same window.
//
// Counts come from the workers' check-ins (a heartbeat a second carries the request totals by status
// class: metrics/requests.ts, counted in every worker when a canary is configured). A handler that throws
// is answered 500 by the server, so it is a 5xx here; an uncaught exception (the worker leaves) or an
// exit fails the canary at once. `judgeCanary` is the decision, pure and unit-tested; `watchCanary` reads
// the window. The rule is documented in docs/restarts.md (Canary).
import { setTimeout as sleep } from 'node:timers/promises';
import { unlessAborted } from '../launcher/lifecycle.js';
import type { CanaryCounts, CanaryRecord } from '../restart/history.js';
import { HEARTBEAT_INTERVAL_MS } from './protocol.js';
import type { WorkerHandle } from './worker-handle.js';

/** Requests answered and how many of them were 5xx. */
export type Sample = CanaryCounts;

/** Fewer canary requests than this cannot be judged (the window is extended, then the rollout goes on). */
export const MIN_REQUESTS = 20;
/** One-sided z for p < 0.01. */
export const Z_CRITICAL = 2.326;
/** The canary fails only above max(2 × old rate, old rate + this). */
export const MARGIN = 0.05;
/** The window is extended up to this many times DURATION while the canary has too few requests. */
export const MAX_EXTENSION = 3;

export interface CanaryVerdict {
  ok: boolean;
  /** Too few canary requests to judge: ok, with a warning. */
  inconclusive: boolean;
  canary: Sample;
  old: Sample;
  /** The old workers answered enough requests to be the baseline (else the baseline is 0 %). */
  baseline: boolean;
  /** The canary rate above which it fails (when the difference is significant). */
  threshold: number;
  z: number;
  windowMs: number;
  /** One line naming both rates, both sample sizes, the threshold and the test. */
  summary: string;
}

const rate = (s: Sample): number => (s.requests === 0 ? 0 : s.errors / s.requests);
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/**
 * The decision. The canary fails when its 5xx rate is above max(2 × old, old + 5 points) and higher than
 * the old rate with p < 0.01: a pooled two-proportion z-test. When the old workers answered fewer than
 * MIN_REQUESTS in the window (a single worker, little traffic), there is no baseline: the old rate is
 * taken as 0 and the canary is tested against the threshold itself (one-sample z-test, 5 %).
 */
export function judgeCanary(canary: Sample, old: Sample, windowMs: number): CanaryVerdict {
  const baseline = old.requests >= MIN_REQUESTS;
  const pc = rate(canary);
  const po = baseline ? rate(old) : 0;
  const threshold = Math.max(2 * po, po + MARGIN);
  let z = 0;
  if (baseline) {
    const pooled = (canary.errors + old.errors) / (canary.requests + old.requests);
    const se = Math.sqrt(pooled * (1 - pooled) * (1 / Math.max(1, canary.requests) + 1 / old.requests));
    z = se > 0 ? (pc - po) / se : 0;
  } else if (canary.requests > 0 && threshold < 1) {
    z = (pc - threshold) / Math.sqrt((threshold * (1 - threshold)) / canary.requests);
  }
  const inconclusive = canary.requests < MIN_REQUESTS;
  const ok = inconclusive || !(pc > threshold && z >= Z_CRITICAL);
  const oldText = baseline
    ? `${pct(rate(old))} (${old.errors}/${old.requests})`
    : `no baseline (${old.errors}/${old.requests} < ${MIN_REQUESTS} requests: taken as 0%)`;
  const judged = inconclusive
    ? `inconclusive: fewer than ${MIN_REQUESTS} canary requests`
    : `${ok ? 'passed' : 'failed'}: fails above ${pct(threshold)} with z >= ${Z_CRITICAL} (p < 0.01), z = ${z.toFixed(2)}`;
  const summary = `canary 5xx rate ${pct(pc)} (${canary.errors}/${canary.requests} requests) vs old workers ${oldText} over ${(windowMs / 1000).toFixed(1)} s; ${judged}`;
  return { ok, inconclusive, canary, old, baseline, threshold, z, windowMs, summary };
}

/** The verdict as the restart record keeps it (`ctl stats --json`); a canary that left has no numbers. */
export function canaryRecord(v: CanaryVerdict | { ok: false; summary: string }): CanaryRecord {
  if (!('canary' in v)) return { ok: false, inconclusive: false, summary: v.summary };
  const { ok, inconclusive, canary, old, baseline, threshold, z, windowMs, summary } = v;
  return {
    ok,
    inconclusive,
    canary: { ...canary },
    old: { ...old },
    baseline,
    threshold,
    z: Math.round(z * 1000) / 1000,
    windowMs: Math.round(windowMs),
    summary,
  };
}

/** Requests and 5xx from a worker's request totals (layout: metrics/requests.ts, [0..4] = 1xx..5xx). */
export function sampleOf(totals: readonly number[]): Sample {
  let requests = 0;
  for (let c = 0; c < 5; c++) requests += totals[c] ?? 0;
  return { requests, errors: totals[4] ?? 0 };
}

/** The request totals of `w`'s next check-in; undefined if it sent none in time, or without totals. */
function nextTotals(w: WorkerHandle): Promise<number[] | undefined> {
  if (!w.alive) return Promise.resolve(undefined);
  return w
    .waitFor('check in', 2 * HEARTBEAT_INTERVAL_MS + 500, (msg) => {
      // A draining old worker's last word carries its totals too.
      if (msg.t === 'heartbeat' || msg.t === 'drained') return { totals: msg.totals };
      if (msg.t === 'exit') return { totals: undefined };
      return undefined;
    })
    .then(
      (r) => r.totals,
      () => undefined,
    );
}

/**
 * Resolves with why, as soon as the canary leaves (uncaught exception), breaks the protocol or exits:
 * also when it did so before the watch began (between its boot and now).
 */
function trouble(canary: WorkerHandle): { reason: Promise<string>; off: () => void } {
  let off = (): void => {};
  const reason = new Promise<string>((resolve) => {
    if (canary.leaving !== undefined) resolve(`the canary is leaving (${canary.leaving})`);
    else if (canary.violation !== undefined) resolve(`the canary broke the protocol (${canary.violation})`);
    else if (!canary.serving) resolve(`the canary stopped serving (${canary.state}) before it was watched`);
    off = canary.on((msg) => {
      if (msg.t === 'leaving') resolve(`the canary is leaving (${msg.reason})`);
      else if (msg.t === 'violation') resolve(`the canary broke the protocol (${msg.reason})`);
      else if (msg.t === 'exit') resolve(`the canary exited (${msg.signal ?? `code ${String(msg.code)}`})`);
    });
  });
  return { reason, off };
}

function delta(a: readonly number[] | undefined, b: readonly number[] | undefined): Sample | undefined {
  if (a === undefined || b === undefined) return undefined;
  const x = sampleOf(a);
  const y = sampleOf(b);
  return { requests: Math.max(0, y.requests - x.requests), errors: Math.max(0, y.errors - x.errors) };
}

/**
 * Watch `canary` (accepting since now) next to `old` for `durationMs`: each worker's counts are the
 * difference between its first check-in after the start and its first check-in after the end (so the
 * window is rounded to the once-a-second check-ins). While the canary has fewer than MIN_REQUESTS, the
 * window is extended, up to MAX_EXTENSION × DURATION. Rejects when `signal` aborts (a stop).
 */
export async function watchCanary(
  canary: WorkerHandle,
  old: readonly WorkerHandle[],
  durationMs: number,
  signal: AbortSignal,
): Promise<CanaryVerdict | { failed: string }> {
  const watched = trouble(canary);
  // Ends the measuring loop once the verdict is in by another way (trouble, a stop): no timer outlives it.
  const done = new AbortController();
  try {
    const measure = async (): Promise<CanaryVerdict> => {
      const startedAt = Date.now();
      const workers = [canary, ...old];
      const first = await Promise.all(workers.map(nextTotals));
      const firstAt = Date.now();
      let waitUntil = startedAt + durationMs;
      const limit = startedAt + MAX_EXTENSION * durationMs;
      for (;;) {
        await sleep(Math.max(0, waitUntil - Date.now()), undefined, { signal: done.signal });
        const last = await Promise.all(workers.map(nextTotals));
        const windowMs = Date.now() - firstAt;
        const c = delta(first[0], last[0]) ?? { requests: 0, errors: 0 };
        const o: Sample = { requests: 0, errors: 0 };
        for (let i = 1; i < workers.length; i++) {
          const d = delta(first[i], last[i]);
          if (d === undefined) continue; // exited, or counts nothing: left out of the baseline
          o.requests += d.requests;
          o.errors += d.errors;
        }
        if (c.requests >= MIN_REQUESTS || Date.now() >= limit) return judgeCanary(c, o, windowMs);
        waitUntil = Math.min(limit, Date.now() + durationMs);
      }
    };
    return await unlessAborted(
      Promise.race([measure(), watched.reason.then((failed) => ({ failed }))]),
      signal,
    );
  } finally {
    watched.off();
    done.abort();
  }
}
