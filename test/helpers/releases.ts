// Release directories for restart tests: releases/<version>/app.mjs and a `current` symlink.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Cleanup, tmpDir } from './tmp.js';

export interface ReleaseOptions {
  bootMs?: number;
  throwAtLoad?: boolean;
  /** ms each request takes (default 2). */
  requestMs?: number;
  /**
   * Log `{"msg":"fixture: request","path":…}` to stdout when a request reaches the app, so a test can
   * wait until a request is in flight (single mode: the app's stdout is the server's log).
   */
  announceRequests?: boolean;
  /**
   * Answer this fraction of the requests to `/` with a 500 (evenly spread, per process: 0.3 fails 3 of
   * every 10), for canary tests. The body still names the version.
   */
  failRate?: number;
  /** `/events` answers an event stream that never ends (an event every 100 ms): a long-lived response. */
  eventStream?: boolean;
}

export function writeRelease(root: string, version: string, options: ReleaseOptions = {}): string {
  const dir = path.join(root, 'releases', version);
  fs.mkdirSync(dir, { recursive: true });
  const src = `// fixture release ${version}
import { setTimeout as sleep } from 'node:timers/promises';
${options.throwAtLoad ? `throw new Error('release ${version} is broken at load');` : ''}
await sleep(${options.bootMs ?? 0});
let served = 0;
export default function handler(req, res) {
  ${options.announceRequests ? "console.log(JSON.stringify({ msg: 'fixture: request', path: req.url }));" : ''}
  const n = served++;
  const fail = req.url === '/' && Math.floor((n + 1) * ${options.failRate ?? 0}) > Math.floor(n * ${options.failRate ?? 0});
  const reply = () => {
    if (fail) res.statusCode = 500;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ version: ${JSON.stringify(version)}, pid: process.pid, path: req.url }));
  };
  if (req.url.startsWith('/slow')) { setTimeout(reply, 1000); return; }
  ${options.eventStream ? "if (req.url === '/events') { res.writeHead(200, { 'content-type': 'text/event-stream' }); const tick = setInterval(() => res.write('data: tick\\n\\n'), 100); res.on('close', () => clearInterval(tick)); return; }" : ''}
  req.resume();
  req.on('end', () => setTimeout(reply, ${options.requestMs ?? 2}));
}
`;
  fs.writeFileSync(path.join(dir, 'app.mjs'), src);
  return dir;
}

/** Point root/current at releases/<version>, atomically (rename over the old link). */
export function switchRelease(root: string, version: string): void {
  const tmp = path.join(root, `current.tmp.${process.pid}`);
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(path.join(root, 'releases', version), tmp);
  fs.renameSync(tmp, path.join(root, 'current'));
}

/**
 * A temporary deploy root with the given releases and `current` pointing at `current`; removed after
 * the test.
 */
export function makeReleases(t: Cleanup, releases: Record<string, ReleaseOptions>, current: string): string {
  const root = tmpDir(t);
  for (const [version, options] of Object.entries(releases)) writeRelease(root, version, options);
  switchRelease(root, current);
  return root;
}

/** `count` releases v1…vN with the same options. */
export function versions(count: number, options: ReleaseOptions = {}): Record<string, ReleaseOptions> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`v${i + 1}`, options]));
}
