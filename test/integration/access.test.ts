// Who can reach the API: a 0600 socket (0660 with --group), a stale socket
// replaced and a live plugind refused, TCP off loopback refused without
// mutual TLS, and mutual TLS that lets in only clients with a cert of our CA.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PluginsClient } from '../../src/api/client.js';
import { ErrorCode } from '../../src/containerd/index.js';
import { startContainerd, uniqueName, type Harness } from '../helpers/containerd.js';
import { freePort, serve } from '../helpers/serve.js';

const CLI = join(import.meta.dirname, '../../src/cli/main.ts');
let h: Harness;
before(async () => {
  h = await startContainerd({ rootfs: false });
});
after(async () => {
  await h?.stop();
});

/** A CA, a server cert for 127.0.0.1 and a client cert, all made with openssl. */
function makeCerts(dir: string, name: string): { ca: string; cert: string; key: string; clientCert: string; clientKey: string } {
  mkdirSync(dir, { recursive: true });
  const f = (n: string): string => join(dir, `${name}-${n}`);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}-ca`, '-keyout', f('ca.key'), '-out', f('ca.pem'));
  for (const [who, san] of [
    ['server', 'subjectAltName=IP:127.0.0.1'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}-${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
    execFileSync('sh', ['-c', `printf '%s\\n' '${san}' > ${f(`${who}.ext`)}`]);
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${who}.ext`), '-out', f(`${who}.pem`));
  }
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

function serveSync(args: string[]): { code: number; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stderr: r.stderr + r.stdout };
}

test('--group makes the socket 0660 for that group; a stale socket is replaced, a live plugind refused', async () => {
  const dataDir = join(h.dir, 'grp');
  const ns = uniqueName('acc');
  let s = await serve({ dataDir, containerdAddress: h.address, namespace: ns, extra: ['--group', 'daemon'] });
  try {
    const sock = join(dataDir, 'plugind.sock');
    const st = statSync(sock);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, 1, 'group daemon');
    // A second plugind on the same data dir is refused and leaves the first alone.
    const second = serveSync(['--data-dir', dataDir, '--containerd-address', h.address, '--namespace', ns, '--metrics-address', '127.0.0.1:0']);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /another plugind \(pid \d+\) is using data dir/);
    assert.deepEqual(await s.client.list(), []);
    // Killed: its socket stays behind, and the next plugind replaces it.
    await s.stop('SIGKILL');
    assert.ok(statSync(sock).isSocket());
    s = await serve({ dataDir, containerdAddress: h.address, namespace: ns });
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    assert.deepEqual(await s.client.list(), []);
  } finally {
    await s.stop();
  }
});

test('TCP off loopback is refused without mutual TLS, before anything starts', () => {
  const r = serveSync(['--data-dir', join(h.dir, 'tcp'), '--containerd-address', h.address, '--address', 'tcp://10.11.12.13:7000']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /plugind: address tcp:\/\/10\.11\.12\.13:7000: TCP off loopback needs mutual TLS/);
  const half = serveSync(['--data-dir', join(h.dir, 'tcp'), '--containerd-address', h.address, '--address', 'tcp://127.0.0.1:7000', '--tls-cert', '/x']);
  assert.match(half.stderr, /TLS needs all three of --tls-cert, --tls-key and --tls-ca/);
});

test('mutual TLS: a client with a cert of our CA gets in; without one, or with another CA, it does not', async () => {
  const certs = makeCerts(join(h.dir, 'tls'), 'ours');
  const theirs = makeCerts(join(h.dir, 'tls'), 'theirs');
  const port = await freePort();
  const address = `tcp://127.0.0.1:${port}`;
  const s = await serve({
    dataDir: join(h.dir, 'tlsd'),
    containerdAddress: h.address,
    namespace: uniqueName('tls'),
    extra: ['--address', address, '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.ca],
  });
  try {
    const good = new PluginsClient(address, { tls: { cert: certs.clientCert, key: certs.clientKey, ca: certs.ca } });
    assert.deepEqual(await good.list(), []);
    good.close();
    for (const bad of [
      new PluginsClient(address, { connectTimeoutMs: 1500 }),
      new PluginsClient(address, { connectTimeoutMs: 1500, tls: { cert: theirs.clientCert, key: theirs.clientKey, ca: certs.ca } }),
    ]) {
      await assert.rejects(bad.list(), (err: { code?: string }) => err.code === ErrorCode.Unavailable);
      bad.close();
    }
  } finally {
    await s.stop();
  }
});
