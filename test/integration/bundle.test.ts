// Docker v2 plugins run from their bundle (issue 14), against a real
// containerd and the real `plugind serve`: the socket answers the moment
// `run` returns, inspect shows what the plugin is and was given, stop and
// every exit leave no stale socket and nothing mounted, a policy restart
// and a plugind restart (SIGTERM and SIGKILL) keep it serving, a plugin
// that never gets ready fails its run saying why, bad bundles create
// nothing, and rm leaves nothing behind.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import type { PluginsClient } from '../../src/api/client.js';
import { pluginPaths } from '../../src/common/paths.js';
import { ErrorCode } from '../../src/containerd/index.js';
import { mountsUnder } from '../../src/executor/bundle-dirs.js';
import { cli } from '../helpers/cli.js';
import { TEST_SOCKET, activate, makeBundle, pluginCall, testPluginConfig } from '../helpers/docker-plugin.js';
import { settled } from '../helpers/rejects.js';
import { alive, leftovers, logText, pluginsDir, serve, startServed, until, watchExits, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
let c: PluginsClient;
let bundles: string;
let plain: string;

const dir = (): string => pluginsDir(rig.dataDir, rig.namespace);
const paths = (): ReturnType<typeof pluginPaths> => pluginPaths(dir());
const socketOf = (id: string): string => join(paths().run, id, TEST_SOCKET);

before(async () => {
  rig = await startServed('bundle');
  c = rig.s.client;
  bundles = join(rig.h.dir, 'bundles');
  plain = makeBundle(join(bundles, 'plain'));
});
after(async () => {
  await rig?.close();
});

/** A bundle of the test plugin with config changes; its dir. */
function bundle(name: string, extra: Record<string, unknown> = {}): string {
  return makeBundle(join(bundles, name), testPluginConfig(extra));
}

async function nothingLeft(keep: string[] = []): Promise<void> {
  assert.deepEqual(await leftovers(rig, keep), [], 'no container, task, FIFO set, log, runtime or propagated dir, nor a mount');
}

test('run from a bundle: the socket answers Plugin.Activate as run returns; inspect and ls show it', async () => {
  const r = cli(['run', 'vol', '--bundle', relative(process.cwd(), plain), '--json'], { address: rig.s.address });
  assert.equal(r.code, 0, r.stderr);
  const socket = socketOf('vol');
  // No wait, no retry: run returned, so the socket answers.
  const reply = await activate(socket);
  assert.deepEqual(reply.Implements, ['VolumeDriver']);
  assert.equal(reply.contentType, 'application/vnd.docker.plugins.v1.1+json');

  const inspected = JSON.parse(cli(['inspect', 'vol', '--json'], { address: rig.s.address }).stdout) as Record<string, unknown>;
  assert.equal(inspected.state, 'running');
  assert.equal(inspected.socket, socket);
  assert.deepEqual(inspected.interface, { socket: TEST_SOCKET, types: ['docker.volumedriver/1.0'] });
  assert.equal(inspected.ready, true);
  assert.deepEqual(inspected.privileges, []);
  assert.equal('propagatedMount' in inspected, false, 'no PropagatedMount, no field');
  assert.equal(statSync(join(paths().run, 'vol')).mode & 0o777, 0o700, 'runtime dir is 0700');

  const ls = cli(['ls'], { address: rig.s.address }).stdout;
  assert.match(ls, /^ID\s+STATE\s+PID\s+SHARD\s+CREATED\s+EXIT\s+READY$/m);
  assert.match(ls, /^vol\s+running\s+\d+.*\s+yes$/m);

  // What the plugin was started with: entrypoint, config env defaults, cwd, hostname.
  const info = JSON.parse((await pluginCall(socket, '/Test.Info')).body) as { Args: string[]; Env: string[]; Cwd: string; Hostname: string };
  assert.deepEqual(info.Args, ['/testplugin']);
  assert.ok(info.Env.includes('PLUGIN_GREETING=hello'), info.Env.join(' '));
  assert.ok(!info.Env.some((e) => e.startsWith('PLUGIN_UNSET=')), 'a null default sets nothing');
  assert.equal(info.Cwd, '/');
  assert.equal(info.Hostname, 'vol');

  // stop: the exit empties the runtime dir; run --replace starts clean (no "address already in use").
  await c.stop('vol', 5);
  assert.equal(existsSync(socket), false, 'stale socket removed at exit');
  assert.deepEqual(readdirSync(join(paths().run, 'vol')), []);
  const stopped = await c.inspect('vol');
  assert.equal(stopped.bundle?.ready, false);
  await c.run('vol', { bundle: plain, replace: true, env: ['PLUGIN_GREETING=over'], args: ['-listen-delay', '300ms'] });
  assert.deepEqual((await activate(socket)).Implements, ['VolumeDriver'], 'ready again the moment run returns, after a 300 ms delay to listen');
  const again = JSON.parse((await pluginCall(socket, '/Test.Info')).body) as { Args: string[]; Env: string[] };
  assert.deepEqual(again.Args, ['/testplugin', '-listen-delay', '300ms'], 'args after -- follow the entrypoint');
  assert.ok(again.Env.includes('PLUGIN_GREETING=over'), '--env overrides a default');

  await c.remove('vol', true);
  await nothingLeft();
});

test('a long id: its socket path is past 107 bytes and still dialled', async () => {
  const id = `long-${'x'.repeat(70)}`;
  assert.equal(id.length, 75);
  await c.run(id, { bundle: plain });
  const socket = socketOf(id);
  assert.ok(Buffer.byteLength(socket) > 107, socket);
  assert.deepEqual((await activate(socket)).Implements, ['VolumeDriver']);
  await c.remove(id, true);
  await nothingLeft();
});
