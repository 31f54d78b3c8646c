// The service end to end, through the real CLI process and its gRPC API,
// against a real containerd: 50 plugins over two shard workers, every exit
// reported once on the events stream, metrics that match what was done and
// pass promtool, a crashed worker replaced under running plugins, and a
// serve restart that restores them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ExitEvent, ServerStream } from '../../src/api/client.js';
import { shardOf } from '../../src/coordinator/shard-map.js';
import { purgeNamespace, startContainerd, uniqueName, type Harness } from '../helpers/containerd.js';
import { cli as runCli, logText, metricsText, sample, serve, until, type Served } from '../helpers/serve.js';
import { pool } from '../helpers/pool.js';


let h: Harness;
let s: Served;
let namespace: string;
let dataDir: string;
const exits: ExitEvent[] = [];
let events: ServerStream<ExitEvent> | undefined;

before(async () => {
  h = await startContainerd();
  namespace = uniqueName('svc');
  dataDir = join(h.dir, 'plugind');
  s = await serve({ dataDir, containerdAddress: h.address, namespace });
  events = s.client.events();
  void (async () => {
    try {
      for await (const e of events!) exits.push(e);
    } catch {
      /* stream ends with the server */
    }
  })();
  await sleep(100);
});

after(async () => {
  events?.close();
  await s?.stop();
  if (h) await purgeNamespace(h.client('x').withNamespace(namespace)).catch(() => {});
  await h?.stop();
});



const text = logText;

const cli = (args: string[]): ReturnType<typeof runCli> => runCli(s.address, args);

test('50 plugins over 2 shards: output, exits once each, metrics that add up', async (t) => {
  const ids = Array.from({ length: 50 }, (_, i) => `batch-${i}`);
  assert.equal(new Set(ids.map((id) => shardOf(id, 2))).size, 2, 'ids spread over both shards');
  const shards = new Set<number>();
  await pool(ids, 8, async (id) => {
    const i = Number(id.split('-')[1]);
    const res = await s.client.run(id, { rootfs: h.rootfs, args: ['sh', '-c', `echo out-${id}; echo err-${id} >&2; exit ${i % 4}`] });
    shards.add(res.shard);
  });
  assert.deepEqual([...shards].sort(), [0, 1]);
  await until('50 exits', () => exits.filter((e) => e.id.startsWith('batch-')).length >= 50);
  await sleep(500);
  const mine = exits.filter((e) => e.id.startsWith('batch-'));
  assert.equal(mine.length, 50, 'no exit reported twice');
  for (const id of ids) {
    const e = mine.find((x) => x.id === id);
    assert.ok(e, id);
    assert.equal(e.exitStatus, Number(id.split('-')[1]) % 4);
    assert.ok(e.exitedAt instanceof Date);
    assert.equal(await text(s.client, id, 'stdout'), `out-${id}\n`);
    assert.equal(await text(s.client, id, 'stderr'), `err-${id}\n`);
  }
  const listed = await s.client.list();
  assert.equal(listed.filter((p) => p.id.startsWith('batch-') && p.state === 'stopped').length, 50);

  assert.equal(statSync(s.address.slice('unix://'.length)).mode & 0o777, 0o600, 'API socket is 0600');
  const base = s.metricsUrl.replace(/\/metrics$/, '');
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const m = await metricsText(s.metricsUrl);
  assert.equal(sample(m, 'plugind_exits_total'), 50);
  assert.equal(sample(m, 'plugind_create_duration_seconds_count'), 50);
  assert.equal(sample(m, 'plugind_event_lag_seconds_count'), 50);
  assert.equal(sample(m, 'plugind_plugins{state="stopped"}'), 50);
  assert.equal(sample(m, 'plugind_worker_restarts_total'), 0);
  assert.equal(sample(m, 'plugind_containerd_up'), 1);
  const stdout = m.split('\n').filter((l) => l.startsWith('plugind_stdio_bytes_total{stream="stdout"')).reduce((n, l) => n + Number(l.split(' ')[1]), 0);
  assert.equal(stdout, ids.reduce((n, id) => n + `out-${id}\n`.length, 0));
  assert.equal((m.match(/^# TYPE process_cpu_seconds_total /gm) ?? []).length, 1, 'process metrics once');
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' });
  if (promtool.error) {
    if (process.env.CI) assert.fail('promtool missing: scripts/setup.sh installs prometheus');
    t.diagnostic('promtool not installed: metrics not checked with it (scripts/setup.sh installs prometheus)');
  } else {
    assert.equal(promtool.status, 0, promtool.stdout + promtool.stderr);
  }

  // The CLI's JSON and errors.
  const ls = cli(['ls', '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  const arr = JSON.parse(ls.stdout) as Array<Record<string, unknown>>;
  const one = arr.find((p) => p.id === 'batch-3');
  assert.deepEqual(Object.keys(one ?? {}).sort(), ['autoRemove', 'createdAt', 'exitStatus', 'exitedAt', 'id', 'pid', 'restart', 'shard', 'state']);
  assert.equal(one?.exitStatus, 3);
  const missing = cli(['inspect', 'nope']);
  assert.notEqual(missing.code, 0);
  assert.equal(missing.stderr, 'plugind: plugin nope: not found\n');
  const bad = cli(['run', 'bad/id', '--rootfs', h.rootfs, '--', 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /^plugind: plugin id "bad\/id" is invalid/);
  await pool(ids, 8, (id) => s.client.remove(id));
});

test('a crashed worker is replaced; its plugins keep running and logging; nothing exits', async (t) => {
  let lost = 0;
  const ids = Array.from({ length: 40 }, (_, i) => `tick-${i}`).filter((id) => shardOf(id, 2) === 0).slice(0, 4);
  for (const id of ids) await s.client.run(id, { rootfs: h.rootfs, args: ['sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done'] });
  const pids = new Map((await s.client.list()).filter((p) => ids.includes(p.id)).map((p) => [p.id, p.pid]));
  const exitsBefore = exits.length;
  await sleep(300);
  await s.client.crashWorker(0);
  await until('worker restart counted', async () => sample(await metricsText(s.metricsUrl), 'plugind_worker_restarts_total') === 1);
  const lines = async (id: string): Promise<number> => (await text(s.client, id, 'stdout')).split('\n').length;
  const before = await Promise.all(ids.map(lines));
  await sleep(600);
  const later = await Promise.all(ids.map(lines));
  for (const [i, id] of ids.entries()) {
    const p = await s.client.inspect(id);
    assert.equal(p.state, 'running', id);
    assert.equal(p.pid, pids.get(id));
    assert.ok((later[i] as number) > (before[i] as number), `${id} still logging`);
    // In order, never repeated; a crash loses at most what the dead worker
    // had read and not yet written: one gap.
    const out = await text(s.client, id, 'stdout');
    const nums = out.trimEnd().split('\n').map((l) => Number(l.slice(4)));
    let gaps = 0;
    nums.forEach((n, k) => {
      const prev = k === 0 ? -1 : (nums[k - 1] as number);
      assert.ok(n > prev, `${id}: tick${n} after tick${prev}`);
      if (n > prev + 1) gaps += 1;
    });
    assert.ok(gaps <= 1, `${id}: ${gaps} gaps`);
    lost += (nums.at(-1) as number) + 1 - nums.length;
  }
  t.diagnostic(`lines lost at the crash: ${lost}`);
  assert.equal(exits.length, exitsBefore, 'no exit reported for plugins that did not exit');
});

test('a serve restart restores every running plugin; SIGTERM leaves them running', async () => {
  const running = (await s.client.list()).filter((p) => p.state === 'running');
  assert.ok(running.length >= 4);
  events?.close();
  await s.stop('SIGTERM');
  for (const p of running) execFileSync('kill', ['-0', String(p.pid)]);
  s = await serve({ dataDir, containerdAddress: h.address, namespace, workers: 3 });
  const after = await s.client.list();
  for (const p of running) {
    const q = after.find((x) => x.id === p.id);
    assert.equal(q?.state, 'running', p.id);
    assert.equal(q?.pid, p.pid);
  }
  const id = running[0]!.id;
  const n1 = (await text(s.client, id, 'stdout')).length;
  await sleep(400);
  assert.ok((await text(s.client, id, 'stdout')).length > n1, 'copying resumed');
  for (const p of running) await s.client.remove(p.id, true);
  assert.deepEqual((await s.client.list()).map((p) => p.id), []);
});

test('restart policy on-failure:2 runs a failing plugin twice more, then leaves it stopped; logs carry on', async () => {
  const seen: ExitEvent[] = [];
  const stream = s.client.events();
  void (async () => {
    for await (const e of stream) seen.push(e);
  })().catch(() => {});
  await sleep(100);
  await s.client.run('flaky', { rootfs: h.rootfs, args: ['sh', '-c', 'echo attempt; exit 1'], restart: 'on-failure:2' });
  await until('3 exits of flaky', () => seen.filter((e) => e.id === 'flaky').length >= 3, 20_000);
  await sleep(1500);
  assert.equal(seen.filter((e) => e.id === 'flaky').length, 3, 'no fourth run');
  const p = await s.client.inspect('flaky');
  assert.equal(p.state, 'stopped');
  assert.equal(p.exitStatus, 1);
  assert.equal(p.restart, 'on-failure:2');
  assert.equal(await text(s.client, 'flaky', 'stdout'), 'attempt\nattempt\nattempt\n');
  assert.equal(sample(await metricsText(s.metricsUrl), 'plugind_plugin_restarts_total{plugin="flaky"}'), 2);
  await s.client.remove('flaky');
  assert.equal(sample(await metricsText(s.metricsUrl), 'plugind_plugin_restarts_total{plugin="flaky"}'), undefined, 'series gone with the plugin');
  stream.close();
});

test('--stop-plugins-on-exit stops every plugin on SIGTERM', async () => {
  events?.close();
  await s.stop('SIGTERM');
  s = await serve({ dataDir, containerdAddress: h.address, namespace, extra: ['--stop-plugins-on-exit'] });
  await s.client.run('stopme', { rootfs: h.rootfs, args: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.1; done"] });
  const { pid } = await s.client.inspect('stopme');
  await s.stop('SIGTERM');
  assert.throws(() => execFileSync('kill', ['-0', String(pid)], { stdio: 'ignore' }), 'the plugin process is gone');
  const c = h.client('x').withNamespace(namespace);
  assert.deepEqual((await c.tasks.list()).map((t) => t.containerId), []);
  assert.equal((await c.containers.get('stopme')).labels['io.plugind.exit-status'], '0');
  s = await serve({ dataDir, containerdAddress: h.address, namespace });
  assert.equal((await s.client.inspect('stopme')).state, 'stopped');
  await s.client.remove('stopme');
  c.close();
});
