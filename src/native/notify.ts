// systemd: sd_notify datagrams.
import { addon } from './addon.js';
import { typeError, validateString } from './validate.js';

/** One datagram to a sd_notify socket ('@name': abstract). Throws on failure, e.g. ECONNREFUSED. */
export function sdNotify(socketPath: string, state: string): void {
  validateString('socketPath', socketPath);
  if (socketPath === '')
    throw typeError('ERR_INVALID_ARG_VALUE', "The argument 'socketPath' must not be empty");
  addon.sdNotify(socketPath, validateString('state', state));
}

/**
 * Best-effort sd_notify: false when NOTIFY_SOCKET is unset or sending failed
 * (never throws for that), true when the datagram went out.
 */
export function notify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  validateString('state', state);
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  try {
    sdNotify(socketPath, state);
    return true;
  } catch {
    return false;
  }
}
