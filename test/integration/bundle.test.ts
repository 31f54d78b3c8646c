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
  // Checked by its socket (docker's 30 s interval): starting until the first check.
  assert.match(ls, /^vol\s+running \((starting|healthy)\)\s+\d+.*\s+yes$/m);

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

test('a propagated mount: made shared before start, the plugin\'s mount shows on the host, unmounted at every exit', async () => {
  const b = bundle('propagated', {
    propagatedmount: '/mnt/volumes',
    network: { type: 'host' },
    linux: { capabilities: ['CAP_SYS_ADMIN'] },
    args: { name: 'flags', description: '', settable: ['value'], value: ['-mount', '/mnt/volumes/v1'] },
  });
  await c.run('prop', { bundle: b });
  const host = join(paths().propagated, 'prop');
  const p = await c.inspect('prop');
  assert.equal(p.bundle?.propagatedMount, host);
  assert.deepEqual(
    p.bundle?.privileges.map((x) => [x.name, x.value]),
    [
      ['network', ['host']],
      ['capabilities', ['CAP_SYS_ADMIN']],
      ['propagated mount', ['/mnt/volumes']],
    ],
  );
  assert.ok(existsSync(join(host, 'v1', 'marker')), 'the tmpfs the plugin mounted under /mnt/volumes is seen on the host');
  assert.ok(mountsUnder(host).length >= 2, 'the shared bind and the plugin\'s tmpfs');
  // Host network: the plugin sees the host's /etc/hosts, read-only.
  const info = JSON.parse((await pluginCall(socketOf('prop'), '/Test.Info')).body) as { Hostname: string };
  assert.equal(info.Hostname, 'prop', 'its own uts namespace, as moby keeps it');

  await c.stop('prop', 5);
  assert.deepEqual(mountsUnder(host), [], 'nothing mounted under the propagated dir after the exit');
  assert.equal(existsSync(join(host, 'v1', 'marker')), false);
  // Run again: the same dir made shared again, the plugin mounts again.
  await c.run('prop', { bundle: b, replace: true });
  assert.ok(existsSync(join(host, 'v1', 'marker')));

  // plugind killed, then the plugin killed while no plugind runs: the
  // restore finds it exited and does the exit's cleanup.
  const pid = (await c.inspect('prop')).pid;
  await rig.s.stop('SIGKILL');
  process.kill(pid, 'SIGKILL');
  await until('the plugin gone', () => !alive(pid));
  rig.s = await serve({ dataDir: rig.dataDir, containerdAddress: rig.h.address, namespace: rig.namespace });
  c = rig.s.client;
  await until('the exit reaped', async () => (await c.inspect('prop')).state === 'stopped');
  await c.stop('prop', 1);
  assert.deepEqual(mountsUnder(host), [], 'restore of an exited plugin unmounts');
  assert.deepEqual(readdirSync(join(paths().run, 'prop')), [], 'and empties the runtime dir');

  await c.remove('prop');
  assert.equal(existsSync(host), false);
  await nothingLeft();
});

test('--restart on-failure: a killed plugin comes back and is ready', async () => {
  await c.run('phoenix', { bundle: plain, restart: 'on-failure' });
  const first = await c.inspect('phoenix');
  process.kill(first.pid, 'SIGKILL');
  // A restart replaces the record: for a moment the id is not found (as for any plugin's restart).
  await until('restarted and ready', async () => {
    const p = await c.inspect('phoenix').catch(() => undefined);
    return p?.state === 'running' && p.pid !== first.pid && p.bundle?.ready === true;
  });
  assert.deepEqual((await activate(socketOf('phoenix'))).Implements, ['VolumeDriver'], 'the restarted plugin listens again on the same path');
  await c.remove('phoenix', true);
  await nothingLeft();
});

test('a plugin that never listens: run fails after --ready-timeout naming the socket and quoting its stderr; it stays listed, stopped, with its logs', async () => {
  const t0 = Date.now();
  const r = await settled(c.run('mute', { bundle: plain, args: ['-never-listen'], readyTimeoutSeconds: 1, restart: 'on-failure' }));
  const ms = Date.now() - t0;
  assert.equal(r.code, ErrorCode.DeadlineExceeded, r.message);
  assert.ok(ms >= 1000 && ms < 8000, `${ms} ms`);
  assert.ok(r.message.includes(socketOf('mute')), r.message);
  assert.match(r.message, /^plugin mute: not ready: socket .* accepted no connection within 1 s/);
  assert.match(r.message, /waiting for a backend that never comes/);
  const p = await c.inspect('mute');
  assert.equal(p.state, 'stopped');
  assert.equal(p.bundle?.ready, false);
  assert.match(await logText(c, 'mute', 'stderr'), /waiting for a backend that never comes/);
  // The run failed: the restart policy does not bring it back.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal((await c.inspect('mute')).state, 'stopped');
  await c.remove('mute');
  await nothingLeft();
});

test('a plugin that dies at start: run fails fast with its last stderr lines', async () => {
  const t0 = Date.now();
  const r = cli(['run', 'doomed', '--bundle', plain, '--restart', 'on-failure', '--', '-die', 'fatal: no backend configured'], { address: rig.s.address });
  const ms = Date.now() - t0;
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^plugind: plugin doomed: exited \(status 1\) before socket \S+ accepted a connection/);
  assert.match(r.stderr, /testplugin: setting up\n\s+fatal: no backend configured/);
  assert.ok(ms < 8000, `${ms} ms`);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal((await c.inspect('doomed')).state, 'stopped', 'no policy restart of a failed run');
  await c.remove('doomed');
  await nothingLeft();
});

test('plugind SIGTERM and SIGKILL: the socket answers throughout, and the plugin is ready again after the restore', async () => {
  await c.run('steady', { bundle: plain });
  const socket = socketOf('steady');
  const pid = (await c.inspect('steady')).pid;
  // A stray dir of an id with no container (a plugind killed mid-rm): the restore's sweep removes it.
  mkdirSync(join(paths().run, 'ghost'), { recursive: true });
  writeFileSync(join(paths().run, 'ghost', TEST_SOCKET), '');
  let calls = 0;
  const failures: string[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        await activate(socket);
        calls++;
      } catch (err) {
        failures.push((err as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    await rig.s.stop(signal);
    const before = calls;
    await until('the plugin answering while no plugind runs', () => calls > before + 3);
    rig.s = await serve({ dataDir: rig.dataDir, containerdAddress: rig.h.address, namespace: rig.namespace });
    c = rig.s.client;
    const p = await c.inspect('steady');
    assert.equal(p.pid, pid, `${signal}: the same process`);
    assert.equal(p.bundle?.ready, true, `${signal}: ready again after the restore`);
  }
  polling = false;
  await poller;
  assert.deepEqual(failures, [], 'every Plugin.Activate answered');
  assert.equal(existsSync(join(paths().run, 'ghost')), false, 'the sweep removed the stray runtime dir');
  await watchExits(c, rig.exits);
  await c.remove('steady', true);
  await nothingLeft();
});

test('bad bundles: a clear error naming the file and field, nothing created', async () => {
  const cases: Array<[string, () => string, RegExp]> = [
    ['no config.json', () => {
      const d = join(bundles, 'no-config');
      mkdirSync(join(d, 'rootfs'), { recursive: true });
      return d;
    }, /plugin bad: --bundle \S+no-config: no config.json in it/],
    ['bad JSON', () => {
      const d = bundle('bad-json');
      writeFileSync(join(d, 'config.json'), '{"entrypoint": [');
      return d;
    }, /plugin bad: \S+bad-json\/config.json: not JSON/],
    ['unknown network', () => bundle('bad-net', { network: { type: 'overlay' } }), /bad-net\/config.json: network.type: "overlay": want host, bridge, none or null/],
    ['socket with a slash', () => bundle('bad-socket', { interface: { socket: '../x.sock', types: [] } }), /bad-socket\/config.json: interface.socket: "..\/x.sock": want a file name/],
    ['no entrypoint', () => bundle('no-entry', { entrypoint: [] }), /no-entry\/config.json: entrypoint: missing/],
    ['rootfs a file', () => {
      const d = join(bundles, 'file-rootfs');
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'config.json'), JSON.stringify(testPluginConfig()));
      writeFileSync(join(d, 'rootfs'), 'not a dir');
      return d;
    }, /plugin bad: --bundle \S+file-rootfs: \S+\/rootfs is not a directory/],
    ['mount without source', () => bundle('no-source', { mounts: [{ destination: '/data', type: 'bind', options: ['rbind'] }] }), /no-source\/config.json: mounts\[0\].Source: not set/],
    ['device not on the host', () => bundle('no-device', { linux: { devices: [{ path: '/dev/nonexistent-device' }] } }), /Linux.Devices\[0\].Path: \/dev\/nonexistent-device: no such device on this host/],
    ['no such dir', () => join(bundles, 'nowhere'), /plugin bad: --bundle \S+nowhere: no such directory/],
  ];
  for (const [what, make, re] of cases) {
    const r = await settled(c.run('bad', { bundle: make() }));
    assert.equal(r.code, ErrorCode.InvalidArgument, `${what}: ${r.message}`);
    assert.match(r.message, re, what);
  }
  for (const [options, re] of [
    [{ bundle: plain, rootfs: rig.h.rootfs }, /plugin bad: give --bundle alone, not with --rootfs/],
    [{ bundle: plain, specJson: '{}' }, /plugin bad: give --bundle alone, not with --spec/],
    [{ bundle: 'relative/dir' }, /plugin bad: --bundle relative\/dir: want an absolute path/],
    [{ bundle: plain, readyTimeoutSeconds: 0 }, /plugin bad: --ready-timeout 0: want seconds above 0/],
    [{ rootfs: rig.h.rootfs, args: ['true'], readyTimeoutSeconds: 3 }, /plugin bad: --ready-timeout is for Docker plugins/],
    [{ bundle: plain, init: true }, /plugin bad: --init is not for Docker plugins/],
  ] as Array<[Parameters<PluginsClient['run']>[1], RegExp]>) {
    const r = await settled(c.run('bad', options));
    assert.equal(r.code, ErrorCode.InvalidArgument, r.message);
    assert.match(r.message, re);
  }
  const both = cli(['run', 'bad', '--bundle', plain, '--rootfs', rig.h.rootfs], { address: rig.s.address });
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /^plugind: plugin bad: give --bundle alone, not with --rootfs\n$/);
  assert.deepEqual(await c.list(), []);
  assert.equal(existsSync(join(paths().run, 'bad')), false, 'no runtime dir');
  await nothingLeft();
  rmSync(join(bundles, 'no-config'), { recursive: true, force: true });
});

test('run --help says what a bundle can ask for', () => {
  const r = cli(['run', '--help']);
  assert.equal(r.code, 0);
  for (const words of ['--bundle <dir>', '--ready-timeout <seconds>', 'Network.Type host', 'Mounts', 'Linux.Devices', 'Linux.Capabilities', 'PidHost', 'IpcHost', 'root-equivalent']) {
    assert.ok(r.stdout.includes(words), `run --help mentions ${words}`);
  }
});

test('a Docker plugin is health-checked by dialling its socket: healthy while it answers; a socket gone gets it killed after --health-retries; --no-healthcheck has none', async () => {
  const r = cli(['run', 'checked', '--bundle', plain, '--health-interval', '200ms', '--health-retries', '2'], { address: rig.s.address });
  assert.equal(r.code, 0, r.stderr);
  const health = (): { status: string; failingStreak: number; log: Array<{ exitCode: number; output: string }> } | undefined =>
    (JSON.parse(cli(['inspect', 'checked', '--json'], { address: rig.s.address }).stdout) as { health?: { status: string; failingStreak: number; log: Array<{ exitCode: number; output: string }> } }).health;
  await until('healthy', () => health()?.status === 'healthy', 10_000);
  const inspected = JSON.parse(cli(['inspect', 'checked', '--json'], { address: rig.s.address }).stdout) as { healthCheck: { cmd: string } };
  assert.equal(inspected.healthCheck.cmd, '', 'no command: the socket is dialled');
  rmSync(socketOf('checked'));
  await until('killed for its socket gone', () => rig.exits.some((e) => e.id === 'checked'), 10_000);
  await until('stopped', () => JSON.parse(cli(['inspect', 'checked', '--json'], { address: rig.s.address }).stdout).state === 'stopped', 10_000);
  const h = health();
  assert.equal(h?.status, 'unhealthy');
  assert.match(h?.log.at(-1)?.output ?? '', /^dial .*testplugin\.sock: ENOENT$/);
  assert.equal(cli(['rm', 'checked'], { address: rig.s.address }).code, 0);

  const off = cli(['run', 'unchecked', '--bundle', plain, '--no-healthcheck', '--json'], { address: rig.s.address });
  assert.equal(off.code, 0, off.stderr);
  const p = JSON.parse(cli(['inspect', 'unchecked', '--json'], { address: rig.s.address }).stdout) as Record<string, unknown>;
  assert.equal('health' in p || 'healthCheck' in p, false);
  assert.equal(cli(['rm', '--force', 'unchecked'], { address: rig.s.address }).code, 0);
  await nothingLeft(['vol']);
});
