// Plugin images end to end: Debian's docker-registry on a loopback port, a
// plugin image pushed to it over plain HTTP by the test, `plugind pull`,
// `images` and `rmi` through the real CLI and `plugind serve`, checked in
// containerd's own store (content, image records, snapshots, leases) and on
// its disk. Bad pulls must leave nothing: no record, no blob, no snapshot,
// no lease.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isNotFound } from '../../src/common/errors.js';
import { chainIds } from '../../src/images/index.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { CLI, cli as runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { freePort, startServed, type ServedRig } from '../helpers/serve.js';
import {
  filesDir,
  makeLayer,
  pluginConfig,
  pushPlugin,
  serveFixed,
  sha256,
  startRegistry,
  DOCKER_MANIFEST_TYPE,
  DOCKER_LAYER_TYPE,
  PLUGIN_CONFIG_TYPE,
  type Layer,
  type PushedImage,
  type Registry,
} from '../helpers/registry.js';

let rig: ServedRig;
let reg: Registry;
let authReg: Registry;
const SNAPSHOTTER = 'overlayfs';
const AUTH = { username: 'ci', password: 'pull-me-9' };

before(async () => {
  rig = await startServed('pull');
  reg = await startRegistry();
  authReg = await startRegistry({ auth: AUTH });
});

after(async () => {
  await reg?.stop();
  await authReg?.stop();
  await rig?.close();
});

const cli = (args: string[], input?: string): CliResult => runCli(args, { address: rig.s.address, ...(input !== undefined ? { input } : {}) });

/** The CLI without blocking this process: for a server that runs in it (the stand-in). */
async function cliAsync(args: string[]): Promise<CliResult> {
  const t0 = Date.now();
  const p = spawnCli(args, { address: rig.s.address });
  const { code } = await p.exited;
  return { code: code ?? -1, stdout: p.stdout(), stderr: p.stderr(), ms: Date.now() - t0 };
}

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r;
}

function fails(r: CliResult, pattern: RegExp): string {
  assert.notEqual(r.code, 0, `expected a failure, got: ${r.stdout}`);
  const line = r.stderr.trim();
  assert.match(line, pattern);
  return line;
}

async function hasBlob(digest: string): Promise<boolean> {
  try {
    await rig.containerd.content.info(digest);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function snapshotNames(): Promise<string[]> {
  return (await rig.containerd.snapshots.list(SNAPSHOTTER)).map((s) => s.name);
}

/** What a pull that failed may not leave: the image, its blobs, snapshots of its layers, extract snapshots, leases. */
async function nothingOf(name: string, blobs: string[], chains: string[] = []): Promise<void> {
  assert.deepEqual((await rig.containerd.images.list()).filter((i) => i.name === name), [], `no image record ${name}`);
  for (const d of blobs) assert.equal(await hasBlob(d), false, `blob ${d} gone`);
  const names = await snapshotNames();
  for (const c of chains) assert.ok(!names.includes(c), `snapshot ${c} gone`);
  assert.deepEqual(names.filter((n) => n.startsWith('plugind-extract-')), [], 'no half-unpacked snapshot');
  assert.deepEqual(await rig.containerd.leases.list(), [], 'no lease left');
}

let seq = 0;
/** A plugin image of n layers with files of its own, pushed under repo:tag. */
async function pushed(repo: string, tag: string, options: { layers?: Layer[]; oci?: boolean; registry?: Registry } = {}): Promise<PushedImage> {
  seq += 1;
  const layers = options.layers ?? [makeLayer(filesDir({ 'bin/plugin': `#!/bin/sh\necho ${seq}\n` })), makeLayer(filesDir({ [`etc/layer-${seq}`]: String(seq) }))];
  return pushPlugin(options.registry ?? reg, repo, tag, layers, { oci: options.oci ?? false });
}

function overlayDirs(): number {
  const dir = join(rig.h.supervisor.dir, 'root', 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
  return existsSync(dir) ? readdirSync(dir).length : 0;
}

test('pull of a Docker plugin image: blobs in containerd content store, layers committed by chain id, GC labels, listed by images', async () => {
  const img = await pushed('plugins/first', '1');
  const ref = `${reg.domain}/plugins/first:1`;
  const r = ok(cli(['pull', ref]));
  assert.equal(r.stdout, `${ref} ${img.digest}\n`);
  // Not a terminal: a plain line per blob as it is done.
  assert.match(r.stderr, /^manifest [0-9a-f]{12}: downloaded/m);
  assert.match(r.stderr, /^layer [0-9a-f]{12}: unpacked/m);

  const record = await rig.containerd.images.get(ref);
  assert.equal(record.target.digest, img.digest);
  assert.equal(record.target.mediaType, DOCKER_MANIFEST_TYPE);
  const manifest = await rig.containerd.content.info(img.digest);
  assert.equal(manifest.labels['containerd.io/gc.ref.content.config'], img.configDigest);
  img.layers.forEach((l, i) => assert.equal(manifest.labels[`containerd.io/gc.ref.content.l.${i}`], l.digest));
  const chains = chainIds(img.layers.map((l) => l.diffId));
  const config = await rig.containerd.content.info(img.configDigest);
  assert.equal(config.labels[`containerd.io/gc.ref.snapshot.${SNAPSHOTTER}`], chains[1]);
  for (const l of img.layers) assert.equal((await rig.containerd.content.info(l.digest)).size, l.blob.length);
  const top = await rig.containerd.snapshots.stat(SNAPSHOTTER, chains[1] as string);
  assert.equal(top.kind, 'COMMITTED');
  assert.equal(top.parent, chains[0]);
  assert.deepEqual(await rig.containerd.leases.list(), [], 'the pull lease is gone');

  const listed = JSON.parse(ok(cli(['images', '--json'])).stdout) as Array<Record<string, unknown>>;
  const mine = listed.find((i) => i.name === ref);
  assert.ok(mine, `images --json lists ${ref}`);
  assert.equal(mine.digest, img.digest);
  assert.equal(mine.size, img.manifest.length + img.config.length + img.layers.reduce((n, l) => n + l.blob.length, 0));
  assert.deepEqual(mine.plugins, []);
  assert.ok(!Number.isNaN(Date.parse(mine.createdAt as string)));
  const table = ok(cli(['images'])).stdout.split('\n');
  assert.match(table[0] as string, /^REF\s+DIGEST\s+SIZE\s+CREATED\s+PLUGINS$/);
  assert.ok(table.some((l) => l.startsWith(ref) && l.includes(img.digest.slice(0, 19))), table.join('\n'));
});

test('on a terminal the progress is one stderr line rewritten in place', async () => {
  const img = await pushed('plugins/tty', '1');
  const ref = `${reg.domain}/plugins/tty:1`;
  // util-linux's script gives the command a pseudo-terminal; what it printed comes back on stdout.
  const argv = [process.execPath, '--import', import.meta.resolve('tsx'), CLI, 'pull', '--address', rig.s.address, ref].map((a) => `'${a}'`).join(' ');
  const screen = execFileSync('script', ['-qec', argv, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  assert.match(screen, /\r\x1b\[Klayer [0-9a-f]{12}: downloading \d+ B \/ \d+ B/);
  assert.match(screen, /\r\x1b\[Klayer [0-9a-f]{12}: unpacked/);
  // The line is cleared before the result, which stands alone on its line.
  assert.ok(screen.includes(`\r\x1b[K${ref} ${img.digest}\r\n`), JSON.stringify(screen.slice(-300)));
  assert.ok(!/\n(manifest|config|layer) /.test(screen), 'no plain per-blob lines on a terminal');
});

test('a second tag of the same image and a pull again fetch no blob; two images share blobs and committed layers', async () => {
  const img = await pushed('plugins/shared', 'a');
  const again = await pushPlugin(reg, 'plugins/shared', 'b', img.layers, { config: img.config });
  assert.equal(again.digest, img.digest);
  ok(cli(['pull', `${reg.domain}/plugins/shared:a`]));
  const gets = reg.blobGets();
  const snapshots = (await snapshotNames()).length;
  const second = ok(cli(['pull', `${reg.domain}/plugins/shared:b`]));
  assert.equal(reg.blobGets(), gets, 'no blob fetched for the second tag');
  assert.match(second.stderr, /^config [0-9a-f]{12}: exists/m);
  assert.equal((second.stderr.match(/^layer [0-9a-f]{12}: exists/gm) ?? []).length, 2, second.stderr);
  ok(cli(['pull', `${reg.domain}/plugins/shared:a`]));
  assert.equal(reg.blobGets(), gets, 'none for a pull again');
  assert.equal((await snapshotNames()).length, snapshots, 'no layer unpacked again');

  // A third image on the first one's bottom layer: that layer is neither fetched nor unpacked again.
  const top = makeLayer(filesDir({ 'etc/third': '3' }));
  await pushPlugin(reg, 'plugins/derived', '1', [img.layers[0] as Layer, top]);
  ok(cli(['pull', `${reg.domain}/plugins/derived:1`]));
  const fetched = reg.blobGets() - gets;
  assert.equal(fetched, 2, 'config and the new layer only');
  assert.equal((await snapshotNames()).length, snapshots + 1);
});

test('an OCI manifest with a plugin config pulls the same way', async () => {
  const img = await pushed('plugins/oci', '1', { oci: true });
  const ref = `${reg.domain}/plugins/oci:1`;
  ok(cli(['pull', ref]));
  const record = await rig.containerd.images.get(ref);
  assert.equal(record.target.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const chains = chainIds(img.layers.map((l) => l.diffId));
  assert.equal((await rig.containerd.snapshots.stat(SNAPSHOTTER, chains[1] as string)).kind, 'COMMITTED');
  // By digest too: the name carries it.
  const byDigest = `${reg.domain}/plugins/oci@${img.digest}`;
  assert.equal(ok(cli(['pull', byDigest])).stdout, `${byDigest} ${img.digest}\n`);
});

test('rmi: the record goes, GC frees the blobs and snapshots only it held, shared ones stay for the other image', async () => {
  const img = await pushed('plugins/gone', '1');
  await pushPlugin(reg, 'plugins/gone', '2', img.layers, { config: img.config });
  const one = `${reg.domain}/plugins/gone:1`;
  const two = `${reg.domain}/plugins/gone:2`;
  const dirsBefore = overlayDirs();
  ok(cli(['pull', one]));
  ok(cli(['pull', two]));
  const chains = chainIds(img.layers.map((l) => l.diffId));
  assert.equal(overlayDirs(), dirsBefore + 2);

  ok(cli(['rmi', one]));
  await assert.rejects(rig.containerd.images.get(one), isNotFound);
  assert.equal(await hasBlob(img.digest), true, 'tag 2 still holds the manifest');
  assert.equal((await rig.containerd.snapshots.stat(SNAPSHOTTER, chains[1] as string)).kind, 'COMMITTED');

  ok(cli(['rmi', two]));
  for (const d of [img.digest, img.configDigest, ...img.layers.map((l) => l.digest)]) assert.equal(await hasBlob(d), false, `blob ${d} freed`);
  const names = await snapshotNames();
  for (const c of chains) assert.ok(!names.includes(c), `snapshot ${c} freed`);
  assert.equal(overlayDirs(), dirsBefore, 'snapshot dirs gone from disk');
  assert.ok(!JSON.parse(ok(cli(['images', '--json'])).stdout).some((i: { name: string }) => i.name === two));

  fails(cli(['rmi', two]), new RegExp(`plugind: image ${two.replace(/[.]/g, '\\.')}: not pulled`));
});

test('credentials: 401 without them names the flags, wrong ones name the user, --password-stdin pulls', async () => {
  const img = await pushed('plugins/private', '1', { registry: authReg });
  const ref = `${authReg.domain}/plugins/private:1`;
  fails(cli(['pull', ref]), /plugind: .*private:1: registry 127\.0\.0\.1:\d+ asks for credentials \(401.*\): pull with --username USER --password-stdin/);
  await nothingOf(ref, [img.digest, img.configDigest]);
  fails(cli(['pull', ref, '--username', AUTH.username, '--password-stdin'], 'wrong\n'), /refused the credentials of user ci \(401/);
  fails(cli(['pull', ref, '--password-stdin'], 'x\n'), /--password-stdin needs --username/);
  fails(cli(['pull', ref, '--username', AUTH.username]), /--username needs --password-stdin/);
  const r = ok(cli(['pull', ref, '--username', AUTH.username, '--password-stdin'], `${AUTH.password}\n`));
  assert.equal(r.stdout, `${ref} ${img.digest}\n`);
});

test('unknown tag or repository, a registry that is down, a non-plugin image: clear errors, nothing stored', async () => {
  await pushed('plugins/known', '1');
  fails(cli(['pull', `${reg.domain}/plugins/known:nope`]), /plugins\/known:nope: manifest nope not found on registry 127\.0\.0\.1:\d+ \(404 MANIFEST_UNKNOWN/);
  fails(cli(['pull', `${reg.domain}/plugins/nobody:1`]), /not found on registry .*NAME_UNKNOWN|MANIFEST_UNKNOWN/);
  const port = await freePort();
  fails(cli(['pull', `127.0.0.1:${port}/plugins/x:1`]), new RegExp(`cannot reach registry 127\\.0\\.0\\.1:${port} at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  fails(cli(['pull', 'Not/A_Ref']), /image reference "Not\/A_Ref": repository names are lowercase/);

  const layer = makeLayer(filesDir({ 'etc/app': 'x' }));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
  const app = await pushPlugin(reg, 'apps/web', '1', [layer], { configType: 'application/vnd.docker.container.image.v1+json', config });
  const ref = `${reg.domain}/apps/web:1`;
  fails(cli(['pull', ref]), /apps\/web:1: is a container image, not a Docker plugin: its config is application\/vnd\.docker\.container\.image\.v1\+json; plugind pulls plugins, whose config is application\/vnd\.docker\.plugin\.v1\+json/);
  await nothingOf(ref, [app.digest, app.configDigest, layer.digest]);
});

test('a layer that does not unpack to its diff id: refused after unpacking, its snapshot and blobs gone', async () => {
  const good = makeLayer(filesDir({ 'etc/a': 'a' }));
  const other = makeLayer(filesDir({ 'etc/b': 'b' }));
  // The config claims another layer's diff id: only unpacking can tell.
  const config = Buffer.from(JSON.stringify({ ...pluginConfig([good]), rootfs: { type: 'layers', diff_ids: [other.diffId] } }));
  const img = await pushPlugin(reg, 'plugins/lying', '1', [good], { config });
  const ref = `${reg.domain}/plugins/lying:1`;
  fails(cli(['pull', ref]), new RegExp(`layer 0 \\(${good.digest}\\) unpacks to ${good.diffId}, but the config's rootfs.diff_ids\\[0\\] is ${other.diffId}; nothing was stored`));
  await nothingOf(ref, [img.digest, img.configDigest, good.digest], [other.diffId, good.diffId]);
});

test('a plugin config plugind could not run (an unknown Network.Type) is refused at pull, naming the field; nothing stored', async () => {
  const layer = makeLayer(filesDir({ 'etc/a': 'a' }));
  const config = Buffer.from(JSON.stringify(pluginConfig([layer], { Network: { Type: 'overlay' } })));
  const img = await pushPlugin(reg, 'plugins/badnet', '1', [layer], { config });
  const ref = `${reg.domain}/plugins/badnet:1`;
  fails(cli(['pull', ref]), /plugin config: Network\.Type: "overlay": want host, bridge, none or null/);
  await nothingOf(ref, [img.digest, img.configDigest, layer.digest], [layer.diffId]);
});

test('a manifest or a layer whose digest does not match (a stand-in registry serving corrupt data): refused, nothing stored', async () => {
  const a = makeLayer(filesDir({ 'etc/a': 'first' }));
  const b = makeLayer(filesDir({ 'etc/b': 'second' }));
  const config = Buffer.from(JSON.stringify(pluginConfig([a, b])));
  const manifest = (layers: Layer[]): Buffer =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST_TYPE,
        config: { mediaType: PLUGIN_CONFIG_TYPE, digest: sha256(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: DOCKER_LAYER_TYPE, digest: l.digest, size: l.blob.length })),
      }),
    );
  const m = manifest([a, b]);
  const corrupt = Buffer.from(b.blob);
  const at = corrupt.length - 5;
  corrupt.writeUInt8(corrupt.readUInt8(at) ^ 0xff, at);
  const blobs = {
    [`/v2/p/bad/blobs/${sha256(config)}`]: { body: config },
    [`/v2/p/bad/blobs/${a.digest}`]: { body: a.blob },
    [`/v2/p/bad/blobs/${b.digest}`]: { body: corrupt },
  };
  const standIn = await serveFixed({
    '/v2/p/bad/manifests/lies': { headers: { 'content-type': DOCKER_MANIFEST_TYPE, 'docker-content-digest': sha256('something else') }, body: m },
    '/v2/p/bad/manifests/corrupt-layer': { headers: { 'content-type': DOCKER_MANIFEST_TYPE }, body: m },
    [`/v2/p/bad/manifests/${sha256(m)}`]: { headers: { 'content-type': DOCKER_MANIFEST_TYPE }, body: manifest([a]) },
    ...blobs,
  });
  try {
    const base = `${standIn.domain}/p/bad`;
    const all = [sha256(m), sha256(config), a.digest, b.digest];
    fails(await cliAsync(['pull', `${base}:lies`]), /p\/bad:lies: the registry says the manifest is sha256:[0-9a-f]{64}, but what it sent hashes to sha256:[0-9a-f]{64}; nothing was stored/);
    await nothingOf(`${base}:lies`, all);
    fails(await cliAsync(['pull', `${base}@${sha256(m)}`]), new RegExp(`the manifest sent hashes to sha256:[0-9a-f]{64}, not the ${sha256(m)} asked for`));
    await nothingOf(`${base}@${sha256(m)}`, all);
    fails(await cliAsync(['pull', `${base}:corrupt-layer`]), new RegExp(`layer ${b.digest}: what the registry sent hashes to sha256:[0-9a-f]{64}; nothing was stored`));
    // The good layer and the config were stored under the pull's lease: gone with it.
    await nothingOf(`${base}:corrupt-layer`, all, chainIds([a.diffId, b.diffId]));
  } finally {
    await standIn.stop();
  }
});

test("the README's Plugin images block runs as written, against this test's registries", async () => {
  const REPO = join(import.meta.dirname, '../..');
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const from = readme.indexOf('\n## Plugin images\n');
  assert.ok(from >= 0, 'README has ## Plugin images');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(from))?.[1];
  assert.ok(block, 'it has an sh block');
  // Its registries are ours: 5000 the open one, 5001 the one with a password.
  const img = await pushed('plugins/sshfs', '1');
  const authz = await pushed('team/authz', '2', { registry: authReg });
  const script = join(rig.h.dir, 'plugin-images.sh');
  writeFileSync(script, `set -e\nshopt -s expand_aliases\n${block.replaceAll('127.0.0.1:5000', reg.domain).replaceAll('127.0.0.1:5001', authReg.domain)}`);
  const r = spawnSync('bash', [script], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PLUGIND_ADDRESS: rig.s.address, REGISTRY_PASSWORD: AUTH.password },
  });
  assert.equal(r.status, 0, `block failed:\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.split('\n');
  assert.ok(lines.includes(`${reg.domain}/plugins/sshfs:1 ${img.digest}`), r.stdout);
  assert.ok(lines.includes(`${authReg.domain}/team/authz:2 ${authz.digest}`), r.stdout);
  assert.ok(lines.some((l) => /^REF\s+DIGEST\s+SIZE\s+CREATED\s+PLUGINS$/.test(l)), r.stdout);
  assert.ok(lines.some((l) => l.startsWith('[') && (JSON.parse(l) as Array<{ name: string }>).some((i) => i.name === `${reg.domain}/plugins/sshfs:1`)), r.stdout);
  await assert.rejects(rig.containerd.images.get(`${reg.domain}/plugins/sshfs:1`), isNotFound, 'rmi removed it');
});
