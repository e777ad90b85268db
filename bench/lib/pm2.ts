// PM2 through its programmatic API, with a private PM2_HOME in a temp dir (never the user's ~/.pm2).
// The API is used rather than the CLI so that a reload is timed from the request to the daemon, without
// the ~0.3-0.5 s the `pm2` CLI takes to start on this machine; the CLI equivalents are
// `pm2 start ecosystem.config.cjs`, `pm2 reload NAME`, `pm2 restart NAME`, `pm2 kill`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childPids, killGroup, onCleanup, sleep, tmpDir, trackGroup, untrackGroup } from './proc.js';
import { benchRequire } from './setup.js';

interface Pm2Api {
  connect(cb: (err: Error | null) => void): void;
  start(file: string, cb: (err: Error | null, procs?: unknown) => void): void;
  reload(name: string, opts: Record<string, unknown>, cb: (err: Error | null) => void): void;
  restart(name: string, opts: Record<string, unknown>, cb: (err: Error | null) => void): void;
  delete(name: string, cb: (err: Error | null) => void): void;
  killDaemon(cb: (err: Error | null) => void): void;
  disconnect(cb?: () => void): void;
}

type Pm2Module = { custom: new (opts: { pm2_home: string }) => Pm2Api };

export interface Pm2App {
  name: string;
  script: string;
  instances: number;
  waitReady: boolean;
  env: Record<string, string>;
}

let api: Pm2Api | undefined;
let home: string | undefined;
let daemonPid: number | undefined;

function call(fn: (cb: (err: Error | null) => void) => void, what: string, timeoutMs = 60000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pm2 ${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
    fn((err) => {
      clearTimeout(timer);
      if (err) reject(err instanceof Error ? err : new Error(`pm2 ${what}: ${JSON.stringify(err)}`));
      else resolve();
    });
  });
}

/** Connects (starting the private daemon on first use). */
export async function pm2(): Promise<Pm2Api> {
  if (api) return api;
  home = tmpDir('nserve-bench-pm2-');
  process.env.PM2_HOME = home; // read by pm2's constants at require time, and by the daemon
  process.env.PM2_SILENT = 'true';
  const mod = benchRequire('pm2') as Pm2Module;
  const a = new mod.custom({ pm2_home: home });
  onCleanup(killPm2Sync);
  await call((cb) => a.connect(cb), 'connect');
  daemonPid = Number(fs.readFileSync(path.join(home, 'pm2.pid'), 'utf8').trim());
  // The daemon is started detached: it leads its own process group, and cluster workers are in it.
  trackGroup(daemonPid);
  api = a;
  return a;
}

export function pm2DaemonPid(): number | undefined {
  return daemonPid;
}

function killPm2Sync(): void {
  if (daemonPid !== undefined) killGroup(daemonPid);
}

export async function startApp(app: Pm2App): Promise<string> {
  const a = await pm2();
  const file = path.join(home!, `${app.name}.config.cjs`);
  const config = {
    apps: [
      {
        name: app.name,
        script: app.script,
        exec_mode: 'cluster',
        instances: app.instances,
        // PM2's documented graceful start: wait for process.send('ready'), up to listen_timeout.
        ...(app.waitReady ? { wait_ready: true, listen_timeout: 10000 } : {}),
        autorestart: true,
        env: app.env,
        out_file: '/dev/null',
        error_file: path.join(home!, `${app.name}.err.log`),
        merge_logs: true,
      },
    ],
  };
  fs.writeFileSync(file, `module.exports = ${JSON.stringify(config, null, 2)};\n`);
  await call((cb) => a.start(file, cb), `start ${app.name}`);
  return app.name;
}

export async function reload(name: string): Promise<void> {
  const a = await pm2();
  await call((cb) => a.reload(name, { updateEnv: false }, cb), `reload ${name}`);
}

export async function restart(name: string): Promise<void> {
  const a = await pm2();
  await call((cb) => a.restart(name, {}, cb), `restart ${name}`);
}

export async function deleteApp(name: string): Promise<void> {
  const a = await pm2();
  await call((cb) => a.delete(name, cb), `delete ${name}`, 20000).catch(() => undefined);
}

/** The daemon's live children: the app's workers (PM2 cluster mode forks them from the daemon). */
export function workerPids(): number[] {
  return daemonPid === undefined ? [] : childPids(daemonPid);
}

export async function killPm2(): Promise<void> {
  if (!api) return;
  const a = api;
  api = undefined;
  await call((cb) => a.killDaemon(cb), 'kill', 10000).catch(() => undefined);
  a.disconnect();
  await sleep(100);
  if (daemonPid !== undefined) {
    killGroup(daemonPid);
    untrackGroup(daemonPid);
  }
}

export function pm2ErrLog(name: string): string {
  try {
    return fs.readFileSync(path.join(home!, `${name}.err.log`), 'utf8').slice(-2000);
  } catch {
    return '';
  }
}
