// Shard workers crashing again and again under churn: running plugins are
// untouched, no exit is lost or reported twice, plugind's fds and memory
// come back to where they were.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ExitEvent } from '../../src/api/client.js';
import { shardOf } from '../../src/coordinator/shard-map.js';
import type { Harness } from '../helpers/containerd.js';
import { leftovers, metricsText, sample, startServed, until, usage, type Served, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
let h: Harness;
let s: Served;
let exits: ExitEvent[];

before(async () => {
  rig = await startServed('crash');
  ({ h, s, exits } = rig);
});
after(async () => {
  await rig?.close();
});

test('20 worker crashes under churn: plugins untouched, exits once each, fds and memory back', async (t) => {
  const c = s.client;
  const longIds = Array.from({ length: 12 }, (_, i) => `long-${i}`);
  assert.equal(new Set(longIds.map((id) => shardOf(id, 2))).size, 2);
  for (const id of longIds) await c.run(id, { rootfs: h.rootfs, args: ['sh', '-c', 'while true; do echo tick; sleep 0.2; done'] });
  const pids = new Map((await c.list()).map((p) => [p.id, p.pid]));
  // Warm up, then take the baseline.
  const warm = Array.from({ length: 10 }, (_, i) => `warm-${i}`);
  for (const id of warm) await c.run(id, { rootfs: h.rootfs, args: ['true'] });
  await until('the warm-up plugins exited', () => warm.every((id) => exits.some((e) => e.id === id)));
  for (const id of warm) await c.remove(id);
  const before = usage(s.pid);

  let stop = false;
  let n = 0;
  const churn = (async () => {
    while (!stop) {
      const id = `churn-${n++}`;
      await c.run(id, { rootfs: h.rootfs, args: ['sh', '-c', 'exit 7'] }).catch(() => {});
    }
  })();
  for (let k = 0; k < 20; k++) {
    const restarts = sample(await metricsText(s.metricsUrl), 'plugind_worker_restarts_total') ?? 0;
    await c.crashWorker(k % 2).catch(() => {});
    await until(`crash ${k}: worker replaced`, async () => (sample(await metricsText(s.metricsUrl), 'plugind_worker_restarts_total') ?? 0) >= restarts + 1);
  }
  stop = true;
  await churn;

  // Every churn plugin that exists has exited; each exit was reported once.
  const list = await c.list();
  const churned = list.filter((p) => p.id.startsWith('churn-'));
  const unreported = (): string[] => churned.filter((p) => !exits.some((e) => e.id === p.id)).map((p) => p.id);
  await until('every churned exit reported', () => unreported().length === 0).catch(() => assert.deepEqual(unreported(), [], 'exits never reported'));
  // A while for an exit reported twice to show: the point is that none is.
  await sleep(500);
  const perId = new Map<string, number>();
  for (const e of exits) perId.set(e.id, (perId.get(e.id) ?? 0) + 1);
  const doubled = [...perId].filter(([, k]) => k > 1).map(([id]) => id);
  assert.deepEqual(doubled, [], 'no exit reported twice');
  for (const id of longIds) {
    const p = list.find((x) => x.id === id);
    assert.equal(p?.state, 'running', id);
    assert.equal(p?.pid, pids.get(id), `${id} untouched`);
    assert.ok(!perId.has(id), `${id} did not exit`);
  }
  t.diagnostic(`${n} churn runs, ${churned.length} created, ${exits.length} exits`);

  // No task outlives its plugin's exit, not even one a crashed worker's
  // create left being made in containerd (plugind looks again for those).
  const running = new Set(longIds);
  await until('no task but the long plugins', async () => (await leftovers(rig, running)).every((x) => !x.startsWith('task ')), 20_000).catch(
    async () => assert.deepEqual((await leftovers(rig, running)).filter((x) => x.startsWith('task ')), []),
  );

  for (const p of churned) await c.remove(p.id, true);
  // Removal closes a plugin's fds as it ends; the assertion below says how far they stayed off.
  await until('fds back', () => usage(s.pid).fds <= before.fds + 8, 10_000).catch(() => {});
  const now = usage(s.pid);
  t.diagnostic(`plugind fds ${before.fds} → ${now.fds}, RSS ${before.rssMb.toFixed(0)} → ${now.rssMb.toFixed(0)} MB`);
  assert.ok(now.fds <= before.fds + 8, `fds ${before.fds} → ${now.fds}`);
  assert.ok(now.rssMb <= before.rssMb + 80, `RSS ${before.rssMb} → ${now.rssMb} MB`);
  assert.deepEqual(await leftovers(rig, longIds), [], 'nothing left of removed plugins');
  for (const id of longIds) await c.remove(id, true);
  assert.deepEqual(await leftovers(rig), []);
});
