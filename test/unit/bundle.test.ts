// A Docker plugin's config.json read as Docker reads it, and the spec made
// of it as moby's InitSpec makes it: the pure functions of
// src/executor/bundle.ts, no containerd (the integration test runs them).
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { initSpec, pluginPrivileges } from '../../src/executor/bundle.js';
import { parsePluginConfig, type PluginConfig } from '../../src/executor/plugin-config.js';
import { DEFAULT_CAPABILITIES } from '../../src/executor/spec.js';

const base = { Entrypoint: ['/bin/plugin', '--serve'], Interface: { Socket: 'p.sock', Types: ['docker.volumedriver/1.0'] } };
const parse = (extra: Record<string, unknown> = {}): PluginConfig => parsePluginConfig(JSON.stringify({ ...base, ...extra }), '/b/config.json');
const where = { rootfs: '/b/rootfs', runtimeDir: '/data/run/p', propagatedRoot: '/data/propagated/p', id: 'p', namespace: 'ns' };

test('keys match case-insensitively, as Go fills a struct; defaults as Docker has them', () => {
  const c = parsePluginConfig(JSON.stringify({ entrypoint: ['/x'], interface: { socket: 's.sock' }, NETWORK: { type: 'host' }, pidhost: true }));
  assert.deepEqual(c.Entrypoint, ['/x']);
  assert.equal(c.Interface.Socket, 's.sock');
  assert.deepEqual(c.Interface.Types, []);
  assert.equal(c.Network.Type, 'host');
  assert.equal(c.PidHost, true);
  assert.equal(c.IpcHost, false);
  assert.deepEqual(c.Mounts, []);
  assert.equal(c.PropagatedMount, '');
});

test('bad configs: the file and the field as the file spells it', () => {
  const cases: Array<[string, RegExp]> = [
    ['{', /^\/b\/config.json: not JSON/],
    ['[]', /^\/b\/config.json: not a JSON object/],
    [JSON.stringify({ interface: { socket: 's' } }), /^\/b\/config.json: Entrypoint: missing/],
    [JSON.stringify({ entrypoint: 'x', interface: { socket: 's' } }), /^\/b\/config.json: entrypoint: want a list of strings/],
    [JSON.stringify({ entrypoint: ['/x'] }), /^\/b\/config.json: Interface.Socket: missing/],
    [JSON.stringify({ entrypoint: ['/x'], interface: { socket: 'a/b.sock' } }), /interface.socket: "a\/b.sock": want a file name/],
    [JSON.stringify({ entrypoint: ['/x'], interface: { socket: 'x'.repeat(81) } }), /interface.socket: .* longer than 80 bytes/],
    [JSON.stringify({ ...base, Network: { Type: 'macvlan' } }), /Network.Type: "macvlan": want host, bridge, none or null/],
    [JSON.stringify({ ...base, pidHost: 'yes' }), /pidHost: want true or false/],
    [JSON.stringify({ ...base, mounts: [{ destination: 'rel' , source: '/x', type: 'bind' }] }), /mounts\[0\].destination: "rel": want an absolute path/],
    [JSON.stringify({ ...base, mounts: [{ destination: '/d', source: null }] }), /mounts\[0\].source: not set/],
    [JSON.stringify({ ...base, linux: { capabilities: ['CAP_SYS-ADMIN'] } }), /linux.capabilities\[0\]: "CAP_SYS-ADMIN" is not a capability name/],
    [JSON.stringify({ ...base, user: { uid: -1 } }), /user.uid: want a whole number/],
    [JSON.stringify({ ...base, env: [{ name: 'A=B' }] }), /env\[0\].name: "A=B": want a variable name/],
    [JSON.stringify({ ...base, propagatedMount: 'mnt' }), /propagatedMount: "mnt": want an absolute path/],
  ];
  for (const [json, re] of cases) assert.throws(() => parsePluginConfig(json, '/b/config.json'), (err: Error & { code?: string }) => err.code === 'InvalidArgument' && re.test(err.message), json);
});

test("the default: moby's default spec, writable rootfs, own network namespace, runtime dir at /run/docker/plugins", () => {
  const s = initSpec(parse(), where);
  assert.deepEqual(s.root, { path: '/b/rootfs', readonly: false });
  assert.deepEqual(s.process.args, ['/bin/plugin', '--serve']);
  assert.equal(s.process.cwd, '/');
  assert.equal(s.process.noNewPrivileges, undefined, "moby's default spec does not set it");
  assert.deepEqual(s.process.capabilities?.bounding, DEFAULT_CAPABILITIES);
  assert.deepEqual((s.linux?.namespaces ?? []).map((n) => n.type).sort(), ['ipc', 'mount', 'network', 'pid', 'uts']);
  assert.equal(s.linux?.cgroupsPath, '/ns/p');
  const run = s.mounts?.find((m) => m.destination === '/run/docker/plugins');
  assert.deepEqual(run, { destination: '/run/docker/plugins', type: 'bind', source: '/data/run/p', options: ['rbind', 'rshared'] });
  assert.equal(s.mounts?.some((m) => m.destination === '/etc/hosts'), false, 'no network type: no /etc binds');
  assert.equal(s.linux?.rootfsPropagation, undefined);
  assert.deepEqual(pluginPrivileges(parse()), []);
});

test('what a config asks for: host network, pid/ipc host, caps, mounts, devices, user, env, args, workdir, propagated mount', () => {
  const c = parse({
    Network: { Type: 'host' },
    PidHost: true,
    IpcHost: true,
    WorkDir: '/work',
    User: { UID: 1000, GID: 1001 },
    Env: [{ Name: 'LEVEL', Value: 'info' }, { Name: 'TOKEN', Value: null }],
    Args: { Name: 'args', Value: ['--default'] },
    Mounts: [
      { Source: '/var/lib/data', Destination: '/data', Type: 'bind', Options: ['rbind', 'rw'] },
      { Source: 'shm', Destination: '/dev/shm', Type: 'tmpfs', Options: ['size=1g'] },
    ],
    Linux: { Capabilities: ['CAP_SYS_ADMIN', 'net_admin', 'CAP_CHOWN'], AllowAllDevices: true, Devices: [{ Path: '/dev/null' }] },
    PropagatedMount: '/mnt/volumes',
  });
  const s = initSpec(c, { ...where, env: ['TOKEN=t', 'LEVEL=debug'] });
  assert.deepEqual((s.linux?.namespaces ?? []).map((n) => n.type).sort(), ['mount', 'uts'], 'host network, pid and ipc');
  assert.deepEqual(s.process.args, ['/bin/plugin', '--serve', '--default'], "the config's Args follow the entrypoint");
  assert.deepEqual(initSpec(c, { ...where, args: ['--given'] }).process.args, ['/bin/plugin', '--serve', '--given'], 'args given replace them');
  assert.equal(s.process.cwd, '/work');
  assert.deepEqual(s.process.user, { uid: 1000, gid: 1001 });
  const env = s.process.env ?? [];
  assert.ok(env[0]?.startsWith('PATH='));
  assert.ok(env.includes('LEVEL=debug') && env.includes('TOKEN=t') && !env.includes('LEVEL=info'), env.join(' '));
  for (const set of ['bounding', 'effective', 'permitted'] as const) {
    const caps = s.process.capabilities?.[set] ?? [];
    assert.ok(caps.includes('CAP_SYS_ADMIN') && caps.includes('CAP_NET_ADMIN'), set);
    assert.equal(caps.filter((x) => x === 'CAP_CHOWN').length, 1, 'a default capability is not listed twice');
  }
  const dests = (s.mounts ?? []).map((m) => m.destination);
  assert.equal(dests.filter((d) => d === '/dev/shm').length, 1, "a config mount replaces the default one");
  assert.deepEqual(s.mounts?.find((m) => m.destination === '/dev/shm')?.type, 'tmpfs');
  assert.deepEqual(s.mounts?.find((m) => m.destination === '/data'), { destination: '/data', type: 'bind', source: '/var/lib/data', options: ['rbind', 'rw'] });
  assert.deepEqual(s.mounts?.find((m) => m.destination === '/etc/resolv.conf')?.options, ['rbind', 'ro']);
  assert.deepEqual(s.mounts?.find((m) => m.destination === '/mnt/volumes'), { destination: '/mnt/volumes', type: 'bind', source: '/data/propagated/p', options: ['rbind', 'rw', 'rshared'] });
  assert.equal(s.linux?.rootfsPropagation, 'rshared');
  // /dev/null from the host: 1:3, a char device.
  const rdev = statSync('/dev/null').rdev;
  assert.equal(rdev >> 8, 1);
  assert.deepEqual((s.linux?.devices as Array<Record<string, unknown>>).map((d) => [d.path, d.type, d.major, d.minor]), [['/dev/null', 'c', 1, 3]]);
  const cgroup = (s.linux?.resources as { devices: Array<Record<string, unknown>> }).devices;
  assert.deepEqual(cgroup[0], { allow: true, access: 'rwm' }, 'AllowAllDevices');
  assert.deepEqual(cgroup[1], { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' });

  assert.deepEqual(
    pluginPrivileges(c).map((p) => [p.name, p.value]),
    [
      ['network', ['host']],
      ['host ipc namespace', ['true']],
      ['host pid namespace', ['true']],
      ['mount', ['/var/lib/data']],
      ['mount', ['shm']],
      ['device', ['/dev/null']],
      ['allow-all-devices', ['true']],
      ['capabilities', ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN']],
      ['propagated mount', ['/mnt/volumes']],
    ],
  );
});

test('bridge, none and null: a network namespace of its own, and the /etc binds', () => {
  for (const type of ['bridge', 'none', 'null']) {
    const s = initSpec(parse({ Network: { Type: type } }), where);
    assert.ok(s.linux?.namespaces?.some((n) => n.type === 'network'), type);
    assert.ok(s.mounts?.some((m) => m.destination === '/etc/hosts'), type);
    assert.deepEqual(pluginPrivileges(parse({ Network: { Type: type } })), [], `${type} is no privilege`);
  }
});

test('a rootfs given as mounts (a pulled image): the spec root is relative', () => {
  const s = initSpec(parse(), { ...where, rootfs: undefined, rootfsMounts: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/l'] }] } as never);
  assert.deepEqual(s.root, { path: 'rootfs', readonly: false });
});

test('a device that is not on the host is refused naming the field', () => {
  assert.throws(() => initSpec(parse({ Linux: { Devices: [{ Path: '/dev/no-such-device' }] } }), where), /Linux.Devices\[0\].Path: \/dev\/no-such-device: no such device on this host/);
});
