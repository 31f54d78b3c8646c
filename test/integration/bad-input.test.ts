// Bad input through the API and the CLI: each gets the right status code and
// a message naming the problem, nothing is created, the service keeps
// serving. Then a seeded fuzz of run/signal/logs/inspect/stop requests.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { PluginsClient } from '../../src/api/client.js';
import { ErrorCode } from '../../src/containerd/index.js';
import { defaultSpec } from '../../src/executor/index.js';
import type { Harness } from '../helpers/containerd.js';
import { cli } from '../helpers/cli.js';
import { settled } from '../helpers/rejects.js';
import { leftovers, startServed, usage, type Served, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
let h: Harness;
let s: Served;
let c: PluginsClient;

before(async () => {
  rig = await startServed('bad');
  ({ h, s } = rig);
  c = s.client;
});
after(async () => {
  await rig?.close();
});

async function nothingLeft(): Promise<void> {
  assert.deepEqual(await leftovers(rig), [], 'no container, task, FIFO set or log dir');
  assert.deepEqual(await c.list(), [], 'nothing listed');
}

test('bad ids, rootfs, specs, signals, timeouts, unknown ids: the right code, a clear message, nothing created', async () => {
  const rootfs = h.rootfs;
  const badIds: Array<[string, RegExp]> = [
    ['', /plugin id is empty/],
    ['..', /is invalid/],
    ['a/b', /is invalid/],
    ['nul\u0000x', /is invalid/],
    ['with space', /is invalid/],
    ['-dash', /is invalid/],
    ['x'.repeat(77), /longer than 76/],
    ['ünïcode', /is invalid/],
  ];
  for (const [id, re] of badIds) {
    const r = await settled(c.run(id, { rootfs, args: ['true'] }));
    assert.equal(r.code, ErrorCode.InvalidArgument, JSON.stringify(id));
    assert.match(r.message, re);
  }
  const cases: Array<[() => Promise<unknown>, string, RegExp]> = [
    [() => c.run('p', { rootfs: '/nonexistent', args: ['true'] }), ErrorCode.InvalidArgument, /plugin p: rootfs \/nonexistent does not exist/],
    [() => c.run('p', { rootfs: '/bin/busybox', args: ['true'] }), ErrorCode.InvalidArgument, /plugin p: rootfs \/bin\/busybox is not a directory/],
    [() => c.run('p', { rootfs, args: [] }), ErrorCode.InvalidArgument, /plugin p: no command given/],
    [() => c.run('p', {}), ErrorCode.InvalidArgument, /plugin p: give --rootfs DIR -- CMD, --spec FILE, --bundle DIR or --image REF/],
    [() => c.run('p', { specJson: '{nope' }), ErrorCode.InvalidArgument, /plugin p: --spec is not JSON/],
    [() => c.run('p', { specJson: '[1,2]' }), ErrorCode.InvalidArgument, /plugin p: --spec is not a JSON object/],
    [() => c.run('p', { specJson: JSON.stringify({ root: { path: rootfs }, process: { cwd: '/' } }) }), ErrorCode.InvalidArgument, /plugin p: spec.process.args must be/],
    [() => c.run('p', { specJson: JSON.stringify({ pad: 'x'.repeat(20 << 20) }) }), ErrorCode.InvalidArgument, /plugin p: --spec is 20971\d+ bytes; at most 1048576/],
    [() => c.run('p', { rootfs, args: ['true'], env: ['NOEQUALS'] }), ErrorCode.InvalidArgument, /plugin p: --env "NOEQUALS": want KEY=VALUE/],
    [() => c.run('p', { rootfs, args: ['true'], restart: 'sometimes' }), ErrorCode.InvalidArgument, /plugin p: --restart "sometimes": want no, on-failure, on-failure:N, always or unless-stopped/],
    [() => c.run('p', { rootfs, args: ['true'], log: { mode: 'lossy' } }), ErrorCode.InvalidArgument, /plugin p: log mode "lossy"/],
    [() => c.signal('nobody', 'TERM'), ErrorCode.NotFound, /plugin nobody: not found/],
    [() => c.inspect('nobody'), ErrorCode.NotFound, /plugin nobody: not found/],
    [() => c.stop('nobody', 1), ErrorCode.NotFound, /plugin nobody: not found/],
    [() => c.remove('nobody'), ErrorCode.NotFound, /plugin nobody: not found/],
  ];
  for (const [p, want, re] of cases) {
    const r = await settled(p());
    assert.equal(r.code, want, r.message);
    assert.match(r.message, re);
  }
  const logs = await settled((async () => {
    for await (const _ of c.logs('nobody')) {
      /* none */
    }
  })());
  assert.equal(logs.code, ErrorCode.NotFound);
  assert.match(logs.message, /plugin nobody: not found/);
  await nothingLeft();

  // On a running plugin: bad signals and timeouts change nothing.
  await c.run('live', { rootfs, args: ['sleep', '1000'] });
  for (const [p, re] of [
    [() => c.signal('live', 'NOPE'), /unknown signal "NOPE"/],
    [() => c.signal('live', '0'), /signal 0: want 1 to 64/],
    [() => c.signal('live', '99'), /signal 99: want 1 to 64/],
    [() => c.stop('live', -1), /stop timeout -1000 ms/],
    [() => c.stop('live', 1e9), /stop timeout/],
    [() => c.stop('live', Number.NaN), /stop timeout/],
  ] as Array<[() => Promise<unknown>, RegExp]>) {
    const r = await settled(p());
    assert.equal(r.code, ErrorCode.InvalidArgument, r.message);
    assert.match(r.message, re);
  }
  const again = await settled(c.run('live', { rootfs, args: ['true'] }));
  assert.equal(again.code, ErrorCode.AlreadyExists);
  assert.match(again.message, /plugin live is already running/);
  const rm = await settled(c.remove('live'));
  assert.equal(rm.code, ErrorCode.FailedPrecondition);
  assert.match(rm.message, /plugin live is running/);
  assert.equal((await c.inspect('live')).state, 'running');
  await c.remove('live', true);
  await nothingLeft();
});

test('the CLI: one clear line on stderr, non-zero exit, nothing created', async () => {
  const run = (args: string[]): ReturnType<typeof cli> => cli(args, { address: s.address });
  const notJson = join(h.dir, 'not-json.json');
  writeFileSync(notJson, 'not json');
  for (const [args, re] of [
    [['run', 'a/b', '--rootfs', h.rootfs, '--', 'true'], /^plugind: plugin id "a\/b" is invalid/],
    [['run', 'x', '--spec', notJson], /^plugind: plugin x: --spec is not JSON/],
    [['run', 'x', '--spec', '/nonexistent.json'], /^plugind: plugin x: cannot read spec \/nonexistent.json: ENOENT/],
    [['run', 'x', '--rootfs', '/nonexistent', '--', 'true'], /^plugind: plugin x: rootfs \/nonexistent does not exist/],
    [['kill', 'nobody', '--signal', 'TERM'], /^plugind: plugin nobody: not found/],
    [['stop', 'nobody', '--timeout', '-3'], /^plugind: .*seconds from 0 to 3600/],
    [['logs', 'nobody', '--tail', 'lots'], /^plugind: .*--tail/],
    [['logs', 'nobody'], /^plugind: plugin nobody: not found/],
  ] as Array<[string[], RegExp]>) {
    const r = run(args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  await nothingLeft();
});

test('100 concurrent runs of one id: exactly one succeeds', async () => {
  const results = await Promise.all(Array.from({ length: 100 }, () => settled(c.run('once', { rootfs: h.rootfs, args: ['sleep', '1000'] }))));
  assert.equal(results.filter((r) => r.code === 'OK').length, 1);
  for (const r of results.filter((x) => x.code !== 'OK')) {
    assert.equal(r.code, ErrorCode.AlreadyExists, r.message);
    assert.match(r.message, /plugin once is already running/);
  }
  await c.remove('once', true);
  await nothingLeft();
});

/** mulberry32: a small seeded PRNG, so every fuzz run is the same run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('seeded fuzz: 2000 run/signal/logs/inspect/stop requests, no crash, no leak', async (t) => {
  const seed = Number(process.env.PLUGIND_FUZZ_SEED ?? 20261130);
  t.diagnostic(`seed ${seed} (PLUGIND_FUZZ_SEED to replay)`);
  const rnd = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const junk = (): string => {
    const alphabet = 'aZ09._-/ \u0000\u00e9{}[]":,\\\n';
    return Array.from({ length: Math.floor(rnd() * 12) }, () => pick([...alphabet])).join('');
  };
  const ids = ['f1', 'f2', 'f3', '', '..', '-x', 'a/b', 'x'.repeat(80), 'ok.id', junk(), junk()];
  const id = (): string => (rnd() < 0.7 ? pick(ids) : junk());
  const spec = (): string =>
    pick([
      junk(),
      '{}',
      'null',
      JSON.stringify({ process: { args: [] }, root: { path: h.rootfs } }),
      JSON.stringify({ process: { args: [1, 2] }, root: { path: h.rootfs } }),
      JSON.stringify({ process: { args: ['true'], env: ['X'] }, root: { path: h.rootfs } }),
      JSON.stringify({ process: { args: ['true'] }, root: { path: 'relative' } }),
      JSON.stringify(defaultSpec({ rootfs: h.rootfs, args: ['true'], namespace: rig.namespace, id: 'f1' })),
    ]);
  const fds = (): number => usage(s.pid).fds;
  await c.list();
  const fdsBefore = fds();
  const counts: Record<string, number> = {};
  for (let i = 0; i < 2000; i++) {
    const kind = pick(['run-rootfs', 'run-spec', 'signal', 'logs', 'inspect', 'stop', 'remove']);
    let p: Promise<unknown>;
    switch (kind) {
      case 'run-rootfs':
        p = c.run(id(), { rootfs: pick([h.rootfs, '/nonexistent', '', junk()]), args: rnd() < 0.5 ? ['true'] : [junk()], env: rnd() < 0.2 ? [junk()] : [], autoRemove: rnd() < 0.5, restart: pick(['no', '', 'on-failure:1', junk()]) });
        break;
      case 'run-spec':
        p = c.run(id(), { specJson: spec(), autoRemove: true });
        break;
      case 'signal':
        p = c.signal(id(), pick(['TERM', 'KILL', 'HUP', '0', '65', '-1', 'SIGFOO', junk(), '15']));
        break;
      case 'logs':
        p = (async () => {
          for await (const _ of c.logs(id(), { stream: pick(['stdout', 'stderr', undefined, junk()]) as 'stdout', ...(rnd() < 0.5 ? { tail: Math.floor(rnd() * 100) } : {}) })) {
            /* drain */
          }
        })();
        break;
      case 'inspect':
        p = c.inspect(id());
        break;
      case 'stop':
        p = c.stop(id(), pick([0, 0.1, -1, 1e12, Number.NaN, Number.POSITIVE_INFINITY]));
        break;
      default:
        p = c.remove(id(), rnd() < 0.5);
    }
    const r = await Promise.race([settled(p), new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`request ${i} (${kind}) did not answer in 30 s`)), 30_000).unref())]);
    assert.notEqual(r.code, ErrorCode.Unavailable, `request ${i} (${kind}): ${r.message}`);
    const key = `${kind}:${r.code}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  t.diagnostic(JSON.stringify(counts));
  // Still serving; clean up whatever valid runs created, then nothing is left.
  for (const p of await c.list()) await c.remove(p.id, true);
  await nothingLeft();
  assert.equal(s.child.exitCode, null, 'plugind still runs');
  const fdsAfter = fds();
  t.diagnostic(`plugind fds before ${fdsBefore}, after ${fdsAfter}`);
  assert.ok(fdsAfter <= fdsBefore + 8, `fds before ${fdsBefore}, after ${fdsAfter}`);
});
