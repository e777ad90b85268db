// Reuseport balancing: the ip-hash BPF program on a SO_REUSEPORT group, and the slot it picks.
import net from 'node:net';
import { addon } from './addon.js';
import { describe, typeError, validateFd, validateInt, validateString } from './validate.js';

/** The largest group attachReuseportCbpf accepts (the kernel grows a group to at most 65535 sockets). */
export const MAX_REUSEPORT_GROUP = 65535;

/**
 * Pins each client address to one socket of fd's SO_REUSEPORT group: attaches a classic BPF program
 * (SO_ATTACH_REUSEPORT_CBPF) that hashes the connection's IPv4 or IPv6 source address (the family is the
 * socket's own) and returns `hash % groupSize`, the index of a socket in the order the sockets joined the
 * group. The program belongs to the group, so attaching through any one socket covers all of them, and it
 * replaces any program attached before. `groupSize` must be the group's size: an index past the end makes
 * the kernel fall back to its own hash, and a smaller modulus leaves the last sockets without connections.
 * The index of a socket stays put only while no socket of the group closes (closing one moves the last
 * socket into its place). Throws EINVAL for a socket without SO_REUSEPORT, EAFNOSUPPORT for a unix socket.
 * reuseportSlot() computes the same choice.
 */
export function attachReuseportCbpf(fd: number, groupSize: number): void {
  addon.attachReuseportCbpf(
    validateFd('fd', fd),
    validateInt('groupSize', groupSize, 1, MAX_REUSEPORT_GROUP),
  );
}

/**
 * Detaches the program of fd's reuseport group (SO_DETACH_REUSEPORT_BPF, Linux 5.3), so the kernel's own
 * hash spreads connections again. false when the group had none.
 */
export function detachReuseportBpf(fd: number): boolean {
  return addon.detachReuseportBpf(validateFd('fd', fd));
}

const mul32 = (a: number, b: number): number => Math.imul(a, b) >>> 0;

/** murmur3's fmix32, as the program runs it (32-bit arithmetic). */
function fmix32(h: number): number {
  let x = h >>> 0;
  x = mul32(x ^ (x >>> 16), 0x85ebca6b);
  x = mul32(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The socket index the attachReuseportCbpf program picks for a client `address` (an IPv4 or IPv6
 * numeric address, as Node reports `socket.remoteAddress`) in a group of `groupSize`: the same hash,
 * computed in JS, for tests and diagnostics. An IPv6 address is hashed as four big-endian words folded
 * together (w0·G ^ w1, ·G ^ w2, ·G ^ w3, G = 0x9e3779b1), then mixed like an IPv4 address.
 */
export function reuseportSlot(address: string, groupSize: number): number {
  validateString('address', address);
  validateInt('groupSize', groupSize, 1, MAX_REUSEPORT_GROUP);
  let h: number;
  if (net.isIPv4(address)) {
    h = address.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
  } else if (net.isIPv6(address)) {
    const words = ipv6Words(address);
    h = words[0]!;
    for (let i = 1; i < 4; i++) h = (mul32(h, 0x9e3779b1) ^ words[i]!) >>> 0;
  } else {
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `The argument 'address' must be an IP address. Received ${describe(address)}`,
    );
  }
  return fmix32(h) % groupSize;
}

/** The four 32-bit big-endian words of an IPv6 address ('::1', 'fd00::2', '::ffff:1.2.3.4'). */
function ipv6Words(address: string): number[] {
  const text = address.split('%')[0]!;
  let head = text;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const b = v4[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    head = text.slice(0, -v4[1]!.length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left = '', right] = head.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const l = parse(left);
  const r = [...(right === undefined ? [] : parse(right)), ...tail];
  const groups =
    right === undefined
      ? [...l, ...tail]
      : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const words: number[] = [];
  for (let i = 0; i < 8; i += 2) words.push(((groups[i]! << 16) | groups[i + 1]!) >>> 0);
  return words;
}
