// A restart ends WebSockets with a close frame, 1012 ("service restart"), not a bare FIN.
//
// A client whose connection ends without a close frame sees 1006 (abnormal closure), which reconnecting
// clients treat as a crash. nserve knows which connections are WebSockets (an `Upgrade: websocket`
// request answered 101), and at the end of a drain's grace it writes the close frame itself, unless the
// app sent one first (the drain API: onDrain(() => ws.close(1012))).
//
// It must write only between whole frames, never inside one the app is writing: the app's outgoing bytes
// are followed frame by frame (RFC 6455 §5.2: 2–14 bytes of header, then the payload), which also tells
// whether the app already sent a close frame (opcode 0x8). After ours, nothing the app writes is sent (an
// endpoint sends nothing after its close frame); the FIN follows the client's answer, or a short timeout.
import type { Socket } from 'node:net';
import { dropWrites } from './ended.js';

const OP_CLOSE = 0x8;
/** 1012: the server is restarting; clients reconnect (RFC 6455 registry). */
export const CLOSE_SERVICE_RESTART = 1012;
/** How long the client has to answer our close frame before the FIN. */
const CLOSE_ANSWER_MS = 1000;
/** An HTTP response head longer than this is not one we follow. */
const MAX_HEAD = 16 * 1024;

type Phase = 'head' | 'header' | 'payload' | 'unknown';

/** What nserve knows of the frames an app has written on one upgraded connection. */
export class WebSocketWatch {
  private phase: Phase = 'head';
  private head = '';
  private header: number[] = [];
  private payloadLeft = 0;
  /** The app answered the upgrade with 101: from then on the bytes are frames. */
  accepted = false;
  /** The app sent a close frame (its own close handshake is under way). */
  closeSent = false;
  /** nserve sent its close frame: what the app writes from now on is dropped. */
  closedByUs = false;

  /** Between whole frames, in a stream we can follow. */
  get atFrameBoundary(): boolean {
    return this.accepted && this.phase === 'header' && this.header.length === 0;
  }

  /** Follow `bytes`, written by the app, in order. */
  follow(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && this.phase !== 'unknown') {
      if (this.phase === 'head') {
        const text = Buffer.from(bytes.subarray(i)).toString('latin1');
        const end = (this.head + text).indexOf('\r\n\r\n');
        if (end === -1) {
          this.head += text;
          if (this.head.length > MAX_HEAD) this.phase = 'unknown';
          return;
        }
        const consumed = end + 4 - this.head.length;
        const status = (this.head + text).slice(0, end);
        this.accepted = /^HTTP\/1\.[01] 101 /.test(status);
        this.phase = this.accepted ? 'header' : 'unknown';
        this.head = '';
        i += consumed;
      } else if (this.phase === 'header') {
        this.header.push(bytes[i++]!);
        const need = this.headerLength();
        if (need !== undefined && this.header.length === need) this.startPayload();
      } else {
        const take = Math.min(this.payloadLeft, bytes.length - i);
        this.payloadLeft -= take;
        i += take;
        if (this.payloadLeft === 0) this.phase = 'header';
      }
    }
  }

  /** The header's full length once its first bytes are known. */
  private headerLength(): number | undefined {
    const h = this.header;
    if (h.length < 2) return undefined;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
  }

  private startPayload(): void {
    const h = this.header;
    const len7 = h[1]! & 0x7f;
    let len = len7;
    if (len7 === 126) len = (h[2]! << 8) | h[3]!;
    else if (len7 === 127) {
      len = 0;
      for (let k = 2; k < 10; k++) len = len * 256 + h[k]!;
    }
    if ((h[0]! & 0x0f) === OP_CLOSE) this.closeSent = true;
    this.header = [];
    this.payloadLeft = len;
    this.phase = len === 0 ? 'header' : 'payload';
  }
}

/** Follow the app's writes on an upgraded socket (installed when the upgrade arrives). */
export function watchWebSocket(sock: Socket): WebSocketWatch {
  const watch = new WebSocketWatch();
  const write = sock.write;
  sock.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (watch.closedByUs) {
      // Nothing after our close frame; the callback still runs, as for a write that went out.
      const cb = rest.find((a): a is () => void => typeof a === 'function');
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    const encoding = typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8';
    if (typeof chunk === 'string') watch.follow(Buffer.from(chunk, encoding));
    else if (chunk instanceof Uint8Array) watch.follow(chunk);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Socket['write'];
  // end(data) bypasses write (Writable calls _write): after the upgrade nothing ends a socket with data
  // but ws's close path, whose close frame went out through write first.
  return watch;
}

/** A server's close frame (unmasked): 1012 and no reason. */
function closeFrame(code: number): Buffer {
  return Buffer.from([0x80 | OP_CLOSE, 2, code >> 8, code & 0xff]);
}

/**
 * End an upgraded connection at the end of a drain's grace: a 1012 close frame first when the app is
 * between frames and has not closed it itself, then the FIN once the client answered (or after a
 * second). Returns whether a close frame was written.
 */
export function endWebSocket(sock: Socket, watch: WebSocketWatch | undefined): boolean {
  if (watch === undefined || watch.closeSent || !watch.atFrameBoundary || !sock.writable) {
    sock.end(); // FIN after the pending writes; never a reset with unread data
    dropWrites(sock);
    return false;
  }
  sock.write(closeFrame(CLOSE_SERVICE_RESTART));
  watch.closedByUs = true;
  const fin = (): void => {
    clearTimeout(timer);
    sock.end();
  };
  // The client's close frame (or anything it still had in flight) arrives as data: FIN then.
  sock.once('data', fin);
  const timer = setTimeout(fin, CLOSE_ANSWER_MS);
  timer.unref();
  return true;
}
