// The deploy record: which release each restart targeted (restart history, status.ts), which release
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
//   midway), a rollback returns to `serving`: the release every worker ran before.
import * as fs from 'node:fs';
import { errorCode, errorMessage } from './errors.js';
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
  /** Each release live workers run, with how many. */
  releases: (ReleaseRef & { workers: number })[];
  message: string;
}

/** What crosses a hot restart (the hand-off's `releases`). */
export interface DeployHandoff {
  serving: ReleaseRef | null;
  previous: ReleaseRef | null;
}

/** The fields of a restart record the deploy record fills in (structural: no import cycle with status.ts). */
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
    }
    if (d.serving === undefined && servedBefore !== undefined && servedBefore !== '')
      d.serving = d.release(servedBefore);
    return d;
  }

  toHandoff(): DeployHandoff {
    return { serving: this.serving ?? null, previous: this.previous ?? null };
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

  /** A restart finished: one that succeeded onto another release makes the one before it `previous`. */
  settle(record: TargetedRecord): void {
    if (record.outcome !== 'ok' || record.release === undefined) return;
    if (this.serving !== undefined && this.serving.directory !== record.release.directory)
      this.previous = this.serving;
    this.serving = record.release;
  }

  /** Where a rollback goes now, or why there is nowhere to go (one line). */
  rollbackTarget(): { release: ReleaseRef } | { refused: string } {
    const release = this.mixed?.accepting === true ? this.serving : this.previous;
    if (release === undefined)
      return { refused: 'nothing to roll back to: no restart has changed the release yet' };
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
  view(): { release: ReleaseRef | null; rollbackTo: ReleaseRef | null; mixedVersions: MixedVersions | null } {
    const target = this.mixed?.accepting === true ? this.serving : this.previous;
    return { release: this.serving ?? null, rollbackTo: target ?? null, mixedVersions: this.mixed ?? null };
  }
}
