// The master's metrics requests to one worker: one at a time, answered in chunks (`metrics` parts) that
// must come in order and only when asked; a late answer (its deadline passed) is dropped.
import { parseWorkerReply, type WorkerReply } from '../metrics/json.js';
import type { FromWorker } from './protocol.js';

type MetricsPart = Extract<FromWorker, { t: 'metrics' }>;

export class MetricsScrape {
  /**
   * The last metrics request id sent (the one being answered, if any). Ids start from the clock, so a late
   * answer to the previous master image (across a hot restart's exec) is older than any id of this one.
   */
  private lastId = Date.now();
  private ask:
    | { id: number; parts: string[]; expected: number; done: (reply: WorkerReply | undefined) => void }
    | undefined;

  /** A request is waiting for its answer. */
  get busy(): boolean {
    return this.ask !== undefined;
  }

  /** `id` is the request being answered now. */
  answering(id: number): boolean {
    return this.ask?.id === id;
  }

  /**
   * Send a request (`send(id)`); resolves with the checked reply, or undefined when it did not come whole
   * within `timeoutMs` (or the scrape was cancelled).
   */
  request(timeoutMs: number, send: (id: number) => void): Promise<WorkerReply | undefined> {
    const id = ++this.lastId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const finish = (reply: WorkerReply | undefined): void => {
        clearTimeout(timer);
        if (this.ask?.id === id) this.ask = undefined;
        resolve(reply);
      };
      this.ask = { id, parts: [], expected: 0, done: finish };
      send(id);
    });
  }

  /** Why this part cannot come from an honest worker, if it cannot. */
  outOfOrder(msg: MetricsPart): string | undefined {
    const ask = this.ask;
    if (ask?.id === msg.id) {
      return msg.part === ask.parts.length && (ask.expected === 0 || msg.parts === ask.expected)
        ? undefined
        : `metrics part ${msg.part}/${msg.parts} out of order`;
    }
    // A late answer to a request whose deadline passed is dropped; one never asked for is a violation.
    return msg.id > 0 && msg.id <= this.lastId ? undefined : 'metrics it was never asked for';
  }

  /** One part of the answer; returns a protocol violation when the whole answer does not parse. */
  onPart(msg: MetricsPart): string | undefined {
    const ask = this.ask;
    if (ask === undefined || ask.id !== msg.id) return undefined; // late: its scrape went on without it
    ask.expected = msg.parts;
    ask.parts.push(msg.text);
    if (ask.parts.length < ask.expected) return undefined;
    const reply = parseWorkerReply(ask.parts.join(''));
    if (typeof reply === 'string') {
      ask.done(undefined);
      return reply;
    }
    ask.done(reply);
    return undefined;
  }

  /** The worker is gone: the waiting request resolves with nothing. */
  cancel(): void {
    this.ask?.done(undefined);
  }
}
