// Debian's docker-registry on a loopback port for pull tests: its own YAML
// config, storage and log in a temp dir, optionally htpasswd (bcrypt) auth;
// stopped by its pid. Also what a test needs to push a plugin image to it
// with plain HTTP (monolithic blob uploads, manifest PUT) and to build one.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { freePort, until } from './serve.js';

const BINARY = '/usr/bin/docker-registry';

export interface Registry {
  /** host:port, the domain of references to it. */
  domain: string;
  /** http://host:port */
  url: string;
  pid: number;
  /** Basic credentials, when started with auth. */
  auth?: { username: string; password: string };
  /** The registry's log so far (access lines included). */
  log(): string;
  /** GETs of blobs it has answered, from its access log. */
  blobGets(): number;
  stop(): Promise<void>;
}

export async function startRegistry(options: { auth?: { username: string; password: string } } = {}): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), 'pd-reg-'));
  const port = await freePort();
  const domain = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${domain}`,
  ];
  if (options.auth) {
    // bcrypt is the only hash docker-registry's htpasswd takes: Debian's apache2-utils makes it.
    const entry = execFileSync('htpasswd', ['-nbB', options.auth.username, options.auth.password], { encoding: 'utf8' }).trim();
    writeFileSync(join(dir, 'htpasswd'), entry + '\n');
    lines.push('auth:', '  htpasswd:', '    realm: plugind-test', `    path: ${join(dir, 'htpasswd')}`);
  }
  writeFileSync(join(dir, 'config.yml'), lines.join('\n') + '\n');
  const logPath = join(dir, 'registry.log');
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(BINARY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const killChild = (): boolean => child.kill('SIGKILL');
  process.once('exit', killChild);
  const exited = once(child, 'exit');
  const log = (): string => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const url = `http://${domain}`;
  await until(`docker-registry on ${domain}`, async () => {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}):\n${log()}`);
    const res = await fetch(`${url}/v2/`).catch(() => undefined);
    return res !== undefined && (res.status === 200 || res.status === 401);
  }, 15_000);
  const reg: Registry = {
    domain,
    url,
    pid: child.pid as number,
    log,
    blobGets: () => log().split('\n').filter((l) => /"GET \/v2\/[^"]*\/blobs\/sha256:/.test(l)).length,
    async stop() {
      process.off('exit', killChild);
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid as number, 'SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (options.auth) reg.auth = options.auth;
  return reg;
}

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function authHeader(auth: { username: string; password: string } | undefined): Record<string, string> {
  return auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {};
}

/** A blob by monolithic upload: POST for an upload URL, PUT the bytes with their digest. */
export async function pushBlob(reg: Registry, repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: authHeader(reg.auth) });
  if (start.status !== 202) throw new Error(`POST blob upload: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location') as string, reg.url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream', ...authHeader(reg.auth) } });
  if (put.status !== 201) throw new Error(`PUT blob ${digest}: ${put.status} ${await put.text()}`);
  return digest;
}

export async function pushManifest(reg: Registry, repo: string, tag: string, mediaType: string, body: Buffer): Promise<string> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body, headers: { 'content-type': mediaType, ...authHeader(reg.auth) } });
  if (res.status !== 201) throw new Error(`PUT manifest ${repo}:${tag}: ${res.status} ${await res.text()}`);
  return sha256(body);
}

export interface Layer {
  /** The uncompressed tar's digest. */
  diffId: string;
  /** The gzipped tar, as pushed. */
  blob: Buffer;
  digest: string;
}

/** A layer of the files under dir (tar, owned by root), gzipped. */
export function makeLayer(dir: string): Layer {
  const tar = execFileSync('tar', ['-C', dir, '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '.'], { maxBuffer: 256 << 20 });
  const blob = gzipSync(tar);
  return { diffId: sha256(tar), blob, digest: sha256(blob) };
}

const layerDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of layerDirs) rmSync(dir, { recursive: true, force: true });
});

/** A directory of small files for a layer: { 'etc/x': 'text' } (removed when the test process exits). */
export function filesDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pd-layer-'));
  layerDirs.add(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

export const PLUGIN_CONFIG_TYPE = 'application/vnd.docker.plugin.v1+json';
export const DOCKER_MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LAYER_TYPE = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const OCI_LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** A Docker plugin config (moby's api/types PluginConfig) for the layers. */
export function pluginConfig(layers: Layer[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Description: 'plugind test plugin',
    Documentation: '',
    Entrypoint: ['/bin/sh', '-c', 'sleep 1000'],
    Interface: { Types: ['docker.volumedriver/1.0'], Socket: 'test.sock' },
    Network: { Type: '' },
    Linux: { Capabilities: null, AllowAllDevices: false, Devices: null },
    Env: [],
    Args: { Name: '', Description: '', Settable: null, Value: [] },
    WorkDir: '',
    User: {},
    ...extra,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
}

export interface PushedImage {
  repo: string;
  tag: string;
  manifest: Buffer;
  digest: string;
  config: Buffer;
  configDigest: string;
  layers: Layer[];
}

/**
 * Pushes layers, config and a manifest: Docker's plugin schema 2 by default,
 * `oci` for an OCI manifest; `configType` other than the plugin's makes a
 * non-plugin image.
 */
export async function pushPlugin(
  reg: Registry,
  repo: string,
  tag: string,
  layers: Layer[],
  options: { oci?: boolean; configType?: string; config?: Buffer } = {},
): Promise<PushedImage> {
  for (const l of layers) await pushBlob(reg, repo, l.blob);
  const config = options.config ?? Buffer.from(JSON.stringify(pluginConfig(layers)));
  const configDigest = await pushBlob(reg, repo, config);
  const mediaType = options.oci ? OCI_MANIFEST_TYPE : DOCKER_MANIFEST_TYPE;
  const layerType = options.oci ? OCI_LAYER_TYPE : DOCKER_LAYER_TYPE;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: options.configType ?? PLUGIN_CONFIG_TYPE, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: layerType, digest: l.digest, size: l.blob.length })),
    }),
  );
  const digest = await pushManifest(reg, repo, tag, mediaType, manifest);
  return { repo, tag, manifest, digest, config, configDigest, layers };
}

/**
 * A stand-in for a registry that serves corrupt data, which docker-registry
 * itself cannot be made to do (it verifies every push): answers GETs of the
 * given paths with fixed headers and bodies, 404 otherwise.
 */
export async function serveFixed(routes: Record<string, { headers?: Record<string, string>; body: Buffer }>): Promise<{ domain: string; stop(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    const r = routes[req.url ?? ''];
    if (!r) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'NOT_FOUND', message: 'stand-in has no such path' }] }));
      return;
    }
    res.writeHead(200, { 'content-length': String(r.body.length), ...r.headers }).end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { domain: `127.0.0.1:${port}`, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
