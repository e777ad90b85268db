// The readiness probe (--ready-probe PATH): new code must answer one real request through the app's own
// handler before it gets any traffic. The request goes over a private unix socket in a fresh directory
// only this user can enter, never through the public port, so no client ever sees the new code before
// it passed. A probe that fails counts as a failed boot: the restart is abandoned and the old code
// keeps serving.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AppServer } from '../server/index.js';

/** Why the probe failed, or undefined when the app answered it with a 2xx. */
export async function readyProbe(
  server: AppServer,
  urlPath: string,
  timeoutMs: number,
): Promise<string | undefined> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-probe-'));
  const socketPath = path.join(dir, 'probe.sock');
  const key = `probe#${process.pid}`;
  try {
    await server.listenOn(key, { path: socketPath });
    const status = await new Promise<number>((resolve, reject) => {
      // getBuiltinModule, not an ES import of node:http: see server/create.ts.
      const req = process
        .getBuiltinModule('node:http')
        .get({ socketPath, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
    });
    return status >= 200 && status < 300
      ? undefined
      : `ready probe GET ${urlPath} answered ${status} (expected 2xx)`;
  } catch (err) {
    return `ready probe GET ${urlPath} failed: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    server.stopAccepting(key);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
