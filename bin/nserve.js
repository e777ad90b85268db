#!/usr/bin/env node
// Node resets ignored signals to their default action at start-up, and the default action of SIGUSR1,
// SIGUSR2, SIGHUP, SIGTTIN, SIGTTOU, SIGTERM and SIGINT is to terminate (or stop) the process. A signal
// that arrives while a server image is still loading its modules (e.g. right after a hot restart's
// exec) must not kill the server: catch them before anything else loads. nserve installs its real
// handlers once booted; restart signals that arrived before are logged and ignored, a stop is carried
// out then (see src/signals.ts). Other commands (ctl, fds, config) keep Node's defaults.
if (process.argv[2] === 'start') {
  const received = [];
  const handlers = ['SIGUSR1', 'SIGUSR2', 'SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGTERM', 'SIGINT'].map((sig) => {
    const handler = () => received.push(sig);
    process.on(sig, handler);
    return [sig, handler];
  });
  globalThis.__nserveEarlySignals = {
    received,
    uninstall: () => {
      for (const [sig, handler] of handlers) process.off(sig, handler);
    },
  };
}
await import('../dist/src/cli/main.js');
