// `run --image` end to end: the Go test plugin pushed as a plugin image to
// Debian's docker-registry, pulled, run from a snapshot of its own through the
// real CLI and `plugind serve`; a re-run gets the snapshot's mounts again, rm
// takes the snapshot with it, and rmi then works.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { prepareImageRootfs, removeImageRootfs } from '../../src/images/rootfs.js';
import { cli as runCli, type CliResult } from '../helpers/cli.js';
import { activate, makeBundle, testPluginConfig } from '../helpers/docker-plugin.js';
import { makeLayer, pushPlugin, startRegistry, type Registry } from '../helpers/registry.js';
import { leftovers, serve, startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
let reg: Registry;
let ref: string;
const SNAPSHOTTER = 'overlayfs';

before(async () => {
  rig = await startServed('runimage');
  reg = await startRegistry();
  // The bundle's rootfs as the image's one layer, its config.json as the plugin config.
  const bundle = makeBundle(join(rig.h.dir, 'bundle'));
  const layer = makeLayer(join(bundle, 'rootfs'));
  const config = Buffer.from(JSON.stringify({ ...testPluginConfig(), rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
  await pushPlugin(reg, 'plugins/testplugin', '1', [layer], { config });
  ref = `${reg.domain}/plugins/testplugin:1`;
});

after(async () => {
  await reg?.stop();
  await rig?.close();
});

const cli = (args: string[]): CliResult => runCli(args, { address: rig.s.address });

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r;
}

function fails(r: CliResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `expected a failure, got: ${r.stdout}`);
  assert.match(r.stderr.trim(), pattern);
}

async function snapshotNames(): Promise<string[]> {
  return (await rig.containerd.snapshots.list(SNAPSHOTTER)).map((s) => s.name);
}

/** Host mounts of the plugin's rootfs (containerd mounts it in the task's bundle dir). */
function rootfsMounts(id: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`/${rig.namespace}/${id}/rootfs`));
}

test('run --image before a pull: NOT_FOUND naming the ref and plugind pull; nothing made', async () => {
  fails(cli(['run', 'early', '--image', ref]), /plugin early: image .*plugins\/testplugin:1 is not pulled \(plugind pull .*plugins\/testplugin:1\)/);
  assert.ok(!(await snapshotNames()).includes('early'), 'no snapshot');
  assert.deepEqual(await leftovers(rig), []);
});

test('--image with --bundle, --rootfs or --spec is refused', () => {
  fails(cli(['run', 'both', '--image', ref, '--bundle', '/tmp']), /give --image alone, not with --bundle/);
  fails(cli(['run', 'both', '--image', ref, '--rootfs', '/tmp']), /give --image alone, not with --rootfs/);
});

test('pull, run --image: Plugin.Activate answers as run returns; stop and run --replace; rm leaves no snapshot, no mount; rmi then works', async () => {
  ok(cli(['pull', ref]));
  ok(cli(['run', 'img', '--image', ref]));
  const inspected = JSON.parse(ok(cli(['inspect', 'img', '--json'])).stdout) as Record<string, unknown>;
  assert.equal(inspected.image, ref);
  assert.equal(inspected.ready, true);
  // No wait, no retry: run returned, so the socket answers.
  assert.deepEqual((await activate(inspected.socket as string)).Implements, ['VolumeDriver']);
  const listed = JSON.parse(ok(cli(['ls', '--json'])).stdout) as Array<Record<string, unknown>>;
  assert.equal(listed.find((p) => p.id === 'img')?.image, ref);
  const record = await rig.containerd.containers.get('img');
  assert.deepEqual([record.image, record.snapshotter, record.snapshotKey], [ref, SNAPSHOTTER, 'img']);
  assert.ok((await snapshotNames()).includes('img'), 'the plugin has its snapshot');
  assert.notDeepEqual(rootfsMounts('img'), [], 'its rootfs is mounted while it runs');
  fails(cli(['rmi', ref]), /is used by plugin img \(running\): remove it first \(plugind rm ID\)/);
  const images = JSON.parse(ok(cli(['images', '--json'])).stdout) as Array<{ name: string; plugins: string[] }>;
  assert.deepEqual(images.find((i) => i.name === ref)?.plugins, ['img']);

  ok(cli(['stop', 'img']));
  // A stopped plugin can run again: its image stays.
  fails(cli(['rmi', ref]), /is used by plugin img \(stopped\)/);
  assert.equal((await rig.containerd.images.get(ref)).name, ref, 'still there');
  ok(cli(['run', 'img', '--image', ref, '--replace']));
  assert.deepEqual((await activate(inspected.socket as string)).Implements, ['VolumeDriver'], 'the re-run answers too');

  ok(cli(['rm', 'img', '--force']));
  assert.ok(!(await snapshotNames()).includes('img'), 'rm removed the snapshot');
  assert.deepEqual(rootfsMounts('img'), [], 'nothing mounted');
  assert.deepEqual(await leftovers(rig), []);
  ok(cli(['rmi', ref]));
});

test('--restart on-failure from an image: a killed plugin comes back on its snapshot and is ready; --rm takes the snapshot at exit', async () => {
  ok(cli(['pull', ref]));
  const c = rig.s.client;
  await c.run('phoenix', { image: ref, restart: 'on-failure' });
  const first = await c.inspect('phoenix');
  process.kill(first.pid, 'SIGKILL');
  await until('restarted and ready', async () => {
    const p = await c.inspect('phoenix').catch(() => undefined);
    return p?.state === 'running' && p.pid !== first.pid && p.bundle?.ready === true;
  });
  const again = await c.inspect('phoenix');
  assert.equal(again.image, ref);
  assert.deepEqual((await activate(again.bundle?.socket ?? '')).Implements, ['VolumeDriver']);
  await c.remove('phoenix', true);

  await c.run('brief', { image: ref, autoRemove: true });
  process.kill((await c.inspect('brief')).pid, 'SIGKILL');
  await until('removed at exit', async () => !(await c.list()).some((p) => p.id === 'brief'));
  await until('its snapshot gone', async () => !(await snapshotNames()).includes('brief'));
  assert.ok(!(await snapshotNames()).includes('phoenix'));
  assert.deepEqual(await leftovers(rig), []);
  ok(cli(['rmi', ref]));
});

test('plugind SIGKILLed under a plugin run from an image: its socket answers meanwhile; restored ready, and a re-run after the restore gets its snapshot from the record', async () => {
  ok(cli(['pull', ref]));
  await rig.s.client.run('survivor', { image: ref });
  const before = await rig.s.client.inspect('survivor');
  const socket = before.bundle?.socket ?? '';
  await rig.s.stop('SIGKILL');
  assert.deepEqual((await activate(socket)).Implements, ['VolumeDriver'], 'answering while no plugind runs');
  rig.s = await serve({ dataDir: rig.dataDir, containerdAddress: rig.h.address, namespace: rig.namespace });
  const c = rig.s.client;
  const after = await c.inspect('survivor');
  assert.equal(after.pid, before.pid, 'the same process');
  assert.equal(after.bundle?.ready, true, 'ready again after the restore');
  assert.equal(after.image, ref);
  await c.stop('survivor', 5);
  // The restored record alone says which snapshot to mount.
  await c.run('survivor', { image: ref, replace: true });
  assert.deepEqual((await activate(socket)).Implements, ['VolumeDriver']);
  await c.remove('survivor', true);
  await until('its snapshot gone', async () => !(await snapshotNames()).includes('survivor'));
  assert.deepEqual(rootfsMounts('survivor'), []);
  assert.deepEqual(await leftovers(rig), []);
  ok(cli(['rmi', ref]));
});

test('a plugin snapshot prepared again (a stopped plugin run again) is held by its new lease: a GC between the old record and the new one keeps it', async () => {
  ok(cli(['pull', ref]));
  const c = rig.containerd;
  const first = await prepareImageRootfs(c, ref, 'regc');
  // As a replace does: the same snapshot again, then no container names it.
  await prepareImageRootfs(c, ref, 'regc');
  const held = (await c.leases.list()).filter((l) => l.labels['io.plugind.plugin'] === 'regc');
  assert.equal(held.length, 1, 'the new lease only: the older one went after the new one held the snapshot');
  // A lease deleted with sync runs containerd's GC before it answers.
  await c.leases.create('regc-gc-now', { expiresInMs: 60_000 });
  await c.leases.delete('regc-gc-now', { sync: true });
  assert.ok((await snapshotNames()).includes('regc'), 'the snapshot survived the GC');
  await removeImageRootfs(c, first.snapshotter, 'regc');
  assert.ok(!(await snapshotNames()).includes('regc'));
  assert.deepEqual((await c.leases.list()).filter((l) => l.labels['io.plugind.plugin'] === 'regc'), []);
});
