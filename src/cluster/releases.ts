// The master's side of the deploy record (src/deploy/record.ts): which directory a new generation loads (the
// re-resolved --directory, or the release a rollback pins), and the mixed-version alarm.
//
// The alarm, one rule checked at two moments after every restart ends (ok, failed or stopped):
// - at once, over the workers that accept (one per index): more than one release among them means old
//   and new code serve side by side for good, e.g. a phased restart that stopped midway;
// - after --shutdown-timeout + --long-lived-grace + 5 s, over every live worker (old ones still
//   draining or finishing responses on old code included): any of another release is still there
//   although every drain should have ended by then (skipped during a later restart, which checks when
//   it ends).
// A release is a directory and the generation that loaded it: a directory edited in place between two
// generations holds two codes, and the alarm must see them (no "one release serves" while two do).
// Raised: one warning line (`ERR_NSERVE_MIXED_VERSIONS`, how many workers run each release) and
// `mixedVersions` in /stats; cleared (info line) by the next check that finds one release.
import * as fs from 'node:fs';
import type { Config } from '../config/index.js';
import { describeRelease, isDirectory } from '../deploy/release.js';
import { errorMessage, NserveError } from '../errors.js';
import type { Lifecycle, ServerState } from '../launcher/lifecycle.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { RestartHistory } from '../restart/history.js';
import type { Master } from './master.js';

/** Added to the drain bounds before old workers still alive count as mixed versions. */
export const MIXED_MARGIN_MS = 5000;

/** The directory a new generation loads; a restart in progress records it as its target. */
export function resolveRelease(m: Master): string {
  const deploys = m.history.deploys;
  let directory: string;
  if (deploys.pinned !== undefined) {
    directory = deploys.pinned;
    if (!isDirectory(directory))
      throw new NserveError('ERR_NSERVE_BOOT_CHECK', `the release to roll back to, ${directory}, is gone`);
  } else {
    try {
      directory = fs.realpathSync(m.config.directory);
    } catch (err) {
      throw new NserveError(
        'ERR_NSERVE_BOOT_CHECK',
        `directory ${m.config.directory} cannot be resolved: ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }
  if (m.lifecycle.is('restarting')) deploys.target(m.history.current(), directory);
  return directory;
}

/** What the watch reads of the master (structural, so it is unit-tested without processes). */
export interface Watched {
  history: RestartHistory;
  log: Pick<Logger, 'warn' | 'info'>;
  config: Pick<Config, 'shutdownTimeoutMs' | 'longLivedGraceMs'>;
  pool: { current(): Worker[]; alive(): Worker[] };
  lifecycle: Pick<Lifecycle<ServerState>, 'is'>;
}
interface Worker {
  alive: boolean;
  directory: string;
  generation: number;
}

export class MixedVersionWatch {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly m: Watched,
    private readonly marginMs = MIXED_MARGIN_MS,
  ) {}

  /** A restart ended: check now (accepting workers) and once every drain should be over (all). */
  restartEnded(): void {
    clearTimeout(this.timer);
    const { config, pool } = this.m;
    this.check(
      pool.current().filter((w) => w.alive),
      undefined,
    );
    const boundMs = config.shutdownTimeoutMs + config.longLivedGraceMs + this.marginMs;
    // A restart begun meanwhile has old and new workers by design: it checks again when it ends.
    this.timer = setTimeout(() => {
      if (!this.m.lifecycle.is('restarting')) this.check(pool.alive(), boundMs);
    }, boundMs);
    this.timer.unref();
  }

  cancel(): void {
    clearTimeout(this.timer);
  }

  /** `lateMs`: how long after the restart the old workers should all have been gone. */
  private check(workers: readonly Worker[], lateMs: number | undefined): void {
    const deploys = this.m.history.deploys;
    const byCode = new Map<string, { directory: string; generation: number; workers: number }>();
    for (const w of workers) {
      const key = `${w.generation}\0${w.directory}`;
      const seen = byCode.get(key) ?? { directory: w.directory, generation: w.generation, workers: 0 };
      seen.workers++;
      byCode.set(key, seen);
    }
    if (byCode.size <= 1) {
      if (deploys.mixed !== undefined) {
        logEvent(
          this.m.log,
          'deploy.mixed.resolved',
          { code: deploys.mixed.code },
          'mixed versions: resolved, one release serves',
        );
        deploys.mixed = undefined;
      }
      return;
    }
    const releases = [...byCode.values()]
      .map(({ directory, generation, workers: n }) => ({
        ...deploys.release(directory),
        workers: n,
        generation,
      }))
      .sort((a, b) => b.workers - a.workers || b.generation - a.generation);
    // A directory met under two generations was edited in place: name the generation with it.
    const inPlace = (r: { directory: string }): boolean =>
      releases.filter((o) => o.directory === r.directory).length > 1;
    const same =
      deploys.mixed !== undefined && JSON.stringify(deploys.mixed.releases) === JSON.stringify(releases);
    if (same) return;
    const last = this.m.history.records.at(-1);
    const after =
      last === undefined ? 'at start' : `after ${last.kind} restart #${last.id} (${last.outcome})`;
    const counts = releases
      .map(
        (r) =>
          `${r.workers} worker(s) on ${describeRelease(r)}${inPlace(r) ? ` as loaded by generation ${r.generation}` : ''}`,
      )
      .join(' and ');
    const message =
      lateMs === undefined
        ? `mixed versions ${after}: ${counts} serve side by side`
        : `mixed versions ${after}: ${counts} still alive ${Math.round(lateMs / 1000)} s later (old workers should have drained)`;
    deploys.mixed = {
      code: 'ERR_NSERVE_MIXED_VERSIONS',
      since: deploys.mixed?.since ?? new Date().toISOString(),
      restart: last?.id ?? null,
      accepting: lateMs === undefined,
      releases,
      message,
    };
    logEvent(this.m.log, 'deploy.mixed.detected', { code: 'ERR_NSERVE_MIXED_VERSIONS', releases }, message);
  }
}
