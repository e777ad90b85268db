#!/usr/bin/env node
// Node resets ignored signals to their default action at start-up, and the default action of SIGUSR1,
// SIGUSR2, SIGHUP, SIGTTIN, SIGTTOU, SIGTERM and SIGINT is to terminate (or stop) the process. A signal
// that arrives while a server image is still loading its modules (e.g. right after a hot restart's
// exec) must not kill the server: catch them before anything else loads. nserve installs its real
// handlers once booted; restart signals that arrived before are logged and ignored, a stop is carried
// out then (see src/signals.ts). Other commands (ctl, fds, config) keep Node's defaults.
// The supported lines (package.json's engines): 22, 24 and 26, and 20.17+ while it stays tested. An older
// Node would fail somewhere inside with a message about a missing API: say so in one line instead.
const [nodeMajor = 0, nodeMinor = 0] = process.versions.node.split('.').map(Number);
if (nodeMajor < 20 || (nodeMajor === 20 && nodeMinor < 17)) {
  process.stderr.write(
    `nserve: error: Node.js ${process.version} is not supported: use Node.js 22, 24 or 26 (or 20.17+, past its end of life)\n`,
  );
  process.exit(2);
}
if (process.argv[2] === 'start') {
  const received = [];
  const handlers = ['SIGUSR1', 'SIGUSR2', 'SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGTERM', 'SIGINT'].map((sig) => {
    const handler = () => received.push(sig);
    process.on(sig, handler);
    return [sig, handler];
  });
  // EventEmitter's own off, taken now: by the time this runs, the app has loaded, and process.off no
  // longer reaches SIGTERM/SIGINT listeners (the app's are held until the drain: src/app/stop-signals.ts).
  const off = process.off;
  globalThis.__nserveEarlySignals = {
    received,
    uninstall: () => {
      for (const [sig, handler] of handlers) off.call(process, sig, handler);
    },
  };
  // A SIGUSR1 that arrived before this line (Node's own start-up) opened Node's inspector on
  // 127.0.0.1:9229, where any local user could run code as this server. Close it unless it was asked for.
  // Processes nserve starts itself (workers, a hot restart's image) are started so that SIGUSR1 cannot
  // open it (src/restart/exec.ts): they skip the check, and do not load node:inspector.
  const sigusr1Safe = process.execArgv.some(
    (a) => a === '--disable-sigusr1' || a.startsWith('--inspect-port=192.0.2.1'),
  );
  if (!sigusr1Safe && !process.execArgv.some((a) => a.startsWith('--inspect'))) {
    // getBuiltinModule: synchronous, no trip through the ESM loader (start-up time).
    const inspector = process.getBuiltinModule('node:inspector');
    const closeStray = () => {
      if (inspector.url() === undefined) return;
      inspector.close();
      process.stderr.write('nserve: closed the inspector a SIGUSR1 during start-up had opened\n');
    };
    closeStray();
    // The inspector opens on a thread of its own, so it may not be open yet; and on Node 22+ a signal
    // taken before this line can open it a second time once the event loop turns (measured on 26: after
    // this close, as the server booted). Look again every 10 ms for the first 5 s; later SIGUSR1s reach
    // nserve's handlers, never the inspector.
    const watch = setInterval(closeStray, 10);
    watch.unref();
    setTimeout(() => clearInterval(watch), 5000).unref();
  }
}
// `start` (every server process: single, master, workers) reads its command line without commander
// when it can (src/cli/start-entry.ts); other commands load the whole commander program.
await import(process.argv[2] === 'start' ? '../dist/src/cli/start-entry.js' : '../dist/src/cli/main.js');
