// --runtime-binary against a real containerd and `plugind serve`: crun run
// through runc's v2 shim (its BinaryName), as serve's default and per
// plugin; kept across a plugind restart and a restart policy; a binary that
// is not there refused naming the flag, with nothing created. On a host crun
// refuses as it is, `crun` is the wrapper of test/helpers/crun.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ErrorCode, unpackRuncOptions } from '../../src/containerd/index.js';
import { resolveRuntimeBinary } from '../../src/executor/index.js';
import { cli } from '../helpers/cli.js';
import type { Harness } from '../helpers/containerd.js';
import { CRUN as REAL_CRUN, crunOnPath, crunRefusesHost } from '../helpers/crun.js';
import { rejectsCode } from '../helpers/rejects.js';
import { leftovers, logText, serve, startServed, until, type ServedRig } from '../helpers/serve.js';

// Before plugind starts: it looks `crun` up on the PATH it inherits.
const binDir = mkdtempSync(join(tmpdir(), 'pd-crun-'));
const CRUN = crunOnPath(binDir);

let rig: ServedRig;
let h: Harness;
let runc: string;

before(async () => {
  rig = await startServed('rtbin');
  h = rig.h;
  runc = await resolveRuntimeBinary('runc');
});
after(async () => {
  await rig?.close();
  rmSync(binDir, { recursive: true, force: true });
});

/** The binary containerd's record of the plugin tells its shim to run. */
async function shimBinary(id: string): Promise<string> {
  const { runtime } = await rig.containerd.containers.get(id);
  assert.ok(runtime.options, `${id} has runtime options`);
  return unpackRuncOptions(runtime.options).binaryName;
}

/**
 * Whether crun itself holds the plugin's container: it keeps its state
 * under the shim's runc root (`/run/containerd/runc/<namespace>`), in a
 * format runc does not write, so `crun state` finds only what crun made.
 */
function crunHas(id: string): boolean {
  const r = spawnSync(CRUN, ['--root', `/run/containerd/runc/${rig.namespace}`, 'state', id], { encoding: 'utf8' });
  return r.status === 0 && (JSON.parse(r.stdout) as { status: string }).status === 'running';
}

async function stopped(id: string): Promise<void> {
  await until(`${id} to stop`, async () => (await rig.s.client.inspect(id)).state === 'stopped');
}

test('run --runtime-binary crun on a runc-default serve: crun runs it, its output arrives; the others stay on runc', async () => {
  const address = rig.s.address;
  const r = cli(['run', 'on-crun', '--runtime-binary', 'crun', '--rootfs', h.rootfs, '--', 'sh', '-c', 'echo hello from crun; exec sleep 1000'], { address });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(cli(['run', 'on-runc', '--rootfs', h.rootfs, '--', 'sleep', '1000'], { address }).code, 0);
  const c = rig.s.client;
  await until('the output', async () => (await logText(c, 'on-crun', 'stdout')) === 'hello from crun\n');
  assert.equal(await shimBinary('on-crun'), CRUN);
  assert.equal(await shimBinary('on-runc'), runc);
  assert.ok(crunHas('on-crun'), 'crun holds on-crun');
  assert.ok(!crunHas('on-runc'), 'runc holds on-runc');
  const j = JSON.parse(cli(['inspect', 'on-crun', '--json'], { address }).stdout) as Record<string, unknown>;
  assert.equal(j.runtimeBinary, CRUN);
  const listed = JSON.parse(cli(['ls', '--json'], { address }).stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(listed.map((p) => [p.id, p.runtimeBinary]).sort(), [
    ['on-crun', CRUN],
    ['on-runc', runc],
  ]);
  for (const id of ['on-crun', 'on-runc']) await c.remove(id, true);
  assert.deepEqual(await leftovers(rig), []);
});

test('a --runtime-binary that is not there is INVALID_ARGUMENT naming the flag; nothing is created', async () => {
  const address = rig.s.address;
  const plain = join(h.dir, 'not-executable');
  writeFileSync(plain, '#!/bin/sh\n');
  chmodSync(plain, 0o644);
  const dir = join(h.dir, 'a-dir');
  mkdirSync(dir, { recursive: true });
  for (const [binary, re] of [
    ['no-such-runtime', /^plugind: plugin bad: --runtime-binary "no-such-runtime": not found on PATH/m],
    [join(h.dir, 'no-such-file'), /^plugind: plugin bad: --runtime-binary ".*\/no-such-file": no such file$/m],
    [plain, /^plugind: plugin bad: --runtime-binary ".*\/not-executable": not executable$/m],
    [dir, /^plugind: plugin bad: --runtime-binary ".*\/a-dir": not a file$/m],
  ] as Array<[string, RegExp]>) {
    const r = cli(['run', 'bad', '--runtime-binary', binary, '--rootfs', h.rootfs, '--', 'true'], { address });
    assert.equal(r.code, 125, r.stdout + r.stderr);
    assert.match(r.stderr, re);
  }
  // Through the API, a relative path (the CLI makes one absolute) and the code.
  await rejectsCode(
    rig.s.client.run('bad', { rootfs: h.rootfs, args: ['true'], runtimeBinary: 'bin/crun' }),
    ErrorCode.InvalidArgument,
    /^plugin bad: --runtime-binary "bin\/crun": want a name on PATH or an absolute path$/,
  );
  assert.deepEqual(await rig.s.client.list(), []);
  assert.deepEqual(await leftovers(rig), [], 'no container, FIFO set or log dir');
});

test('on a host crun refuses, run --runtime-binary with the real crun fails with its words and leaves nothing behind', { skip: crunRefusesHost() === undefined && 'crun runs on this host' }, async () => {
  await rejectsCode(rig.s.client.run('refused', { rootfs: h.rootfs, args: ['true'], runtimeBinary: REAL_CRUN }), ErrorCode.Unknown, /cgroups in hybrid mode not supported/);
  assert.deepEqual(await rig.s.client.list(), []);
  assert.deepEqual(await leftovers(rig), [], 'no container, FIFO set or log dir');
});

test('serve --runtime-binary that is not there starts nothing', () => {
  const dataDir = join(h.dir, 'nostart-runtime');
  mkdirSync(dataDir, { recursive: true });
  // No --containerd-address: a serve that got this far would start its own.
  const r = cli(['serve', '--data-dir', dataDir, '--namespace', 'nostart', '--runtime-binary', 'no-such-runtime', '--metrics-address', '127.0.0.1:0']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /^plugind: --runtime-binary "no-such-runtime": not found on PATH/m);
  assert.deepEqual(readdirSync(dataDir), [], 'no pid file, socket, containerd state or plugin dir');
});

test('serve --runtime-binary crun: plugins run on crun, and stay on it across a restart of plugind on runc and their restart policy', async () => {
  const { dataDir, namespace } = rig;
  await rig.s.stop();
  rig.s = await serve({ dataDir, containerdAddress: h.address, namespace, extra: ['--runtime-binary', 'crun'] });
  let c = rig.s.client;
  await c.run('echo', { rootfs: h.rootfs, args: ['echo', 'hello from crun'] });
  await stopped('echo');
  assert.equal(await logText(c, 'echo', 'stdout'), 'hello from crun\n');
  assert.equal((await c.inspect('echo')).runtimeBinary, CRUN);
  assert.equal(await shimBinary('echo'), CRUN);
  await c.remove('echo');

  await c.run('policy', { rootfs: h.rootfs, args: ['sh', '-c', 'echo up; exec sleep 1000'], restart: 'on-failure' });
  await until('policy to run', () => crunHas('policy'));
  // plugind again, now on the default (runc): the plugin it finds is still crun's.
  await rig.s.stop();
  rig.s = await serve({ dataDir, containerdAddress: h.address, namespace });
  c = rig.s.client;
  const before = await c.inspect('policy');
  assert.equal(before.state, 'running');
  assert.equal(before.runtimeBinary, CRUN);
  // Killed from outside plugind (a crash, not a user's kill, which would cancel the policy).
  process.kill(before.pid, 'SIGKILL');
  await until('the restart policy to run it again', async () => {
    const p = await c.inspect('policy');
    return p.state === 'running' && p.pid !== before.pid;
  });
  assert.equal((await c.inspect('policy')).runtimeBinary, CRUN);
  assert.equal(await shimBinary('policy'), CRUN);
  assert.ok(crunHas('policy'), 'crun holds it after the restart');
  await until('both runs to write', async () => (await logText(c, 'policy', 'stdout')) === 'up\nup\n');

  await c.run('default', { rootfs: h.rootfs, args: ['sleep', '1000'] });
  assert.equal((await c.inspect('default')).runtimeBinary, runc);
  for (const id of ['policy', 'default']) await c.remove(id, true);
  assert.deepEqual(await leftovers(rig), []);
});
