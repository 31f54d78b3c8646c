// plugind.v1 on the wire: the service definition loaded from protos/, the
// mapping between our error codes and gRPC status codes (both directions),
// and API addresses.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CodedError, ErrorCode, protosDir } from '../containerd/index.js';

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

const TO_GRPC: Record<ErrorCode, grpc.status> = {
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  Unavailable: grpc.status.UNAVAILABLE,
  DeadlineExceeded: grpc.status.DEADLINE_EXCEEDED,
  Canceled: grpc.status.CANCELLED,
  Unknown: grpc.status.UNKNOWN,
};

const FROM_GRPC = new Map<grpc.status, ErrorCode>(Object.entries(TO_GRPC).map(([k, v]) => [v, k as ErrorCode]));

export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  const code = (err as { code?: unknown } | null)?.code;
  const status = typeof code === 'string' && code in TO_GRPC ? TO_GRPC[code as ErrorCode] : grpc.status.UNKNOWN;
  return { code: status, details: err instanceof Error ? err.message : String(err) };
}

export function fromGrpcStatus(err: unknown): CodedError {
  const e = err as { code?: number; details?: string; message?: string };
  const code = (typeof e.code === 'number' && FROM_GRPC.get(e.code)) || ErrorCode.Unknown;
  return new CodedError(code, e.details || e.message || String(err), { cause: err });
}

export const DEFAULT_DATA_DIR = '/var/lib/plugind';
export const DEFAULT_ADDRESS = `unix://${DEFAULT_DATA_DIR}/plugind.sock`;

export type ApiAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

const LOOPBACK = /^(127(\.\d{1,3}){3}|localhost|\[?::1\]?)$/;

/** `unix:///PATH`, a bare absolute path, or `tcp://HOST:PORT` on a loopback address. */
export function parseApiAddress(address: string): ApiAddress {
  if (address.startsWith('unix://')) return { kind: 'unix', path: address.slice('unix://'.length) };
  if (address.startsWith('/')) return { kind: 'unix', path: address };
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(address);
  if (m) {
    const host = m[1] as string;
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new CodedError(ErrorCode.InvalidArgument, `address ${address}: port out of range`);
    if (!LOOPBACK.test(host)) {
      throw new CodedError(ErrorCode.InvalidArgument, `address ${address}: TCP is allowed only on a loopback address (127.0.0.1, ::1): the API runs code as root`);
    }
    return { kind: 'tcp', host, port };
  }
  throw new CodedError(ErrorCode.InvalidArgument, `address ${JSON.stringify(address)}: want unix:///PATH or tcp://127.0.0.1:PORT`);
}

/** The gRPC target string for an address. */
export function grpcTarget(a: ApiAddress): string {
  return a.kind === 'unix' ? `unix://${a.path}` : `${a.host.includes(':') && !a.host.startsWith('[') ? `[${a.host}]` : a.host}:${a.port}`;
}
