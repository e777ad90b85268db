// The standby side of --standby: a worker process started before it is needed. Node and nserve's worker
// path (the worker loop, the HTTP server, pino) are loaded while it waits; the master's `wake` names the
// worker index, generation and release, and from then on it boots as any worker does: it reads the
// config of that release, then loads the app. What a restart's new worker would spend before the app's
// first line (Node's start, nserve's modules: ~100 ms of CPU, several times that on busy cores) is spent
// ahead of the restart.
//
// The master takes a standby only when it runs the nserve code on disk now (codeStamp): after nserve
// itself was upgraded in place, the standbys started before are discarded, never woken.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as native from '../native/index.js';
import { setProcessTitle } from '../os/title.js';
import { PROTOCOL_VERSION, workerEnv } from '../restart/handoff.js';
import { VERSION } from '../version.js';

/** A standby's first and only message before its wake: ready, running this code. */
export interface StandbyHello {
  t: 'standby';
  stamp: string;
}

/** The master's one message to a standby: become this worker. */
export interface StandbyWake {
  t: 'wake';
  index: number;
  generation: number;
  directory: string;
  protocol: number;
}

/** The modules whose files say which nserve code a process runs (their mtimes change with an install). */
const STAMPED = ['./worker.js', './standby-wake.js', '../cli/start.js', '../restart/handoff.js'];

/** Which nserve code is on disk: the version, the protocol and the mtimes of the worker path's files. */
export function codeStamp(): string {
  const mtimes = STAMPED.map((f) => {
    try {
      return String(fs.statSync(fileURLToPath(new URL(f, import.meta.url))).mtimeMs);
    } catch {
      return '-';
    }
  });
  return [VERSION, PROTOCOL_VERSION, ...mtimes].join(':');
}

export function isStandbyHello(v: unknown): v is StandbyHello {
  const m = v as Partial<StandbyHello> | null;
  return typeof m === 'object' && m !== null && m.t === 'standby' && typeof m.stamp === 'string';
}

function isWake(v: unknown): v is StandbyWake {
  const m = v as Partial<StandbyWake> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.t === 'wake' &&
    Number.isSafeInteger(m.index) &&
    (m.index ?? -1) >= 0 &&
    Number.isSafeInteger(m.generation) &&
    typeof m.directory === 'string' &&
    m.directory !== '' &&
    m.protocol === PROTOCOL_VERSION
  );
}

function leave(code: number, why?: string): never {
  if (why !== undefined) process.stderr.write(`nserve: standby worker ${process.pid}: ${why}\n`);
  process.exit(code);
}

/**
 * Wait on channel `fd` for the master's wake, with the worker path loaded meanwhile. Returns the worker
 * environment a spawned worker would have had (also set in process.env, where a fresh worker's app finds
 * it). The master gone, or a stop signal, ends the process: it holds nothing.
 */
export async function awaitWake(fd: number): Promise<Record<string, string>> {
  native.setCloexec(fd, true);
  const stop = (): never => leave(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // What every worker loads before it serves, loaded now: after the wake, the module cache has it.
  await Promise.all([import('./worker.js'), import('../server/index.js'), import('../server/drain.js')]);
  createRequire(import.meta.url)('pino');
  try {
    native.sendFds(fd, [], JSON.stringify({ t: 'standby', stamp: codeStamp() } satisfies StandbyHello));
  } catch {
    leave(0);
  }
  // Titled once ready: `ps` shows a standby that can be woken now.
  setProcessTitle({ role: 'standby' });
  const wake = await new Promise<StandbyWake>((resolve) => {
    const watcher = native.watchReadable(fd, (readable, hangup, error) => {
      let got: { data: Buffer; fds: number[] } | null = null;
      if (readable || hangup || error !== null) {
        try {
          got = native.recvFds(fd);
        } catch {
          leave(0);
        }
      }
      if (got === null) {
        if (hangup || error !== null) leave(0);
        return;
      }
      for (const f of got.fds) native.close(f);
      // End of file: the master is gone.
      if (got.data.length === 0) leave(0);
      let msg: unknown;
      try {
        msg = JSON.parse(got.data.toString('utf8'));
      } catch {
        msg = undefined;
      }
      if (!isWake(msg)) leave(1, `unexpected message from the master: ${got.data.toString('utf8', 0, 200)}`);
      watcher.stop();
      resolve(msg);
    });
  });
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  const env = workerEnv({
    index: wake.index,
    generation: wake.generation,
    directory: wake.directory,
    channelFd: fd,
  });
  Object.assign(process.env, env);
  return env;
}
