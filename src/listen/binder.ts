// Bind URIs ⇄ listening sockets, and adopting the listening sockets handed over across a hot restart
// (restart/handoff.ts describes the hand-off). The new image adopts every handed socket whose URI and
// slot it still binds (setting close-on-exec again), binds anything new, and closes the leftovers once
// it has booted. Parsing the URIs themselves is bind-uri.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorCode, errorMessage, usageError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import type { HandedListener } from '../restart/handoff.js';
import { type BindSpec, formatAddress, parseBindUri } from './bind-uri.js';

export {
  BALANCES,
  type Balance,
  type BindSpec,
  formatAddress,
  parseBindUri,
} from './bind-uri.js';

import { logEvent } from '../log/events.js';

export interface Listener {
  spec: BindSpec;
  /** Index of this socket among the reuseport slots of its bind (always 0 for unix binds). */
  slot: number;
  fd: number;
  address: native.SocketAddress;
  inherited: boolean;
  /** Handed over by systemd socket activation: one socket shared by all workers, never unlinked. */
  activated: boolean;
}

export interface InheritedFd extends HandedListener {
  /** LISTEN_FDNAMES entry, for socket-activated descriptors. */
  name?: string;
}

/** The listeners as the hand-off describes them to the next image. */
export function handedListeners(listeners: readonly Listener[]): HandedListener[] {
  return listeners.map((l) => ({ fd: l.fd, slot: l.slot, uri: l.spec.uri, activated: l.activated }));
}

export interface OpenOptions {
  /** Reuseport slot sockets per TCP bind (1 in single mode). */
  slots: number;
  reusePort: boolean;
  backlog: number;
  inherited: readonly InheritedFd[];
}

export interface OpenResult {
  listeners: Listener[];
  /** Inherited descriptors no bind asked for: close them once the new code serves. */
  leftovers: InheritedFd[];
}

/**
 * systemd socket activation: when LISTEN_PID is this process, descriptors 3 … 3+LISTEN_FDS-1 are
 * listening sockets (named by LISTEN_FDNAMES). Like sd_listen_fds(unset_environment=1), the variables
 * are consumed here (the caller removes them from the environment) so that neither workers nor a
 * re-exec'd image adopt them a second time; across a hot restart they travel in the hand-off.
 */
export function readSocketActivation(env: NodeJS.ProcessEnv, pid = process.pid): InheritedFd[] {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return [];
  const count = Number(env.LISTEN_FDS ?? 0);
  if (!Number.isInteger(count) || count <= 0) return [];
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  const out: InheritedFd[] = [];
  for (let i = 0; i < count; i++) {
    const fd = 3 + i;
    const uri = formatAddress(native.localAddress(fd));
    const name = names[i];
    out.push({ fd, slot: 0, uri, activated: true, ...(name === undefined || name === '' ? {} : { name }) });
  }
  return out;
}

function sameAddress(spec: BindSpec, uri: string): boolean {
  if (spec.uri === uri) return true;
  if (spec.kind === 'unix') return uri === `unix://${spec.path}`;
  return (
    formatAddress(
      spec.family === 'tcp6'
        ? { family: 'IPv6', address: spec.host, port: spec.port }
        : { family: 'IPv4', address: spec.host, port: spec.port },
    ) === uri
  );
}

export function openListeners(specs: readonly BindSpec[], options: OpenOptions): OpenResult {
  const pool = new Map(options.inherited.map((i) => [`${i.slot}:${i.uri}`, i]));
  const listeners: Listener[] = [];
  // Activated sockets that no bind names are served too (as Puma does), each as a bind of its own.
  const allSpecs = [...specs];
  for (const a of options.inherited) {
    if (a.activated && !specs.some((s) => sameAddress(s, a.uri))) allSpecs.push(parseBindUri(a.uri));
  }
  const pinned = allSpecs.find((s) => s.kind === 'tcp' && s.balance === 'ip-hash');
  const activatedSocket = options.inherited.find((i) => i.activated);
  if (pinned !== undefined && activatedSocket !== undefined) {
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid --balance ip-hash: ${activatedSocket.uri} is a socket-activated socket shared by all workers; ip-hash balances the reuseport slots nserve binds itself (drop the systemd .socket unit or --balance)`,
    );
  }
  try {
    for (const spec of allSpecs) {
      // A socket systemd made cannot be split into reuseport slots: it is shared by all workers.
      const activated = options.inherited.find((i) => i.activated && sameAddress(spec, i.uri));
      if (activated !== undefined) {
        pool.delete(`${activated.slot}:${activated.uri}`);
        native.setCloexec(activated.fd, true);
        listeners.push({
          spec,
          slot: 0,
          fd: activated.fd,
          address: native.localAddress(activated.fd),
          inherited: true,
          activated: true,
        });
        continue;
      }
      const slots = spec.kind === 'tcp' ? options.slots : 1;
      let port = spec.kind === 'tcp' ? spec.port : 0;
      for (let slot = 0; slot < slots; slot++) {
        const key = `${slot}:${spec.uri}`;
        const inherited = pool.get(key);
        let fd: number;
        if (inherited !== undefined) {
          pool.delete(key);
          fd = inherited.fd;
          // Adopted: from now on it must not leak into anything we exec, until we decide so again.
          native.setCloexec(fd, true);
        } else {
          // SO_REUSEPORT would let this server silently join a port another server (say a second
          // nserve started by mistake) already listens on, and both would serve it: make sure the
          // address is free first, with a plain bind that fails on any listener.
          if (slot === 0 && options.reusePort && spec.kind === 'tcp' && port !== 0) {
            native.close(bindOne(spec, port, { ...options, reusePort: false, backlog: 1 }));
          }
          fd = bindOne(spec, port, options);
        }
        const address = native.localAddress(fd);
        // With port 0, the first slot picks the port and the others join it.
        if (address.family !== 'unix') port = address.port;
        listeners.push({ spec, slot, fd, address, inherited: inherited !== undefined, activated: false });
      }
      if (spec.kind === 'tcp' && options.reusePort) balanceGroup(spec, listeners.slice(-slots));
    }
  } catch (err) {
    for (const l of listeners) if (!l.inherited) native.close(l.fd);
    throw err;
  }
  return { listeners, leftovers: [...pool.values()] };
}

/**
 * Sets how the kernel picks a slot of one TCP bind for a new connection, once all its slots are bound.
 * ip-hash: a program on the reuseport group that hashes the client address modulo the number of slots,
 * read as the index of a socket in the order they joined the group (slot order: slots are bound in
 * order, and a hot restart keeps them open and binds only new ones, after the others). That order holds
 * because the master closes a slot only at shutdown. kernel: the kernel's own hash; a program that the
 * image before a hot restart attached is detached.
 */
function balanceGroup(spec: BindSpec & { kind: 'tcp' }, slots: readonly Listener[]): void {
  const first = slots[0];
  if (first === undefined) return;
  if (spec.balance !== 'ip-hash') {
    if (!slots.some((l) => l.inherited)) return;
    try {
      native.detachReuseportBpf(first.fd);
    } catch {
      // Linux < 5.3 cannot detach (ENOPROTOOPT), and could not have attached one there either before
      // 4.5: a program left in place only keeps clients where they were.
    }
    return;
  }
  try {
    native.attachReuseportCbpf(first.fd, slots.length);
  } catch (err) {
    throw usageError(
      'ERR_NSERVE_BIND',
      `cannot set --balance ip-hash on ${spec.uri}: ${errorMessage(err)} (SO_ATTACH_REUSEPORT_CBPF needs Linux 4.5)`,
      err,
    );
  }
}

function bindOne(spec: BindSpec, port: number, options: OpenOptions): number {
  try {
    if (spec.kind === 'unix') {
      const fd = native.listen({
        family: 'unix',
        path: spec.path,
        mode: spec.mode,
        backlog: options.backlog,
      });
      try {
        const st = fs.lstatSync(spec.path);
        created.set(spec.path, { dev: st.dev, ino: st.ino });
      } catch {
        // removed at once by someone else: nothing of ours to remove later
      }
      return fd;
    }
    return native.listen({
      family: spec.family,
      host: spec.host,
      port,
      reusePort: options.reusePort,
      backlog: options.backlog,
    });
  } catch (err) {
    if (errorCode(err) === 'EADDRINUSE' && spec.kind === 'unix' && !isSocket(spec.path)) {
      throw usageError(
        'ERR_NSERVE_BIND',
        `cannot bind ${spec.uri}: ${spec.path} exists and is not a socket: remove it or choose another --bind`,
        err,
      );
    }
    if (errorCode(err) === 'EADDRINUSE') {
      throw usageError(
        'ERR_NSERVE_ADDRESS_IN_USE',
        `address already in use: ${spec.uri} (another process is listening there; stop it or choose another --bind)`,
        err,
      );
    }
    if (errorCode(err) === 'ENOENT' && spec.kind === 'unix')
      throw usageError(
        'ERR_NSERVE_BIND',
        `cannot bind ${spec.uri}: the directory ${path.dirname(spec.path)} does not exist`,
        err,
      );
    throw usageError('ERR_NSERVE_BIND', `cannot bind ${spec.uri}: ${errorMessage(err)}`, err);
  }
}

/**
 * Before a hot restart's exec: can the new image bind what the current one does not hold? The new image
 * binds after the exec, where a failure would find no old image to come back to (the way back reads the
 * same config, and fails the same way). It adopts a handed-over socket only under the same bind URI
 * (socket activation: by address), so an address the server holds under another URI (`localhost` for
 * `127.0.0.1`, a unix socket's `?mode=`, an ssl:// bind's certificate) is refused here, with what to keep.
 * Throws the error the new image would.
 */
export function probeNewBinds(specs: readonly BindSpec[], current: readonly Listener[]): void {
  for (const spec of specs) {
    if (current.some((l) => l.spec.uri === spec.uri)) continue;
    const held = current.find((l) => sameAddress(spec, formatAddress(l.address)));
    if (held?.activated) continue;
    if (held !== undefined)
      throw usageError(
        'ERR_NSERVE_BIND',
        `cannot bind ${spec.uri}: the server holds that address as ${held.spec.uri}, and a restarted image adopts a socket only under the same bind URI: keep ${held.spec.uri}, or stop and start the server`,
      );
    probeAddress(spec);
  }
}

/**
 * Could this process bind `spec` now (nothing of ours holds it)? It is bound and closed at once, as the
 * new image would bind it (no client expects it yet): a TCP address (port 0: any free port will do), or
 * a unix socket, whose file is then removed (a stale one from a dead server is removed, as a bind would;
 * one another process listens on, or a file of another kind, is refused). Throws the error a bind would.
 */
export function probeAddress(spec: BindSpec): void {
  if (spec.kind === 'tcp' && spec.port === 0) return;
  const port = spec.kind === 'tcp' ? spec.port : 0;
  native.close(bindOne(spec, port, { slots: 1, reusePort: false, backlog: 1, inherited: [] }));
  unlinkSocket(spec);
}

/** Nothing at `file`, or a socket (stale or live: the bind says which). */
function isSocket(file: string): boolean {
  try {
    return fs.lstatSync(file).isSocket();
  } catch {
    return true; // nothing there (or gone meanwhile: the bind says what the kernel said)
  }
}

/** The TCP ports actually bound (first one first). */
export function tcpPorts(listeners: readonly Listener[]): number[] {
  return [...new Set(listeners.flatMap((l) => (l.address.family === 'unix' ? [] : [l.address.port])))];
}

/** Say which sockets came from systemd, and which of those no bind asked for. */
export function logActivated(listeners: readonly Listener[], log: Logger): void {
  for (const l of listeners) {
    if (!l.activated || l.inherited === false) continue;
    logEvent(
      log,
      'listen.socket.activated',
      { fd: l.fd, address: formatAddress(l.address), bind: l.spec.uri },
      `serving socket-activated descriptor ${l.fd} (${formatAddress(l.address)})`,
    );
  }
}

/** Close inherited descriptors that the current configuration no longer binds (and remove their socket files). */
export function closeLeftovers(leftovers: readonly InheritedFd[]): void {
  for (const l of leftovers) {
    try {
      native.close(l.fd);
    } catch {
      // already gone: nothing to leak
    }
    if (!l.activated && l.uri.startsWith('unix://')) unlinkSocket(parseBindUri(l.uri));
  }
}

/** Socket files this process created, by path: removed only while they are still the same file. */
const created = new Map<string, { dev: number; ino: number }>();

function unlinkSocket(spec: BindSpec): void {
  if (spec.kind !== 'unix') return;
  try {
    const st = fs.lstatSync(spec.path);
    const ours = created.get(spec.path);
    // Another server may have bound the path since (a newer nserve): never delete its socket.
    if (ours !== undefined && (st.dev !== ours.dev || st.ino !== ours.ino)) return;
    fs.unlinkSync(spec.path);
  } catch {
    // already removed
  }
}

/** Final shutdown: close every listener and remove unix socket files. */
export function closeListeners(listeners: readonly Listener[], options: { unlink: boolean }): void {
  for (const l of listeners) {
    try {
      native.close(l.fd);
    } catch {
      // ignore: closing is best-effort at exit
    }
  }
  if (options.unlink) removeSocketFiles(listeners);
}

/** Remove the socket files of unix binds (once nothing serves them any more). */
export function removeSocketFiles(listeners: readonly Listener[]): void {
  // A socket-activated unix socket belongs to systemd: never unlink it.
  for (const spec of new Set(listeners.filter((l) => !l.activated).map((l) => l.spec))) unlinkSocket(spec);
}
