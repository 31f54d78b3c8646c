// PluginUsage's waiting, with reads made slow on purpose (containerd's
// answer for a thousand plugins takes about a second; here a timer stands
// in for that delay, nothing else of containerd's).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { TaskMetrics } from '../../src/containerd/index.js';
import { PluginUsage } from '../../workers/plugin-usage.js';

const usage = (cpuNs: number): TaskMetrics[] => [{ id: 'a', cpuNs, memoryBytes: 1, pids: 1 }];

test('the first read is waited for whole; a slow one after gives the last read, and lands for the next scrape', async () => {
  let n = 0;
  let delay = 50;
  const u = new PluginUsage(async () => {
    n += 1;
    const mine = n;
    await sleep(delay);
    return usage(mine);
  }, 20);
  assert.deepEqual(await u.get(), { ok: true, usage: usage(1), fresh: true });
  delay = 100;
  const t0 = performance.now();
  assert.deepEqual(await u.get(), { ok: true, usage: usage(1), fresh: false }, 'read 2 is slow: read 1 given');
  assert.ok(performance.now() - t0 < 90);
  // A scrape while read 2 is under way joins it rather than starting another.
  assert.deepEqual(await u.get(), { ok: true, usage: usage(1), fresh: false });
  assert.equal(n, 2);
  await sleep(120);
  delay = 0;
  assert.deepEqual(await u.get(), { ok: true, usage: usage(3), fresh: true });
  assert.equal(n, 3);
});

test('a failed read is given as a failure, fresh for the scrape that made it', async () => {
  let fail = true;
  const u = new PluginUsage(async () => {
    if (fail) throw new Error('containerd is not answering');
    return usage(7);
  }, 20);
  const got = await u.get();
  assert.equal(got.ok, false);
  assert.equal(got.fresh, true);
  fail = false;
  assert.deepEqual(await u.get(), { ok: true, usage: usage(7), fresh: true });
});
