// Process titles, so `ps` and `top` tell the processes apart: `nserve master app.mjs gen 3`,
// `nserve worker 1 gen 3`, `nserve single app.mjs`, `nserve standby` (a worker not woken yet: --standby).
//
// On Linux, Node writes the title over the process's original argv memory (/proc/PID/cmdline, what
// `ps` and `top -c` show), so it is cut to the length of the command line the process was started with;
// the first 15 bytes also become its `comm` (/proc/PID/comm, what `top` shows without -c).

export type TitleRole =
  | { role: 'master'; app: string; generation: number }
  | { role: 'worker'; index: number; generation: number }
  | { role: 'single'; app: string }
  | { role: 'standby' };

export function processTitle(t: TitleRole): string {
  switch (t.role) {
    case 'master':
      return `nserve master ${t.app} gen ${t.generation}`;
    case 'worker':
      return `nserve worker ${t.index} gen ${t.generation}`;
    case 'single':
      return `nserve single ${t.app}`;
    case 'standby':
      return 'nserve standby';
  }
}

/** Is this /proc/PID/cmdline's first entry a title set here (so the process is a live nserve)? */
export function isNserveTitle(argv0: string): boolean {
  return /^nserve (master \S.* gen \d+|worker \d+ gen \d+|single \S|standby$)/.test(argv0);
}

/**
 * The role a process title names (`nserve master …`, `nserve single …`, `nserve worker …`), or undefined
 * for anything else (no title set yet, another program). A title cut short by a short command line still
 * names its role once the role's word is whole.
 */
export function titleRole(argv0: string): TitleRole['role'] | undefined {
  return /^nserve (master|single|worker|standby)( |$)/.exec(argv0)?.[1] as TitleRole['role'] | undefined;
}

/** The worker index a whole title names (`nserve worker 3 gen 1` → 3); undefined for one cut short. */
export function titleWorkerIndex(argv0: string): number | undefined {
  const m = /^nserve worker (\d+) gen \d+$/.exec(argv0);
  return m === null ? undefined : Number(m[1]);
}

let current: string | undefined;

/** Set the title (a no-op when it is already this): cheap enough to call on every health tick. */
export function setProcessTitle(t: TitleRole): void {
  const title = processTitle(t);
  if (title === current) return;
  current = title;
  try {
    process.title = title;
  } catch {
    // not settable on this platform: cosmetic only
  }
}
