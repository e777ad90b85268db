// Draining one server's connections without failing a request (the measurements behind it: index.ts).
// A drain waits for requests only; long-lived connections are ended after their grace with a clean close
// (FIN after pending writes, never a reset); what is left at the deadline is destroyed.
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { finishOnOldCode } from '../app/drain-api.js';
import { type Connections, connectionOf, h2StreamOf, isH2, responseClass, STATE } from './connections.js';
import { dropWrites } from './ended.js';
import { endWebSocket } from './websocket-close.js';

/** What a drain did with long-lived connections, in words (one log line; the same in both modes). */
export function describeLongLived(
  l: Pick<DrainResult, 'asked' | 'closedThemselves' | 'ended'> & { longPolls?: number },
): string {
  const polls =
    (l.longPolls ?? 0) > 0
      ? `; ${l.longPolls} long-poll(s) still open at --switch-timeout, not waited for`
      : '';
  return `${l.asked} long-lived connection(s) asked to close, ${l.closedThemselves} closed themselves, ${l.ended} ended by nserve${polls}`;
}

export interface DrainResult {
  /** Connections that were still open at the deadline and were destroyed. */
  forced: number;
  /** Long-lived connections open when the drain began (they were told to go). */
  asked: number;
  /** Of those, closed before the grace ran out (by the app or the client). */
  closedThemselves: number;
  /** Ended by nserve after the grace, with a clean close. */
  ended: number;
  /** Long-polls still open at --switch-timeout: left to finish on old code, or ended. */
  longPolls: number;
}

/**
 * What a drain does with long-polls still open after `afterMs`: `finish-on-old` stops waiting for them
 * (a cluster hot restart switches; they complete on the old worker), `end` ends their connections, so
 * the client polls again (single mode, where no old process stays; stops).
 */
export interface LongPollPolicy {
  afterMs: number;
  /** What becomes of them then. */
  after: 'finish-on-old' | 'end';
  /** finish-on-old: how long they may still be answered on old code before their connection ends. */
  finishMs?: number;
}

/**
 * Wait for `live` to empty, from `started`: close connections idle past `drainGraceMs`, end long-lived
 * ones (`asked` of them were told to go) after `longLivedGraceMs`, and destroy whatever is left at
 * `started + timeoutMs`.
 *
 * Long on purpose: one timer loop whose deadlines (idle, long-lived, long-poll, timeout) read each
 * other's state; split apart, the order in which they fire would be spread over several functions.
 */
export function drainConnections(
  live: Connections,
  o: {
    started: number;
    timeoutMs: number;
    longLivedGraceMs: number;
    drainGraceMs: number;
    asked: number;
    longPolls?: LongPollPolicy | undefined;
  },
): Promise<DrainResult> {
  const { started, longLivedGraceMs, drainGraceMs, asked } = o;
  const deadline = started + o.timeoutMs;
  const ended = new Set<Socket | http.ServerResponse>();
  let endedCount = 0;
  let longPolls = 0;
  return new Promise<DrainResult>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (forced: number): void => {
      clearInterval(timer);
      live.onClosed = undefined;
      resolve({
        forced,
        asked,
        ended: endedCount,
        closedThemselves: Math.max(0, asked - endedCount),
        longPolls,
      });
    };
    // Past --switch-timeout, long-polls stop holding the drain (without a policy they are requests).
    const switchLongPolls = (): void => {
      for (const res of live.responses()) {
        if (responseClass(res) !== 'long-poll' || ended.has(res)) continue;
        longPolls++;
        ended.add(res);
        if (o.longPolls?.after === 'finish-on-old') {
          // No longer holds the drain: it may still be answered on old code, for `finishMs` (a
          // long-lived connection's grace). Past that its session has no future here (its next poll
          // reaches new code), so it ends and the client reconnects at once.
          finishOnOldCode(res);
          setTimeout(() => endLongPoll(res), o.longPolls.finishMs ?? 0).unref();
          continue;
        }
        // It ends: the client's poll fails and it polls again, reconnecting. Never answered here: the
        // app still holds the response and would write to it (engine.io does).
        endLongPoll(res);
      }
    };
    const blocking = (): Set<Socket> => {
      const out = new Set<Socket>();
      for (const res of live.responses()) {
        const cls = responseClass(res);
        const sock = connectionOf(res);
        if ((cls === 'request' || cls === 'long-poll') && sock !== null) out.add(sock);
        else if (cls === 'long-lived' && !ended.has(res) && sock !== null) out.add(sock);
      }
      for (const raw of live.handshakes.keys()) out.add(raw);
      for (const sock of live.conns) {
        const st = sock[STATE];
        if (st === undefined) continue;
        if (ended.has(sock)) continue;
        // An HTTP/2 connection is waited for until it closes: its session (told GOAWAY by beginDraining)
        // closes it once its streams are done, after flushing their last frames (an ended event stream's
        // END_STREAM). Exiting before would reset it, and every stream still on it.
        if (st.upgraded || st.active === 0 || isH2(sock)) out.add(sock);
      }
      return out;
    };
    const endLongLived = (): void => {
      for (const res of live.responses()) {
        if (responseClass(res) !== 'long-lived' || ended.has(res)) continue;
        ended.add(res);
        endedCount++;
        const stream = h2StreamOf(res);
        if (stream !== undefined) {
          // HTTP/2: end this stream only (END_STREAM). Its connection carries the session's other
          // streams, requests among them; the GOAWAY of beginDraining closes it once they are done.
          endForApp(res);
          setTimeout(() => {
            if (!stream.closed) stream.close(); // RST_STREAM(NO_ERROR): the response was complete
          }, 2000).unref();
          continue;
        }
        // The stream's last chunk, then FIN: the client sees the stream end and reconnects.
        const sock = connectionOf(res);
        endForApp(res, () => sock?.end());
        if (sock !== null) {
          ended.add(sock);
          setTimeout(() => sock.destroy(), 2000).unref();
        }
      }
      for (const sock of live.conns) {
        if (sock[STATE]?.upgraded !== true || ended.has(sock)) continue;
        ended.add(sock);
        endedCount++;
        // A WebSocket gets a 1012 close frame first (websocket-close.ts); then FIN, never a reset.
        endWebSocket(sock, sock[STATE]?.ws);
        setTimeout(() => sock.destroy(), 2000).unref();
      }
    };
    // Event-driven: the drain ends the moment the last blocking connection closes (every millisecond
    // of a cluster hot restart's hand-over is a pause for clients); the timer enforces the graces and
    // the deadline.
    const tick = (): void => {
      const now = Date.now();
      if (o.longPolls !== undefined && now - started >= o.longPolls.afterMs) switchLongPolls();
      if (now - started >= longLivedGraceMs) endLongLived();
      for (const sock of live.conns) {
        const st = sock[STATE];
        if (st !== undefined && !st.upgraded && st.active === 0 && now - st.idleSince >= drainGraceMs)
          sock.destroy();
      }
      // A handshake not done within the drain grace is a client that will not send a request.
      for (const [raw, since] of live.handshakes) if (now - since >= drainGraceMs) raw.destroy();
      const left = blocking();
      if (left.size === 0) {
        finish(0);
      } else if (now >= deadline) {
        for (const sock of left) sock.destroy();
        finish(left.size);
      }
    };
    live.onClosed = () => {
      if (blocking().size === 0) finish(0);
    };
    timer = setInterval(tick, 20);
    tick();
  });
}

/** End a response the app still holds (a long-lived one, past its grace); `then` once it is flushed. */
function endForApp(res: http.ServerResponse, then?: () => void): void {
  // `then` on 'finish', not as end's argument: a middleware's wrapper of res.end may take it for a chunk.
  if (then !== undefined) res.once('finish', then);
  res.end();
  dropWrites(res);
}

/**
 * End a long-poll that is still open: its HTTP/2 stream alone (the connection carries other streams,
 * requests among them: the session's GOAWAY closes it once they are done), or its HTTP/1 connection
 * (FIN after the pending writes, destroyed if the peer does not close within a second).
 */
function endLongPoll(res: http.ServerResponse): void {
  if (res.writableFinished) return;
  const stream = h2StreamOf(res);
  if (stream !== undefined) {
    if (!stream.closed) stream.close(0x8); // RST_STREAM(CANCEL): the poll gets no answer, only this one
    return;
  }
  const sock = connectionOf(res);
  if (sock === null || sock.destroyed) return;
  sock.end();
  setTimeout(() => sock.destroy(), 1000).unref();
}

/**
 * Wait (at most `graceMs`) until no long-lived connection is open, while still serving: the app was
 * told to close them; clients that reconnect meanwhile reach this process again.
 */
export async function waitLongLived(live: Connections, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (live.longLivedOpen() > 0 && Date.now() < deadline) await sleep(20);
}

/** After the drain: wait (bounded) for responses marked "finish on old code"; destroy what is left. */
export async function finishOnOld(live: Connections, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const pending = (): http.ServerResponse[] =>
    live.responses().filter((r) => responseClass(r) === 'finish-on-old');
  while (pending().length > 0 && Date.now() < deadline) await sleep(50);
  const left = pending();
  for (const r of left) r.destroy();
  return left.length;
}
