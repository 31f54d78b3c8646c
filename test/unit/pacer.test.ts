// How long a stream is held after a read (src/executor/stdio.ts): what the
// reads of a flood tell about its rate.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pacer } from '../../src/executor/stdio.js';

const MiB = 1 << 20;

test('small reads are not held; a flood is held up to 20 ms, less while its pipe fills', () => {
  const pace = pacer();
  assert.equal(pace(100, MiB), 0, 'a line now and then is read as it comes');
  assert.equal(pace(4095, MiB), 0);
  assert.equal(pace(64 << 10, MiB), 20, 'a flood read: held the longest');
  // The pipe was half full or more: the hold halves, down to 1 ms, then the stream is read at once.
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => pace(MiB, MiB)), [10, 5, 2, 1, 0, 0]);
  // Between an eighth and a half: the hold is kept.
  assert.equal(pace(300 << 10, MiB), 1);
  assert.equal(pace(300 << 10, MiB), 1);
  // An eighth or less: the hold doubles back to 20 ms.
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => pace(100 << 10, MiB)), [2, 4, 8, 16, 20, 20]);
  // Against a pipe that could not be grown, half of its 64 KiB is full.
  assert.equal(pacer()(32 << 10, 64 << 10), 10);
});
