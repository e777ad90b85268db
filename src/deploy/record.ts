// The deploy record: which release each restart targeted (restart history, restart/history.ts), which release
// serves now, which one a rollback returns to, and the mixed-version alarm. Single mode and the master
// keep one `Deploys` each, inside their RestartHistory; it crosses hot restarts in the hand-off
// (`releases`, restart/handoff.ts), so a rollback still knows where to go after any number of execs.
//
// The rules (docs/restarts.md, "Deploy record" and "Rollback"):
// - `serving`: the release of the last restart that finished ok (at start: the resolved --directory).
// - `previous`: the release that served before the last successful restart that changed the release
//   (another resolved directory). A restart onto the same directory changes neither.
// - A rollback restarts onto `previous` (pinned: `current` is not re-resolved). It is a restart like
//   any other, so once it succeeds `previous` is the release rolled back from: two rollbacks toggle.
// - While the workers that accept run two releases (the alarm is raised: a phased restart that stopped
//   midway), a rollback returns to `serving`: the release every worker ran before, unless that directory
//   was edited in place (it now holds the new code: the release before is not on disk).
// - `noWayBack`: a failed canary could not bring the previous release back from disk (edited in place,
//   or removed). The old workers run it from memory; a new worker would load the failed release, so none
//   is spawned until the next restart that succeeds (which clears it). Never claimed as serving again.
import * as fs from 'node:fs';
import { errorCode, errorMessage } from '../errors.js';
import { describeRelease, type ReleaseRef, readReleaseRef, releaseOf } from './release.js';

export type { ReleaseRef } from './release.js';

/** Two releases serve at once for longer than a restart explains (cluster mode). */
export interface MixedVersions {
  code: 'ERR_NSERVE_MIXED_VERSIONS';
  /** When it was first seen. */
  since: string;
  /** The restart after which it was seen. */
  restart: number | null;
  /**
   * The workers that accept run more than one release (a phased restart stopped midway); false: old
   * workers outlived the drain bound, while the accepting ones run one release.
   */
  accepting: boolean;
  /**
   * Each release live workers run, with how many, by code generation: one directory edited in place
   * between two generations is two codes.
   */
  releases: (ReleaseRef & { workers: number; generation: number })[];
  message: string;
}

/**
 * A failed canary whose previous release is not on disk any more: the old workers run it from memory,
 * and a new worker would load the release whose canary failed (cluster/phased-restart.ts).
 */
export interface NoWayBack {
  code: 'ERR_NSERVE_NO_WAY_BACK';
  since: string;
  /** The phased restart whose canary failed. */
  restart: number | null;
  /** `in-place`: the previous release's directory now holds the failed one; `removed`: it is gone. */
  cause: 'in-place' | 'removed';
  /** What the old workers run, from memory (the directory as it was). */
  running: ReleaseRef | null;
  /** The release whose canary failed: what a new worker would load. */
  failed: ReleaseRef;
  /** The configured worker count. */
  workers: number;
  /** Worker indexes left without a worker (one less each): a replacement would load `failed`. */
  withheld: number[];
  /** No worker of the previous release was left, so one of `failed` serves (never zero workers). */
  failedServes: boolean;
  message: string;
}

/** What crosses a hot restart (the hand-off's `releases`). */
export interface DeployHandoff {
  serving: ReleaseRef | null;
  previous: ReleaseRef | null;
  noWayBack: NoWayBack | null;
  reloadedInPlace: boolean;
}

/** Why the previous release cannot be loaded again, as a phrase. */
function causeText(n: Pick<NoWayBack, 'cause' | 'running' | 'failed'>): string {
  const dir = n.running?.directory ?? n.failed.directory;
  return n.cause === 'in-place'
    ? `${dir} was edited in place and now holds the failed release`
    : `${dir} was removed`;
}

/** The one line the log, `ctl status` and /stats give for `n`. */
export function noWayBackMessage(n: Omit<NoWayBack, 'message'>): string {
  const running = n.running === null ? 'the previous release' : describeRelease(n.running);
  const serving = n.workers - n.withheld.length;
  if (n.failedServes)
    return `the failed release ${describeRelease(n.failed)} serves: no worker of ${running} was left, and it is not on disk (${causeText(n)}); deploy a fixed release`;
  const count =
    n.withheld.length === 0
      ? `all ${n.workers} workers run it from memory`
      : `running with ${serving} of ${n.workers} workers (one less per worker that could not be brought back: ${n.withheld.join(', ')}), from memory`;
  return `the previous release ${running} could not be brought back: it is not on disk (${causeText(n)}); ${count}, until the next good deploy (a new worker would load ${describeRelease(n.failed)}, whose canary failed)`;
}

function readNoWayBack(v: unknown): NoWayBack | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const failed = readReleaseRef(o.failed);
  if (failed === undefined || (o.cause !== 'in-place' && o.cause !== 'removed')) return undefined;
  const count = (x: unknown): number | undefined =>
    typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : undefined;
  const workers = count(o.workers);
  if (workers === undefined) return undefined;
  const withheld = Array.isArray(o.withheld)
    ? o.withheld.flatMap((i) => {
        const n = count(i);
        return n !== undefined && n < workers ? [n] : [];
      })
    : [];
  const n: Omit<NoWayBack, 'message'> = {
    code: 'ERR_NSERVE_NO_WAY_BACK',
    since: typeof o.since === 'string' ? o.since : new Date().toISOString(),
    restart: count(o.restart) ?? null,
    cause: o.cause,
    running: readReleaseRef(o.running) ?? null,
    failed,
    workers,
    withheld: [...new Set(withheld)].sort((a, b) => a - b),
    failedServes: o.failedServes === true,
  };
  return { ...n, message: noWayBackMessage(n) };
}

/** The fields of a restart record the deploy record fills in (structural: no import cycle with restart/history.ts). */
export interface TargetedRecord {
  id: number;
  outcome: string;
  release?: ReleaseRef;
  previous?: ReleaseRef;
  rollback?: boolean;
}

/**
 * The deploy fields of a record handed over by another image, each kept only if well-formed (an older
 * nserve wrote none): spread over the record, they replace what it carried.
 */
export function readTargetFields(r: {
  release?: unknown;
  previous?: unknown;
  rollback?: unknown;
}): Pick<TargetedRecord, 'release' | 'previous' | 'rollback'> {
  return {
    release: readReleaseRef(r.release),
    previous: readReleaseRef(r.previous),
    rollback: r.rollback === true ? true : undefined,
  };
}

export class Deploys {
  serving: ReleaseRef | undefined;
  previous: ReleaseRef | undefined;
  /** The directory the restart in progress uses instead of re-resolving --directory (a rollback). */
  pinned: string | undefined;
  mixed: MixedVersions | undefined;
  noWayBack: NoWayBack | undefined;
  /** The last restart that succeeded loaded the directory that served before (an app edited in place). */
  reloadedInPlace = false;
  /** Versions read per directory: each release's files are read once. */
  private readonly known = new Map<string, ReleaseRef>();

  /**
   * The state the previous image handed over; `servedBefore`: the directory it served (`directory` in
   * the hand-off), for a hand-off written by an nserve that did not keep a deploy record.
   */
  static fromHandoff(handed: unknown, servedBefore?: string): Deploys {
    const d = new Deploys();
    if (typeof handed === 'object' && handed !== null) {
      const o = handed as Record<string, unknown>;
      d.serving = readReleaseRef(o.serving);
      d.previous = readReleaseRef(o.previous);
      d.noWayBack = readNoWayBack(o.noWayBack);
      d.reloadedInPlace = o.reloadedInPlace === true;
    }
    if (d.serving === undefined && servedBefore !== undefined && servedBefore !== '')
      d.serving = d.release(servedBefore);
    return d;
  }

  toHandoff(): DeployHandoff {
    return {
      serving: this.serving ?? null,
      previous: this.previous ?? null,
      noWayBack: this.noWayBack ?? null,
      reloadedInPlace: this.reloadedInPlace,
    };
  }

  /** The release at `directory`, its version read once. */
  release(directory: string): ReleaseRef {
    let r = this.known.get(directory);
    if (r === undefined) {
      r = releaseOf(directory);
      this.known.set(directory, r);
    }
    return r;
  }

  /** The server serves `directory` (its first boot): the starting point of the record. */
  serve(directory: string): void {
    this.serving ??= this.release(directory);
  }

  /**
   * A restart resolved the release it targets: record it (the first time only) and what served then;
   * `rollback`: the restart is a rollback (by default: it targets the pinned release).
   */
  target(record: TargetedRecord | undefined, directory: string, rollback = this.pinned === directory): void {
    if (record === undefined || record.release !== undefined) return;
    // Read again: a release rewritten in place (same directory, new REVISION) is a new version.
    this.known.delete(directory);
    record.release = this.release(directory);
    if (this.serving !== undefined) record.previous = this.serving;
    if (rollback) record.rollback = true;
  }

  /**
   * A restart finished: one that succeeded onto another release makes the one before it `previous`.
   * Any that succeeded is the good deploy that ends `noWayBack`: every worker runs what is on disk.
   */
  settle(record: TargetedRecord): void {
    if (record.outcome !== 'ok' || record.release === undefined) return;
    this.reloadedInPlace = this.serving?.directory === record.release.directory;
    if (this.serving !== undefined && this.serving.directory !== record.release.directory)
      this.previous = this.serving;
    this.serving = record.release;
    this.noWayBack = undefined;
  }

  /** A failed canary could not bring the previous release back from disk (see NoWayBack). */
  holdBack(n: Omit<NoWayBack, 'code' | 'since' | 'message' | 'withheld' | 'failedServes'>): NoWayBack {
    const fields = {
      code: 'ERR_NSERVE_NO_WAY_BACK' as const,
      since: this.noWayBack?.since ?? new Date().toISOString(),
      withheld: [],
      failedServes: false,
      ...n,
    };
    this.noWayBack = { ...fields, message: noWayBackMessage(fields) };
    return this.noWayBack;
  }

  /** Worker `index` is left without a worker (true), or one of the failed release serves (false). */
  withhold(index: number, withheld: boolean): NoWayBack | undefined {
    const n = this.noWayBack;
    if (n === undefined) return undefined;
    const fields = withheld
      ? { ...n, withheld: [...new Set([...n.withheld, index])].sort((a, b) => a - b) }
      : { ...n, withheld: n.withheld.filter((i) => i !== index), failedServes: true };
    this.noWayBack = { ...fields, message: noWayBackMessage(fields) };
    return this.noWayBack;
  }

  /** Where a rollback goes now, or why there is nowhere to go (one line). */
  rollbackTarget(): { release: ReleaseRef } | { refused: string } {
    const mixed = this.mixed?.accepting === true ? this.mixed : undefined;
    const release = mixed !== undefined ? this.serving : this.previous;
    // Two generations of one directory: it was edited in place, the code the old workers run is gone.
    if (
      mixed !== undefined &&
      release !== undefined &&
      mixed.releases.filter((r) => r.directory === release.directory).length > 1
    )
      return {
        refused: `cannot roll back: the workers run two generations of ${release.directory}, edited in place: the code before the edit is not on disk`,
      };
    if (release === undefined) {
      if (this.noWayBack !== undefined)
        return { refused: `nothing to roll back to: ${this.noWayBack.message}` };
      if (this.reloadedInPlace && this.serving !== undefined)
        return {
          refused: `nothing to roll back to: the last restart reloaded ${this.serving.directory} itself (edited in place, or restarted as it was): no other release is on disk`,
        };
      return { refused: 'nothing to roll back to: no restart has changed the release yet' };
    }
    try {
      if (!fs.statSync(release.directory).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      return {
        refused: `cannot roll back: the previous release ${describeRelease(release)} is gone (${errorCode(err) ?? errorMessage(err)})`,
      };
    }
    return { release };
  }

  /** For /stats. */
  view(): {
    release: ReleaseRef | null;
    rollbackTo: ReleaseRef | null;
    mixedVersions: MixedVersions | null;
    noWayBack: NoWayBack | null;
  } {
    const mixed = this.mixed?.accepting === true ? this.mixed : undefined;
    const target = mixed !== undefined ? this.serving : this.previous;
    const editedInPlace =
      mixed !== undefined && mixed.releases.filter((r) => r.directory === target?.directory).length > 1;
    return {
      release: this.serving ?? null,
      rollbackTo: editedInPlace ? null : (target ?? null),
      mixedVersions: this.mixed ?? null,
      noWayBack: this.noWayBack ?? null,
    };
  }
}
