// A registry HTTP API v2 client for one repository: manifests and blobs by
// GET, Basic and Bearer (token service) auth from the registry's 401
// challenge, plain HTTP only to loopback hosts or when asked for. It knows
// nothing of containerd; pull.ts verifies and stores what it fetches.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { ErrorCode, ImageError } from './errors.js';
import { DOCKER_HUB, DOCKER_HUB_REGISTRY, isLoopback, type Reference } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Plain HTTP to a registry that is not on loopback (`--insecure-registry`). */
  insecure?: boolean;
  credentials?: Credentials;
  /** Resolves registry host names (tests point a name at loopback); default DNS. */
  lookup?: LookupFunction;
  /** A request with no byte moving for this long fails. Default 30 000 ms. */
  idleTimeoutMs?: number;
}

const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 64 << 10;
const MAX_TOKEN_BODY = 1 << 20;

const networkCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);
const notTls = (err: NodeJS.ErrnoException): boolean =>
  err.code === 'EPROTO' || err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(err.message);

/** Reads a small body whole (an error document, a token), at most max bytes. */
export async function readBody(res: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      res.destroy();
      throw new ImageError(ErrorCode.FailedPrecondition, `response larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** `Bearer realm="…",service="…"` as its scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\S+)\s*(.*)$/.exec(header);
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let p = re.exec(m?.[2] ?? ''); p; p = re.exec(m?.[2] ?? '')) params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

/** The registry's own words from an error document ({"errors":[{code,message}]}), if any. */
function registryWords(body: Buffer): string {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    const e = doc.errors?.[0];
    if (e) return `${e.code ?? ''}${e.code && e.message ? ': ' : ''}${e.message ?? ''}`;
  } catch {
    /* not JSON */
  }
  return body.toString('utf8').trim().slice(0, 200);
}

export class RegistryClient {
  readonly ref: Reference;
  /** Scheme and host the API is served at, e.g. http://127.0.0.1:5000. */
  readonly origin: string;
  readonly #o: RegistryOptions;
  readonly #idleMs: number;
  /** The Authorization header the last challenge asked for. */
  #authorization: string | undefined;

  constructor(ref: Reference, options: RegistryOptions = {}) {
    this.ref = ref;
    this.#o = options;
    this.#idleMs = options.idleTimeoutMs ?? 30_000;
    const host = ref.domain === DOCKER_HUB ? DOCKER_HUB_REGISTRY : ref.domain;
    const plain = isLoopback(ref.domain) || options.insecure === true;
    this.origin = `${plain ? 'http' : 'https'}://${host}`;
  }

  /** The registry as the user knows it, for messages. */
  get #registry(): string {
    return `registry ${this.ref.domain}`;
  }

  /** GET /v2/<path>/manifests/<digest or tag>, accepting the manifest types given. */
  async manifest(accept: string[]): Promise<IncomingMessage> {
    const ref = this.ref.digest ?? this.ref.tag ?? 'latest';
    return this.#ok(await this.#get(`/v2/${this.ref.path}/manifests/${ref}`, accept), `manifest ${ref}`);
  }

  /** GET /v2/<path>/blobs/<digest>: the body, to be streamed and verified by the caller. */
  async blob(digest: string): Promise<IncomingMessage> {
    return this.#ok(await this.#get(`/v2/${this.ref.path}/blobs/${digest}`, []), `blob ${digest}`);
  }

  async #ok(res: IncomingMessage, what: string): Promise<IncomingMessage> {
    const status = res.statusCode ?? 0;
    if (status === 200) return res;
    const words = registryWords(await readBody(res, MAX_ERROR_BODY).catch(() => Buffer.alloc(0)));
    const detail = `${status}${words ? ` ${words}` : ''}`;
    if (status === 404) throw new ImageError(ErrorCode.NotFound, `${this.ref.input}: ${what} not found on ${this.#registry} (${detail})`);
    if (status === 401 || status === 403) throw this.#refused(detail);
    throw new ImageError(status >= 500 ? ErrorCode.Unavailable : ErrorCode.FailedPrecondition, `${this.ref.input}: ${this.#registry} answered ${what} with ${detail}`);
  }

  #refused(detail: string): ImageError {
    const c = this.#o.credentials;
    return new ImageError(
      ErrorCode.InvalidArgument,
      c
        ? `${this.ref.input}: ${this.#registry} refused the credentials of user ${c.username} (${detail})`
        : `${this.ref.input}: ${this.#registry} asks for credentials (${detail}): pull with --username USER --password-stdin`,
    );
  }

  /** A GET that answers one auth challenge and follows redirects. */
  async #get(path: string, accept: string[]): Promise<IncomingMessage> {
    let url = new URL(this.origin + path);
    let challenged = false;
    for (let redirects = 0; ; ) {
      const headers: Record<string, string> = { 'user-agent': 'plugind' };
      if (accept.length > 0) headers.accept = accept.join(', ');
      // Credentials go to the registry only, not to where it redirects blobs.
      if (this.#authorization && url.origin === this.origin) headers.authorization = this.#authorization;
      const res = await this.#send(url, headers);
      const status = res.statusCode ?? 0;
      if (status === 401 && !challenged && url.origin === this.origin) {
        const challenge = res.headers['www-authenticate'];
        res.resume();
        if (typeof challenge !== 'string') throw this.#refused('401 with no WWW-Authenticate challenge');
        challenged = true;
        await this.#answer(challenge);
        continue;
      }
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location) {
        res.resume();
        if (++redirects > MAX_REDIRECTS) throw new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: ${this.#registry} redirected more than ${MAX_REDIRECTS} times`);
        url = new URL(location, url);
        this.#checkScheme(url);
        continue;
      }
      return res;
    }
  }

  /** Plain HTTP goes to loopback hosts only, unless --insecure-registry. */
  #checkScheme(url: URL): void {
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && (this.#o.insecure || isLoopback(url.host))) return;
    throw new ImageError(ErrorCode.InvalidArgument, `${this.ref.input}: ${this.#registry} sent plugind to ${url.origin}, plain HTTP off loopback: pull with --insecure-registry to allow it`);
  }

  /** Sets the Authorization header a 401 challenge asks for (Basic, or a Bearer token from its realm). */
  async #answer(header: string): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    const c = this.#o.credentials;
    const basic = c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      if (!basic) throw this.#refused('401');
      this.#authorization = basic;
      return;
    }
    if (scheme !== 'bearer') throw new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: ${this.#registry} asks for ${scheme || 'an unnamed'} authentication, which plugind does not speak (Basic and Bearer only)`);
    if (!params.realm) throw new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: ${this.#registry}'s Bearer challenge names no realm (token service)`);
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: ${this.#registry}'s token realm ${JSON.stringify(params.realm)} is not a URL`);
    }
    this.#checkScheme(realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${this.ref.path}:pull`);
    const headers: Record<string, string> = { 'user-agent': 'plugind' };
    if (basic) headers.authorization = basic;
    const res = await this.#send(realm, headers, `token service ${realm.origin}`);
    const body = await readBody(res, MAX_TOKEN_BODY);
    if (res.statusCode === 401 || res.statusCode === 403) throw this.#refused(`token service ${realm.origin}: ${res.statusCode} ${registryWords(body)}`);
    if (res.statusCode !== 200) throw new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: token service ${realm.origin} answered ${res.statusCode} ${registryWords(body)}`);
    let token: unknown;
    try {
      const doc = JSON.parse(body.toString('utf8')) as { token?: unknown; access_token?: unknown };
      token = doc.token ?? doc.access_token;
    } catch {
      /* below */
    }
    if (typeof token !== 'string' || token === '') throw new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: token service ${realm.origin} sent no token`);
    this.#authorization = `Bearer ${token}`;
  }

  #send(url: URL, headers: Record<string, string>, who = `${this.#registry} at ${this.origin}`): Promise<IncomingMessage> {
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', headers, timeout: this.#idleMs, ...(this.#o.lookup ? { lookup: this.#o.lookup } : {}) }, resolve);
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${this.#idleMs / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.#unreachable(err, url, who)));
      req.end();
    });
  }

  #unreachable(err: NodeJS.ErrnoException, url: URL, who: string): ImageError {
    const cause = `${err.message}${err.code && !err.message.includes(err.code) ? ` (${err.code})` : ''}`;
    if (url.protocol === 'https:' && notTls(err)) {
      // OpenSSL's words run over lines of its own internals: the gist only.
      return new ImageError(ErrorCode.InvalidArgument, `${this.ref.input}: ${who} does not speak TLS (handshake: ${err.code ?? 'EPROTO'}, wrong version number); if it serves plain HTTP, pull with --insecure-registry`, { cause: err });
    }
    if (err.code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(err.code)) {
      return new ImageError(ErrorCode.FailedPrecondition, `${this.ref.input}: ${who}: TLS certificate not trusted (${err.code})`, { cause: err });
    }
    const hub = this.ref.domain === DOCKER_HUB
      ? ` (a reference without a registry host means docker.io, which this host may not reach; name your registry as HOST[:PORT]/NAME)`
      : '';
    const code = err.code && networkCodes.has(err.code) ? ErrorCode.Unavailable : ErrorCode.Unknown;
    return new ImageError(code, `${this.ref.input}: cannot reach ${who}: ${cause}${hub}`, { cause: err });
  }
}
