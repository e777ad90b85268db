import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { droppedLogLines, SafeDestination } from '../../src/log/logger.js';
import { dup2 } from '../../src/native/index.js';

test('SafeDestination drops and counts lines on ENOSPC (/dev/full) instead of throwing, and recovers', () => {
  const fd = fs.openSync('/dev/full', 'a');
  try {
    const before = droppedLogLines();
    const dest = new SafeDestination(fd);
    for (let i = 0; i < 5; i++) dest.write(`{"line":${i}}\n`);
    assert.equal(droppedLogLines() - before, 5);
    // The disk has room again (the descriptor now leads elsewhere): the next line is written, not counted.
    const nul = fs.openSync('/dev/null', 'a');
    dup2(nul, fd);
    fs.closeSync(nul);
    dest.write('{"line":5}\n');
    assert.equal(droppedLogLines() - before, 5);
  } finally {
    fs.closeSync(fd);
  }
});

test('SafeDestination on a full non-blocking pipe: waits ~1 s for the first line only, then drops at once', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-logger-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // O_RDWR: opening a FIFO for both ends never blocks (Linux); nobody reads it, so it fills up.
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  try {
    const chunk = Buffer.alloc(4096, 'x');
    for (;;) {
      try {
        fs.writeSync(fd, chunk);
      } catch {
        break;
      }
    }
    const before = droppedLogLines();
    const dest = new SafeDestination(fd);
    let t0 = Date.now();
    dest.write('first\n');
    const firstMs = Date.now() - t0;
    t0 = Date.now();
    for (let i = 0; i < 100; i++) dest.write('next\n');
    const nextMs = Date.now() - t0;
    assert.equal(droppedLogLines() - before, 101);
    assert.ok(firstMs >= 900 && firstMs < 3000, `first line waited ${firstMs} ms`);
    assert.ok(nextMs < 200, `100 more lines took ${nextMs} ms`);
    // A reader empties the pipe: lines go through again.
    const sink = Buffer.alloc(1 << 20);
    while (true) {
      try {
        if (fs.readSync(fd, sink) === 0) break;
      } catch {
        break;
      }
    }
    dest.write('again\n');
    assert.equal(droppedLogLines() - before, 101);
    assert.equal(sink.subarray(0, fs.readSync(fd, sink)).toString(), 'again\n');
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
