// Scale checks for the executor's stdio (counts, not times): 200 plugins
// flooding both streams at once, 200 idle FIFOs not starving libuv's
// threadpool, and create/remove cycles leaking nothing.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { startContainerd, type Harness } from '../helpers/containerd.js';
import { startExecutor, type ExecutorRig } from '../helpers/executor.js';
import { leftoversIn } from '../helpers/leftovers.js';
import { criContent } from '../helpers/log-lines.js';
import { pool } from '../helpers/pool.js';

let h: Harness;
let r: ExecutorRig;
before(async () => {
  h = await startContainerd();
  r = await startExecutor(h);
});
after(async () => {
  await r?.close();
  await h?.stop();
});


const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const seqText = (from: number, to: number): string => {
  const parts: string[] = [];
  for (let i = from; i <= to; i++) parts.push(`${i}\n`);
  return parts.join('');
};
const openFds = (): number => readdirSync('/proc/self/fd').length;

test('200 plugins write 256 KiB to stdout and 256 KiB to stderr at once: every byte in the right stream, in order', async () => {
  // 32 768 lines of 8 bytes = 256 KiB per stream (≈ 1.4 MB of CRI records each).
  const out = seqText(2000001, 2032768);
  const err = seqText(1000001, 1032768);
  assert.equal(out.length, 256 << 10);
  const flood = ids('flood', 200);
  const exits = flood.map((id) => r.exitOf(id));
  await pool(flood, 16, (id) => r.run(id, ['sh', '-c', 'seq 2000001 2032768 & seq 1000001 1032768 >&2; wait']));
  for (const e of await Promise.all(exits)) assert.equal(e.exitStatus, 0, e.id);
  let bad = 0;
  for (const id of flood) {
    const file = join(r.dataDir, 'logs', id);
    if (criContent(file, 'stdout').toString() !== out) bad += 1;
    if (criContent(file, 'stderr').toString() !== err) bad += 1;
  }
  assert.equal(bad, 0, 'files with missing, extra or reordered bytes');
  await pool(flood, 16, (id) => r.executor.remove(id));
});

test('with 200 idle plugins holding FIFOs open, an unrelated readFile completes', async () => {
  const idle = ids('idle', 200);
  await pool(idle, 16, (id) => r.run(id, ['sleep', '1000']));
  const read = readFile(join(h.rootfs, 'bin', 'busybox')).then((b) => b.length);
  const outcome = await Promise.race([read, sleep(30_000, 'starved' as const)]);
  assert.notEqual(outcome, 'starved');
  assert.ok((outcome as number) > 0);
  await pool(idle, 16, (id) => r.executor.remove(id, { force: true }));
});

test('creating and removing 100 plugins leaks no container, task, FIFO, log dir or fd', async () => {
  // Warm up: FIFO pool, log dirs, gRPC channel.
  await r.run('warm', ['true']);
  await r.exitOf('warm');
  await r.executor.remove('warm');
  const fdsBefore = openFds();
  const churn = ids('churn', 100);
  const exits = churn.map((id) => r.exitOf(id));
  await pool(churn, 8, (id) => r.run(id, ['sh', '-c', 'echo hi; echo ho >&2']));
  await Promise.all(exits);
  await pool(churn, 8, (id) => r.executor.remove(id));
  assert.deepEqual(await leftoversIn(r.client, r.dataDir), []);
  const fdsAfter = openFds();
  assert.ok(fdsAfter <= fdsBefore + 4, `fds before ${fdsBefore}, after ${fdsAfter}`);
});
