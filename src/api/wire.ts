// plugind.v1 on the wire: the service definition loaded from protos/, the
// mapping between our error codes and gRPC status codes (both directions),
// and API addresses.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CodedError, ErrorCode } from '../common/errors.js';
import { codeOfGrpcStatus, grpcStatusOf } from '../common/grpc-status.js';
import { apiSocketPath } from '../common/paths.js';
import { protosDir } from '../common/protos.js';

let pkg: protoLoader.PackageDefinition | undefined;

function service(name: string): grpc.ServiceDefinition {
  pkg ??= protoLoader.loadSync('plugind/v1/plugind.proto', {
    includeDirs: [protosDir()],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const svc = pkg[name];
  if (!svc || 'format' in svc) throw new Error(`${name} missing from protos/`);
  return svc as unknown as grpc.ServiceDefinition;
}

export const pluginsService = (): grpc.ServiceDefinition => service('plugind.v1.Plugins');
export const debugService = (): grpc.ServiceDefinition => service('plugind.v1.Debug');

export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  return { code: grpcStatusOf(err), details: err instanceof Error ? err.message : String(err) };
}

export function fromGrpcStatus(err: unknown): CodedError {
  const e = err as { code?: number; details?: string; message?: string };
  const code = typeof e.code === 'number' ? codeOfGrpcStatus(e.code) : ErrorCode.Unknown;
  return new CodedError(code, e.details || e.message || String(err), { cause: err });
}

// Trailer on the status that ends a stream because plugind shuts down: a
// client tells it from a plugin's own UNAVAILABLE (a shard worker being
// replaced) by this key, not by the message.
const SHUTDOWN_TRAILER = 'plugind-shutdown';

/** The status open streams end with when plugind shuts down. */
export function shutdownStatus(): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set(SHUTDOWN_TRAILER, '1');
  return { code: grpc.status.UNAVAILABLE, details: 'plugind is shutting down', metadata };
}

/** Whether a call's error is the status of shutdownStatus(). */
export function isShutdownStatus(err: unknown): boolean {
  const metadata = (err as { metadata?: unknown } | null)?.metadata;
  return metadata instanceof grpc.Metadata && metadata.get(SHUTDOWN_TRAILER).length > 0;
}

/** google.protobuf.Timestamp as proto-loader gives and takes it. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** Milliseconds since the epoch (sub-ms kept) as a Timestamp. */
export function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** A Timestamp as milliseconds since the epoch; undefined for none or the zero time. */
export function timestampMs(t: Timestamp | null | undefined): number | undefined {
  if (!t || (t.seconds === 0 && t.nanos === 0)) return undefined;
  return t.seconds * 1000 + t.nanos / 1e6;
}

export const DEFAULT_DATA_DIR = '/var/lib/plugind';
/** The static init `serve --init` and `run --init` put in as PID 1. */
export const DEFAULT_INIT_PATH = '/usr/bin/tini-static';
/** The OCI runtime the runc shim runs unless `serve` or `run --runtime-binary` names another. */
export const DEFAULT_RUNTIME_BINARY = 'runc';
export const DEFAULT_ADDRESS = `unix://${apiSocketPath(DEFAULT_DATA_DIR)}`;

export type ApiAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

const LOOPBACK = /^(127(\.\d{1,3}){3}|localhost|\[?::1\]?)$/;

/**
 * `unix:///PATH`, a bare absolute path, or `tcp://HOST:PORT`: on a loopback
 * address, or anywhere when `tls` (mutual TLS) is configured.
 */
export function parseApiAddress(address: string, options: { tls?: boolean } = {}): ApiAddress {
  if (address.startsWith('unix://')) return { kind: 'unix', path: address.slice('unix://'.length) };
  if (address.startsWith('/')) return { kind: 'unix', path: address };
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(address);
  if (m) {
    const host = m[1] as string;
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new CodedError(ErrorCode.InvalidArgument, `address ${address}: port out of range`);
    if (!LOOPBACK.test(host) && !options.tls) {
      throw new CodedError(
        ErrorCode.InvalidArgument,
        `address ${address}: TCP off loopback needs mutual TLS (--tls-cert, --tls-key, --tls-ca): the API runs code as root`,
      );
    }
    return { kind: 'tcp', host, port };
  }
  throw new CodedError(ErrorCode.InvalidArgument, `address ${JSON.stringify(address)}: want unix:///PATH or tcp://127.0.0.1:PORT`);
}

/** The gRPC target string for an address. */
export function grpcTarget(a: ApiAddress): string {
  return a.kind === 'unix' ? `unix://${a.path}` : `${a.host.includes(':') && !a.host.startsWith('[') ? `[${a.host}]` : a.host}:${a.port}`;
}

/**
 * Connects to the address and hangs up at once: undefined when something
 * accepted the connection, else the connect error (code ETIMEDOUT when
 * nothing was decided within timeoutMs). It says why an address cannot be
 * reached (ENOENT, ECONNREFUSED, EACCES), which gRPC only retries until its
 * deadline and then reports as a timeout.
 */
export function probe(a: ApiAddress, timeoutMs = 1000): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const s = a.kind === 'unix' ? net.connect(a.path) : net.connect(a.port, a.host);
    const done = (err: NodeJS.ErrnoException | undefined): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => done(Object.assign(new Error(`connect: no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    s.once('connect', () => done(undefined));
    s.once('error', done);
  });
}

/** A listen that failed, as INVALID_ARGUMENT naming the flag and address the user gave. */
export function listenRefused(flag: string, address: string, err: NodeJS.ErrnoException): CodedError {
  return new CodedError(ErrorCode.InvalidArgument, `${flag} ${address}: ${err.code === 'EADDRINUSE' ? 'port in use' : err.message}`);
}

/** Certificate files for mutual TLS: our cert and key, and the CA that signs the peers'. */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

export function readTls(files: Partial<TlsFiles>): { cert: Buffer; key: Buffer; ca: Buffer } | undefined {
  const given = [files.cert, files.key, files.ca].filter(Boolean).length;
  if (given === 0) return undefined;
  if (given !== 3) throw new CodedError(ErrorCode.InvalidArgument, 'TLS needs all three of --tls-cert, --tls-key and --tls-ca');
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CodedError(ErrorCode.InvalidArgument, `${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return { cert: read('--tls-cert', files.cert as string), key: read('--tls-key', files.key as string), ca: read('--tls-ca', files.ca as string) };
}
