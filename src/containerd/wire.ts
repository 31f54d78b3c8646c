// The protobuf side of the wire: loads protos/ once per thread and builds the
// codecs that the gRPC client and the Any helpers use. Nothing outside
// src/containerd/ sees protobuf messages; they leave here as plain objects.
import { isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { protosDir } from '../common/protos.js';

const PROTO_FILES = [
  'containerd/services/containers/v1/containers.proto',
  'containerd/services/tasks/v1/tasks.proto',
  'containerd/services/events/v1/events.proto',
  'containerd/services/version/v1/version.proto',
  'containerd/services/content/v1/content.proto',
  'containerd/services/images/v1/images.proto',
  'containerd/services/snapshots/v1/snapshots.proto',
  'containerd/services/diff/v1/diff.proto',
  'containerd/services/leases/v1/leases.proto',
  'containerd/events/task.proto',
  'containerd/runc/v1/options.proto',
  // Tasks.Metrics data: not imported by any service, so listed here.
  'containerd/cgroups/v1/metrics.proto',
  'containerd/cgroups/v2/metrics.proto',
  'grpc/health/v1/health.proto',
];

let root: protobuf.Root | undefined;

function loadRoot(): protobuf.Root {
  if (root) return root;
  const base = protosDir();
  const r = new protobuf.Root();
  // Imports are relative to protos/; google/protobuf/* are protobufjs' built-ins.
  r.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') || isAbsolute(target) ? target : join(base, target));
  r.loadSync(PROTO_FILES, { keepCase: false });
  // protobufjs' built-in Any keeps the proto name type_url even with
  // keepCase off; rename it so every message reads camelCase. Only the
  // field number goes on the wire.
  const any = r.lookupType('google.protobuf.Any');
  const typeUrl = any.fields['type_url'];
  if (typeUrl) {
    any.remove(typeUrl);
    any.add(new protobuf.Field('typeUrl', 1, 'string'));
  }
  r.resolveAll();
  root = r;
  return r;
}

// What a decoded message looks like to the rest of src/containerd: int64 as
// number (timestamps fit), enums as their names, absent fields as defaults.
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, arrays: true, objects: true };

export interface MessageCodec {
  readonly name: string;
  encode(value: object): Buffer;
  decode(bytes: Uint8Array): Record<string, unknown>;
}

const codecs = new Map<string, MessageCodec>();

/** The codec for a message type by its full name, e.g. "containerd.events.TaskExit". */
export function messageCodec(fullName: string): MessageCodec {
  let codec = codecs.get(fullName);
  if (codec) return codec;
  const type = loadRoot().lookupType(fullName);
  codec = {
    name: fullName,
    encode: (value) => {
      const err = type.verify(value);
      if (err) throw new TypeError(`${fullName}: ${err}`);
      return Buffer.from(type.encode(type.fromObject(value)).finish());
    },
    decode: (bytes) => type.toObject(type.decode(bytes), TO_OBJECT),
  };
  codecs.set(fullName, codec);
  return codec;
}

/** Whether a message type of that name is among the loaded protos. */
export function hasMessage(fullName: string): boolean {
  return loadRoot().lookup(fullName) instanceof protobuf.Type;
}

export interface MethodCodec {
  /** The HTTP/2 path: /package.Service/Method */
  readonly path: string;
  readonly request: MessageCodec;
  readonly response: MessageCodec;
}

export function methodCodec(service: string, method: string): MethodCodec {
  const svc = loadRoot().lookupService(service);
  const m = svc.methods[method];
  if (!m) throw new Error(`${service} has no method ${method}`);
  m.resolve();
  if (!m.resolvedRequestType || !m.resolvedResponseType) throw new Error(`${service}.${method}: unresolved types`);
  return {
    path: `/${service}/${method}`,
    request: messageCodec(m.resolvedRequestType.fullName.slice(1)),
    response: messageCodec(m.resolvedResponseType.fullName.slice(1)),
  };
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** A decoded google.protobuf.Timestamp as a Date; undefined when unset or zero. */
export function toDate(ts: Timestamp | null | undefined): Date | undefined {
  if (!ts || (ts.seconds <= 0 && ts.nanos === 0)) return undefined;
  return new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6));
}

/** Nanosecond-precise milliseconds since the epoch (for lag measurements). */
export function toEpochMs(ts: Timestamp | null | undefined): number | undefined {
  if (!ts || (ts.seconds <= 0 && ts.nanos === 0)) return undefined;
  return ts.seconds * 1000 + ts.nanos / 1e6;
}
