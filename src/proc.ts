import * as fs from 'node:fs';

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** One letter from /proc/PID/stat: R, S, D, Z, … */
  state: string;
}

/** The processes whose parent is `ppid`, read from /proc (entries that vanish meanwhile are skipped). */
export function childProcesses(ppid: number): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push({ pid: Number(entry), ppid, state: fields[0] ?? '?' });
    } catch {
      // exited while we looked
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}
