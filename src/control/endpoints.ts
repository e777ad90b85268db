// The control server's routes, shared by the server (server.ts, answers.ts), `nserve ctl` and
// docs/control.md. The routes that have a signal come from the one signal table (SIGNAL_COMMANDS in
// signals.ts); the rest exist only here.
import { type Action, SIGNAL_COMMANDS } from './signals.js';
import type { ControlAction } from './status.js';

export type Route =
  | { method: 'GET'; path: string; read: 'stats' | 'fds' | 'metrics'; description: string }
  | { method: 'POST'; path: string; action: ControlAction; signal?: NodeJS.Signals; description: string };

function firstSignal(action: Action): NodeJS.Signals | undefined {
  return SIGNAL_COMMANDS.find((c) => c.action === action)?.signal;
}

/** Every route of the control server, in the order docs/control.md lists them. */
export const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/stats', read: 'stats', description: 'what the server reports about itself' },
  ...SIGNAL_COMMANDS.filter((c, i, all) => all.findIndex((o) => o.path === c.path) === i).map(
    (c): Route => ({
      method: 'POST',
      path: c.path,
      action: c.action,
      signal: firstSignal(c.action),
      description: c.description,
    }),
  ),
  {
    method: 'POST',
    path: '/halt',
    action: 'halt',
    description: 'immediate stop: workers are killed, in-flight requests fail',
  },
  {
    method: 'POST',
    path: '/rollback',
    action: 'rollback',
    description:
      'restart onto the previous release (the deploy record), not --directory: `?kind=hot|phased`, else the kind of the last restart',
  },
  {
    method: 'POST',
    path: '/reload-worker-directory',
    action: 'reload-worker-directory',
    description: 're-resolve --directory now: workers spawned from now on load the release it points to',
  },
  {
    method: 'GET',
    path: '/fds',
    read: 'fds',
    description: 'the descriptors of the server and its workers, with the ones that would leak',
  },
  {
    method: 'GET',
    path: '/metrics',
    read: 'metrics',
    description: 'Prometheus metrics of the server and its workers (text format: docs/metrics.md)',
  },
];

export function routeFor(path: string): Route | undefined {
  return ROUTES.find((r) => r.path === path);
}

export function routeForAction(action: ControlAction): Extract<Route, { method: 'POST' }> {
  const route = ROUTES.find((r) => r.method === 'POST' && r.action === action);
  if (route === undefined || route.method !== 'POST') throw new Error(`no control route for ${action}`);
  return route;
}

/** `POST /rollback?kind=`: hot, phased or unset (the last restart's kind); anything else is an error. */
export function parseRestartKind(value: string | null): { kind?: 'hot' | 'phased' } | { error: string } {
  if (value === null) return {};
  if (value === 'hot' || value === 'phased') return { kind: value };
  return { error: `invalid kind ${JSON.stringify(value.slice(0, 40))}: expected hot or phased` };
}
