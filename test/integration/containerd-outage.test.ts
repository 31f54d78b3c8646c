// containerd killed under a running plugind: the event stream resubscribes,
// plugind reconciles, every exit (one during the outage too) is reported
// exactly once, and API calls made meanwhile answer instead of hanging.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ExitEvent, PluginsClient } from '../../src/api/client.js';
import { connect } from '../../src/containerd/index.js';
import { killStrays, type Harness } from '../helpers/containerd.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';
import { leftovers, metricsText, sample, serve, startServed, stopKeeper, until, usage, watchExits, type Served, type ServedRig } from '../helpers/serve.js';

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

test('containerd SIGKILLed (restarted by its supervisor): exits during the outage reported once, calls answer', async (t) => {
  const c = s.client;
  const before = usage(s.pid);
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
  // A while for a second report of short (a replayed event, a reconcile) to show: the point is that none comes.
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
  assert.deepEqual(await leftovers(rig), []);
  const now = usage(s.pid);
  t.diagnostic(`plugind fds ${before.fds} → ${now.fds}, RSS ${before.rssMb.toFixed(0)} → ${now.rssMb.toFixed(0)} MB`);
  assert.ok(now.fds <= before.fds + 8, `fds ${before.fds} → ${now.fds}`);
});

test('embedded containerd (serve without --containerd-address) SIGKILLed: restarted, exits once, calls answer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-'));
  const rootfs = makeBusyboxRootfs(join(dir, 'rootfs'));
  const dataDir = join(dir, 'data');
  const namespace = 'embedded';
  const e = await serve({ dataDir, namespace });
  const pidFile = join(dataDir, 'containerd', 'containerd.pid');
  const socket = join(dataDir, 'containerd', 'containerd.sock');
  const { exits: seen, events } = await watchExits(e.client);
  const c: PluginsClient = e.client;
  try {
    await c.run('short', { rootfs, args: ['sh', '-c', 'sleep 0.5; exit 5'] });
    await c.run('long', { rootfs, args: ['sleep', '1000'] });
    const longPid = (await c.inspect('long')).pid;
    const first = Number(readFileSync(pidFile, 'utf8'));
    process.kill(first, 'SIGKILL');
    const started = Date.now();
    assert.equal((await c.inspect('long')).state, 'running');
    const during = await c.run('during', { rootfs, args: ['sh', '-c', 'exit 2'] }).then(
      () => 'ok',
      (err: { code?: string }) => err.code,
    );
    assert.ok(during === 'ok' || during === 'Unavailable', `run during the outage: ${during}`);
    assert.ok(Date.now() - started < 30_000, 'no call hangs');
    await until('a new containerd', () => {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      return pid !== first && pid > 0;
    });
    await until('the exit of short', () => seen.some((x) => x.id === 'short'));
    if (during === 'ok') await until('the exit of during', () => seen.some((x) => x.id === 'during'));
    await until('the event stream back', async () => (sample(await metricsText(e.metricsUrl), 'plugind_containerd_reconnects_total') ?? 0) >= 1);
    await c.run('after', { rootfs, args: ['sh', '-c', 'exit 3'] });
    await until('the exit of after', () => seen.some((x) => x.id === 'after'));
    // A while for a second report of any exit to show: the point is that none comes.
    await sleep(1000);
    const counts = new Map<string, number>();
    for (const x of seen) counts.set(x.id, (counts.get(x.id) ?? 0) + 1);
    assert.deepEqual([...counts.values()].filter((k) => k > 1), [], 'no exit reported twice');
    assert.equal(seen.find((x) => x.id === 'short')?.exitStatus, 5);
    assert.equal(counts.get('long'), undefined);
    assert.deepEqual(await c.inspect('long').then((p) => [p.state, p.pid]), ['running', longPid], 'the long plugin is untouched');
    assert.equal(sample(await metricsText(e.metricsUrl), 'plugind_exits_total'), seen.length, 'plugind_exits_total counts each exit once');
    t.diagnostic(`run during the outage: ${during}; ${seen.length} exits reported`);
    for (const p of await c.list()) await c.remove(p.id, true);
    const direct = connect({ address: `unix://${socket}`, namespace });
    try {
      assert.deepEqual(await leftovers({ containerd: direct, dataDir }), []);
    } finally {
      direct.close();
    }
  } finally {
    events.close();
    await e.stop();
    await stopKeeper(dataDir, namespace);
    killStrays(socket);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM with containerd gone: plugind exits cleanly, no call left waiting on it', async (t) => {
  const r = await startServed('gone');
  try {
    await r.s.client.run('a', { rootfs: r.h.rootfs, args: ['sleep', '1000'] });
    await r.h.supervisor.stop();
    await until('plugind sees containerd down', async () => sample(await metricsText(r.s.metricsUrl), 'plugind_containerd_up') === 0);
    const t0 = Date.now();
    await r.s.stop('SIGTERM');
    t.diagnostic(`exited ${Date.now() - t0} ms after SIGTERM`);
    assert.equal(r.s.child.exitCode, 0, r.s.logs.slice(-5).join('\n'));
    // containerd back, so that the plugin can be cleaned up.
    await r.h.supervisor.start();
  } finally {
    await r.close();
  }
});
