// The signal handlers of a master or a single server (never a worker: cluster/worker.ts has its own):
// each signal of the table (signals.ts) records its action for the launcher to run.
import { addOwnSignalListener, removeOwnSignalListener } from '../app/stop-signals.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { reopenRedirectedStdio } from '../log/stdio.js';
import * as native from '../native/index.js';
import { type Action, HELD_ACROSS_EXEC, IGNORED_ACROSS_EXEC, SIGNAL_COMMANDS } from './signals.js';

/** What bin/nserve.js caught before the server's modules had loaded. */
interface EarlySignals {
  received: string[];
  uninstall(): void;
}

/**
 * Install handlers that only record the request; `dispatch` runs on the loop, one action at a time.
 */
export function installSignalHandlers(
  dispatch: (action: Action, signal: NodeJS.Signals) => void,
  log: Logger,
  options: { certs?: boolean } = {},
): () => void {
  closeStrayInspector(log);
  warnReportSignal(log);
  // bin/nserve.js catches restart signals before any module loads (Node resets ignored signals to their
  // default, fatal, action at start-up); what arrived while booting is coalesced into "ignored".
  const early = (globalThis as { __nserveEarlySignals?: EarlySignals }).__nserveEarlySignals;
  const installed: [NodeJS.Signals, () => void][] = [];
  // A SIGUSR1 that was held pending while booting (below) is delivered once unblocked: one of its
  // kind, like every restart signal that arrived while booting, is ignored, not carried out.
  let heldUsr1 = 0;
  for (const cmd of SIGNAL_COMMANDS) {
    if (cmd.signal === 'SIGHUP') continue; // below: SIGHUP has more than one meaning
    const handler = (): void => {
      if (cmd.signal === 'SIGUSR1' && heldUsr1 > 0) {
        heldUsr1--;
        return;
      }
      dispatch(cmd.action, cmd.signal);
    };
    addOwnSignalListener(cmd.signal, handler);
    installed.push([cmd.signal, handler]);
  }
  // SIGHUP: with --redirect-stdout/--redirect-stderr, reopen those files (logrotate's postrotate); with
  // ssl:// binds, re-read their certificates (an ACME client's deploy hook); both when both apply.
  // With neither, the terminal went away: stop gracefully, as Puma does.
  const hup = (): void => {
    const reopened = reopenRedirectedStdio(log);
    if (options.certs === true) dispatch('reload-certs', 'SIGHUP');
    else if (!reopened) dispatch('stop', 'SIGHUP');
  };
  addOwnSignalListener('SIGHUP', hup);
  installed.push(['SIGHUP', hup]);
  // Node's --disable-sigusr1 (how nserve starts the images it execs, exec.ts) keeps SIGUSR1 blocked for
  // the life of the process, handler or not: unblock it now that ours is in place. One that arrived while
  // booting was held pending: its delivery (next loop turn) is skipped and logged with the others.
  // SIGTERM and SIGINT held through a hot restart's exec (HELD_ACROSS_EXEC): one pending is delivered
  // to the handlers above, as a stop.
  const unblocked = native.available ? native.unblockSignals(['SIGUSR1', ...HELD_ACROSS_EXEC]) : [];
  const held = unblocked.filter((sig) => sig === 'SIGUSR1');
  heldUsr1 = held.length;
  if (early !== undefined || held.length > 0) {
    early?.uninstall();
    // Before bin/nserve.js ran, the restart signals reached the recorder preloaded into a hot restart's
    // image (native/early_signals.cc), if any.
    const recorded = native.available ? (native.takeEarlySignals(IGNORED_ACROSS_EXEC) ?? []) : [];
    const got = [...held, ...recorded, ...(early?.received.splice(0) ?? [])];
    const stop = got.find((sig) => sig === 'SIGTERM' || sig === 'SIGINT');
    const ignored = got.filter((sig) => sig !== 'SIGTERM' && sig !== 'SIGINT');
    if (ignored.length > 0)
      logEvent(
        log,
        'signal.booting.ignored',
        { signals: ignored },
        'signals received while booting were ignored',
      );
    // A stop requested while booting is carried out now that the server can drain.
    if (stop !== undefined) dispatch('stop', stop as NodeJS.Signals);
  }
  return () => {
    for (const [sig, h] of installed) removeOwnSignalListener(sig, h);
  };
}

/**
 * A SIGUSR1 that reached Node before bin/nserve.js installed its handler makes Node open its inspector
 * (on 127.0.0.1:9229, for the life of the process; any local user could then run code as us). The
 * inspector starts on a thread of its own, so bin/nserve.js's own check can come too early: check again
 * once the server is up, and close one nobody asked for (`--inspect*`).
 */
export function closeStrayInspector(log: Logger): void {
  if (process.execArgv.some((a) => a.startsWith('--inspect') || a === '--disable-sigusr1')) return;
  // A process nserve started itself (src/restart/exec.ts) or an inspector the user asked for: no check,
  // and node:inspector (and the worker_threads it loads) stays unloaded.
  const inspector = process.getBuiltinModule('node:inspector');
  if (inspector.url() === undefined) return;
  inspector.close();
  logEvent(
    log,
    'signal.inspector.closed',
    { code: 'ERR_NSERVE_INSPECTOR' },
    'closed the inspector that a SIGUSR1 during start-up had opened',
  );
}

/**
 * Node's `--report-on-signal` (in NODE_OPTIONS, say) writes a diagnostic report on `--report-signal`,
 * SIGUSR2 unless told otherwise: nserve's hot restart. Both happen, so every deploy would also write a
 * report of several hundred KB into the report directory. Say so once at boot; the user chose the flag.
 */
function warnReportSignal(log: Logger): void {
  const report = process.report;
  if (report === undefined || !report.reportOnSignal) return;
  const cmd = SIGNAL_COMMANDS.find((c) => c.signal === report.signal);
  if (cmd === undefined) return;
  logEvent(
    log,
    'signal.report.shared',
    { signal: cmd.signal, action: cmd.action },
    `--report-on-signal writes a diagnostic report on ${cmd.signal}, nserve's ${cmd.action} signal: each ${cmd.action} also writes one (into ${report.directory === '' ? 'the working directory' : report.directory}); give --report-signal a signal nserve does not use, e.g. --report-signal=SIGPWR`,
  );
}
