// containerd killed under a running plugind: the event stream resubscribes,
// plugind reconciles, every exit (one during the outage too) is reported
// exactly once, and API calls made meanwhile answer instead of hanging.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ExitEvent } from '../../src/api/client.js';
import type { Harness } from '../helpers/containerd.js';
import { metricsText, sample, startServed, until, type Served, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
let h: Harness;
let s: Served;
let exits: ExitEvent[];

before(async () => {
  rig = await startServed('outage');
  ({ h, s, exits } = rig);
});
after(async () => {
  await rig?.close();
});

test('containerd SIGKILLed (restarted by its supervisor): exits during the outage reported once, calls answer', async () => {
  const c = s.client;
  await c.run('short', { rootfs: h.rootfs, args: ['sh', '-c', 'sleep 0.5; exit 5'] });
  await c.run('long', { rootfs: h.rootfs, args: ['sleep', '1000'] });
  const restarted = once(h.supervisor, 'restart');
  process.kill(h.supervisor.pid as number, 'SIGKILL');
  // Calls made while containerd is away: served from memory, or waited for.
  const started = Date.now();
  assert.equal((await c.inspect('long')).state, 'running');
  const during = await c.run('during', { rootfs: h.rootfs, args: ['sh', '-c', 'exit 2'] }).then(
    () => 'ok',
    (err: { code?: string }) => err.code,
  );
  assert.ok(during === 'ok' || during === 'Unavailable', `run during the outage: ${during}`);
  assert.ok(Date.now() - started < 30_000, 'no call hangs');
  await restarted;
  await until('the exit of short', () => exits.some((e) => e.id === 'short'));
  if (during === 'ok') await until('the exit of during', () => exits.some((e) => e.id === 'during'));
  await until('the event stream back', async () => (sample(await metricsText(s.metricsUrl), 'plugind_containerd_reconnects_total') ?? 0) >= 1);
  await sleep(1000);
  const short = exits.filter((e) => e.id === 'short');
  assert.equal(short.length, 1, 'reported exactly once');
  assert.equal(short[0]?.exitStatus, 5);
  assert.equal(exits.filter((e) => e.id === 'long').length, 0);
  assert.equal((await c.inspect('short')).exitStatus, 5);
  assert.equal((await c.inspect('long')).state, 'running');
  // Still works afterwards.
  await c.run('after', { rootfs: h.rootfs, args: ['sh', '-c', 'exit 3'] });
  await until('the exit of after', () => exits.some((e) => e.id === 'after'));
  assert.equal(exits.find((e) => e.id === 'after')?.exitStatus, 3);
  for (const p of await c.list()) await c.remove(p.id, true);
});
