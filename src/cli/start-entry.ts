// `nserve start ...` without commander: what bin/nserve.js runs for every server process (single, master,
// each worker, boot-check child). The command line is read by parseStartArgs; one it cannot read exactly
// as commander would (help, a usage error, anything unusual) goes to the commander program instead.
import { reportFailure } from './exit.js';
import { start } from './start.js';
import { parseStartArgs } from './start-options.js';

async function run(): Promise<void> {
  const parsed = parseStartArgs(process.argv.slice(3));
  if (parsed === undefined) {
    await import('./main.js');
    return;
  }
  try {
    await start(parsed.app, parsed.opts);
  } catch (err) {
    reportFailure(err);
  }
}

// Not a top-level await: the server runs long after this module has loaded (as main.ts does).
void run();
