// Slot lending: which worker accepts on which slot socket.
//
// Invariant: after first boot every slot has at least one booted worker accepting on it. Slots are added
// to a worker before they are released from another, so no slot is ever without an acceptor; the slots
// of a worker that is not serving (booting replacement, dead, draining) are lent to a serving one.
//
// `planSlots` is the pure decision (unit-tested without processes); `Rebalancer` carries it out over the
// worker channels, one pass at a time.
import { errorMessage } from '../errors.js';
import type { Listener } from '../listen/binder.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { WorkerHandle } from './worker-handle.js';

/** The slot keys of one bind, in slot order (`<bind URI>#<slot>`). */
export type SlotGroups = readonly (readonly string[])[];

/** The key of one slot socket: `<bind URI>#<slot>`. */
export function slotKey(l: Listener): string {
  return `${l.spec.uri}#${l.slot}`;
}

/** The slot keys of each bind, in slot order. */
export function slotGroups(listeners: readonly Listener[]): SlotGroups {
  const byBind = new Map<string, string[]>();
  for (const l of listeners) byBind.set(l.spec.uri, [...(byBind.get(l.spec.uri) ?? []), slotKey(l)]);
  return [...byBind.values()];
}

/** The slot keys worker `index` should serve when there are `count` workers. */
export function assignment(groups: SlotGroups, index: number, count: number): string[] {
  const keys: string[] = [];
  for (const group of groups) {
    const slots = group.length;
    // One socket (a unix bind, a socket from systemd): every worker accepts on it.
    if (slots === 1) keys.push(group[0]!);
    else if (slots >= count) for (let j = index; j < slots; j += count) keys.push(group[j]!);
    else keys.push(group[index % slots]!);
  }
  return keys;
}

export interface ServingWorker {
  index: number;
  /** Slots it accepts on now. */
  keys: ReadonlySet<string>;
}

export interface SlotPlan {
  /** What each serving worker (by position in the input) should accept on after the pass. */
  want: Set<string>[];
  /** Slots whose owner is not serving, lent to another worker. */
  lent: { key: string; to: number }[];
}

/** What every serving worker should accept on: its own assignment plus lent slots of absent workers. */
export function planSlots(groups: SlotGroups, serving: readonly ServingWorker[], count: number): SlotPlan {
  const want = serving.map((w) => new Set(assignment(groups, w.index, count)));
  const lent: SlotPlan['lent'] = [];
  if (serving.length === 0) return { want, lent };
  for (const key of groups.flat()) {
    if (want.some((s) => s.has(key))) continue;
    // The owner is booting or dead: lend the slot to the serving worker with the fewest slots.
    let to = 0;
    for (let i = 1; i < want.length; i++) if (want[i]!.size < want[to]!.size) to = i;
    want[to]!.add(key);
    lent.push({ key, to: serving[to]!.index });
  }
  return { want, lent };
}

/**
 * Slots worker `i` may release after the adds: those it should not have, and only while another serving
 * worker accepts on them right now (the one meant to take one may have died during the pass).
 */
export function releasable(
  serving: readonly ServingWorker[],
  want: readonly Set<string>[],
  i: number,
): string[] {
  const w = serving[i]!;
  return [...w.keys].filter((k) => !want[i]!.has(k) && serving.some((o, j) => j !== i && o.keys.has(k)));
}

export interface RebalanceDeps {
  log: Logger;
  /** The slot descriptors by key (held by the master for the server's life). */
  slotFds: ReadonlyMap<string, number>;
  groups: () => SlotGroups;
  /** The current generation's workers (booted or not). */
  current: () => WorkerHandle[];
  count: () => number;
  acceptTimeoutMs: number;
  stopping: () => boolean;
}

export class Rebalancer {
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly deps: RebalanceDeps) {}

  /** Bring every serving worker to its planned slots. Passes run one at a time; a failed pass retries. */
  rebalance(): Promise<void> {
    this.running = this.running
      .then(() => this.pass())
      .catch((err: unknown) => {
        // A worker died or declined mid-pass: the situation changed, so look again shortly.
        logEvent(
          this.deps.log,
          'slots.rebalance.failed',
          { err },
          `rebalancing slots failed, retrying: ${errorMessage(err)}`,
        );
        if (!this.deps.stopping()) setTimeout(() => void this.rebalance(), 50).unref();
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    const { log, slotFds } = this.deps;
    // A stop closes the master's copies of the slots: a pass queued before it must not lend them (the
    // descriptors are gone: sendmsg would fail with EBADF, or send whatever took their numbers since).
    if (this.deps.stopping()) return;
    const serving = this.deps.current().filter((w) => w.serving);
    const plan = planSlots(this.deps.groups(), serving, this.deps.count());
    for (const { key, to } of plan.lent)
      logEvent(log, 'slots.lent', { key, worker: to }, `slot ${key} lent to worker ${to}`);
    await Promise.all(
      serving.map(async (w, i) => {
        const add = [...plan.want[i]!].filter((k) => !w.keys.has(k));
        if (add.length === 0) return;
        w.send(
          { t: 'slots', slots: add.map((key) => ({ key })) },
          add.map((k) => slotFds.get(k)!),
        );
        await w.waitFor('accept on its slots', this.deps.acceptTimeoutMs, (m) => {
          if (m.t === 'accepting' && add.every((k) => w.keys.has(k))) return true;
          if (m.t === 'exit') throw new Error(`worker ${w.index} exited before accepting`);
          if (m.t === 'lost') throw new Error(`worker ${w.index} lost the slots message (descriptor limit?)`);
          if (m.t === 'violation') throw new Error(`worker ${w.index} broke the protocol`);
          if (m.t === 'released' && add.some((k) => m.keys.includes(k))) {
            throw new Error(`worker ${w.index} declined its slots (it is draining)`);
          }
          return undefined;
        });
      }),
    );
    // Only workers still serving count as acceptors for the release decision.
    const still = serving.map((w) => (w.serving ? w : { index: w.index, keys: new Set<string>() }));
    serving.forEach((w, i) => {
      const extra = releasable(still, plan.want, i);
      if (extra.length > 0 && w.serving) w.send({ t: 'release', keys: extra });
    });
  }
}
