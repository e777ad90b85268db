// Descriptor listing: /proc/PID/fd and fdinfo through the addon, classified, with socket addresses.
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { addon, type FdInfo, type FdKind, type RawFd, type SocketAddress } from './addon.js';
import { validateInt } from './validate.js';

/**
 * The descriptors of this process (or pid) from /proc/PID/fd and fdinfo. For
 * this process, sockets carry their getsockname address. A process that does
 * not exist throws code ESRCH.
 */
export function listFdsRaw(pid?: number): RawFd[] {
  return addon.listFdsRaw(pid === undefined ? -1 : validateInt('pid', pid, 1, 2 ** 31 - 1));
}

const TTY_PATH = /^\/dev\/(?:pts\/\d+|tty\w*|console)$/;

function classify(pid: number, raw: RawFd): { kind: FdKind; inode?: number } {
  const special = /^(socket|pipe):\[(\d+)\]$/.exec(raw.target);
  if (special) return { kind: special[1] as 'socket' | 'pipe', inode: Number(special[2]) };
  if (raw.target.startsWith('anon_inode:')) return { kind: 'anon_inode' };
  if (!raw.target.startsWith('/')) return { kind: 'other' };
  try {
    // The /proc link reaches the open file itself: deleted files and other
    // mount namespaces included.
    const st = statSync(`/proc/${pid}/fd/${raw.fd}`);
    const inode = st.ino;
    if (st.isFile()) return { kind: 'file', inode };
    if (st.isDirectory()) return { kind: 'directory', inode };
    if (st.isCharacterDevice()) return { kind: TTY_PATH.test(raw.target) ? 'tty' : 'char', inode };
    if (st.isFIFO()) return { kind: 'pipe', inode };
    if (st.isSocket()) return { kind: 'socket', inode };
    return { kind: 'other', inode };
  } catch {
    return { kind: 'other' }; // closed meanwhile
  }
}

// /proc/PID/net/tcp{,6} and udp{,6}: "sl local_address rem_address st ...
// inode" with the address in hex, IPv4 as one little-endian 32-bit word, IPv6
// as four of them; the port in big-endian hex.
function hexToIp(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)]);
  if (bytes.length === 4) return bytes.map((b) => Number.parseInt(b, 16)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(`${bytes[i]}${bytes[i + 1]}`);
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function readProcNet(pid: number, name: string): string[] {
  try {
    return readFileSync(`/proc/${pid}/net/${name}`, 'utf8').split('\n').slice(1);
  } catch {
    return []; // e.g. no IPv6 in that namespace
  }
}

function socketsByInode(pid: number): Map<number, SocketAddress> {
  const map = new Map<number, SocketAddress>();
  for (const [name, family] of [
    ['tcp', 'IPv4'],
    ['udp', 'IPv4'],
    ['tcp6', 'IPv6'],
    ['udp6', 'IPv6'],
  ] as const) {
    for (const line of readProcNet(pid, name)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const [hexAddress = '', hexPort = ''] = fields[1]!.split(':');
      map.set(Number(fields[9]), {
        family,
        address: hexToIp(hexAddress),
        port: Number.parseInt(hexPort, 16),
      });
    }
  }
  // "Num RefCount Protocol Flags Type St Inode [Path]"; abstract paths start with '@'.
  for (const line of readProcNet(pid, 'unix')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 7) continue;
    map.set(Number(fields[6]), { family: 'unix', path: fields.slice(7).join(' ') });
  }
  return map;
}

/**
 * listFdsRaw plus a kind, an inode and, for sockets of another process, the
 * local address found by inode in /proc/PID/net. Sorted by fd.
 */
export function listFds(pid?: number): FdInfo[] {
  const raw = listFdsRaw(pid);
  const procPid = pid ?? process.pid;
  const self = procPid === process.pid;
  let sockets: Map<number, SocketAddress> | undefined;
  const out = raw.map((entry): FdInfo => {
    const info: FdInfo = { ...entry, ...classify(procPid, entry) };
    if (!self && info.kind === 'socket' && info.socket === undefined && info.inode !== undefined) {
      sockets ??= socketsByInode(procPid);
      const address = sockets.get(info.inode);
      if (address) info.socket = address;
    }
    return info;
  });
  return out.sort((a, b) => a.fd - b.fd);
}
