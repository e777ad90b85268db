// The connection list a server drains from (src/server/connections.ts): an intrusive list through each
// connection's ConnState, so adding and removing a connection costs no hashing and no allocation.
import * as assert from 'node:assert/strict';
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { Connections, ConnList, ConnState, STATE, type Tracked } from '../../src/server/connections.js';
import type { AppServer } from '../../src/server/index.js';

const server = {} as AppServer;
const conn = (name: string): ConnState => new ConnState(server, { name } as unknown as Socket, 0);
const names = (list: ConnList): string[] => [...list].map((s) => (s as unknown as { name: string }).name);

test('connections are listed until they close, whatever the order they close in', () => {
  const list = new ConnList();
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(conn) as [ConnState, ConnState, ConnState, ConnState];
  for (const st of [a, b, c, d]) list.add(st);
  assert.equal(list.size, 4);
  assert.deepEqual(names(list).sort(), ['a', 'b', 'c', 'd']);
  assert.equal(list.delete(c), true); // middle
  assert.equal(list.delete(d), true); // head (the newest)
  assert.equal(list.delete(a), true); // tail
  assert.deepEqual(names(list), ['b']);
  assert.equal(list.size, 1);
  assert.equal(list.delete(b), true);
  assert.deepEqual(names(list), []);
  assert.equal(list.size, 0);
});

test('a connection is counted once, and removing it twice is harmless', () => {
  const list = new ConnList();
  const a = conn('a');
  list.add(a);
  list.add(a);
  assert.equal(list.size, 1);
  assert.equal(list.delete(a), true);
  assert.equal(list.delete(a), false);
  assert.equal(list.size, 0);
  list.add(conn('b'));
  assert.deepEqual(names(list), ['b']);
});

test('iterating is a snapshot: connections closing meanwhile do not cut the walk short', () => {
  const list = new ConnList();
  const all = ['a', 'b', 'c'].map(conn);
  for (const st of all) list.add(st);
  const seen: string[] = [];
  for (const sock of list) {
    seen.push((sock as unknown as { name: string }).name);
    for (const st of all) list.delete(st);
  }
  assert.equal(seen.length, 3);
  assert.equal(list.size, 0);
});

test('a closed connection keeps no other connection reachable', () => {
  const list = new ConnList();
  const [a, b, c] = ['a', 'b', 'c'].map(conn) as [ConnState, ConnState, ConnState];
  for (const st of [a, b, c]) list.add(st);
  list.delete(b);
  assert.equal(b.prev, null);
  assert.equal(b.next, null);
  assert.equal(c.next, a);
  assert.equal(a.prev, c);
});

test('responses in progress are listed from their connections, several at once on one connection too', () => {
  const live = new Connections();
  const res = (name: string): http.ServerResponse => ({ name }) as unknown as http.ServerResponse;
  const track = (st: ConnState): void => {
    (st.socket as Tracked<Socket>)[STATE] = st;
    live.conns.add(st);
  };
  const a = conn('a');
  const b = conn('b');
  track(a);
  track(b);
  assert.deepEqual(live.responses(), []);
  const [r1, r2, r3] = [res('r1'), res('r2'), res('r3')];
  a.res = r1;
  a.more = new Set([r2]); // pipelined, or HTTP/2 streams on one connection
  b.res = r3;
  assert.deepEqual(new Set(live.responses()), new Set([r1, r2, r3]));
  live.conns.delete(a); // a closed connection has no response left to wait for
  assert.deepEqual(live.responses(), [r3]);
});
