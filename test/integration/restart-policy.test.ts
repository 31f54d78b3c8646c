// Restart policies through the real CLI and service on a real containerd:
// `always` with docker's backoff (the plugin listed throughout, never NOT
// FOUND), a user stop or kill cancelling a pending restart, and what
// plugind's start does with plugins found stopped under each policy.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Plugin } from '../../src/api/client.js';
import { cli } from '../helpers/cli.js';
import { alive, logText, serve, startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
const LOOP = ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.1; done"];

before(async () => {
  rig = await startServed('restart');
});

after(async () => {
  await rig?.close();
});

const exitsOf = (id: string): number => rig.exits.filter((e) => e.id === id).length;

test('always: a clean exit is restarted with a doubling backoff, the plugin listed throughout; a user stop cancels the pending restart', async () => {
  const { s, h } = rig;
  await s.client.run('bounce', { rootfs: h.rootfs, args: ['sh', '-c', 'echo run; exit 0'], restart: 'always' });
  // inspect, all along: a restart must never make the plugin vanish.
  const seen: Plugin[] = [];
  const failures: string[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      await s.client.inspect('bounce').then(
        (p) => seen.push(p),
        (err: Error) => failures.push(err.message),
      );
      await sleep(5);
    }
  })();
  await until('5 restarts', async () => (await s.client.inspect('bounce')).restartCount >= 5, 20_000);
  // The 5th restart is done; wait for the 6th to be pending (1.6 s away), then stop.
  await until('a restart pending', async () => (await s.client.inspect('bounce')).nextRestartAt !== undefined, 10_000);
  const stop = cli(['stop', 'bounce'], { address: s.address });
  assert.equal(stop.code, 0, stop.stderr);
  watching = false;
  await watcher;
  assert.deepEqual(failures, [], 'inspect answered every time');
  const p = await s.client.inspect('bounce');
  assert.equal(p.state, 'stopped');
  assert.equal(p.nextRestartAt, undefined, 'the pending restart is gone');
  const count = p.restartCount;
  const exits = exitsOf('bounce');
  // Past the delay the cancelled restart had (at most 3.2 s): nothing runs.
  await sleep(3500);
  assert.equal(exitsOf('bounce'), exits, 'no run after the stop');
  assert.equal((await s.client.inspect('bounce')).restartCount, count);
  assert.equal(await logText(s.client, 'bounce', 'stdout'), 'run\n'.repeat(count + 1));
  // The n-th restart (n-1 done while it is pending) was due 100 ms × 2^(n-1) after the exit before it.
  const pending = seen.filter((x) => x.nextRestartAt && x.exitedAt);
  assert.ok(pending.length > 0);
  for (const x of pending) {
    const delay = (x.nextRestartAt as Date).getTime() - (x.exitedAt as Date).getTime();
    const want = 100 * 2 ** x.restartCount;
    assert.ok(delay >= want - 2 && delay < want + 2000, `restart ${x.restartCount + 1}: due ${delay} ms after the exit, want ${want}`);
  }
  const json = JSON.parse(cli(['inspect', 'bounce', '--json'], { address: s.address }).stdout) as Record<string, unknown>;
  assert.equal(json.restartCount, count);
  assert.equal(json.restart, 'always');
  await s.client.remove('bounce');
});

test('kill with a stop signal is a user stop; other signals are messages to the plugin', async () => {
  const { s, h } = rig;
  await s.client.run('hup', { rootfs: h.rootfs, args: ['sh', '-c', "trap 'echo hup' HUP; trap 'exit 3' TERM; while true; do sleep 0.1; done"], restart: 'always' });
  const k1 = cli(['kill', 'hup', '--signal', 'HUP'], { address: s.address });
  assert.equal(k1.code, 0, k1.stderr);
  await until('hup logged', async () => (await logText(s.client, 'hup', 'stdout')).includes('hup'));
  assert.equal((await s.client.inspect('hup')).state, 'running');
  const k2 = cli(['kill', 'hup', '--signal', 'TERM'], { address: s.address });
  assert.equal(k2.code, 0, k2.stderr);
  await until('hup exited', () => exitsOf('hup') === 1);
  await sleep(500);
  const p = await s.client.inspect('hup');
  assert.equal(p.state, 'stopped');
  assert.equal(p.exitStatus, 3);
  assert.equal(p.restartCount, 0);
  assert.equal(p.nextRestartAt, undefined);
  await s.client.remove('hup');
});

test('at plugind start: always runs a plugin the user stopped, unless-stopped does not; exits while away are restarted by their policy, counts kept', async () => {
  const { h } = rig;
  const policies: Record<string, string> = { a: 'always', b: 'unless-stopped', c: 'unless-stopped', d: 'on-failure:1', e: 'no' };
  for (const [id, restart] of Object.entries(policies)) await rig.s.client.run(id, { rootfs: h.rootfs, args: LOOP, restart });
  // d fails once while plugind runs: its one restart is used.
  process.kill((await rig.s.client.inspect('d')).pid, 'SIGKILL');
  await until('d restarted', async () => {
    const d = await rig.s.client.inspect('d');
    return d.state === 'running' && d.restartCount === 1;
  });
  await rig.s.client.stop('a');
  await rig.s.client.stop('b');
  // plugind goes; c, d and e are killed while it is away.
  await rig.s.stop('SIGTERM');
  const pids: number[] = [];
  for (const id of ['c', 'd', 'e']) {
    const { pid } = (await rig.containerd.tasks.get(id)) ?? {};
    assert.ok(pid, id);
    pids.push(pid);
    process.kill(pid, 'SIGKILL');
  }
  await until('killed', () => pids.every((pid) => !alive(pid)));
  rig.s = await serve({ dataDir: rig.dataDir, containerdAddress: h.address, namespace: rig.namespace });
  const c = rig.s.client;
  await until('a and c run again', async () => (await c.inspect('a')).state === 'running' && (await c.inspect('c')).state === 'running');
  // Time for a wrong restart of the others to show.
  await sleep(1000);
  const state = async (id: string): Promise<[string, number]> => {
    const p = await c.inspect(id);
    return [p.state, p.restartCount];
  };
  assert.deepEqual(await state('a'), ['running', 1], 'always: run again although the user stopped it');
  assert.deepEqual(await state('b'), ['stopped', 0], 'unless-stopped: the user stop holds');
  assert.deepEqual(await state('c'), ['running', 1], 'unless-stopped: exited while away');
  assert.deepEqual(await state('d'), ['stopped', 1], 'on-failure:1: its one restart was used before');
  assert.deepEqual(await state('e'), ['stopped', 0]);
  for (const id of Object.keys(policies)) await c.remove(id, true);
});
