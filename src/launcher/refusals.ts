// Which control actions a server refuses, and in what words: one table for every mode (single, portable,
// cluster). A signal, `nserve ctl` and the control API all ask here first (launcher/index.ts); what a mode
// cannot do at all is a capability its runner does not declare, refused the same way everywhere.
import type { ControlAction } from '../control/status.js';
import type { ServerState } from './lifecycle.js';

/** What a runner may be able to do beyond serving and stopping. */
export type Capability = 'hot-restart' | 'phased-restart' | 'resize' | 'worker-directory' | 'certs';

export interface Capabilities {
  readonly has: ReadonlySet<Capability>;
  /** Why a capability is missing, completing "<what it is> …": "needs cluster mode (-w N)". */
  why(missing: Capability): string;
  /** A phased restart runs as a hot one (single mode: one process has no workers to phase). */
  readonly phasedAsHot?: boolean;
}

/** Where the server is, as far as refusing goes. */
export interface Gate {
  state: ServerState;
  /** A stop asked for during a restart, waiting for the restart to give up. */
  pendingStop: boolean;
  halting: boolean;
}

const NEEDS: Partial<Record<ControlAction, Capability>> = {
  restart: 'hot-restart',
  'phased-restart': 'phased-restart',
  rollback: 'hot-restart',
  'workers+1': 'resize',
  'workers-1': 'resize',
  'reload-worker-directory': 'worker-directory',
  'reload-certs': 'certs',
};

const WHAT: Record<ControlAction, string> = {
  stop: 'a stop',
  halt: 'a halt',
  restart: 'a hot restart',
  'phased-restart': 'a phased restart',
  rollback: 'a rollback',
  'workers+1': 'changing the worker count',
  'workers-1': 'changing the worker count',
  'reload-worker-directory': 'reload-worker-directory',
  'reload-certs': 'reload-certs',
};

/**
 * Why `action` is refused now (the reason a 409 carries and a signal's warning names), or undefined when
 * the launcher goes ahead. The runner may still refuse for reasons of its own (a canary's failed release,
 * the last worker).
 */
export function refusal(action: ControlAction, gate: Gate, caps: Capabilities): string | undefined {
  // A halt is never refused while one can help: during a graceful stop it ends the stop at once.
  if (action === 'halt') return gate.halting ? 'already halting' : undefined;
  if (action === 'stop')
    return gate.state === 'stopping' || gate.pendingStop ? 'already stopping' : undefined;
  const need = NEEDS[action];
  const asHot = need === 'phased-restart' && caps.phasedAsHot === true && caps.has.has('hot-restart');
  if (need !== undefined && !caps.has.has(need) && !asHot) return `${WHAT[action]} ${caps.why(need)}`;
  // What later spawns load: no process changes now, so any state will do.
  if (action === 'reload-worker-directory') return undefined;
  if (gate.state === 'stopping' || gate.pendingStop) return 'the server is stopping';
  if (gate.state === 'restarting')
    return action === 'reload-certs'
      ? 'a restart is in progress (it reads the certificates afresh)'
      : 'a restart is in progress';
  if (gate.state === 'booting') return 'the server is still booting';
  return undefined;
}
