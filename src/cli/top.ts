// `nserve top`: the dashboard's view (dashboard/view.ts, from GET /dashboard/view) in the terminal,
// redrawn every second, like `pm2 monit`. It outlives the control server's exec at a hot restart: a poll
// that finds nobody says "restarting" and the next one reaches the new image. q or Ctrl-C quits and gives
// the terminal back as it was (main screen, cursor, cooked mode).
import type { Command } from 'commander';
import { formatControlUrl } from '../control/api.js';
import { ControlError, call } from '../control/client.js';
import { renderTop, type TopStatus } from '../dashboard/text.js';
import type { DashboardView } from '../dashboard/view.js';
import { usageError } from '../errors.js';
import { type CtlOptions, connectionOptions, reportFailure } from './ctl.js';
import { connect, processAlive, refresh } from './ctl-connect.js';

export const REFRESH_MS = 1000;
/** A poll's answer must come within this, so a stalled server never freezes the screen. */
const POLL_TIMEOUT_MS = 900;

interface TopOptions extends CtlOptions {
  once?: boolean;
}

const ALT_SCREEN_ON = '\x1b[?1049h\x1b[?25l';
const ALT_SCREEN_OFF = '\x1b[?25h\x1b[?1049l';

/**
 * `nserve top`: poll the view every second and draw it, until `q`, Ctrl-C or the server stops. Long on
 * purpose: the terminal's set-up and its restore on every way out (keys, signals, errors) stay together,
 * so that no exit path can leave the terminal in the alternate screen.
 */
export async function runTop(opts: TopOptions): Promise<number> {
  const conn = connect(opts);
  if (conn.kind === 'signals')
    throw usageError(
      'ERR_NSERVE_USAGE',
      `nserve top needs the control server (${conn.source} only allows signals): start nserve with --control-url and --state, and use -S`,
    );
  let view: DashboardView | undefined;
  let status: TopStatus = { state: 'live', url: formatControlUrl(conn.target.address) };
  let awaySince: number | undefined;

  const poll = async (): Promise<void> => {
    refresh(conn);
    const url = formatControlUrl(conn.target.address);
    try {
      view = (await call(conn.target, 'GET', '/dashboard/view', POLL_TIMEOUT_MS)) as unknown as DashboardView;
      status = { state: 'live', url };
      awaySince = undefined;
    } catch (err) {
      // Wrong token, not an nserve, a refusal: no retry will change that.
      if (!(err instanceof ControlError)) throw err;
      if (err.code !== 'ERR_NSERVE_CONTROL_UNREACHABLE' && err.code !== 'ERR_NSERVE_CONTROL_TIMEOUT')
        throw err;
      awaySince ??= Date.now();
      const gone = conn.pid !== undefined && !processAlive(conn.pid);
      status = {
        state: gone ? 'unreachable' : 'restarting',
        url,
        detail: gone
          ? `server pid ${conn.pid} is gone`
          : `no answer for ${((Date.now() - awaySince) / 1000).toFixed(1)} s (${err.message}); retrying`,
      };
      if (opts.once === true) throw err;
    }
  };

  if (opts.once === true || process.stdout.isTTY !== true) {
    // One screen, without escape codes: for a script or a pipe (not a terminal: as --once).
    opts.once = true;
    await poll();
    process.stdout.write(`${renderTop(view, status, process.stdout.columns ?? 80).join('\n')}\n`);
    return 0;
  }

  const out = process.stdout;
  const stdin = process.stdin;
  const draw = (): void => {
    const lines = renderTop(view, status, out.columns ?? 80).slice(0, Math.max(1, (out.rows ?? 24) - 1));
    // Home, each line then clear its rest, clear below: no flicker from clearing the whole screen.
    out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
  };
  return new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (code: number, err?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, quit);
      out.off('resize', draw);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.off('data', onKey);
      // Stop reading now, not only pause: a paused TTY stream goes on reading into its buffer, so what the
      // user types while top exits would be lost with it instead of reaching the shell.
      stdin.destroy();
      out.write(ALT_SCREEN_OFF);
      if (err === undefined) resolve(code);
      else reject(err);
    };
    const quit = (): void => finish(0);
    const onKey = (key: Buffer): void => {
      // q, Q, Ctrl-C (raw mode delivers it as a byte, not as SIGINT), Ctrl-D.
      if (key.includes(0x71) || key.includes(0x51) || key.includes(0x03) || key.includes(0x04)) quit();
    };
    // Restore the terminal however top ends, a crash included.
    process.once('exit', () => {
      if (!done) out.write(ALT_SCREEN_OFF);
    });
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, quit);
    out.on('resize', draw);
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
    out.write(ALT_SCREEN_ON);
    const tick = async (): Promise<void> => {
      const started = Date.now();
      try {
        await poll();
      } catch (err) {
        finish(0, err);
        return;
      }
      if (done) return;
      draw();
      timer = setTimeout(() => void tick(), Math.max(0, REFRESH_MS - (Date.now() - started)));
    };
    draw();
    void tick();
  });
}

export function registerTopCommand(program: Command): void {
  const cmd = program
    .command('top')
    .description(
      'live view of a running server in the terminal (workers, restarts, memory), every second; q quits',
    )
    .option('--once', 'print one screen and exit (what top does when stdout is not a terminal)');
  connectionOptions(cmd).action(async (opts: TopOptions) => {
    try {
      process.exitCode = await runTop(opts);
    } catch (err) {
      process.exitCode = reportFailure(err);
    }
  });
}
