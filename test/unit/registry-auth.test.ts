// The registry client's auth and transport rules, against small local HTTP
// servers that are stand-ins: a token service (docker-registry's token auth
// needs a signing certificate chain; pull.test.ts covers its htpasswd auth
// against the real thing), a registry answering with a Bearer challenge, a
// plain-HTTP registry reached by a name that is not loopback (a lookup
// points the name at 127.0.0.1), and docker.io, which this host cannot reach.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { LookupFunction } from 'node:net';
import { after, before, test } from 'node:test';
import { ErrorCode, isErrorCode } from '../../src/common/errors.js';
import { RegistryClient, parseReference, type RegistryOptions } from '../../src/images/index.js';
import { readBody } from '../../src/images/registry.js';

interface Served {
  server: Server;
  port: number;
  requests: IncomingMessage[];
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, requests };
}

const USER = { username: 'u', password: 'p' };
const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
let tokens: Served;
let registry: Served;
let plain: Served;

before(async () => {
  // Issues "tok-anon" to anyone, "tok-u" to u:p, refuses other credentials.
  tokens = await serve((req, res) => {
    const auth = req.headers.authorization;
    if (auth && auth !== basic) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(auth ? { token: 'tok-u' } : { access_token: 'tok-anon' }));
  });
  registry = await serve((req, res) => {
    const auth = req.headers.authorization;
    if (req.url === '/v2/public/x/manifests/1' && (auth === 'Bearer tok-anon' || auth === 'Bearer tok-u')) return void res.writeHead(200).end('public');
    if (req.url === '/v2/private/x/manifests/1' && auth === 'Bearer tok-u') return void res.writeHead(200).end('private');
    if (req.url === '/v2/private/x/blobs/sha256:1' && auth === 'Bearer tok-u') return void res.writeHead(307, { location: `http://127.0.0.1:${plain.port}/elsewhere` }).end();
    res
      .writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${tokens.port}/token",service="stand-in",scope="repository:${req.url?.split('/')[2]}/x:pull"` })
      .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  });
  plain = await serve((_req, res) => void res.writeHead(200).end('plain'));
});

after(() => {
  for (const s of [tokens, registry, plain]) s?.server.close();
});

const toLoopback: LookupFunction = (_host, options, callback) => {
  if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
};

async function text(ref: string, options: RegistryOptions = {}): Promise<string> {
  return (await readBody(await new RegistryClient(parseReference(ref), options).manifest([]), 1 << 20)).toString();
}

test('Bearer: the challenge realm gives a token, anonymous or for the credentials, with its service and scope', async () => {
  assert.equal(await text(`127.0.0.1:${registry.port}/public/x:1`), 'public');
  const asked = new URL(tokens.requests.at(-1)?.url ?? '', 'http://x');
  assert.equal(asked.searchParams.get('service'), 'stand-in');
  assert.equal(asked.searchParams.get('scope'), 'repository:public/x:pull');
  assert.equal(tokens.requests.at(-1)?.headers.authorization, undefined);
  assert.equal(await text(`127.0.0.1:${registry.port}/private/x:1`, { credentials: USER }), 'private');
  assert.equal(tokens.requests.at(-1)?.headers.authorization, basic);
});

test('Bearer: no token for the repository without credentials, refused ones named', async () => {
  // Anonymous token, but the repository wants a user's: the second 401 asks for credentials.
  await assert.rejects(text(`127.0.0.1:${registry.port}/private/x:1`), (err: Error) => isErrorCode(err, ErrorCode.InvalidArgument) && /asks for credentials \(401 UNAUTHORIZED: authentication required\): pull with --username USER --password-stdin/.test(err.message));
  await assert.rejects(text(`127.0.0.1:${registry.port}/private/x:1`, { credentials: { username: 'u', password: 'no' } }), /refused the credentials of user u \(token service http:\/\/127\.0\.0\.1:\d+: 401 UNAUTHORIZED: bad credentials\)/);
});

test('a redirect to another origin goes there without the registry credentials', async () => {
  const c = new RegistryClient(parseReference(`127.0.0.1:${registry.port}/private/x:1`), { credentials: USER });
  assert.equal((await readBody(await c.blob('sha256:1'), 100)).toString(), 'plain');
  assert.equal(plain.requests.at(-1)?.headers.authorization, undefined);
});

test('plain HTTP off loopback only with --insecure-registry', async () => {
  const ref = `registry.test:${plain.port}/p:1`;
  await assert.rejects(text(ref, { lookup: toLoopback }), (err: Error) => isErrorCode(err, ErrorCode.InvalidArgument) && new RegExp(`registry registry.test:${plain.port} at https://registry.test:${plain.port} does not speak TLS .*; if it serves plain HTTP, pull with --insecure-registry`).test(err.message));
  assert.equal(await text(ref, { lookup: toLoopback, insecure: true }), 'plain');
});

test('docker.io: what a short name means, and that this host may not reach it, in the error', async () => {
  const noDns: LookupFunction = (host, _options, callback) => callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), '', 4);
  const c = new RegistryClient(parseReference('vieux/sshfs'), { lookup: noDns });
  assert.equal(c.origin, 'https://registry-1.docker.io');
  await assert.rejects(c.manifest([]), (err: Error) =>
    isErrorCode(err, ErrorCode.Unavailable) &&
    /^vieux\/sshfs: cannot reach registry docker\.io at https:\/\/registry-1\.docker\.io: getaddrinfo ENOTFOUND registry-1\.docker\.io \(a reference without a registry host means docker\.io, which this host may not reach; name your registry as HOST\[:PORT\]\/NAME\)$/.test(err.message),
  );
});
