// What a new user ran into, each against a real containerd and `plugind
// serve`: long ids, specs too deep or too big, --rm with --restart, re-running
// a stopped id, exit-event lag under stop, --init, the CLI's own words, and a
// serve that cannot start.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import type { PluginsClient } from '../../src/api/client.js';
import { ErrorCode } from '../../src/containerd/index.js';
import { defaultSpec } from '../../src/executor/index.js';
import { cli } from '../helpers/cli.js';
import { settled } from '../helpers/rejects.js';
import type { Harness } from '../helpers/containerd.js';
import { leftovers, logText, metricsText, sample, startServed, until, type Served, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
let h: Harness;
let s: Served;
let c: PluginsClient;

before(async () => {
  rig = await startServed('user');
  ({ h, s } = rig);
  c = s.client;
});
after(async () => {
  await rig?.close();
});

async function stopped(id: string): Promise<void> {
  await until(`${id} to stop`, async () => (await c.inspect(id)).state === 'stopped');
}

test('ids of 64 to 76 characters run; the hostname is the id cut to what Linux takes', async () => {
  const long = `p${'x'.repeat(52)}-y.long-tail-0123456789`;
  assert.equal(long.length, 76);
  const sixtyFour = 'h'.repeat(64);
  for (const id of [long, sixtyFour]) {
    await c.run(id, { rootfs: h.rootfs, args: ['hostname'] });
    await stopped(id);
    assert.equal((await c.inspect(id)).exitStatus, 0, id);
    const hostname = (await logText(c, id, 'stdout')).trim();
    assert.ok(hostname.length <= 63 && id.startsWith(hostname), `${id} → ${hostname}`);
    await c.remove(id);
  }
  const spec = defaultSpec({ rootfs: h.rootfs, args: ['true'] });
  spec.hostname = 'n'.repeat(70);
  const r = await settled(c.run('named', { specJson: JSON.stringify(spec) }));
  assert.equal(r.code, ErrorCode.InvalidArgument);
  assert.match(r.message, /plugin named: spec.hostname is 70 bytes; Linux allows 64/);
  assert.deepEqual(await leftovers(rig), []);
});

test('a deeply nested or oversized spec is INVALID_ARGUMENT naming --spec; no worker dies', async () => {
  const before = sample(await metricsText(s.metricsUrl), 'plugind_worker_restarts_total') ?? 0;
  const objects = '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000);
  const inSpec = JSON.stringify({ ...defaultSpec({ rootfs: h.rootfs, args: ['true'] }), annotations: {} }).replace('"annotations":{}', `"annotations":${objects}`);
  for (const [specJson, re] of [
    ['['.repeat(100_000) + ']'.repeat(100_000), /plugin deep: --spec is not a JSON object/],
    [objects, /plugin deep: --spec nests deeper than 64 levels/],
    [inSpec, /plugin deep: --spec nests deeper than 64 levels/],
    [JSON.stringify({ pad: 'x'.repeat(40 << 20) }), /plugin deep: --spec is 4194\d+ bytes; at most 1048576/],
  ] as Array<[string, RegExp]>) {
    const r = await settled(c.run('deep', { specJson }));
    assert.equal(r.code, ErrorCode.InvalidArgument, r.message.slice(0, 200));
    assert.match(r.message, re);
  }
  assert.equal(sample(await metricsText(s.metricsUrl), 'plugind_worker_restarts_total') ?? 0, before, 'no worker was replaced');
  assert.deepEqual(await leftovers(rig), []);
  assert.deepEqual(await c.list(), []);
});

test('--rm with --restart is refused, as docker does', async () => {
  const r = await settled(c.run('rmr', { rootfs: h.rootfs, args: ['false'], autoRemove: true, restart: 'on-failure:3' }));
  assert.equal(r.code, ErrorCode.InvalidArgument);
  assert.match(r.message, /plugin rmr: --rm and --restart on-failure:3 cannot be combined/);
  assert.deepEqual(await leftovers(rig), []);
});

test('a stopped plugin is not replaced by run unless --replace; its logs stay until then', async () => {
  await c.run('again', { rootfs: h.rootfs, args: ['echo', 'first'] });
  await stopped('again');
  const r = await settled(c.run('again', { rootfs: h.rootfs, args: ['echo', 'second'] }));
  assert.equal(r.code, ErrorCode.AlreadyExists);
  assert.match(r.message, /plugin again exists \(stopped\); remove it first \(plugind rm again\) or run with --replace/);
  assert.equal(await logText(c, 'again'), 'first\n', 'nothing of the old plugin was touched');
  await c.run('again', { rootfs: h.rootfs, args: ['echo', 'second'], replace: true });
  await stopped('again');
  assert.equal(await logText(c, 'again'), 'second\n');
  await c.remove('again');
  assert.deepEqual(await leftovers(rig), []);
});

test('every exit event is observed in plugind_event_lag_seconds, also when stop handled the exit first', async () => {
  const count = async (): Promise<number> => sample(await metricsText(s.metricsUrl), 'plugind_event_lag_seconds_count') ?? 0;
  const ids = Array.from({ length: 12 }, (_, i) => `lag-${i}`);
  await Promise.all(ids.map((id) => c.run(id, { rootfs: h.rootfs, args: ['sleep', '1000'] })));
  const start = await count();
  await Promise.all(ids.map((id) => c.stop(id, 0)));
  await until('12 lag observations', async () => (await count()) - start >= 12);
  assert.equal((await count()) - start, 12);
  await Promise.all(ids.map((id) => c.remove(id)));
});

test('--init: SIGTERM reaches a shell command, and orphans are reaped', async () => {
  const loop = ['sh', '-c', 'while true; do sleep 1; done'];
  await c.run('init-loop', { rootfs: h.rootfs, args: loop, init: true });
  const exit = await c.stop('init-loop', 30);
  assert.equal(exit.exitStatus, 128 + 15, 'the shell died of SIGTERM, not of the SIGKILL after the timeout');
  await c.remove('init-loop');

  // 50 children orphaned by their subshells, each exiting within a second,
  // under a PID 1 that never waits (the shell execs sleep): only an init reaps them.
  const count = 'for i in $(seq 50); do (sleep 0.2 &); done; sleep 2; awk \'$3=="Z"\' /proc/[0-9]*/stat | wc -l';
  const zombies = `(${count}) & exec sleep 3`;
  for (const [id, init, want] of [
    ['orphans-init', true, (n: number) => n === 0],
    ['orphans-bare', false, (n: number) => n > 0],
  ] as Array<[string, boolean, (n: number) => boolean]>) {
    await c.run(id, { rootfs: h.rootfs, args: ['sh', '-c', zombies], init });
    await stopped(id);
    const n = Number((await logText(c, id, 'stdout')).trim());
    assert.ok(want(n), `${id}: ${n} zombies`);
    await c.remove(id);
  }
  assert.deepEqual(await leftovers(rig), []);
});

test('the CLI: inspect --json has restart and autoRemove, --rootfs may be relative, errors name the flag typed', () => {
  const address = s.address;
  const r = cli(['run', 'rel', '--rootfs', relative(h.dir, h.rootfs), '--restart', 'on-failure:2', '--', 'sleep', '1000'], { address, cwd: h.dir });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(cli(['inspect', 'rel', '--json'], { address }).stdout) as Record<string, unknown>;
  assert.equal(j.restart, 'on-failure:2');
  assert.equal(j.autoRemove, false);
  const text = cli(['inspect', 'rel'], { address }).stdout;
  for (const key of Object.keys(j)) assert.match(text, new RegExp(`^${key} `, 'm'), `text shows ${key}`);
  assert.equal(cli(['rm', 'rel', '--force'], { address }).code, 0);

  const ok = join(h.dir, 'ok.json');
  writeFileSync(ok, JSON.stringify(defaultSpec({ rootfs: h.rootfs, args: ['true'] })));
  for (const [args, re] of [
    [['run', 'x', '--spec', ok, '--env', 'FOO'], /^plugind: plugin x: --env "FOO": want KEY=VALUE$/m],
    [['run', 'x', '--rm', '--restart', 'on-failure', '--rootfs', h.rootfs, '--', 'true'], /^plugind: plugin x: --rm and --restart on-failure cannot be combined/],
  ] as Array<[string[], RegExp]>) {
    const out = cli(args, { address });
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, re);
  }
});

test('a serve that cannot start starts nothing: metrics port taken, unknown group', async () => {
  const taken: Server = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as { port: number }).port;
  try {
    for (const [flags, re] of [
      [['--metrics-address', `127.0.0.1:${port}`], new RegExp(`--metrics-address 127.0.0.1:${port}: port in use`)],
      [['--group', 'nosuchgrp'], /--group nosuchgrp: no such group/],
    ] as Array<[string[], RegExp]>) {
      const dataDir = join(h.dir, `nostart-${flags[0]?.slice(2)}`);
      mkdirSync(dataDir, { recursive: true });
      // No --containerd-address: a serve that got this far would start its own.
      const r = cli(['serve', '--data-dir', dataDir, '--namespace', 'nostart', ...flags]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, re);
      assert.deepEqual(processesUsing(dataDir), [], 'no containerd, no FIFO keeper');
      assert.deepEqual(readdirSync(dataDir).filter((f) => f !== 'plugins'), [], 'no pid file, socket or containerd state');
    }
  } finally {
    taken.close();
  }
});

/** Pids of processes whose command line names dir. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) pids.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return pids;
}
