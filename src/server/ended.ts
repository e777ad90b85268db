// What the app still holds after nserve ended it at a drain (a long-lived response, an upgraded socket).

/**
 * From now on, the app's writes and ends on `stream` are dropped, never an error. The app cannot know
 * nserve ended it, and its next write (an event stream's timer, a raw upgrade's ticks) would otherwise
 * be one: an uncaught ERR_STREAM_WRITE_AFTER_END (an HTTP/1 response; a socket, whose 'error' listener
 * Node's server removed at the upgrade), taking the process down with every request in flight, or a
 * RST_STREAM(INTERNAL_ERROR) in place of an HTTP/2 stream's END_STREAM. Callbacks still run; a write
 * returns false, as one after an end does.
 */
export function dropWrites(stream: NodeJS.EventEmitter & { write: unknown; end: unknown }): void {
  // What still fails on it is nserve's doing, not the app's to handle: a socket's write after the peer's
  // FIN (Node swaps in its own write then), a reset while the end is flushed.
  stream.on('error', () => {});
  const dropped = (...args: unknown[]): boolean => {
    const cb = args.at(-1);
    if (typeof cb === 'function') process.nextTick(cb as () => void);
    return false;
  };
  stream.write = dropped;
  stream.end = (...args: unknown[]) => {
    dropped(...args);
    return stream;
  };
}
