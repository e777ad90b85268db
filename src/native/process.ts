// Processes: execve (signals reset for the new image) and waitpid for children inherited across an exec.
import { constants as osConstants } from 'node:os';
import { addon, type ExitStatus } from './addon.js';
import { invalidType, typeError, validateInt, validateString, validateStrings } from './validate.js';

function signalNumber(name: string): number {
  const number = (osConstants.signals as Record<string, number | undefined>)[name];
  if (typeof name !== 'string' || number === undefined) {
    throw typeError('ERR_UNKNOWN_SIGNAL', `Unknown signal: ${String(name)}`);
  }
  return number;
}

function signalName(number: number): NodeJS.Signals {
  for (const [name, value] of Object.entries(osConstants.signals)) {
    if (value === number) return name as NodeJS.Signals;
  }
  // Real-time signals have no name in os.constants.
  return `SIG${number}` as NodeJS.Signals;
}

/**
 * Replaces this process's image. Before the exec every signal is blocked,
 * every handler saved, every catchable signal set to SIG_DFL except those in
 * ignoreSignals (SIG_IGN, which survives exec), and then the mask emptied.
 * If execve fails the handlers and the mask are restored and the error thrown
 * (syscall 'execve', path). Only descriptors without close-on-exec survive:
 * clear it (setCloexec) on 0-2 and on what the new image must inherit.
 */
export function execve(
  path: string,
  argv: readonly string[],
  env: readonly string[],
  options: { ignoreSignals?: readonly NodeJS.Signals[]; blockSignals?: readonly NodeJS.Signals[] } = {},
): never {
  validateString('path', path);
  const args = validateStrings('argv', argv);
  const envs = validateStrings('env', env);
  return addon.execve(
    path,
    args,
    envs,
    signalNumbers('options.ignoreSignals', options.ignoreSignals),
    signalNumbers('options.blockSignals', options.blockSignals),
  );
}

function signalNumbers(what: string, names: readonly NodeJS.Signals[] | undefined): number[] {
  if (names === undefined) return [];
  if (!Array.isArray(names)) throw invalidType(what, 'an array of signal names', names);
  return names.map(signalNumber);
}

/**
 * Unblock these signals on the calling (main) thread: one held pending while blocked is delivered now.
 * Node's `--disable-sigusr1` keeps SIGUSR1 blocked for the life of the process, JS handler or not.
 * Returns those that were pending (their delivery, on the next loop turn, is from before the call).
 */
export function unblockSignals(names: readonly NodeJS.Signals[]): NodeJS.Signals[] {
  return addon.unblockSignals(signalNumbers('signals', names)).map(signalName);
}

/**
 * From now until the exec, these signals are recorded on whichever thread takes them, instead of reaching
 * libuv's handler (whose JS callback would never run: the exec comes first). `execve` then raises each
 * that arrived, blocked, so it is pending in the new image; after a failed exec, `releaseHeldSignals`
 * puts the previous handlers back and delivers them there.
 */
export function holdSignals(names: readonly NodeJS.Signals[]): void {
  addon.holdSignals(signalNumbers('signals', names));
}

export function releaseHeldSignals(): void {
  addon.releaseHeldSignals();
}

/**
 * The signals that reached the recorder preloaded into this image (native/early_signals.cc) before
 * nserve's handlers were installed, each as often as it arrived, and forgotten there; undefined when
 * this image was started without it.
 */
export function takeEarlySignals(names: readonly NodeJS.Signals[]): NodeJS.Signals[] | undefined {
  const counts = addon.takeEarlySignals(signalNumbers('signals', names));
  if (counts === null) return undefined;
  return names.flatMap((name, i) => Array<NodeJS.Signals>(counts[i] ?? 0).fill(name));
}

/**
 * waitpid(pid, WNOHANG): null while the child runs, its exit status once it
 * has ended (reaping it). Throws ECHILD for a PID that is not this process's
 * child, or was already reaped (libuv reaps the children it spawned itself:
 * use this for children inherited across execve).
 */
export function waitpid(pid: number): ExitStatus | null {
  const status = addon.waitpid(validateInt('pid', pid, 1, 2 ** 31 - 1));
  if (status === null) return null;
  return {
    pid: status.pid,
    code: status.code,
    signal: status.signal === null ? null : signalName(status.signal),
  };
}
