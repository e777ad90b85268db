// The new image of an optimistic single-mode hot restart. The old image execs at once, without booting
// the new code in a separate process first; until the new code serves, every failure a process can
// survive (a broken config, an exception or process.exit() while the app loads, an uncaught exception,
// the boot timeout) execs back into the previous image, pinned by the hand-off: its command line, its
// release directory and its config file, never re-read through a `current` symlink that moved on. The
// listening sockets never closed, so clients only wait, for a longer pause.
//
// Not survivable, and so not guarded: a hard crash while loading (an out-of-memory abort, a native
// segfault) or a synchronous endless loop at load. `--boot-check` keeps the separate boot check for
// those who want that isolation.
import { errorMessage } from '../errors.js';
import { execBack } from './exec.js';
import type { Handoff } from './handoff.js';

export class BootGuard {
  private timer: NodeJS.Timeout;
  private readonly realExit: typeof process.exit;
  private readonly onUncaught = (err: unknown): void =>
    this.fail(`uncaught exception while booting: ${errorMessage(err)}`);

  constructor(
    private readonly handoff: Handoff,
    private readonly env: NodeJS.ProcessEnv,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(
      () => this.fail(`the new code did not boot within ${timeoutMs} ms (ERR_NSERVE_BOOT_TIMEOUT)`),
      timeoutMs,
    );
    this.realExit = process.exit;
    process.exit = ((code?: number) =>
      this.fail(`the new code called process.exit(${code ?? ''}) while loading`)) as typeof process.exit;
    process.on('uncaughtException', this.onUncaught);
  }

  /** Back to the previous release: never returns. */
  fail(reason: string): never {
    process.stderr.write(`nserve: the new release did not boot (${reason}): back to the previous release\n`);
    return execBack(this.handoff.back, reason, this.env);
  }

  /** The config is read: its boot timeout (counted from now) replaces the default. */
  rearm(timeoutMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.fail(`the new code did not boot within ${timeoutMs} ms (ERR_NSERVE_BOOT_TIMEOUT)`),
      timeoutMs,
    );
  }

  /** The new code serves: from now on failures are the app's own. */
  disarm(): void {
    clearTimeout(this.timer);
    process.exit = this.realExit;
    process.off('uncaughtException', this.onUncaught);
  }
}
