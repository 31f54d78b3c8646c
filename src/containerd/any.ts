// google.protobuf.Any packing as containerd expects it: the OCI spec as JSON
// under its well-known URL, proto messages under their bare full name.
import { messageCodec } from './wire.js';

export interface Any {
  typeUrl: string;
  value: Uint8Array;
}

export const OCI_SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
export const RUNC_OPTIONS_TYPE = 'containerd.runc.v1.Options';

export function packSpec(spec: object): Any {
  return { typeUrl: OCI_SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) };
}

export function unpackSpec(any: Any): unknown {
  if (any.typeUrl !== OCI_SPEC_TYPE_URL) throw new TypeError(`not an OCI spec: ${any.typeUrl}`);
  return JSON.parse(Buffer.from(any.value).toString('utf8'));
}

/** Options of the io.containerd.runc.v2 shim (containerd.runc.v1.Options). */
export interface RuncOptions {
  binaryName?: string;
  root?: string;
  systemdCgroup?: boolean;
}

export function packRuncOptions(options: RuncOptions): Any {
  return { typeUrl: RUNC_OPTIONS_TYPE, value: messageCodec(RUNC_OPTIONS_TYPE).encode(options) };
}

export function unpackRuncOptions(any: Any): Required<RuncOptions> {
  if (typeName(any.typeUrl) !== RUNC_OPTIONS_TYPE) throw new TypeError(`not runc options: ${any.typeUrl}`);
  return messageCodec(RUNC_OPTIONS_TYPE).decode(any.value) as unknown as Required<RuncOptions>;
}

/** The message name of a type URL: whatever follows its last '/'. */
export function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
