import * as fs from 'node:fs';

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** One letter from /proc/PID/stat: R, S, D, Z, … */
  state: string;
}

/** State and parent of `pid` from /proc/PID/stat, or undefined once it is gone. */
export function procEntry(pid: number): ProcEntry | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, ppid: Number(fields[1]), state: fields[0] ?? '?' };
}

/** The processes whose parent is `ppid`, read from /proc (entries that vanish meanwhile are skipped). */
export function childProcesses(ppid: number): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = procEntry(Number(entry));
    if (p !== undefined && p.ppid === ppid) out.push(p);
  }
  return out.sort((a, b) => a.pid - b.pid);
}
