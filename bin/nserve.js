#!/usr/bin/env node
// Node resets ignored signals to their default action at start-up, and the default action of SIGUSR1,
// SIGUSR2, SIGHUP, SIGTTIN and SIGTTOU is to terminate (or stop) the process. A restart signal that
// arrives while this image is still loading its modules (e.g. right after a hot restart's exec) must not
// kill the server: catch them before anything else loads. nserve installs its real handlers once booted
// and logs what arrived before (see src/signals.ts).
const early = [];
globalThis.__nserveEarlySignals = early;
for (const sig of ['SIGUSR1', 'SIGUSR2', 'SIGHUP', 'SIGTTIN', 'SIGTTOU']) {
  process.on(sig, () => early.push(sig));
}
await import('../dist/src/cli.js');
