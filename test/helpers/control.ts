// Talking to a control server from tests: raw HTTP over its unix socket, and `nserve ctl` runs.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import { type AppOptions, CLI, type Cleanup, ROOT, type ServerProcess, startApp } from './server.js';

export interface ControlReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown> & { error?: string; code?: string };
  text: string;
}

export function controlRequest(
  socketPath: string,
  method: string,
  path: string,
  options: { token?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer } = {},
): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const req = http.request({ socketPath, method, path, headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: ControlReply['body'] = {};
        try {
          body = JSON.parse(text) as ControlReply['body'];
        } catch {
          // not JSON: the test looks at text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within 10 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Write raw bytes to the socket and read until the server closes it. */
export function rawRequest(socketPath: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let out = '';
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      out += c;
    });
    sock.on('end', () => resolve(out));
    sock.on('close', () => resolve(out));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNRESET' ? resolve(out) : reject(err),
    );
    sock.setTimeout(10_000, () => sock.destroy(new Error('raw request: no answer within 10 s')));
    sock.write(data);
  });
}

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `nserve ctl ARGS` to completion (killed after timeoutMs). */
export function ctl(args: string[], timeoutMs = 30_000): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'ctl', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface ControlOptions {
  /** --control-url: `auto` (next to --state), unix://PATH or tcp://HOST:PORT. */
  url: string;
  token?: string;
  state?: string;
  pidfile?: string;
}

/**
 * `nserve start APP` with a control server; resolves once it serves and its control server listens,
 * with the URL the control server listens on (port 0 resolved).
 */
export async function startControlled(
  t: Cleanup,
  app: string,
  control: ControlOptions,
  options: AppOptions = {},
): Promise<{ srv: ServerProcess; port: number; url: string }> {
  const srv = startApp(t, app, {
    ...options,
    args: [
      ...(options.args ?? []),
      '--control-url',
      control.url,
      ...(control.token === undefined ? [] : ['--control-token', control.token]),
      ...(control.state === undefined ? [] : ['--state', control.state]),
      ...(control.pidfile === undefined ? [] : ['--pidfile', control.pidfile]),
    ],
  });
  const port = await srv.port(20_000);
  const listening = await srv.waitForEvent('control.server.listening');
  return { srv, port, url: String(listening.url) };
}
