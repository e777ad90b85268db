// The channel keeps a peer's last words: whatever it sent before going away is delivered before `close`,
// however the going is noticed (hang-up, a socket error, a failed send), and `flush` lets a process wait
// until what it sent has left before it exits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Channel } from '../../src/cluster/channel.js';
import * as native from '../../src/native/index.js';

type Msg = { n: number; pad?: string };

function channelPair(): { ours: Channel<Msg, Msg>; peer: number; got: Msg[]; closed: Promise<number> } {
  const [a, peer] = native.socketpair();
  const got: Msg[] = [];
  let closes = 0;
  let onClose: (n: number) => void = () => {};
  const closed = new Promise<number>((resolve) => {
    onClose = resolve;
  });
  const ours = new Channel<Msg, Msg>(a, {
    parse: (v) => v as Msg,
    message: (msg) => got.push(msg),
    invalid: (reason) => assert.fail(`invalid: ${reason}`),
    close: () => {
      closes++;
      // Let a second close show up before the test looks.
      setTimeout(() => onClose(closes), 20);
    },
  });
  return { ours, peer, got, closed };
}

const sendRaw = (fd: number, msg: Msg): void => native.sendFds(fd, [], Buffer.from(JSON.stringify(msg)));

test('a peer that exits with our message unread (POLLERR, reported as EBADF): its messages come first', async () => {
  const { ours, peer, got, closed } = channelPair();
  ours.send({ n: 0 }); // never read by the peer: closing resets the connection
  for (const n of [1, 2, 3]) sendRaw(peer, { n });
  native.close(peer);
  assert.equal(await closed, 1);
  assert.deepEqual(got, [{ n: 1 }, { n: 2 }, { n: 3 }]);
});

test('a send that finds the peer gone (EPIPE): its messages are still delivered, after send returns', async () => {
  const { ours, peer, got, closed } = channelPair();
  ours.unref();
  for (const n of [1, 2]) sendRaw(peer, { n });
  native.close(peer);
  // Before the watcher has run: the send is the first to learn that the peer is gone.
  assert.equal(ours.send({ n: 9 }), false);
  assert.deepEqual(got, [], 'nothing is delivered inside send');
  assert.equal(await closed, 1);
  assert.deepEqual(got, [{ n: 1 }, { n: 2 }]);
  assert.equal(ours.send({ n: 10 }), false);
});

test('flush waits until messages held back by a full peer queue have left', async (t) => {
  const { ours, peer } = channelPair();
  t.after(() => {
    ours.close();
    native.close(peer);
  });
  // The peer does not read: past the socket's send buffer (a few hundred KiB), sends are held back.
  const pad = 'x'.repeat(20_000); // a scrape's answer comes in chunks of this size
  for (let n = 0; n < 40; n++) ours.send({ n, pad });
  assert.ok(ours.unsent > 0, 'some messages wait for room');
  let flushed = false;
  const flushing = ours.flush(5000).then(() => {
    flushed = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(flushed, false);
  const read: number[] = [];
  while (read.length < 40) {
    const got = native.recvFds(peer);
    if (got === null) await new Promise((r) => setTimeout(r, 2));
    else read.push((JSON.parse(got.data.toString()) as Msg).n);
  }
  await flushing;
  assert.equal(ours.unsent, 0);
  assert.deepEqual(
    read,
    Array.from({ length: 40 }, (_, i) => i),
    'in order',
  );
});

test('a descriptor closed behind the channel (recv says EBADF): the channel ends once, without closing the number again', async () => {
  const { ours, peer, closed } = channelPair();
  try {
    native.close(ours.fd); // someone else closed our number
    // Closing it again would throw EBADF here, or close whatever took the number since.
    ours.readPending();
    assert.equal(await closed, 1);
    assert.ok(ours.isClosed);
    ours.close();
  } finally {
    native.close(peer);
  }
});
