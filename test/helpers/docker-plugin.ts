// The test Docker plugin (test/fixtures/docker-plugin/main.go): built once,
// static, into build/, and laid out as a bundle the way `docker plugin
// create` takes one (config.json and rootfs/ with the binary). Also how a
// test talks to a plugin: one HTTP request on its socket, dialled through
// the socket's dir when the path is too long for sun_path.
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsConstants, copyFileSync, existsSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { basename, dirname, join } from 'node:path';

const REPO = join(import.meta.dirname, '../..');
const SOURCE = join(REPO, 'test/fixtures/docker-plugin');
export const TEST_PLUGIN_BINARY = join(REPO, 'build/test-docker-plugin');

/** Builds the test plugin unless build/ has one newer than its source. */
export function buildTestPlugin(): string {
  const src = join(SOURCE, 'main.go');
  if (existsSync(TEST_PLUGIN_BINARY) && statSync(TEST_PLUGIN_BINARY).mtimeMs >= statSync(src).mtimeMs) return TEST_PLUGIN_BINARY;
  mkdirSync(dirname(TEST_PLUGIN_BINARY), { recursive: true });
  const tmp = `${TEST_PLUGIN_BINARY}.${process.pid}`;
  execFileSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', tmp, '.'], {
    cwd: SOURCE,
    env: { ...process.env, GO111MODULE: 'off', CGO_ENABLED: '0', GOFLAGS: '' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  execFileSync('mv', ['-f', tmp, TEST_PLUGIN_BINARY]);
  return TEST_PLUGIN_BINARY;
}

/** The socket the test plugin listens on unless its config says otherwise. */
export const TEST_SOCKET = 'testplugin.sock';

/**
 * A config.json as `docker plugin create` takes it (lower-case keys, as
 * Docker's own examples write them), for the test plugin as a volume
 * driver. `extra` is merged over the top level.
 */
export function testPluginConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    description: 'plugind test volume driver',
    documentation: 'test/fixtures/docker-plugin',
    entrypoint: ['/testplugin'],
    workdir: '/',
    interface: { socket: TEST_SOCKET, types: ['docker.volumedriver/1.0'] },
    network: { type: 'none' },
    env: [
      { name: 'PLUGIN_GREETING', description: 'a default --env overrides', settable: ['value'], value: 'hello' },
      { name: 'PLUGIN_UNSET', description: 'no default', settable: ['value'], value: null },
    ],
    args: { name: 'flags', description: 'testplugin flags', settable: ['value'], value: [] },
    linux: { capabilities: [] },
    ...extra,
  };
}

/** Lays out DIR/config.json and DIR/rootfs/testplugin; returns DIR. */
export function makeBundle(dir: string, config: Record<string, unknown> = testPluginConfig()): string {
  const binary = buildTestPlugin();
  const rootfs = join(dir, 'rootfs');
  for (const d of ['proc', 'dev', 'sys', 'etc', 'tmp', 'run/docker/plugins']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(binary, join(rootfs, 'testplugin'));
  execFileSync('chmod', ['0755', join(rootfs, 'testplugin')]);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return dir;
}

export interface PluginReply {
  status: number;
  contentType: string;
  body: string;
}

/**
 * One HTTP/1.0 POST on a plugin's socket, as the daemon's plugin client
 * makes it; a long path is dialled as /proc/self/fd/N/<name>.
 */
export async function pluginCall(socket: string, path = '/Plugin.Activate', timeoutMs = 2000): Promise<PluginReply> {
  let fd: number | undefined;
  let target = socket;
  if (Buffer.byteLength(socket) > 107) {
    fd = openSync(dirname(socket), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    target = `/proc/self/fd/${fd}/${basename(socket)}`;
  }
  try {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(target);
      let data = '';
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`${socket}${path}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => s.write(`POST ${path} HTTP/1.0\r\nHost: plugin\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: 0\r\n\r\n`));
      s.on('data', (b: Buffer) => (data += b.toString()));
      s.once('end', () => {
        clearTimeout(timer);
        resolve(data);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const [head = '', body = ''] = raw.split('\r\n\r\n');
    const status = Number(/^HTTP\/1\.\d (\d+)/.exec(head)?.[1] ?? 0);
    const contentType = /^content-type:\s*(.+)$/im.exec(head)?.[1]?.trim() ?? '';
    return { status, contentType, body };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** POST /Plugin.Activate; the parsed reply. */
export async function activate(socket: string): Promise<{ Implements: string[]; contentType: string }> {
  const r = await pluginCall(socket);
  if (r.status !== 200) throw new Error(`${socket}: Plugin.Activate answered ${r.status}: ${r.body}`);
  return { ...(JSON.parse(r.body) as { Implements: string[] }), contentType: r.contentType };
}
