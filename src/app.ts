// Loading the user's app module and turning whatever it exports into one Node request listener.
import * as fs from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { errorMessage, usageError } from './errors.js';

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface LoadedApp {
  /** Absolute path of the module that was loaded (after symlinks in `directory` were resolved). */
  file: string;
  kind: 'listener' | 'fetch';
  listener: RequestListener;
}

const USABLE = 'default-export a (req, res) request listener or an object with a fetch(request) method';

/** Resolve APP against the (already realpath'd) directory; the file must exist. */
export function resolveAppFile(app: string, directory: string): string {
  const file = path.resolve(directory, app);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw usageError(
      'ERR_NSERVE_APP_MISSING',
      `app file not found: ${file} (APP is resolved against --directory ${directory})`,
    );
  }
  if (!stat.isFile()) throw usageError('ERR_NSERVE_APP_MISSING', `app is not a file: ${file}`);
  return file;
}

export async function loadApp(app: string, directory: string): Promise<LoadedApp> {
  const file = resolveAppFile(app, directory);
  let mod: Record<string, unknown>;
  try {
    // import() also awaits the module's top-level await, so the app is ready when this resolves.
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw usageError('ERR_NSERVE_APP_LOAD', `app ${file} failed to load: ${errorMessage(err)}`, err);
  }
  const handler = pickExport(mod);
  if (handler === undefined) {
    throw usageError('ERR_NSERVE_APP_EXPORT', `app ${file} exports no usable handler: ${USABLE}`);
  }
  if (typeof handler === 'function') return { file, kind: 'listener', listener: handler as RequestListener };
  return { file, kind: 'fetch', listener: fetchListener(handler.fetch.bind(handler)) };
}

type Exported = RequestListener | { fetch: FetchHandler };

function pickExport(mod: Record<string, unknown>): Exported | undefined {
  // CommonJS modules arrive as { default: module.exports }; transpiled ones may nest one more default.
  const candidates = [mod.default, (mod.default as Record<string, unknown> | undefined)?.default, mod];
  for (const c of candidates) {
    if (typeof c === 'object' && c !== null && typeof (c as { fetch?: unknown }).fetch === 'function') {
      return c as { fetch: FetchHandler };
    }
    // An express app or koa's app.callback() is a function; Hono-style apps are objects with fetch().
    if (typeof c === 'function') return c as RequestListener;
  }
  return undefined;
}

/** Adapt a web-standard fetch handler to Node's (req, res). */
export function fetchListener(fetch: FetchHandler): RequestListener {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void serveFetch(fetch, req, res).catch((err: unknown) => {
      res.emit('error', err);
    });
  };
}

async function serveFetch(fetch: FetchHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const host = req.headers.host ?? 'localhost';
  const url = new URL(req.url ?? '/', `http://${host}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = { method, headers };
  if (hasBody) {
    init.body = Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>;
    init.duplex = 'half';
  }
  const response = await fetch(new Request(url, init));
  const outHeaders: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') outHeaders[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) outHeaders['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText, outHeaders);
  if (response.body === null || method === 'HEAD') {
    res.end();
    return;
  }
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve));
  }
  res.end();
}
