// Image references as docker parses them: `[host[:port]/]path[:tag][@digest]`,
// docker.io and `library/` filled in for short names, `latest` when neither a
// tag nor a digest is given. The normalized form names the image record.
import { ErrorCode, ImageError } from './errors.js';

export const DOCKER_HUB = 'docker.io';
/** Where docker.io's registry API is served. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';

export interface Reference {
  /** What the user typed. */
  input: string;
  /** Registry host, with its port when given: `127.0.0.1:5000`, `docker.io`. */
  domain: string;
  /** Repository path on the registry: `plugins/echo`, `library/busybox`. */
  path: string;
  tag?: string;
  /** `sha256:<64 hex>` */
  digest?: string;
  /** `domain/path[:tag][@digest]`: the image's name in containerd. */
  name: string;
}

// docker/distribution's reference grammar, in pieces.
const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]*)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME = 255;

const bad = (input: string, why: string): ImageError => new ImageError(ErrorCode.InvalidArgument, `image reference ${JSON.stringify(input)}: ${why}`);

/** Parses and normalizes a reference, or INVALID_ARGUMENT naming what is wrong with it. */
export function parseReference(input: string): Reference {
  if (input === '') throw bad(input, 'empty');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw bad(input, `digest ${JSON.stringify(digest)}: want sha256:<64 lowercase hex digits>`);
  }
  let tag: string | undefined;
  // A tag follows the last ':' after the last '/' (a port comes before a '/').
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw bad(input, `tag ${JSON.stringify(tag)}: want letters, digits, '_', '.' or '-', at most 128, not starting with '.' or '-'`);
  }
  let domain = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  // docker's rule: the first component is a registry when it looks like a host.
  if (slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first)) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) throw bad(input, `registry ${JSON.stringify(domain)} is not a host[:port]`);
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB;
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (path === '' || path === 'library/') throw bad(input, 'no repository name');
  if (path.toLowerCase() !== path) throw bad(input, 'repository names are lowercase');
  if (!PATH_RE.test(path)) throw bad(input, `repository ${JSON.stringify(path)}: want lowercase letters and digits in '/'-separated parts, joined by '.', '_', '__' or '-'`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  const name = `${domain}/${path}${tag === undefined ? '' : `:${tag}`}${digest === undefined ? '' : `@${digest}`}`;
  if (domain.length + 1 + path.length > MAX_NAME) throw bad(input, `name longer than ${MAX_NAME} characters`);
  const ref: Reference = { input, domain, path, name };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The host and port of the domain (the port empty when not given); IPv6 without brackets. */
export function splitDomain(domain: string): { host: string; port: string } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(domain);
  const host = m?.[1] ?? domain;
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: m?.[2] ?? '' };
}

const LOOPBACK_RE = /^(?:localhost|127(?:\.\d{1,3}){3}|::1)$/i;

/** Whether the registry host is this machine's loopback (plain HTTP is allowed there). */
export function isLoopback(domain: string): boolean {
  return LOOPBACK_RE.test(splitDomain(domain).host);
}
